"""The estimates of monitored batches, kept per model version and batch content until their labels come, and what the
labels said of them: the estimator's self-check, one JSON line per event in the registry's folder of the model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

LEDGER_FILE = "estimates.jsonl"
ESTIMATED, CHECKED = "estimated", "checked"
WHOLE_BATCH = ""  # a record of the whole batch, not of one slice


@dataclass(frozen=True)
class BatchEstimate:
    """The estimated metric of one scoring batch's rows served by one version, before any label."""

    model_version: str
    source_fingerprint: str  # the batch's content: what the prediction log's rows carry
    batch: str
    metric: str
    value: float | None  # None: no number (the note says why)
    lower: float | None
    upper: float | None
    rows: int
    note: str
    estimated_at: str  # ISO time of the monitoring run
    data_time: str  # ISO time of the batch's data (its place on the dashboard)
    label_shift: bool = False  # the estimate was flagged: a prior change moved, which the estimate cannot see
    slice_name: str = WHOLE_BATCH  # `column=value` of a gate.slices slice: its rows only

    @property
    def key(self) -> tuple[str, str, str]:
        return self.model_version, self.source_fingerprint, self.slice_name


@dataclass(frozen=True)
class EstimateCheck:
    """A batch's estimate against the metric its labels realized (on the labeled rows only)."""

    model_version: str
    source_fingerprint: str
    batch: str
    metric: str
    estimated: float | None
    lower: float | None
    upper: float | None
    realized: float | None
    labeled_rows: int
    batch_rows: int
    within: bool | None  # None: not compared (too few labeled rows, no number on either side); the note says why
    note: str
    checked_at: str
    estimated_at: str = ""  # when the batch was estimated: the order of the labeled batches
    slice_name: str = WHOLE_BATCH

    @property
    def key(self) -> tuple[str, str, str]:
        return self.model_version, self.source_fingerprint, self.slice_name

    @property
    def error(self) -> float | None:
        """|estimated − realized|, when both are numbers."""
        if self.estimated is None or self.realized is None or self.within is None:
            return None
        return abs(self.estimated - self.realized)

    def line(self) -> str:
        """One line a person reads: the estimate, what the labels realized, inside the band or not."""
        head = f"{self.batch} v{self.model_version}" + (f" [{self.slice_name}]" if self.slice_name else "")
        if self.within is None:
            return f"{head}: {self.note}"
        band = "" if self.lower is None else f" [{self.lower:.4f}, {self.upper:.4f}]"
        inside = "inside" if self.within else "OUTSIDE"
        return (
            f"{head}: estimated {self.metric} {self.estimated:.4f}{band}, realized {self.realized:.4f} on "
            f"{self.labeled_rows} labeled rows: {inside} the band (error {self.error:.4f})"
        )


@dataclass(frozen=True)
class Ledger:
    """The newest estimate and the newest check of each (version, batch content, slice)."""

    estimates: dict[tuple[str, str, str], BatchEstimate] = field(default_factory=dict)
    checks: dict[tuple[str, str, str], EstimateCheck] = field(default_factory=dict)

    def compared(self, model_version: str, slice_name: str = WHOLE_BATCH) -> list[EstimateCheck]:
        """The version's batches (or their rows of one slice) whose estimate was compared with their labels, in the
        order they were estimated."""
        mine = [
            c
            for c in self.checks.values()
            if c.model_version == model_version and c.slice_name == slice_name and c.within is not None
        ]
        return sorted(mine, key=lambda check: (check.estimated_at, check.checked_at))

    def outcomes(self, model_version: str, slice_name: str = WHOLE_BATCH) -> list[bool]:
        """Inside the band (True) or outside, per compared batch of the version, oldest first: what trust reads."""
        return [bool(check.within) for check in self.compared(model_version, slice_name)]

    def mean_error(self, model_version: str, slice_name: str = WHOLE_BATCH) -> float | None:
        errors = [c.error for c in self.compared(model_version, slice_name) if c.error is not None]
        return sum(errors) / len(errors) if errors else None

    def slice_names(self, model_version: str) -> list[str]:
        """The slices of the version whose estimates were compared with labels."""
        names = {c.slice_name for c in self.checks.values() if c.model_version == model_version and c.slice_name}
        return sorted(names)

    def slices_of(self, model_version: str, source_fingerprint: str) -> list[BatchEstimate]:
        """The kept estimates of a batch's slices."""
        return [
            kept
            for (version, fingerprint, slice_name), kept in self.estimates.items()
            if slice_name and version == model_version and fingerprint == source_fingerprint
        ]


def ledger_path(registry_root: Path) -> Path:
    return registry_root / LEDGER_FILE


def _append(path: Path, kind: str, records: list) -> None:
    """One line per record, each written whole with one call, so concurrent runs never interleave a line."""
    if not records:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as handle:
        if handle.tell() and not _ends_a_line(path):  # a line cut short by a crash stays apart from the new ones
            handle.write("\n")
        for record in records:
            handle.write(json.dumps({"kind": kind, **asdict(record)}) + "\n")


def _ends_a_line(path: Path) -> bool:
    with path.open("rb") as raw:
        raw.seek(-1, 2)
        return raw.read(1) == b"\n"


def record_estimates(path: Path, estimates: list[BatchEstimate]) -> None:
    _append(path, ESTIMATED, estimates)


def record_checks(path: Path, checks: list[EstimateCheck]) -> None:
    _append(path, CHECKED, checks)


def read_ledger(path: Path) -> Ledger:
    """The ledger, newest line per key and kind; a line cut short by a crash while written is skipped."""
    ledger = Ledger()
    if not path.exists():
        return ledger
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            kind = record.pop("kind")
            if kind == ESTIMATED:
                estimate = BatchEstimate(**record)
                ledger.estimates[estimate.key] = estimate
            elif kind == CHECKED:
                check = EstimateCheck(**record)
                ledger.checks[check.key] = check
        except (json.JSONDecodeError, TypeError, KeyError):
            continue
    return ledger
