"""The landing folder: which files are new and complete, and whether their content was handled before.

A file counts as complete once its size and modification time stayed the same for `stable_seconds` (writers that
write-then-rename are complete at once; writers that append in place are waited for). Each complete file is hashed
and recorded in the ledger (`data.ledger`), so the same content arriving again under any name, or the watcher
restarting, never announces new data twice, unless the content's last run failed: then it is announced again. The
watcher service (`driftline watch`) turns each `Arrival` into a Prefect event.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from driftline.data.ledger import FAILED, Arrival, Ledger
from driftline.data.loading import fingerprint_file

# Names that say "still being written" or "not for us": hidden, temp and partial-download files.
IGNORED_PREFIXES = (".", "_", "~")
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp", ".filepart", ".lock", "~")


def is_candidate(path: Path) -> bool:
    name = path.name
    return path.is_file() and not name.startswith(IGNORED_PREFIXES) and not name.lower().endswith(IGNORED_SUFFIXES)


class LandingWatcher:
    """Polls one folder (recursively); `poll()` returns the files that became complete since the last call.

    `announce` is called for each arrival before it is recorded: if it raises (the event could not be sent), the file
    is offered again at the next poll, so no arrival is lost. `processed_elsewhere(sha256)` lets the caller count
    content the ledger has never seen, but that reached the pipeline another way (e.g. the model's archive from
    before the ledger recorded outcomes), as already processed.
    """

    def __init__(
        self,
        folder: Path,
        ledger: Ledger,
        stable_seconds: float,
        processed_elsewhere: Callable[[str], str | None] = lambda sha256: None,
    ):
        self.folder = folder
        self.ledger = ledger
        self.stable_seconds = stable_seconds
        self.processed_elsewhere = processed_elsewhere
        self._pending: dict[Path, tuple[int, int, float]] = {}  # path -> (size, mtime_ns, unchanged since)

    @property
    def settling(self) -> bool:
        """Some file was seen but has not stayed unchanged long enough yet."""
        return bool(self._pending)

    def _complete(self, path: Path, now: float) -> tuple[int, int] | None:
        stat = path.stat()
        observed = (stat.st_size, stat.st_mtime_ns)
        if self.ledger.known_file(path, *observed):
            self._pending.pop(path, None)
            return None
        size, mtime_ns, since = self._pending.get(path, (-1, -1, now))
        if (size, mtime_ns) != observed:
            self._pending[path] = (*observed, now)
            since = now
        if now - since < self.stable_seconds:
            return None
        return observed

    def poll(self, announce: Callable[[Arrival], None], now: float) -> list[Arrival]:
        arrivals = []
        if not self.folder.is_dir():
            return arrivals
        for path in sorted(self.folder.rglob("*")):
            try:
                if not is_candidate(path):
                    continue
                observed = self._complete(path, now)
                if observed is None:
                    continue
                sha256 = fingerprint_file(path)
                if (path.stat().st_size, path.stat().st_mtime_ns) != observed:
                    self._pending.pop(path, None)  # it changed while being hashed: not complete after all
                    continue
            except FileNotFoundError:  # moved away (e.g. quarantined) between listing and reading
                self._pending.pop(path, None)
                continue
            with self.ledger.locked():
                if self.ledger.known_file(path, *observed):  # another watcher on this folder recorded it meanwhile
                    self._pending.pop(path, None)
                    continue
                duplicate_of = self.ledger.handled_as(sha256)
                if duplicate_of is None and self.ledger.state(sha256) is None:
                    duplicate_of = self.processed_elsewhere(sha256)
                arrival = Arrival(
                    path=str(path),
                    size=observed[0],
                    sha256=sha256,
                    seen_at=datetime.now(UTC).isoformat(),
                    mtime_ns=observed[1],
                    duplicate_of=duplicate_of,
                )
                announce(arrival)
                self.ledger.record(arrival)
            self._pending.pop(path, None)
            arrivals.append(arrival)
        return arrivals

    def retry_failed(self, announce: Callable[[Arrival], None]) -> tuple[list[Arrival], list[str]]:
        """Announce again every landed content whose last run failed, from its latest file if that is still there.

        Returns (the arrivals announced, the files of failed content no longer in the landing folder)."""
        announced, gone = [], []
        with self.ledger.locked():
            for failed in self.ledger.latest_outcomes(FAILED):
                landed = self.ledger.latest_arrival(failed.sha256)
                path = Path(landed.path)
                try:
                    stat = path.stat()
                    unchanged = fingerprint_file(path) == failed.sha256
                except FileNotFoundError:
                    unchanged = False
                if not unchanged:
                    gone.append(landed.path)
                    continue
                arrival = Arrival(
                    path=landed.path,
                    size=stat.st_size,
                    sha256=failed.sha256,
                    seen_at=datetime.now(UTC).isoformat(),
                    mtime_ns=stat.st_mtime_ns,
                )
                announce(arrival)
                self.ledger.record(arrival)
                announced.append(arrival)
        return announced, gone


def complete_files(folder: Path, settle_seconds: float, now: float) -> list[Path]:
    """Every file under a watched folder (subfolders too) untouched for `settle_seconds`, by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if is_candidate(p) and now - p.stat().st_mtime >= settle_seconds)


def settled_files(folder: Path, settle_seconds: float, now: float) -> list[Path]:
    """Files in a drop folder (not its subfolders) untouched for `settle_seconds`: a one-shot completeness check
    for scheduled runs, which cannot watch a size stay the same."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if is_candidate(p) and now - p.stat().st_mtime >= settle_seconds)


def file_away(path: Path, folder: Path) -> Path:
    """Move a processed file into `folder`, never overwriting an earlier file of the same name."""
    folder.mkdir(parents=True, exist_ok=True)
    destination = folder / path.name
    if destination.exists():
        destination = folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{path.name}"
    return Path(shutil.move(str(path), destination))
