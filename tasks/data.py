"""Tasks for data: load and fingerprint, archive, retraining window, the scoring inbox and the prediction log."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from driftline.config import DriftlineConfig
from driftline.data import archive, landing, loading, prediction_log
from driftline.registry import registry_folders
from driftline.steps import admission, batch_outcomes, drift_check, retraining
from driftline.tasks.registry import run_actor
from driftline.tasks.retries import retried


@task(name="load-batch", cache_policy=NO_CACHE)
def load_batch(path: str | Path, cfg: DriftlineConfig) -> loading.DataBatch:
    """Read and fingerprint a file; a file that cannot be read is quarantined like one that fails validation."""
    return admission.load_new_batch(path, cfg)


@task(name="archive-batch", cache_policy=NO_CACHE, **retried(2, 1))
def archive_batch(batch: loading.DataBatch, cfg: DriftlineConfig) -> archive.ArchivedBatch:
    """A validated batch kept at a content-addressed path, indexed with the flow run that archived it."""
    return archive.archive_batch(batch, registry_folders(cfg).archive, cfg.dataset, str(run_actor()))


@task(name="retraining-window", cache_policy=NO_CACHE)
def retraining_window(
    cfg: DriftlineConfig, trained_classes: list | None
) -> tuple[list[archive.ArchivedBatch], list[loading.DataBatch]]:
    """The archived batches the config says a retrain uses, read back and checked; a batch that cannot be trained on
    is named by its source file, with the command that takes it out."""
    return retraining.retraining_window(cfg, trained_classes)


@task(name="window-trained-already", cache_policy=NO_CACHE)
def window_trained_already(cfg: DriftlineConfig) -> str | None:
    """Why a retrain would learn nothing new (the newest version was trained on this same window), or None; logged,
    so the run's page in the Prefect UI says why no training followed the alarm."""
    reason = retraining.trained_already(cfg)
    if reason:
        get_run_logger().info("no retrain: %s", reason)
    return reason


@task(name="processed-before", cache_policy=NO_CACHE)
def processed_before(batch: loading.DataBatch, cfg: DriftlineConfig) -> str | None:
    """The name under which an earlier run processed this content successfully: the same bytes are not processed
    twice, but content whose run failed is processed again."""
    return batch_outcomes.processed_before(batch, cfg, str(flow_run.id) if flow_run.id else None)


@task(name="waiting-in-inbox", cache_policy=NO_CACHE)
def waiting_in_inbox(cfg: DriftlineConfig) -> list[Path]:
    """Complete files in scoring.inbox (untouched for landing.stable_seconds), oldest name first."""
    return landing.settled_files(cfg.folders.inbox, cfg.landing.stable_seconds, time.time())


@task(name="file-as-scored", cache_policy=NO_CACHE)
def file_as_scored(path: Path, cfg: DriftlineConfig) -> Path:
    """Scored inbox files move to inbox/done/, so the next scheduled run does not score them again."""
    return landing.file_away(path, cfg.folders.inbox / "done")


@task(name="read-prediction-log", cache_policy=NO_CACHE, **retried(2, [2, 10]))
def new_predictions(cfg: DriftlineConfig) -> prediction_log.LogWindow:
    """What the prediction log gained since the last monitoring run of this model (its watermark is in MLflow)."""
    return drift_check.since_last_monitoring(cfg)
