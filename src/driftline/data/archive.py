"""The archive: validated batches at content-addressed, read-only paths, indexed; the retraining window over it; a
batch taken out of it (moved to quarantine, the removal recorded in the index)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from driftline.config import DatasetConfig, RetrainingConfig
from driftline.data.loading import DataBatch, load_batch, newest_event_time
from driftline.data.quarantine import quarantine_file
from driftline.data.storage import write_atomically
from driftline.errors import DataRejected, DriftlineError

ARCHIVE_INDEX = "index.jsonl"


@dataclass(frozen=True)
class ArchivedBatch:
    """An entry of the archive index: where a validated batch lives, what it held, who archived it, and whether it
    was taken out of the retraining window (`driftline archive remove`)."""

    fingerprint: str
    path: str  # relative to the archive folder, so the workspace can move; after a removal, the quarantined copy
    source_name: str
    rows: int
    archived_at: str
    labeled: bool = True
    event_time_max: str | None = None
    archived_by: str | None = None  # the flow run (or person) that archived it; None in entries older than the field
    removed_at: str | None = None
    removed_by: str | None = None
    removal_reason: str | None = None

    def location(self, archive_dir: Path) -> Path:
        return Path(os.path.normpath(archive_dir / self.path))  # a removed batch's path climbs out to quarantine

    @property
    def in_use(self) -> bool:
        """Still part of the archive a retraining window selects from (not removed)."""
        return self.removed_at is None


REMOVED = "removed"  # an index line recording a removal: {"removed": fingerprint, "removed_at": ..., ...}


def read_archive_index(archive_dir: Path) -> list[ArchivedBatch]:
    """Every archived batch in the order it arrived, removed ones included (with where their file went)."""
    index = archive_dir / ARCHIVE_INDEX
    if not index.exists():
        return []
    entries: dict[str, ArchivedBatch] = {}
    for line in index.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if REMOVED in record:
            fingerprint = record.pop(REMOVED)
            if fingerprint in entries:
                entries[fingerprint] = replace(entries[fingerprint], **record)
        else:
            entries.setdefault(record["fingerprint"], ArchivedBatch(**record))
    return list(entries.values())


def _append(archive_dir: Path, record: dict) -> None:
    # One short line per append: O_APPEND keeps concurrent writers from interleaving within a line.
    archive_dir.mkdir(parents=True, exist_ok=True)
    with (archive_dir / ARCHIVE_INDEX).open("a", encoding="utf-8") as index:
        index.write(json.dumps(record) + "\n")


def archive_batch(
    batch: DataBatch, archive_dir: Path, dataset: DatasetConfig, archived_by: str | None = None
) -> ArchivedBatch:
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
        archived_by=archived_by,
    )
    _append(archive_dir, {k: v for k, v in asdict(entry).items() if not k.startswith("remov")})
    return entry


def select_retraining_batches(archive: list[ArchivedBatch], retraining: RetrainingConfig) -> list[ArchivedBatch]:
    """The labeled archived batches a retrain uses (removed ones never): all, the last N, or those within N days of
    the newest."""
    archive = [entry for entry in archive if entry.labeled and entry.in_use]
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

    DataRejected when the archive holds no labeled batch.
    """
    entries = select_retraining_batches(read_archive_index(archive_dir), retraining)
    if not entries:
        raise DataRejected(str(archive_dir), ["the archive holds no labeled batches to retrain on"])
    return entries, [load_batch(entry.location(archive_dir), dataset) for entry in entries]


def archived_entry(archive_dir: Path, fingerprint: str) -> ArchivedBatch | None:
    """The archive entry of this content, if it was processed before (removed or not: the same bytes again are not
    new data)."""
    return next((entry for entry in read_archive_index(archive_dir) if entry.fingerprint == fingerprint), None)


# --- repair: a batch taken out of every future retraining window ----------------------------------------------------
def find_entry(archive_dir: Path, fingerprint: str) -> ArchivedBatch:
    """The entry whose sha256 is `fingerprint` or starts with it (a unique prefix of 8 or more characters)."""
    entries = read_archive_index(archive_dir)
    exact = [entry for entry in entries if entry.fingerprint == fingerprint]
    found = exact or [e for e in entries if len(fingerprint) >= 8 and e.fingerprint.startswith(fingerprint.lower())]
    if len(found) == 1:
        return found[0]
    if found:
        raise DriftlineError(
            f"fingerprint {fingerprint} matches {len(found)} archived batches in {archive_dir} "
            f"({', '.join(e.source_name for e in found[:3])}); give more of it"
        )
    raise DriftlineError(
        f"no archived batch has fingerprint {fingerprint} in {archive_dir}; `driftline archive "
        "list --config C` shows the archived batches and their fingerprints"
    )


def removal_command(entry: ArchivedBatch, config: Path | str | None) -> str:
    """The command that takes this batch out of every future retraining window."""
    return f"driftline archive remove --config {config or 'C'} --fingerprint {entry.fingerprint} --reason TEXT"


def remove_archived_batch(
    archive_dir: Path, fingerprint: str, reason: str, removed_by: str, quarantine_dir: Path
) -> tuple[ArchivedBatch, bool]:
    """Take one batch out of every future retraining window: its file moved to quarantine with the reason (never
    deleted), the removal appended to the index, which points at the quarantined copy so lineage still resolves.

    Returns the entry as it is now and whether this call removed it (False: it had been removed already).
    """
    entry = find_entry(archive_dir, fingerprint)
    archived = archive_dir / f"{entry.fingerprint}{Path(entry.path).suffix}"
    if not entry.in_use:
        archived.unlink(missing_ok=True)  # left behind when an earlier removal stopped after recording itself
        return entry, False
    # Copy, record, then delete the original: a removal interrupted at any point leaves the file findable.
    folder = quarantine_file(
        archived,
        quarantine_dir,
        [f"removed from the archive: {reason}"],
        {
            "stage": "archive",
            "fingerprint": entry.fingerprint,
            "source_name": entry.source_name,
            "archived_at": entry.archived_at,
            "archived_by": entry.archived_by,
            "removed_by": removed_by,
        },
        copy=True,
    )
    removal = {
        REMOVED: entry.fingerprint,
        "removed_at": datetime.now(UTC).isoformat(),
        "removed_by": removed_by,
        "removal_reason": reason,
        "path": os.path.relpath(folder / archived.name, archive_dir),
    }
    _append(archive_dir, removal)
    archived.unlink(missing_ok=True)
    return find_entry(archive_dir, entry.fingerprint), True
