"""What a backtest found: per policy, its first champion and every replayed batch; totals; the same as JSON."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime

from driftline.backtest.ordering import HistoryFile
from driftline.backtest.policies import Policy

SCORED, REJECTED, DUPLICATE = "scored", "rejected", "duplicate"
PROMOTED = "promoted"


@dataclass(frozen=True)
class Start:
    """A policy's first champion, trained on the history's first files through the training flow."""

    version: str
    verdict: str
    holdout: float | None  # its primary metric on its own holdout
    seconds: float


@dataclass(frozen=True)
class ReplayedBatch:
    """One later file through the continuous-training flow: served, judged by its labels, maybe retrained on."""

    batch: str
    rows: int | None  # None: the file could not be read
    status: str  # scored | rejected (quarantined in the replay) | duplicate (the same content as an earlier file)
    served_version: str | None = None  # the champion that scored it: of that moment, before any retrain it started
    metrics: dict[str, float] = field(default_factory=dict)  # the served model on the batch's labels
    drift: bool = False  # the dataset-drift verdict (an alarm)
    drifted_features: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)  # prediction, label: the signals that drifted
    retrained: bool = False
    candidate_version: str | None = None
    gate: str | None = None  # the retrain's verdict: promoted | refused
    gate_reasons: list[str] = field(default_factory=list)
    champion_after: str | None = None  # who serves the next batch
    seconds: float = 0.0
    note: str = ""  # why it was rejected

    @property
    def promoted(self) -> bool:
        return self.gate == PROMOTED


@dataclass(frozen=True)
class Totals:
    """A policy's figures over the replay: what users were served, what it cost."""

    mean_metric: float | None  # the mean over the batches with labels, each batch counting once
    labeled_batches: int
    alarms: int
    retrains: int
    promotions: int
    refused: int  # retrains the gate refused: compute spent for no change
    rejected: int
    seconds: float  # the later batches' wall time, retraining included

    @classmethod
    def of(cls, batches: list[ReplayedBatch], metric: str) -> Totals:
        values = [b.metrics[metric] for b in batches if metric in b.metrics]
        retrains = [b for b in batches if b.retrained]
        promotions = sum(b.promoted for b in retrains)
        return cls(
            mean_metric=statistics.fmean(values) if values else None,
            labeled_batches=len(values),
            alarms=sum(b.drift for b in batches),
            retrains=len(retrains),
            promotions=promotions,
            refused=len(retrains) - promotions,
            rejected=sum(b.status == REJECTED for b in batches),
            seconds=sum(b.seconds for b in batches),
        )


@dataclass(frozen=True)
class PolicyReplay:
    policy: Policy
    start: Start
    batches: list[ReplayedBatch]


@dataclass(frozen=True)
class Backtest:
    """Every policy's replay of the same history, from the same start."""

    name: str  # the config's name
    metric: str  # the primary metric: what "served quality" means here
    greater_is_better: bool
    history: list[HistoryFile]  # every file, in time order
    initial: int  # how many of them trained the first champion
    replays: list[PolicyReplay]
    finished_at: datetime

    @property
    def later(self) -> list[HistoryFile]:
        return self.history[self.initial :]

    def totals(self) -> dict[str, Totals]:
        return {replay.policy.name: Totals.of(replay.batches, self.metric) for replay in self.replays}

    def best(self) -> str | None:
        """The policy that served the best mean metric (None when no batch had labels)."""
        measured = {name: t.mean_metric for name, t in self.totals().items() if t.mean_metric is not None}
        if not measured:
            return None
        pick = max if self.greater_is_better else min
        return pick(measured, key=measured.__getitem__)

    def to_dict(self) -> dict:
        totals = self.totals()
        return {
            "name": self.name,
            "metric": self.metric,
            "greater_is_better": self.greater_is_better,
            "finished_at": self.finished_at.isoformat(),
            "best_policy": self.best(),
            "initial": [file.name for file in self.history[: self.initial]],
            "batches": [{"batch": file.name, "event_time": _iso(file.event_time)} for file in self.later],
            "policies": [
                {
                    "name": replay.policy.name,
                    "changes": replay.policy.overrides,
                    "described": replay.policy.describe(),
                    "start": asdict(replay.start),
                    "totals": asdict(totals[replay.policy.name]),
                    "batches": [asdict(batch) for batch in replay.batches],
                }
                for replay in self.replays
            ],
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
