"""The watch over a newly promoted champion (governance.auto_rollback): its figures now against those at promotion."""

from __future__ import annotations

from datetime import UTC, datetime

from driftline.config import DriftlineConfig
from driftline.governance.auto_rollback import Degradation, degradation
from driftline.monitoring.drift import DriftResult
from driftline.registry import Champion, Registry


def watch_new_champion(
    drift: DriftResult | None,
    champion: Champion,
    cfg: DriftlineConfig,
    live_metrics: dict[str, float] | None = None,
    live_breaches: list[str] | None = None,
) -> Degradation:
    """Whether a recently promoted champion goes back to `previous`: the registry's record of it, judged now.

    `live_metrics` is the champion's primary metric on freshly labeled rows, when monitoring has them;
    `live_breaches` its slice and fairness breaches that count as degradation.
    """
    registry = Registry(cfg)
    version = champion.ref.version
    return degradation(
        cfg,
        version,
        registry.promoted_at(version),
        datetime.now(UTC),
        registry.alias_holders().previous is not None,
        drift=drift,
        live_metrics=live_metrics,
        promotion_metrics=registry.holdout_metrics_of(champion.ref.run_id),
        live_breaches=live_breaches,
    )


def automatic_rollback_reason(verdict: Degradation) -> str:
    """The reason the audit log records for a rollback the watch decided."""
    return "automatic: " + "; ".join(verdict.reasons)
