"""Retraining: why a monitored batch starts one (drift.trigger: the drift alarm, the estimated metric, or either),
and its window: the archived batches the config selects, each checked before any fitting (the columns the config
lists, the label rules), so a batch that cannot be trained on is named by the file the user sent, with the command
that takes it out of every future window."""

from __future__ import annotations

from driftline.config import DriftlineConfig
from driftline.data import archive
from driftline.data.loading import DataBatch, missing_columns
from driftline.errors import DataRejected
from driftline.monitoring.drift import DriftResult
from driftline.registry import Registry, registry_folders
from driftline.steps.estimate_check import EstimationCheck
from driftline.validation.labels import LabelRules, label_problems


def retraining_reason(
    drift: DriftResult, batch_name: str, cfg: DriftlineConfig, estimation: EstimationCheck | None = None
) -> str | None:
    """Why a monitored batch starts a retrain (with drift.retrain): by drift.trigger, the drift alarm (`drift`), an
    estimated degradation from a trusted estimator (`estimated`), the estimate when it may decide and the drift alarm
    otherwise (`either`); or every batch (retraining.every_batch)."""
    trigger = cfg.drift.trigger
    decides = trigger != "drift" and estimation is not None and estimation.usable
    if cfg.drift.retrain:
        if decides and estimation.degraded:
            return f"estimated degradation in {batch_name}: {estimation.verdict}"
        if drift.detected and (trigger == "drift" or (trigger == "either" and not decides)):
            return f"drift in {batch_name}"
    if cfg.retraining.every_batch:
        return f"every batch: {batch_name}"
    return None


def trained_already(cfg: DriftlineConfig) -> str | None:
    """Why a retrain would learn nothing new: the newest version was trained, with this config, on exactly the
    labeled batches a retrain would use now, as when batches arrive without their labels and none came since. The
    same data and seed give the same model, which the gate would refuse. None: there is something new (or no
    version yet)."""
    window = archive.select_retraining_batches(
        archive.read_archive_index(registry_folders(cfg).archive), cfg.retraining
    )
    newest = next(iter(Registry(cfg).versions(newest_only=True)), None) if window else None
    if newest is None:
        return None
    if sorted(newest.trained_on) != sorted(entry.fingerprint for entry in window):
        return None
    if newest.config_fingerprint != cfg.fingerprint:
        return None
    return (
        f"v{newest.version} was trained on this same window ({len(window)} labeled "
        f"batch{'es' * (len(window) != 1)}) with this config: "
        "a retrain waits for new labeled data"
    )


def trigger_line(estimation: EstimationCheck, cfg: DriftlineConfig) -> str:
    """What the estimate means for retraining under drift.trigger, in words (the estimation artifact's last line)."""
    trigger = cfg.drift.trigger
    if trigger == "drift":
        return "drift.trigger drift: the drift alarm decides; the estimate is reported only"
    fallback = "the drift alarm decides" if trigger == "either" else "no retrain on the estimate"
    if not estimation.usable:
        why = (
            "no estimated number"
            if not estimation.has_number
            else "the label-shift check flagged the batch"
            if estimation.label_shift
            else "the estimator is untrusted"
        )
        return f"drift.trigger {trigger}: {why}, so the estimate decides nothing; {fallback}"
    if not cfg.drift.retrain:
        return f"drift.trigger {trigger}: drift.retrain is off; the estimate is reported only"
    if estimation.degraded:
        return f"drift.trigger {trigger}: the estimate decides: retrain (estimated degradation)"
    return f"drift.trigger {trigger}: the estimate decides: no retrain (not degraded beyond labels.max_degradation)"


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
