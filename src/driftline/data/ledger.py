"""The landing ledger: every arrival the watcher announced, and what became of each batch's content.

One append-only JSONL file per model and registry. Arrival lines say a complete file was seen and announced (or
announced as a duplicate); outcome lines say what a continuous-training run did with the content (running,
succeeded, failed with the reason and the run, rejected to quarantine). The state of a content hash is its latest
line: content counts as handled once it succeeded, was rejected for its own content, or is in flight; a failure
for any other reason (a run crashed, a server was down) leaves it to be announced again.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ANNOUNCED, RUNNING, SUCCEEDED, FAILED, REJECTED = "announced", "running", "succeeded", "failed", "rejected"
HANDLED = (ANNOUNCED, RUNNING, SUCCEEDED, REJECTED)  # content in these states is not announced again
RECENT = 5  # done arrivals `driftline status` lists by name


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


@dataclass(frozen=True)
class Outcome:
    """What a continuous-training run did with a batch's content: running, succeeded, failed or rejected."""

    sha256: str
    state: str
    data: str  # the file the run was given
    flow_run_id: str | None = None
    reason: str | None = None  # failed: the error's first line; rejected: where the file was quarantined
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


def _parsed(line: str) -> Arrival | Outcome:
    record = json.loads(line)
    return Outcome(**record) if "state" in record else Arrival(**record)


class Ledger:
    """The ledger file, read incrementally; a file lock keeps two writers (watchers, runs) from interleaving."""

    def __init__(self, path: Path):
        self.path = path
        self.records: list[Arrival | Outcome] = []
        self._by_content: dict[str, list[Arrival | Outcome]] = {}
        self._by_file: set[tuple[str, int, int]] = set()
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
                    record = _parsed(line)
                    self.records.append(record)
                    self._by_content.setdefault(record.sha256, []).append(record)
                    if isinstance(record, Arrival):
                        self._by_file.add((record.path, record.size, record.mtime_ns))
            self._read_up_to = handle.tell()

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

    def record(self, record: Arrival | Outcome) -> None:
        """Append one line (call it under `locked()` when the decision depends on what the ledger holds)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(record)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._refresh()

    # --- questions ----------------------------------------------------------------------------------------------
    def known_file(self, path: Path, size: int, mtime_ns: int) -> bool:
        return (str(path), size, mtime_ns) in self._by_file

    def of_content(self, sha256: str) -> list[Arrival | Outcome]:
        return self._by_content.get(sha256, [])

    def state(self, sha256: str) -> str | None:
        """The content's latest state (an announced arrival or a run's outcome); duplicates change nothing."""
        latest = None
        for record in self.of_content(sha256):
            if isinstance(record, Outcome):
                latest = record.state
            elif not record.duplicate:
                latest = ANNOUNCED
        return latest

    def handled_as(self, sha256: str) -> str | None:
        """What a new copy of this content duplicates (its first announced path, or the file a run processed), or
        None when the content is new or its last run failed: then it is announced again."""
        if self.state(sha256) not in HANDLED:
            return None
        first = next((r for r in self.of_content(sha256) if isinstance(r, Arrival) and not r.duplicate), None)
        if first is not None:
            return first.path
        return next(r.data for r in self.of_content(sha256) if isinstance(r, Outcome))

    def content_of_run(self, flow_run_id: str) -> str | None:
        return next((r.sha256 for r in self.records if isinstance(r, Outcome) and r.flow_run_id == flow_run_id), None)

    def latest_arrival(self, sha256: str) -> Arrival | None:
        arrivals = [r for r in self.of_content(sha256) if isinstance(r, Arrival) and not r.duplicate]
        return arrivals[-1] if arrivals else None

    def latest_outcomes(self, state: str) -> list[Outcome]:
        """The latest outcome of every landed content whose state is `state`, oldest first."""
        found = []
        for sha256 in dict.fromkeys(r.sha256 for r in self.records if isinstance(r, Arrival)):
            if self.state(sha256) == state:
                found.append([r for r in self.of_content(sha256) if isinstance(r, Outcome)][-1])
        return found


@dataclass(frozen=True)
class LandingStatus:
    """The landing folder as `driftline status` shows it."""

    pending: list[str]  # complete files not announced yet
    announced: list[str]  # announced, no run started yet
    running: list[Outcome]
    failed: list[Outcome]
    succeeded: int
    rejected: int
    recent: list[Outcome]  # the most recent done (succeeded or rejected), newest first

    def to_dict(self) -> dict:
        return asdict(self)


def landing_status(ledger: Ledger, complete_files: list[Path]) -> LandingStatus:
    """Each landed content by its state; `complete_files` are the settled files now in the landing folder."""
    pending = [str(p) for p in complete_files if not ledger.known_file(p, p.stat().st_size, p.stat().st_mtime_ns)]
    landed = dict.fromkeys(r.sha256 for r in ledger.records if isinstance(r, Arrival))
    announced = [ledger.latest_arrival(sha).path for sha in landed if ledger.state(sha) == ANNOUNCED]
    done = sorted(ledger.latest_outcomes(SUCCEEDED) + ledger.latest_outcomes(REJECTED), key=lambda o: o.at)
    return LandingStatus(
        pending=pending,
        announced=announced,
        running=ledger.latest_outcomes(RUNNING),
        failed=ledger.latest_outcomes(FAILED),
        succeeded=sum(o.state == SUCCEEDED for o in done),
        rejected=sum(o.state == REJECTED for o in done),
        recent=done[::-1][:RECENT],
    )
