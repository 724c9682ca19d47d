"""Tasks for data: load and fingerprint, archive, retraining window, the scoring inbox and the prediction log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.data import archive, landing, loading, paths, prediction_log
from driftline.data.quarantine import quarantine_file
from driftline.errors import DataRejected
from driftline.registry import Registry


@contextmanager
def unreadable_quarantined(path: str | Path, cfg: DriftlineConfig) -> Iterator[None]:
    """A file that cannot be read is quarantined like one that fails validation."""
    try:
        yield
    except DataRejected as rejected:
        if not Path(path).is_file():
            raise  # a mistyped path: nothing to quarantine
        destination = quarantine_file(Path(path), cfg.folders.quarantine, rejected.reasons, {"stage": "load"})
        raise DataRejected(rejected.path, rejected.reasons, str(destination)) from None


@task(name="load-batch", cache_policy=NO_CACHE)
def load_batch(path: str | Path, cfg: DriftlineConfig) -> loading.DataBatch:
    """Read and fingerprint a file; a file that cannot be read is quarantined like one that fails validation."""
    path = paths.allowed_path(path, cfg)  # outside the allowed folders: refused before it is read or moved
    with unreadable_quarantined(path, cfg):
        return loading.load_batch(path, cfg.dataset)


@task(name="archive-batch", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def archive_batch(batch: loading.DataBatch, cfg: DriftlineConfig) -> archive.ArchivedBatch:
    return archive.archive_batch(batch, cfg.folders.archive, cfg.dataset)


@task(name="retraining-window", cache_policy=NO_CACHE)
def retraining_window(cfg: DriftlineConfig) -> tuple[list[archive.ArchivedBatch], list[loading.DataBatch]]:
    """The archived batches the config says a retrain uses, read back from their content-addressed paths."""
    entries = archive.select_retraining_batches(archive.read_archive_index(cfg.folders.archive), cfg.retraining)
    if not entries:
        raise DataRejected(str(cfg.folders.archive), ["the archive holds no labeled batches to retrain on"])
    batches = [loading.load_batch(entry.location(cfg.folders.archive), cfg.dataset) for entry in entries]
    for entry, batch in zip(entries, batches, strict=True):
        missing = loading.missing_columns(batch.frame, cfg.dataset, with_target=True)
        if missing:
            raise DataRejected(
                f"{entry.source_name} (archived as {entry.path})",
                [f"lacks columns {missing} that the config now lists; train with --data on files that have them"],
            )
    return entries, batches


@task(name="already-processed", cache_policy=NO_CACHE)
def already_processed(batch: loading.DataBatch, cfg: DriftlineConfig) -> archive.ArchivedBatch | None:
    """The archive entry of this content if an earlier run processed it: the same bytes are not processed twice."""
    return archive.archived_entry(cfg.folders.archive, batch.fingerprint)


@task(name="waiting-in-inbox", cache_policy=NO_CACHE)
def waiting_in_inbox(cfg: DriftlineConfig) -> list[Path]:
    """Complete files in scoring.inbox (untouched for landing.stable_seconds), oldest name first."""
    return landing.settled_files(cfg.folders.inbox, cfg.landing.stable_seconds, time.time())


@task(name="file-as-scored", cache_policy=NO_CACHE)
def file_as_scored(path: Path, cfg: DriftlineConfig) -> Path:
    """Scored inbox files move to inbox/done/, so the next scheduled run does not score them again."""
    return landing.file_away(path, cfg.folders.inbox / "done")


@task(name="read-prediction-log", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def new_predictions(cfg: DriftlineConfig) -> prediction_log.LogWindow:
    """What the prediction log gained since the last monitoring run of this model (its watermark is in MLflow)."""
    after = Registry(cfg).monitored_through()
    files = prediction_log.pending(cfg.folders.prediction_log, after, cfg.monitoring.settle_seconds)
    return prediction_log.read_window(files)
