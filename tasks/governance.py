"""Tasks of governance: the approver's answer, the model card, and the watch over a new champion."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.evaluation.gate import GateDecision
from driftline.governance.audit import Approval
from driftline.governance.model_card import model_card
from driftline.monitoring.auto_rollback import Degradation, degradation
from driftline.monitoring.drift import DriftResult
from driftline.registry import Champion, Registry
from tasks.artifacts import publish_markdown
from tasks.registry import REGISTRY_RETRIES, roll_back
from tasks.training import TrainedCandidate


@task(name="record-approval", **REGISTRY_RETRIES)
def record_approval(candidate: TrainedCandidate, decision: GateDecision, approval: Approval,
                    cfg: DriftlineConfig) -> GateDecision:  # fmt: skip
    """The answer goes to the version and the audit log; a rejection (or a timeout) refuses the challenger."""
    Registry(cfg).record_approval(candidate.ref, approval)
    if approval.approved:
        return decision
    return decision.overruled(f"{approval.action} by {approval.approver}: {approval.reason}")


@task(name="publish-model-card", **REGISTRY_RETRIES)
def publish_model_card(candidate: TrainedCandidate, decision: GateDecision, approval: Approval | None,
                       cfg: DriftlineConfig) -> str:  # fmt: skip
    """The card on the MLflow version (description + model_card.md) and as a Prefect artifact."""
    registry = Registry(cfg)
    version = candidate.ref.version
    lineage = next(info for info in registry.versions() if info.version == version).to_dict()
    card = model_card(cfg, version, lineage, decision, approval)
    registry.log_model_card(candidate.ref, card)
    publish_markdown(cfg, "model-card", card, f"Model card of {cfg.registry.model_name} v{version}")
    return card


@task(name="watch-new-champion", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def watch_new_champion(drift: DriftResult | None, champion: Champion, cfg: DriftlineConfig,
                       live_metrics: dict[str, float] | None = None) -> Degradation:  # fmt: skip
    """Roll a recently promoted champion back when its live figures degrade (governance.auto_rollback).

    `live_metrics` is the champion's primary metric on freshly labeled rows, when monitoring has them.
    """
    registry = Registry(cfg)
    version = champion.ref.version
    verdict = degradation(
        cfg, version, registry.promoted_at(version), datetime.now(UTC), registry.alias_holders().previous is not None,
        drift=drift, live_metrics=live_metrics, promotion_metrics=registry.holdout_metrics_of(champion.ref.run_id),
    )  # fmt: skip
    if verdict.roll_back:
        roll_back(cfg, "automatic: " + "; ".join(verdict.reasons), evidence={"automatic": True, "live": live_metrics})
    return verdict
