"""Task: validate a batch with Great Expectations; a failure quarantines the file and stops the flow."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline import data, paths, validation
from driftline.config import DriftlineConfig
from driftline.errors import DataRejected
from tasks.artifacts import publish_table
from tasks.data import unreadable_quarantined


@task(name="validate-batch", cache_policy=NO_CACHE)
def validate_batch(
    batch: data.DataBatch, cfg: DriftlineConfig, profile: validation.ReferenceProfile | None, for_training: bool
) -> validation.ValidationReport:
    """Training data must carry labels; a batch to score may omit them, but labels it carries must be complete."""
    require_target = for_training or cfg.dataset.target in batch.frame
    expectations = validation.build_expectations(
        cfg.dataset, cfg.validation, profile, require_target, columns=batch.frame.columns
    )
    report = validation.validate_frame(batch.frame, expectations)
    _publish_or_quarantine(report, batch.path, batch.rows, cfg)
    return report


@task(name="validate-file", cache_policy=NO_CACHE)
def validate_file(
    path: str | Path, cfg: DriftlineConfig, profile: validation.ReferenceProfile | None
) -> data.DataFile:
    """A file to score, read and validated `scoring.chunk_rows` rows at a time: memory does not grow with it."""
    path = paths.allowed_path(path, cfg)  # outside the allowed folders: refused before it is read or moved
    with unreadable_quarantined(path, cfg):
        source, report = validation.validate_file(Path(path), cfg, profile, for_training=False)
    _publish_or_quarantine(report, source.path, source.rows, cfg)
    return source


def _publish_or_quarantine(report: validation.ValidationReport, path: Path, rows: int, cfg: DriftlineConfig) -> None:
    """The verdict as a table in the UI; a failed file goes to quarantine with its report, and the run stops."""
    table = [{"expectation": d["expectation"], "column": d["kwargs"].get("column", ""), "passed": d["success"]}
             for d in report.details]  # fmt: skip
    verdict = "passed" if report.success else "FAILED: " + "; ".join(report.failures)
    publish_table(cfg, "validation", table, f"Validation of {path.name} ({rows} rows): {verdict}")
    if not report.success:
        destination = data.quarantine_file(path, cfg.quarantine_dir, report.failures, report.to_dict())
        raise DataRejected(str(path), report.failures, str(destination))
