"""Tasks of governance: the approver's answer, the model card, and the watch over a new champion."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.evaluation.gate import GateDecision
from driftline.governance.auto_rollback import Degradation
from driftline.monitoring.drift import DriftResult
from driftline.registry import Champion
from driftline.registry.audit_events import Approval
from driftline.steps import champion_watch, records
from driftline.steps.challenger import TrainedCandidate
from driftline.tasks.publishing import publish_markdown
from driftline.tasks.registry import REGISTRY_RETRIES
from driftline.tasks.retries import retried


@task(name="record-approval", **REGISTRY_RETRIES)
def record_approval(
    candidate: TrainedCandidate, decision: GateDecision, approval: Approval, cfg: DriftlineConfig
) -> GateDecision:
    """The answer goes to the version and the audit log; a rejection (or a timeout) refuses the challenger."""
    return records.record_approval(candidate, decision, approval, cfg)


@task(name="publish-model-card", **REGISTRY_RETRIES)
def publish_model_card(
    candidate: TrainedCandidate, decision: GateDecision, approval: Approval | None, cfg: DriftlineConfig
) -> str:
    """The card on the MLflow version (description + model_card.md) and as a Prefect artifact."""
    card = records.write_model_card(candidate, decision, approval, cfg)
    publish_markdown(cfg, "model-card", card, f"Model card of {cfg.registry.model_name} v{candidate.ref.version}")
    return card


@task(name="watch-new-champion", cache_policy=NO_CACHE, **retried(1, 5))
def watch_new_champion(
    drift: DriftResult | None,
    champion: Champion,
    cfg: DriftlineConfig,
    live_metrics: dict[str, float] | None = None,
    live_breaches: list[str] | None = None,
) -> Degradation:
    """Whether a recently promoted champion degraded against its figures at promotion (governance.auto_rollback);
    the flow rolls it back when it did.

    `live_metrics` is the champion's primary metric on freshly labeled rows, when monitoring has them;
    `live_breaches` its slice and fairness breaches that count as degradation.
    """
    return champion_watch.watch_new_champion(drift, champion, cfg, live_metrics, live_breaches)
