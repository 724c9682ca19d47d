"""Task: validate a batch with Great Expectations; a failure quarantines the file and stops the flow."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.data import paths
from driftline.data.chunking import DataFile
from driftline.data.loading import DataBatch
from driftline.data.quarantine import quarantine_file
from driftline.errors import DataRejected
from driftline.validation import chunked, expectations
from driftline.validation.profile import ReferenceProfile
from driftline.validation.report import ValidationReport
from tasks.artifacts import publish_table
from tasks.data import unreadable_quarantined


@task(name="validate-batch", cache_policy=NO_CACHE)
def validate_batch(
    batch: DataBatch, cfg: DriftlineConfig, profile: ReferenceProfile | None, for_training: bool
) -> ValidationReport:
    """Training data must carry labels; a batch to score may omit them, but labels it carries must be complete."""
    require_target = for_training or cfg.dataset.target in batch.frame
    suite = expectations.build_expectations(
        cfg.dataset, cfg.validation, profile, require_target, columns=batch.frame.columns
    )
    report = expectations.validate_frame(batch.frame, suite)
    _publish_or_quarantine(report, batch.path, batch.rows, cfg)
    return report


@task(name="validate-file", cache_policy=NO_CACHE)
def validate_file(
    path: str | Path, cfg: DriftlineConfig, profile: ReferenceProfile | None
) -> DataFile:
    """A file to score, read and validated `scoring.chunk_rows` rows at a time: memory does not grow with it."""
    path = paths.allowed_path(path, cfg)  # outside the allowed folders: refused before it is read or moved
    with unreadable_quarantined(path, cfg):
        source, report = chunked.validate_file(Path(path), cfg, profile, for_training=False)
    _publish_or_quarantine(report, source.path, source.rows, cfg)
    return source


def _publish_or_quarantine(report: ValidationReport, path: Path, rows: int, cfg: DriftlineConfig) -> None:
    """The verdict as a table in the UI; a failed file goes to quarantine with its report, and the run stops."""
    table = [{"expectation": d["expectation"], "column": d["kwargs"].get("column", ""), "passed": d["success"]}
             for d in report.details]  # fmt: skip
    verdict = "passed" if report.success else "FAILED: " + "; ".join(report.failures)
    publish_table(cfg, "validation", table, f"Validation of {path.name} ({rows} rows): {verdict}")
    if not report.success:
        destination = quarantine_file(path, cfg.folders.quarantine, report.failures, report.to_dict())
        raise DataRejected(str(path), report.failures, str(destination))
