"""The landing folder: which files are new and complete, and whether their content was seen before.

A file counts as complete once its size and modification time stayed the same for `stable_seconds` (writers that
write-then-rename are complete at once; writers that append in place are waited for). Each complete file is hashed
and recorded in an append-only ledger, so the same content arriving again under any name, or the watcher restarting,
never announces new data twice. The watcher service (`driftline watch`) turns each `Arrival` into a Prefect event.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from driftline.data.loading import fingerprint_file

# Names that say "still being written" or "not for us": hidden, temp and partial-download files.
IGNORED_PREFIXES = (".", "_", "~")
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp", ".filepart", ".lock", "~")


@dataclass(frozen=True)
class Arrival:
    """A complete file in the landing folder, with its content hash; `duplicate_of` names the first sighting."""

    path: str
    size: int
    sha256: str
    seen_at: str
    mtime_ns: int
    duplicate_of: str | None = None

    @property
    def duplicate(self) -> bool:
        return self.duplicate_of is not None


def is_candidate(path: Path) -> bool:
    name = path.name
    return path.is_file() and not name.startswith(IGNORED_PREFIXES) and not name.lower().endswith(IGNORED_SUFFIXES)


class Ledger:
    """Append-only JSONL of every arrival; a file lock keeps two watchers on one folder from interleaving."""

    def __init__(self, path: Path):
        self.path = path
        self.by_hash: dict[str, Arrival] = {}
        self.by_file: set[tuple[str, int, int]] = set()
        self._read_up_to = 0
        self._refresh()

    def _refresh(self) -> None:
        """Take in lines other writers appended since the last read."""
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            handle.seek(self._read_up_to)
            for line in handle.read().decode("utf-8").splitlines():
                if line.strip():
                    self._remember(Arrival(**json.loads(line)))
            self._read_up_to = handle.tell()

    def _remember(self, arrival: Arrival) -> None:
        self.by_hash.setdefault(arrival.sha256, arrival)
        self.by_file.add((arrival.path, arrival.size, arrival.mtime_ns))

    def known_file(self, path: Path, size: int, mtime_ns: int) -> bool:
        return (str(path), size, mtime_ns) in self.by_file

    def first_sighting(self, sha256: str) -> Arrival | None:
        return self.by_hash.get(sha256)

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with (self.path.parent / f".{self.path.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._refresh()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def record(self, arrival: Arrival) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(arrival)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._refresh()


class LandingWatcher:
    """Polls one folder (recursively); `poll()` returns the files that became complete since the last call.

    `announce` is called for each arrival before it is recorded: if it raises (the event could not be sent), the file
    is offered again at the next poll, so no arrival is lost. `processed_elsewhere(sha256)` lets the caller count
    content that reached the pipeline another way (e.g. the model's archive) as already processed.
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
                first = self.ledger.first_sighting(sha256)
                duplicate_of = first.path if first else self.processed_elsewhere(sha256)
                arrival = Arrival(
                    path=str(path), size=observed[0], sha256=sha256, seen_at=datetime.now(UTC).isoformat(),
                    mtime_ns=observed[1], duplicate_of=duplicate_of,
                )  # fmt: skip
                announce(arrival)
                self.ledger.record(arrival)
            self._pending.pop(path, None)
            arrivals.append(arrival)
        return arrivals


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
