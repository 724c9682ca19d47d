"""Retraining: why a monitored batch starts one, and its window: the archived batches the config selects, each checked
before any fitting (the columns the config lists, the label rules), so a batch that cannot be trained on is named by
the file the user sent, with the command that takes it out of every future window."""

from __future__ import annotations

from driftline.config import DriftlineConfig
from driftline.data import archive
from driftline.data.loading import DataBatch, missing_columns
from driftline.errors import DataRejected
from driftline.monitoring.drift import DriftResult
from driftline.registry import registry_folders
from driftline.validation.labels import LabelRules, label_problems


def retraining_reason(drift: DriftResult, batch_name: str, cfg: DriftlineConfig) -> str | None:
    """Why a monitored batch starts a retrain: drift (with drift.retrain) or every batch (retraining.every_batch)."""
    if drift.detected and cfg.drift.retrain:
        return f"drift in {batch_name}"
    if cfg.retraining.every_batch:
        return f"every batch: {batch_name}"
    return None


def retraining_window(
    cfg: DriftlineConfig, trained_classes: list | None
) -> tuple[list[archive.ArchivedBatch], list[DataBatch]]:
    """The archived batches a retrain uses, read back; labels checked against the task and the champion's
    `trained_classes` (None: no champion).

    DataRejected when the archive holds no labeled batch, or names each batch that cannot be trained on (source name,
    fingerprint, when and by whom archived), why, and the `driftline archive remove` command that takes it out.
    """
    archive_dir = registry_folders(cfg).archive
    entries, batches = archive.retraining_window(archive_dir, cfg.retraining, cfg.dataset)
    rules = LabelRules.of(cfg, trained_classes)
    reasons = []
    for entry, batch in zip(entries, batches, strict=True):
        missing = missing_columns(batch.frame, cfg.dataset, with_target=True)
        problems = [f"lacks columns {missing} that the config now lists"] if missing else []
        problems += label_problems(batch.frame, rules)
        if problems:
            by = f" by {entry.archived_by}" if entry.archived_by else ""
            reasons.append(
                f"batch {entry.source_name} (sha256 {entry.fingerprint[:12]}, archived {entry.archived_at}"
                f"{by}): {'; '.join(problems)}; take it out of every future retraining window: "
                f"{archive.removal_command(entry, cfg.source)}"
            )
    if reasons:
        raise DataRejected(f"retraining window of {cfg.registry.model_name}", reasons)
    return entries, batches
