"""Task: validate a batch with Great Expectations; a failure quarantines the file and stops the flow."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from driftline.config import DriftlineConfig
from driftline.data.chunking import DataFile
from driftline.data.loading import DataBatch
from driftline.steps import admission
from driftline.tasks.publishing import publish_table
from driftline.validation.profile import ReferenceProfile
from driftline.validation.report import ValidationReport


@task(name="validate-batch", cache_policy=NO_CACHE)
def validate_batch(
    batch: DataBatch,
    cfg: DriftlineConfig,
    profile: ReferenceProfile | None,
    for_training: bool,
    trained_classes: list | None = None,
) -> ValidationReport:
    """Training data must carry labels; a batch to score may omit them. Labels it carries follow the label rules,
    against the champion's `trained_classes` when there is a champion."""
    show = partial(publish_verdict, cfg)
    return admission.validate_batch_or_quarantine(batch, cfg, profile, trained_classes, for_training, show)


@task(name="validate-file", cache_policy=NO_CACHE)
def validate_file(
    path: str | Path, cfg: DriftlineConfig, profile: ReferenceProfile | None, trained_classes: list | None = None
) -> DataFile:
    """A file to score, read and validated `scoring.chunk_rows` rows at a time: memory does not grow with it."""
    return admission.validate_file_or_quarantine(path, cfg, profile, trained_classes, partial(publish_verdict, cfg))


def publish_verdict(cfg: DriftlineConfig, report: ValidationReport, path: Path, rows: int) -> None:
    """The verdict as a table in the UI (the label checks included), shown before a failed file goes to quarantine
    and the run stops; what passed but deserves a look (a new class accepted) is also logged as a warning."""
    table = [
        {"expectation": d["expectation"], "column": d["kwargs"].get("column", ""), "passed": d["success"]}
        for d in report.details
    ]
    verdict = "passed" if report.success else "FAILED: " + "; ".join(report.failures)
    notes = "".join(f" Note: {note}." for note in report.notes)
    publish_table(cfg, "validation", table, f"Validation of {path.name} ({rows} rows): {verdict}.{notes}")
    if report.notes:
        try:
            log = get_run_logger()
        except MissingContextError:  # the task's body called directly, outside a run: the artifact is the report
            return
        for note in report.notes:
            log.warning("%s: %s", path.name, note)
