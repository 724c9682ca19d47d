"""Task: validate a batch with Great Expectations; a failure quarantines the file and stops the flow."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline import data, validation
from driftline.config import DriftlineConfig
from driftline.errors import DataRejected
from tasks.artifacts import publish_table


@task(name="validate-batch", cache_policy=NO_CACHE)
def validate_batch(
    batch: data.DataBatch, cfg: DriftlineConfig, profile: validation.ReferenceProfile | None, for_training: bool
) -> validation.ValidationReport:
    """Training data must carry labels; a batch to score may omit them, but labels it carries must be complete."""
    require_target = for_training or cfg.dataset.target in batch.frame
    expectations = validation.build_expectations(cfg.dataset, cfg.validation, profile, require_target)
    report = validation.validate_frame(batch.frame, expectations)
    rows = [{"expectation": d["expectation"], "column": d["kwargs"].get("column", ""), "passed": d["success"]}
            for d in report.details]  # fmt: skip
    verdict = "passed" if report.success else "FAILED: " + "; ".join(report.failures)
    publish_table(cfg, "validation", rows, f"Validation of {batch.name} ({batch.rows} rows): {verdict}")
    if not report.success:
        destination = data.quarantine_file(batch.path, cfg.quarantine_dir, report.failures, report.to_dict())
        raise DataRejected(str(batch.path), report.failures, str(destination))
    return report
