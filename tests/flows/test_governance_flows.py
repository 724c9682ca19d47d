"""Governance through Prefect and MLflow on SQLite: audit log, rollback, retirement, model cards, approval,
reproduction and automatic rollback."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import resume_flow_run

from driftline.config import load_config
from driftline.errors import TransitionRefused
from driftline.flows.drift_monitoring import drift_monitoring
from driftline.flows.params import MonitorParams, RollbackParams, TrainParams
from driftline.flows.rollback import rollback
from driftline.flows.training import training
from driftline.governance.model_card import SECTIONS
from driftline.governance.reproduce import reproduce
from driftline.registry import CHAMPION, MODEL_CARD, PREVIOUS, RETIRED, Registry, registry_folders
from driftline.registry.audit_events import Action, champion_at, parse_time


def train(config_path, *files, reason="test"):
    return training(TrainParams(config=str(config_path), data=[str(f) for f in files], reason=reason))


@pytest.fixture
def two_champions(config_path, demo_files):
    """v1 on the reference data, then v2 on reference + concept drift (better on the newest rows): both promoted."""
    first = train(config_path, demo_files["reference"], reason="initial")
    second = train(config_path, demo_files["reference"], demo_files["concept_drift"], reason="concept drift")
    assert (first.verdict, second.verdict) == ("promoted", "promoted"), second.reasons
    return load_config(config_path)


@pytest.mark.slow  # two trainings: 45-55 s on the shared 2-core machine
def test_each_new_version_gets_a_model_card_with_every_section(cfg, config_path, demo_files):
    train(config_path, demo_files["reference"])
    refused = train(config_path, demo_files["reference"])
    assert refused.verdict == "refused"
    registry = Registry(cfg)
    for info in registry.versions():
        card = registry.run_text(info.run_id, MODEL_CARD)
        for section in SECTIONS:
            assert f"## {section}\n" in card, (info.version, section)
        assert info.to_dict()["data_fingerprints"][0] in card  # the training data's sha256
        described = registry.client.get_model_version(cfg.registry.model_name, info.version).description
        assert described.startswith(f"# Model card: {cfg.registry.model_name} v{info.version}")
    assert "**refused**" in registry.run_text(registry.versions()[1].run_id, MODEL_CARD)
    # permutation importance is logged with the run, one metric per feature
    assert {f"importance_{name}" for name in cfg.dataset.feature_names} <= set(
        registry.client.get_run(info.run_id).data.metrics
    )


def test_audit_log_answers_who_was_champion_at_any_time_across_promotions_and_rollbacks(two_champions, config_path):
    cfg = two_champions
    registry = Registry(cfg)
    back = rollback(RollbackParams(config=str(config_path), reason="v2 misbehaves in production"))
    assert back.changed and back.champion_version == "1" and back.rolled_back_from == "2"
    events = registry.audit_log()
    assert [(e.action, e.version) for e in events] == [
        (Action.registered, "1"),
        (Action.promoted, "1"),
        (Action.registered, "2"),
        (Action.promoted, "2"),
        (Action.rolled_back, "1"),
    ]
    promoted_1, promoted_2, rolled_back = events[1], events[3], events[4]
    assert promoted_2.before.champion == "1" and promoted_2.after.champion == "2" and promoted_2.after.previous == "1"
    assert rolled_back.reason == "v2 misbehaves in production" and rolled_back.evidence["from_version"] == "2"
    assert rolled_back.actor.kind == "flow-run" and rolled_back.actor.name.startswith("rollback/")
    assert promoted_2.evidence["champion_version"] == "1" and promoted_2.evidence["challenger"] > 0.7
    just_after = timedelta(microseconds=1)
    assert champion_at(events, parse_time(events[0].at) - just_after) is None
    assert champion_at(events, parse_time(promoted_1.at) + just_after).after.champion == "1"
    assert champion_at(events, parse_time(promoted_2.at) + just_after).after.champion == "2"
    assert champion_at(events, parse_time(rolled_back.at) + just_after).after.champion == "1"
    # the version carries its latest transitions as tags too
    assert registry.version_tags("1")["driftline.audit.rolled_back.reason"] == "v2 misbehaves in production"


@pytest.mark.slow  # two trainings: 45-55 s on the shared 2-core machine
def test_rollback_is_one_step_and_idempotent(two_champions, config_path):
    cfg = two_champions
    registry = Registry(cfg)
    params = RollbackParams(config=str(config_path), reason="bad release")
    first, again = rollback(params), rollback(params)
    assert first.changed and not again.changed and "already rolled back to v1" in again.note
    assert registry.alias_holders().champion == "1" and registry.alias(PREVIOUS) is None
    assert [e.action for e in registry.audit_log()].count(Action.rolled_back) == 1
    # naming the current champion is a no-op too; naming a version that never served is refused
    assert not rollback(RollbackParams(config=str(config_path), reason="x", to_version="1")).changed


@pytest.mark.slow  # two trainings: 45-55 s on the shared 2-core machine
def test_retired_version_loses_its_aliases_and_comes_back_only_with_a_recorded_override(two_champions, config_path):
    cfg = two_champions
    registry = Registry(cfg)
    with pytest.raises(TransitionRefused, match="v2 is the champion; roll back first"):
        registry.retire("2", "biased")
    rollback(RollbackParams(config=str(config_path), reason="biased release"))
    assert registry.retire("2", "biased on region south") and not registry.retire("2", "again")
    assert registry.version_tags("2")[RETIRED] == "true"
    assert all("2" != holder for holder in [registry.alias_holders().champion, registry.alias_holders().previous])
    with pytest.raises(TransitionRefused, match="it was retired"):
        registry.rollback("try again", to="2")
    done = registry.rollback("fixed upstream, reinstated", to="2", override_retired=True)
    assert done.changed and registry.alias(CHAMPION).version == "2"
    last = registry.audit_log()[-1]
    assert last.action is Action.rolled_back and last.evidence["retirement_overridden"] is True
    retired = [e for e in registry.audit_log() if e.action is Action.retired]
    assert len(retired) == 1 and retired[0].reason == "biased on region south"


def test_reproduce_matches_the_recorded_metrics_and_names_a_missing_input(cfg, config_path, demo_files):
    train(config_path, demo_files["reference"])
    found = reproduce(cfg, "1")
    assert (
        found.matches
        and found.metrics
        and all(m.difference <= cfg.governance.reproduce_tolerance for m in found.metrics)
    )
    for archived in registry_folders(cfg).archive.rglob("*.parquet"):
        archived.unlink()
    missing = reproduce(cfg, "1")
    assert not missing.matches and "not in the archive" in missing.missing[0]


@pytest.mark.slow  # two trainings: 45-55 s on the shared 2-core machine
def test_automatic_rollback_fires_on_a_degraded_new_champion(config_factory, demo_files):
    config_path = config_factory(governance={"auto_rollback": {"enabled": True}}, drift={"retrain": False})
    train(config_path, demo_files["reference"])
    train(config_path, demo_files["reference"], demo_files["concept_drift"])
    cfg = load_config(config_path)
    outcome = drift_monitoring(MonitorParams(config=str(config_path), data=str(demo_files["covariate_shift"])))
    assert outcome.drift_detected
    registry = Registry(cfg)
    assert registry.alias_holders().champion == "1"
    last = registry.audit_log()[-1]
    assert last.action is Action.rolled_back and last.reason.startswith("automatic: prediction drift of v2")


# --- manual approval ------------------------------------------------------------------------------------------
def _paused_training_run(started_after) -> str:
    """The id of the training run waiting for approval, once it is paused."""
    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    with get_client(sync_client=True) as client:
        for _ in range(240):
            runs = [r for r in client.read_flow_runs(flow_run_filter=paused) if r.created > started_after]
            if runs:
                return str(runs[0].id)
            time.sleep(0.5)
    raise AssertionError("the training run never paused for approval")


def _train_in_background(config_path, files):
    started = datetime.now(UTC)
    pool = ThreadPoolExecutor(max_workers=1)
    return pool, pool.submit(train, config_path, *files), started


@pytest.mark.parametrize(
    "approve", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["approved", "rejected"]
)  # the rejected answer resumes the same way: in the slow suite, to keep `make test` under 5 minutes
def test_manual_gate_pauses_and_resumes_on_the_approvers_answer(config_factory, demo_files, approve):
    config_path = config_factory(gate={"mode": "manual"})
    pool, running, started = _train_in_background(config_path, [demo_files["reference"]])
    with pool:
        run_id = _paused_training_run(started)
        resume_flow_run(run_id, run_input={"approve": approve, "approver": "dana", "reason": "reviewed the card"})
        outcome = running.result(timeout=300)
    cfg = load_config(config_path)
    registry = Registry(cfg)
    assert outcome.verdict == ("promoted" if approve else "refused")
    assert registry.alias_holders().champion == ("1" if approve else None)
    answer = [e for e in registry.audit_log() if e.action in (Action.approved, Action.rejected)]
    assert len(answer) == 1 and answer[0].actor.name == "dana" and answer[0].reason == "reviewed the card"
    tags = registry.version_tags("1")
    assert tags["driftline.approval.by"] == "dana"
    assert tags["driftline.gate.verdict"] == ("promoted" if approve else "refused")


@pytest.mark.slow  # waits out the approval timeout: make test-slow
def test_manual_gate_without_an_answer_times_out_to_reject(config_factory, demo_files):
    config_path = config_factory(gate={"mode": "manual", "approval_timeout_seconds": 3})
    outcome = train(config_path, demo_files["reference"])
    assert outcome.verdict == "refused" and "no answer within 3 s" in outcome.reasons[-1]
    registry = Registry(load_config(config_path))
    assert registry.champion() is None
    assert registry.audit_log()[-1].action is Action.rejected and registry.audit_log()[-1].evidence["timed_out"]
