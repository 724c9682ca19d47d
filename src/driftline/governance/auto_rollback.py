"""Automatic rollback: whether a newly promoted champion degraded against its own figures at promotion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from driftline.config import DriftlineConfig
from driftline.modeling.metrics import greater_is_better
from driftline.monitoring.drift import DriftResult
from driftline.registry.audit_events import parse_time


@dataclass(frozen=True)
class Degradation:
    roll_back: bool
    reasons: list[str]
    note: str  # why nothing happens, when nothing does


def degradation(
    cfg: DriftlineConfig,
    champion_version: str,
    promoted_at: str | None,
    moment: datetime,
    has_previous: bool,
    drift: DriftResult | None = None,
    live_metrics: dict[str, float] | None = None,
    promotion_metrics: dict[str, float] | None = None,
    live_breaches: list[str] | None = None,
) -> Degradation:
    """Roll back when a champion promoted less than `watch_days` ago shows prediction drift against its holdout
    predictions (its figures at promotion), or, once labels arrive, a primary metric worse than at promotion by
    more than `max_metric_drop`, or slice and fairness breaches that count as degradation (`live_breaches`,
    labels.fairness_counts_as_degradation). A champion past its watch, or with nothing to go back to, stays.
    """
    settings = cfg.governance.auto_rollback
    if not settings.enabled:
        return Degradation(False, [], "governance.auto_rollback.enabled is false")
    if promoted_at is None or moment - parse_time(promoted_at) > timedelta(days=settings.watch_days):
        return Degradation(False, [], f"v{champion_version} is past its {settings.watch_days:g}-day watch")
    if not has_previous:
        return Degradation(False, [], "no `previous` version to roll back to")
    reasons = []
    if settings.prediction_drift and drift is not None:
        reasons += [
            f"prediction drift of v{champion_version} since its promotion ({c.method} = {c.statistic:.3g})"
            for c in drift.columns
            if c.role == "prediction" and c.drifted
        ]
    metric = cfg.primary_metric
    if live_metrics and promotion_metrics and metric in live_metrics and metric in promotion_metrics:
        drop = promotion_metrics[metric] - live_metrics[metric]
        drop = drop if greater_is_better(cfg.dataset.task, metric) else -drop
        if drop > settings.max_metric_drop:
            reasons.append(
                f"live {metric} {live_metrics[metric]:.4f} is {drop:.4f} worse than at promotion "
                f"({promotion_metrics[metric]:.4f}; allowed {settings.max_metric_drop})"
            )
    reasons += live_breaches or []
    return Degradation(bool(reasons), reasons, "" if reasons else f"v{champion_version} holds its figures")
