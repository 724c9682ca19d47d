"""Slices and fairness watched in production: the champion's gate.slices metric and disparate impact on each labeled
scoring batch, computed as the gate computes them, against its own figures at promotion (docs/monitoring.md)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

import pandas as pd

from driftline.config import DriftlineConfig
from driftline.data import prediction_log
from driftline.evaluation.slices import FairnessResult, fairness_of, slice_metrics
from driftline.modeling.metrics import greater_is_better
from driftline.modeling.pipeline import Predictions
from driftline.monitoring.performance import logged_predictions, truth_of


@dataclass(frozen=True)
class AtPromotion:
    """The champion's own figures on its holdout when its gate judged it: what its live figures are held to."""

    slices: dict[str, float] = field(default_factory=dict)  # slice name (column=value) -> primary metric
    disparate_impact: float | None = None

    @classmethod
    def of_gate_record(cls, record: dict | None) -> AtPromotion:
        """From the version's gate.json (`GateDecision.to_dict()`): the version was the challenger there."""
        if not record:
            return cls()
        slices = {
            f"{s['column']}={s['value']}": float(s["challenger"])
            for s in record.get("slices") or []
            if s.get("challenger") is not None
        }
        fairness = record.get("fairness") or {}
        return cls(slices, fairness.get("disparate_impact"))


@dataclass(frozen=True)
class SliceCheck:
    """The champion's primary metric on the labeled rows of one slice, against its value at promotion."""

    column: str
    value: str
    rows: int
    live: float | None
    at_promotion: float | None
    decides: bool  # enough labeled rows (gate.slices.min_rows) and both values defined
    degraded: bool  # decides, and worse than at promotion by more than gate.slices.tolerance

    @property
    def name(self) -> str:
        return f"{self.column}={self.value}"


@dataclass(frozen=True)
class BatchCheck:
    """The champion's slices and fairness on the labeled rows of one scoring batch."""

    model_version: str
    source: str
    rows: int
    scored_at: datetime  # when the batch was scored (its first row): its place on the dashboards
    metric: str
    slices: list[SliceCheck]
    fairness: FairnessResult | None
    fairness_at_promotion: float | None
    newly_labeled: bool  # gained labels in this run: its verdict is news (notified, may count as degradation)

    @property
    def disparate_impact(self) -> float | None:
        return self.fairness.disparate_impact if self.fairness else None

    @property
    def fairness_breached(self) -> bool:
        return self.disparate_impact is not None and self.disparate_impact < self.fairness.minimum

    @property
    def degraded_slices(self) -> list[SliceCheck]:
        return [check for check in self.slices if check.degraded]

    @property
    def fairness_reason(self) -> str:
        return (
            (
                f"disparate impact on {self.fairness.attribute} {self.disparate_impact:.3f} < "
                f"{self.fairness.minimum} in {self.source}"
            )
            if self.fairness_breached
            else ""
        )

    def slice_reason(self, tolerance: float) -> str:
        return "; ".join(
            f"{self.metric}[{c.name}] {c.live:.4f} on {c.rows} labeled rows vs {c.at_promotion:.4f} at promotion "
            f"(allowed {tolerance}) in {self.source}"
            for c in self.degraded_slices
        )

    def slice_figures(self) -> dict[str, float]:
        """Each slice's live metric and its value at promotion, named as the gate names them."""
        figures = {f"{self.metric}[{c.name}]": c.live for c in self.slices if c.live is not None}
        figures |= {
            f"{self.metric}[{c.name}] at promotion": c.at_promotion
            for c in self.slices
            if c.live is not None and c.at_promotion is not None
        }
        return figures

    def fairness_figures(self) -> dict[str, float]:
        """The disparate impact, its floor, and the positive-prediction rate of each group."""
        if self.fairness is None:
            return {}
        attribute = self.fairness.attribute
        figures = {f"positive_rate[{attribute}={g.group}]": g.positive_rate for g in self.fairness.groups}
        if self.disparate_impact is not None:
            figures |= {f"disparate_impact[{attribute}]": self.disparate_impact, "minimum": self.fairness.minimum}
        return figures


@dataclass(frozen=True)
class LiveChecks:
    """What one label run found on the champion's labeled batches; the newly labeled ones give the verdict."""

    batches: list[BatchCheck]
    tolerance: float  # gate.slices.tolerance
    counts_as_degradation: bool  # labels.fairness_counts_as_degradation
    note: str = ""  # why nothing is watched, when nothing is

    @property
    def judged(self) -> list[BatchCheck]:
        return [batch for batch in self.batches if batch.newly_labeled]

    @property
    def fairness_breaches(self) -> list[BatchCheck]:
        return [batch for batch in self.judged if batch.fairness_breached]

    @property
    def slice_degradations(self) -> list[BatchCheck]:
        return [batch for batch in self.judged if batch.degraded_slices]

    @property
    def reasons(self) -> list[str]:
        return [batch.fairness_reason for batch in self.fairness_breaches] + [
            batch.slice_reason(self.tolerance) for batch in self.slice_degradations
        ]

    @property
    def counted(self) -> list[str]:
        """The breaches that count as degradation (retrain, automatic rollback)."""
        return self.reasons if self.counts_as_degradation else []

    @property
    def summary(self) -> str:
        if self.note:
            return self.note
        if not self.judged:
            return "no newly labeled batch of the champion"
        judged = len(self.judged)
        held = f"slices and fairness hold on {judged} newly labeled batch{'es' * (judged > 1)}"
        return "; ".join(self.reasons) or held


def _slice_checks(
    batch: pd.DataFrame, live: Predictions, at_promotion: AtPromotion, cfg: DriftlineConfig
) -> list[SliceCheck]:
    settings = cfg.gate.slices
    if not settings.columns:
        return []
    higher = greater_is_better(cfg.dataset.task, cfg.primary_metric)
    checks = []
    for result in slice_metrics(batch, live, None, cfg):  # the live value is the "challenger" there
        before = at_promotion.slices.get(result.name)
        decides = result.rows >= settings.min_rows and result.challenger is not None and before is not None
        loss = (before - result.challenger if higher else result.challenger - before) if decides else 0.0
        checks.append(
            SliceCheck(
                result.column,
                result.value,
                result.rows,
                result.challenger,
                before,
                decides,
                decides and loss > settings.tolerance,
            )
        )
    return checks


def check_batches(
    labeled: pd.DataFrame,
    champion_version: str,
    at_promotion: AtPromotion,
    cfg: DriftlineConfig,
    classes: list | None,
    newly_labeled: set[str],
) -> LiveChecks:
    """Per scoring batch of the champion, in scoring order: its slices (gate.slices) and its disparate impact
    (gate.fairness) on the batch's labeled rows. `newly_labeled` names the batches that gained labels in this run."""
    settings = cfg.gate
    checks = LiveChecks([], settings.slices.tolerance, cfg.labels.fairness_counts_as_degradation)
    columns = settings.watched_columns
    if not columns:
        return replace(checks, note="gate.slices and gate.fairness are not configured")
    rows = labeled[labeled[prediction_log.MODEL_VERSION] == champion_version] if not labeled.empty else labeled
    if rows.empty:
        return replace(checks, note=f"no labeled predictions of v{champion_version}")
    missing = [column for column in columns if column not in rows]
    if missing:  # logged before the column was configured, or by a client that does not send it
        return replace(checks, note=f"the prediction log lacks {missing}: not watched")
    rows = rows.assign(**{cfg.dataset.target: truth_of(rows, cfg)})
    first_scored = rows.groupby(prediction_log.SOURCE)[prediction_log.SCORED_AT].min().sort_values()
    batches = []
    for source, scored_at in first_scored.items():
        batch = rows[rows[prediction_log.SOURCE] == source].reset_index(drop=True)
        live = logged_predictions(batch, cfg, classes)
        batches.append(
            BatchCheck(
                champion_version,
                str(source),
                len(batch),
                scored_at.to_pydatetime(),
                cfg.primary_metric,
                _slice_checks(batch, live, at_promotion, cfg),
                fairness_of(batch, live, cfg),
                at_promotion.disparate_impact,
                str(source) in newly_labeled,
            )
        )
    return replace(checks, batches=batches)
