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
class LabelArrival:
    """An earlier batch's labels reaching the loop after a batch was served (`--label-delay`), through the label
    path: joined to the predictions served, the champion judged on them, a retrain when it degraded or they drifted."""

    batch: str  # whose labels
    rows: int  # labeled rows received
    champion_value: float | None = None  # the champion's primary metric on all its labeled predictions so far
    degraded: bool = False  # worse than at promotion by more than labels.max_degradation
    candidate_version: str | None = None  # the retrain it started
    gate: str | None = None
    gate_reasons: list[str] = field(default_factory=list)
    training_rows: int | None = None
    note: str = ""  # why the label file was rejected
    label_drift: bool = False  # the labels drifted from the champion's training labels (a drift alarm)


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
    training_rows: int | None = None  # the rows the retrain trained on (its retraining window)
    estimated_metric: float | None = None  # the served champion's estimate of its primary metric, before labels
    estimated_lower: float | None = None  # the estimate's band
    estimated_upper: float | None = None
    estimate_note: str = ""  # why there is no estimate (no estimator with the version, too few rows)
    estimate_trusted: bool | None = None  # the estimator's trust then (None: no estimator): may it drive a decision
    labels: LabelArrival | None = None  # an earlier batch's labels that reached the loop after this batch
    retrain_skipped: str = ""  # why the retrain it called for did not run (the newest version learned this data)

    @property
    def promoted(self) -> bool:
        return self.gate == PROMOTED

    def verdicts(self) -> list[str]:
        """The gate's verdict on every retrain this batch started: on the batch, then on the labels after it."""
        late = [self.labels.gate] if self.labels is not None and self.labels.candidate_version else []
        return [self.gate or ""] * self.retrained + [gate or "" for gate in late]


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
    degraded: int = 0  # label arrivals that found the champion degraded (--label-delay)
    estimate_error: float | None = None  # mean |estimated - realized| over the batches with both

    @classmethod
    def of(cls, batches: list[ReplayedBatch], metric: str) -> Totals:
        values = [b.metrics[metric] for b in batches if metric in b.metrics]
        verdicts = [verdict for b in batches for verdict in b.verdicts()]
        promotions = verdicts.count(PROMOTED)
        errors = [
            abs(b.estimated_metric - b.metrics[metric])
            for b in batches
            if b.estimated_metric is not None and metric in b.metrics
        ]
        return cls(
            mean_metric=statistics.fmean(values) if values else None,
            labeled_batches=len(values),
            alarms=sum(b.drift for b in batches),
            retrains=len(verdicts),
            promotions=promotions,
            refused=len(verdicts) - promotions,
            rejected=sum(b.status == REJECTED for b in batches),
            seconds=sum(b.seconds for b in batches),
            degraded=sum(b.labels is not None and b.labels.degraded for b in batches),
            estimate_error=statistics.fmean(errors) if errors else None,
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
    label_delay: int = 0  # a batch's labels reached each replay's loop this many batches after it

    @property
    def late_labels(self) -> str:
        """`labels 2 batches late`; empty when each batch came with its labels."""
        if not self.label_delay:
            return ""
        return f"labels {self.label_delay} batch{'es' * (self.label_delay > 1)} late"

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
            "label_delay": self.label_delay,
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
