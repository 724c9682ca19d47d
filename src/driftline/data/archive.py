"""The archive: validated batches at content-addressed, read-only paths, indexed; the retraining window over it."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from driftline.config import DatasetConfig, RetrainingConfig
from driftline.data.loading import DataBatch, load_batch, missing_columns, newest_event_time
from driftline.data.storage import write_atomically
from driftline.errors import DataRejected

ARCHIVE_INDEX = "index.jsonl"


@dataclass(frozen=True)
class ArchivedBatch:
    """An entry of the archive index: where a validated batch lives and what it held."""

    fingerprint: str
    path: str  # relative to the archive folder, so the workspace can move
    source_name: str
    rows: int
    archived_at: str
    labeled: bool = True
    event_time_max: str | None = None

    def location(self, archive_dir: Path) -> Path:
        return archive_dir / self.path


def read_archive_index(archive_dir: Path) -> list[ArchivedBatch]:
    index = archive_dir / ARCHIVE_INDEX
    if not index.exists():
        return []
    return [ArchivedBatch(**json.loads(line)) for line in index.read_text().splitlines() if line.strip()]


def archive_batch(batch: DataBatch, archive_dir: Path, dataset: DatasetConfig) -> ArchivedBatch:
    """Copy a validated batch to a content-addressed, read-only path and index it (once per fingerprint)."""
    existing = archived_entry(archive_dir, batch.fingerprint)
    if existing is not None:
        return existing
    archived_path = archive_dir / f"{batch.fingerprint}{batch.path.suffix.lower()}"
    if not archived_path.exists():
        write_atomically(archived_path, lambda temp: shutil.copyfile(batch.path, temp))
        archived_path.chmod(0o444)
    newest = newest_event_time(batch.frame, dataset)
    entry = ArchivedBatch(
        fingerprint=batch.fingerprint,
        path=archived_path.name,
        source_name=batch.name,
        rows=batch.rows,
        archived_at=datetime.now(UTC).isoformat(),
        labeled=dataset.target in batch.frame,
        event_time_max=newest.isoformat() if newest is not None else None,
    )
    # One short line per append: O_APPEND keeps concurrent writers from interleaving within a line.
    with (archive_dir / ARCHIVE_INDEX).open("a", encoding="utf-8") as index:
        index.write(json.dumps(asdict(entry)) + "\n")
    return entry


def select_retraining_batches(archive: list[ArchivedBatch], retraining: RetrainingConfig) -> list[ArchivedBatch]:
    """The labeled archived batches a retrain uses: all, the last N, or those within N days of the newest."""
    archive = [entry for entry in archive if entry.labeled]
    if retraining.window == "all" or not archive:
        return list(archive)
    if retraining.window == "last_batches":
        return archive[-retraining.size :]

    def newest_time(entry: ArchivedBatch) -> datetime:
        return datetime.fromisoformat(entry.event_time_max or entry.archived_at)

    cutoff = max(newest_time(entry) for entry in archive) - timedelta(days=retraining.size)
    return [entry for entry in archive if newest_time(entry) >= cutoff]


def retraining_window(
    archive_dir: Path, retraining: RetrainingConfig, dataset: DatasetConfig
) -> tuple[list[ArchivedBatch], list[DataBatch]]:
    """The archived batches a retrain uses, read back from their content-addressed paths.

    DataRejected when the archive holds no labeled batch, or names the source file of one that lacks a column the
    config now lists.
    """
    entries = select_retraining_batches(read_archive_index(archive_dir), retraining)
    if not entries:
        raise DataRejected(str(archive_dir), ["the archive holds no labeled batches to retrain on"])
    batches = [load_batch(entry.location(archive_dir), dataset) for entry in entries]
    for entry, batch in zip(entries, batches, strict=True):
        missing = missing_columns(batch.frame, dataset, with_target=True)
        if missing:
            raise DataRejected(
                f"{entry.source_name} (archived as {entry.path})",
                [f"lacks columns {missing} that the config now lists; train with --data on files that have them"],
            )
    return entries, batches


def archived_entry(archive_dir: Path, fingerprint: str) -> ArchivedBatch | None:
    """The archive entry of this content, if it was processed before."""
    return next((entry for entry in read_archive_index(archive_dir) if entry.fingerprint == fingerprint), None)
