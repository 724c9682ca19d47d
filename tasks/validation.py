"""Task: validate a batch with Great Expectations; a failure quarantines the file and stops the flow."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.data.chunking import DataFile
from driftline.data.loading import DataBatch
from driftline.steps import admission
from driftline.validation.profile import ReferenceProfile
from driftline.validation.report import ValidationReport
from tasks.artifacts import publish_table


@task(name="validate-batch", cache_policy=NO_CACHE)
def validate_batch(
    batch: DataBatch, cfg: DriftlineConfig, profile: ReferenceProfile | None, for_training: bool
) -> ValidationReport:
    """Training data must carry labels; a batch to score may omit them, but labels it carries must be complete."""
    return admission.validate_batch_or_quarantine(batch, cfg, profile, for_training, partial(publish_verdict, cfg))


@task(name="validate-file", cache_policy=NO_CACHE)
def validate_file(
    path: str | Path, cfg: DriftlineConfig, profile: ReferenceProfile | None
) -> DataFile:
    """A file to score, read and validated `scoring.chunk_rows` rows at a time: memory does not grow with it."""
    return admission.validate_file_or_quarantine(path, cfg, profile, partial(publish_verdict, cfg))


def publish_verdict(cfg: DriftlineConfig, report: ValidationReport, path: Path, rows: int) -> None:
    """The verdict as a table in the UI, shown before a failed file goes to quarantine and the run stops."""
    table = [{"expectation": d["expectation"], "column": d["kwargs"].get("column", ""), "passed": d["success"]}
             for d in report.details]  # fmt: skip
    verdict = "passed" if report.success else "FAILED: " + "; ".join(report.failures)
    publish_table(cfg, "validation", table, f"Validation of {path.name} ({rows} rows): {verdict}")
