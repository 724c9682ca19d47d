"""Tasks on the MLflow registry: find and load the champion, promote a challenger, roll back."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from driftline.audit import Actor, Rollback
from driftline.config import DriftlineConfig
from driftline.errors import DriftlineError
from driftline.evaluation import GateDecision
from driftline.registry import Champion, ModelRef, Registry
from tasks.events import MODEL_PROMOTED, MODEL_ROLLED_BACK, emit_model_event

REGISTRY_RETRIES = {"retries": 2, "retry_delay_seconds": [2, 10], "cache_policy": NO_CACHE}


def _not_refused(task, task_run, state) -> bool:
    """Retry registry outages, not a transition governance refused: that answer will not change."""
    return not isinstance(state.result(raise_on_failure=False), DriftlineError)


@task(name="load-champion", **REGISTRY_RETRIES)
def load_champion(cfg: DriftlineConfig) -> Champion:
    """The champion model and its drift reference; fails with NoChampion before the first promotion."""
    return Registry(cfg).load_champion()


def run_actor() -> Actor:
    """The flow run a task belongs to: the actor the audit log records for what the task changes."""
    if flow_run.id is None:
        return Actor.os_user()
    return Actor.flow_run(f"{flow_run.flow_name}/{flow_run.name}", str(flow_run.id))


@task(name="promote", retry_condition_fn=_not_refused, **REGISTRY_RETRIES)
def promote(candidate: ModelRef, cfg: DriftlineConfig, decision: GateDecision | None = None) -> ModelRef | None:
    registry = Registry(cfg)
    evidence = decision.evidence(candidate.run_id) if decision else None
    former = registry.promote(candidate, run_actor(), decision.summary if decision else "promoted", evidence)
    emit_model_event(MODEL_PROMOTED, cfg, {
        "version": candidate.version, "previous_version": former.version if former else None,
        "mlflow_run_id": candidate.run_id, "model_version_url": registry.version_url(candidate.version),
    })  # fmt: skip
    return former


@task(name="roll-back", retry_condition_fn=_not_refused, **REGISTRY_RETRIES)
def roll_back(
    cfg: DriftlineConfig, reason: str, to: str | None = None, override_retired: bool = False,
    evidence: dict | None = None,
) -> Rollback:  # fmt: skip
    """`champion` back to `previous` (or `to`), recorded; a repeat changes nothing and sends nothing."""
    registry = Registry(cfg)
    done = registry.rollback(reason, run_actor(), to=to, override_retired=override_retired, evidence=evidence)
    if done.changed:
        emit_model_event(MODEL_ROLLED_BACK, cfg, {
            "version": done.champion, "from_version": done.rolled_back_from, "reason": reason,
            "model_version_url": registry.version_url(done.champion),
        })  # fmt: skip
    return done
