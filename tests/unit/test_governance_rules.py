"""Governance as plain functions: sliced and fairness gates, importance flags, champion-at-time, auto-rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from driftline.config import load_config
from driftline.data.demo import make_frame
from driftline.errors import ConfigError
from driftline.evaluation.gate import judge
from driftline.evaluation.importance import explain
from driftline.evaluation.measure import holdout_metrics
from driftline.governance.auto_rollback import degradation
from driftline.modeling.pipeline import fit
from driftline.monitoring.drift import ColumnDrift, DriftResult
from driftline.registry.audit_events import Action, Actor, AliasHolders, AuditEvent, champion_at, parse_time


@pytest.fixture
def holdout():
    return make_frame(3000, seed=9)


@pytest.fixture
def champion_model(cfg):
    return fit(make_frame(3000, seed=1), cfg)


def test_challenger_worse_on_one_slice_is_refused_naming_the_slice(config_factory, champion_model, holdout):
    cfg = load_config(config_factory(gate={"slices": {"columns": ["contract"], "min_rows": 100, "tolerance": 0.02}}))
    data = make_frame(3000, seed=1)
    two_year = data["contract"] == "two-year"
    data.loc[two_year, "churned"] = np.random.default_rng(0).integers(0, 2, two_year.sum())  # labels are noise there
    challenger = fit(data, cfg)
    decision = judge(cfg, challenger, holdout, holdout_metrics(challenger, holdout, cfg), champion_model, "1")
    assert not decision.promote
    assert any("roc_auc[contract=two-year]" in reason for reason in decision.reasons), decision.reasons
    assert not any("contract=one-year" in reason for reason in decision.reasons)
    assert {s.name for s in decision.slices if s.decides} == {f"contract={c}" for c in set(holdout["contract"])}


def test_challenger_under_the_disparate_impact_minimum_is_refused_naming_the_attribute(config_factory, holdout):
    cfg = load_config(config_factory(gate={"fairness": {"attribute": "region", "min_disparate_impact": 0.8}}))
    data = make_frame(3000, seed=1)
    data.loc[data["region"] == "south", "churned"] = 1  # a model that learns to flag one region
    biased = fit(data, cfg)
    decision = judge(cfg, biased, holdout, holdout_metrics(biased, holdout, cfg), None, None)
    assert not decision.promote
    assert any("disparate_impact[region]" in reason for reason in decision.reasons), decision.reasons
    rates = {group.group: group.positive_rate for group in decision.fairness.groups}
    assert rates["south"] == max(rates.values()) and decision.fairness.disparate_impact < 0.8


def test_fair_first_model_passes_and_reports_its_groups(config_factory, holdout):
    cfg = load_config(config_factory(gate={"fairness": {"attribute": "region", "min_disparate_impact": 0.5}}))
    model = fit(make_frame(3000, seed=1), cfg)
    decision = judge(cfg, model, holdout, holdout_metrics(model, holdout, cfg), None, None)
    assert decision.promote, decision.reasons
    assert {g.group for g in decision.fairness.groups} == set(holdout["region"])
    assert set(decision.explanation.challenger) == set(cfg.dataset.feature_names)


def test_fairness_needs_a_binary_task(config_factory):
    path = config_factory(
        dataset={"task": "multiclass"}, gate={"metric": None, "thresholds": {}, "fairness": {"attribute": "region"}}
    )
    with pytest.raises(ConfigError, match="gate.fairness.attribute needs dataset.task binary"):
        load_config(path)


def test_demo_config_keeps_the_automatic_gate_without_slices(cfg):
    assert cfg.gate.mode == "auto" and cfg.gate.slices.columns == [] and cfg.gate.fairness.attribute is None
    assert not cfg.governance.auto_rollback.enabled


def test_a_change_of_top_features_is_flagged(cfg):
    champion = {"tenure_months": 0.10, "contract": 0.08, "support_calls": 0.05, "age": 0.0}
    same = explain({"tenure_months": 0.12, "contract": 0.07, "support_calls": 0.04, "age": 0.0}, champion, cfg)
    changed = explain({"age": 0.2, "region": 0.1, "payment_method": 0.05, "tenure_months": 0.0}, champion, cfg)
    assert not same.flagged and same.top_overlap == 1
    assert changed.flagged and changed.note.startswith("TOP FEATURES CHANGED")


def _event(at: str, action: Action, version: str, champion_after: str | None) -> AuditEvent:
    return AuditEvent(
        at, action, version, Actor.os_user(), "", AliasHolders(None, None), AliasHolders(champion_after, None)
    )


def test_champion_at_a_time_is_the_holder_after_the_last_transition_before_it():
    events = [
        _event("2026-01-01T10:00:00.000000+00:00", Action.promoted, "1", "1"),
        _event("2026-01-05T10:00:00.000000+00:00", Action.refused, "2", "1"),
        _event("2026-01-09T10:00:00.000000+00:00", Action.promoted, "3", "3"),
        _event("2026-01-10T10:00:00.000000+00:00", Action.rolled_back, "1", "1"),
    ]
    assert champion_at(events, parse_time("2025-12-31T00:00")) is None
    assert champion_at(events, parse_time("2026-01-07T00:00")).after.champion == "1"
    assert champion_at(events, parse_time("2026-01-09T10:00:00+00:00")).after.champion == "3"  # at T itself
    assert champion_at(events, parse_time("2026-01-09T12:00+01:00")).after.champion == "3"  # zones convert
    assert champion_at(events, parse_time("2026-02-01T00:00")).after.champion == "1"


def _prediction_drift(drifted: bool) -> DriftResult:
    column = ColumnDrift("prediction", "prediction", "ks", 1e-6 if drifted else 0.4, 0.001, drifted)
    return DriftResult([column], 0.0, drifted, [], 1000, 1000)


def test_auto_rollback_fires_only_for_a_watched_degraded_champion_with_somewhere_to_go(config_factory):
    cfg = load_config(config_factory(governance={"auto_rollback": {"enabled": True, "watch_days": 7}}))
    now = datetime(2026, 3, 10, tzinfo=UTC)
    recent, old = (now - timedelta(days=2)).isoformat(), (now - timedelta(days=30)).isoformat()
    fired = degradation(cfg, "3", recent, now, True, drift=_prediction_drift(True))
    assert fired.roll_back and "prediction drift of v3" in fired.reasons[0]
    assert not degradation(cfg, "3", recent, now, True, drift=_prediction_drift(False)).roll_back
    assert not degradation(cfg, "3", old, now, True, drift=_prediction_drift(True)).roll_back
    assert not degradation(cfg, "3", recent, now, False, drift=_prediction_drift(True)).roll_back
    worse = degradation(
        cfg, "3", recent, now, True, live_metrics={"roc_auc": 0.70}, promotion_metrics={"roc_auc": 0.80}
    )
    assert worse.roll_back and "live roc_auc 0.7000" in worse.reasons[0]
    breach = "disparate impact on region 0.120 < 0.8 in b.csv"  # labels.fairness_counts_as_degradation
    assert degradation(cfg, "3", recent, now, True, live_breaches=[breach]).reasons == [breach]
    assert not degradation(cfg, "3", old, now, True, live_breaches=[breach]).roll_back
    off = load_config(config_factory())
    assert not degradation(off, "3", recent, now, True, drift=_prediction_drift(True)).roll_back


def test_a_refusal_naming_a_slice_prints_the_slice():
    from driftline.cli.render import console, describe_training
    from driftline.flows.params import TrainingOutcome

    reason = "Metric roc_auc[contract=two-year] value threshold check failed: candidate model = 0.61"
    refused = TrainingOutcome(
        candidate_version="2",
        verdict="refused",
        reasons=[reason],
        metric="roc_auc",
        challenger_value=0.8,
        champion_value=0.79,
        champion_version="1",
        training_rows=10,
    )
    with console.capture() as printed:
        console.print(describe_training(refused))
    assert "roc_auc[contract=two-year]" in printed.get()  # rich markup would swallow it unescaped
