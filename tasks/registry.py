"""Tasks on the MLflow registry: find and load the champion, promote a challenger, roll back; A/B tests' moves."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.events import Event
from prefect.runtime import flow_run

from driftline.config import DriftlineConfig
from driftline.evaluation.gate import GateDecision
from driftline.governance import rollout
from driftline.registry import Champion, ModelRef, Registry
from driftline.registry.ab_tests import AbTest
from driftline.registry.audit_events import Actor, Rollback
from driftline.steps import admission, held_challenger
from driftline.tasks.events import MODEL_PROMOTED, MODEL_ROLLED_BACK, emit_model_event, model_resource, send_now
from driftline.tasks.retries import retried

REGISTRY_RETRIES = {**retried(2, [2, 10]), "cache_policy": NO_CACHE}
AB_STARTED = "driftline.model.ab_started"  # driftline.model.*: what a service's follower wakes on
AB_STOPPED = "driftline.model.ab_stopped"


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
    """The rollout's verdict carried out: the challenger promoted (event sent) or dropped (recorded); hold: nothing.
    While an A/B test runs, `challenger` is its arm B and the test decides: nothing either."""
    registry = Registry(cfg)
    if verdict.action == "hold" or registry.running_ab_test() is not None:
        return None
    challenger = registry.version_ref(verdict.challenger_version)
    promoted = verdict.action == "promote"
    former = registry.end_rollout(challenger, promoted, verdict.summary, verdict.evidence, run_actor())
    if promoted:
        announce_promotion(cfg, registry, challenger, former)
    return challenger


@task(name="hold-during-ab-test", **REGISTRY_RETRIES)
def hold_during_ab_test(
    candidate: ModelRef, cfg: DriftlineConfig, decision: GateDecision, test: AbTest
) -> GateDecision:
    """A candidate that passed its gate while an A/B test runs is kept, not promoted: arm A stays frozen (recorded)."""
    held = decision.held("ab", f"not promoted: {test.summary} runs, and arm A stays champion until it ends")
    Registry(cfg).hold_for_rollout(candidate, held, run_actor())
    return held


@task(name="running-ab-test", **REGISTRY_RETRIES)
def running_ab_test(cfg: DriftlineConfig) -> AbTest | None:
    """The model's running A/B test, if any (its arm A is frozen)."""
    return Registry(cfg).running_ab_test()


def ab_test_event(test: AbTest) -> tuple[str, dict]:
    """The event announcing a test begun or ended (a following service loads or drops arm B at once), its payload."""
    payload = {
        "test": test.id,
        "version": test.version,
        "champion_version": test.champion_version,
        "share": test.share,
        "outcome": test.outcome,
        "reason": test.end_reason or test.reason,
    }
    return (AB_STARTED if test.running else AB_STOPPED), payload


def announce_ab_test(cfg: DriftlineConfig, test: AbTest) -> None:
    event, payload = ab_test_event(test)
    emit_model_event(event, cfg, payload)


def send_ab_test_event(cfg: DriftlineConfig, test: AbTest) -> str:
    """The event of a test begun or ended, sent now and answered by the server (a command outside any flow run)."""
    event, payload = ab_test_event(test)
    send_now(Event(event=event, resource=model_resource(cfg), payload=payload))
    return event


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
    announce_promotion(cfg, registry, candidate, former)
    return former


def announce_promotion(cfg: DriftlineConfig, registry: Registry, promoted: ModelRef, former: ModelRef | None):
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
    """`champion` back to `previous` (or `to`), recorded; a repeat changes nothing and sends nothing. A running A/B
    test ends first (halted, recorded, announced): its arm A no longer serves."""
    registry = Registry(cfg)
    testing = registry.running_ab_test()
    done = registry.rollback(reason, run_actor(), to=to, override_retired=override_retired, evidence=evidence)
    ended = registry.ab_test() if testing is not None else None
    if ended is not None and not ended.running:
        announce_ab_test(cfg, ended)
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
