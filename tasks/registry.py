"""Tasks on the MLflow registry: find and load the champion, promote a challenger, roll back."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from driftline.config import DriftlineConfig
from driftline.evaluation.gate import GateDecision
from driftline.governance import rollout
from driftline.registry import Champion, ModelRef, Registry
from driftline.registry.audit_events import Actor, Rollback
from driftline.steps import admission, held_challenger
from driftline.tasks.events import MODEL_PROMOTED, MODEL_ROLLED_BACK, emit_model_event
from driftline.tasks.retries import retried

REGISTRY_RETRIES = {**retried(2, [2, 10]), "cache_policy": NO_CACHE}


@task(name="load-champion", **REGISTRY_RETRIES)
def load_champion(cfg: DriftlineConfig) -> Champion:
    """The champion model and its drift reference; fails with NoChampion before the first promotion."""
    return Registry(cfg).load_champion()


@task(name="champion-classes", **REGISTRY_RETRIES)
def champion_classes(cfg: DriftlineConfig) -> list | None:
    """The classes the champion was trained on (None before the first champion, or for regression): the labels new
    training data and the retraining window may hold."""
    return admission.champion_classes(cfg)


@task(name="load-challenger", **REGISTRY_RETRIES)
def load_challenger(cfg: DriftlineConfig) -> rollout.Challenger | None:
    """Under rollout.mode shadow or canary: the held challenger, loaded; else (or when none is held) None."""
    return held_challenger.load_challenger(cfg)


@task(name="hold-for-rollout", **REGISTRY_RETRIES)
def hold_for_rollout(candidate: ModelRef, cfg: DriftlineConfig, decision: GateDecision) -> GateDecision:
    """A passed candidate stays `challenger`: the rollout on live batches decides its promotion."""
    return held_challenger.hold_for_rollout(candidate, cfg, decision, run_actor())


@task(name="conclude-rollout", **REGISTRY_RETRIES)
def conclude_rollout(cfg: DriftlineConfig, verdict: rollout.RolloutVerdict) -> ModelRef | None:
    """The rollout's verdict carried out: the challenger promoted (event sent) or dropped (recorded); hold: nothing."""
    if verdict.action == "hold":
        return None
    registry = Registry(cfg)
    challenger = registry.version_ref(verdict.challenger_version)
    promoted = verdict.action == "promote"
    former = registry.end_rollout(challenger, promoted, verdict.summary, verdict.evidence, run_actor())
    if promoted:
        _announce_promotion(cfg, registry, challenger, former)
    return challenger


def run_actor() -> Actor:
    """The flow run a task belongs to: the actor the audit log records for what the task changes."""
    if flow_run.id is None:
        return Actor.os_user()
    return Actor.flow_run(f"{flow_run.flow_name}/{flow_run.name}", str(flow_run.id))


@task(name="promote", **REGISTRY_RETRIES)
def promote(candidate: ModelRef, cfg: DriftlineConfig, decision: GateDecision | None = None) -> ModelRef | None:
    registry = Registry(cfg)
    evidence = decision.evidence(candidate.run_id) if decision else None
    former = registry.promote(candidate, run_actor(), decision.summary if decision else "promoted", evidence)
    _announce_promotion(cfg, registry, candidate, former)
    return former


def _announce_promotion(cfg: DriftlineConfig, registry: Registry, promoted: ModelRef, former: ModelRef | None):
    emit_model_event(
        MODEL_PROMOTED,
        cfg,
        {
            "version": promoted.version,
            "previous_version": former.version if former else None,
            "mlflow_run_id": promoted.run_id,
            "model_version_url": registry.version_url(promoted.version),
        },
    )


@task(name="roll-back", **REGISTRY_RETRIES)
def roll_back(
    cfg: DriftlineConfig,
    reason: str,
    to: str | None = None,
    override_retired: bool = False,
    evidence: dict | None = None,
) -> Rollback:
    """`champion` back to `previous` (or `to`), recorded; a repeat changes nothing and sends nothing."""
    registry = Registry(cfg)
    done = registry.rollback(reason, run_actor(), to=to, override_retired=override_retired, evidence=evidence)
    if done.changed:
        emit_model_event(
            MODEL_ROLLED_BACK,
            cfg,
            {
                "version": done.champion,
                "from_version": done.rolled_back_from,
                "reason": reason,
                "model_version_url": registry.version_url(done.champion),
            },
        )
    return done
