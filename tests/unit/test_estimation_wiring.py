"""Estimation wired into the loop, without a server: what may retrain on an estimate, the self-check of a batch whose
labels came in part, the ledger that keeps each batch's estimate until then, the version with no estimator, the KPI."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest
from testkit.configs import write_config

from driftline.config import load_config
from driftline.data.demo import make_frame
from driftline.modeling.pipeline import feature_frame, predict
from driftline.monitoring import estimate_ledger
from driftline.monitoring.drift import DriftResult
from driftline.monitoring.estimate_ledger import BatchEstimate
from driftline.monitoring.estimate_trust import TrustState
from driftline.monitoring.estimation import Estimate, EstimatorUnavailable
from driftline.monitoring.kpis import EstimatorRecord, LoopHistory, compute_kpis
from driftline.registry.runs import estimator_tags
from driftline.steps.estimate_check import EstimationCheck, slice_estimates
from driftline.steps.estimate_review import compare, review_arrived, review_batch
from driftline.steps.retraining import retraining_reason, trigger_line
from driftline.training.train import train_model

TRUSTED, UNTRUSTED = TrustState(True, "holdout within"), TrustState(False, "2 of its last 3 labeled batches outside")
CALM = DriftResult([], 0.0, False, [], 1000, 1000)
DRIFTED = DriftResult([], 0.5, True, ["4 of 7 features drifted"], 1000, 1000)


def estimated(value: float, lower: float, upper: float, trust=TRUSTED, metric: str = "roc_auc", greater=True):
    return EstimationCheck(
        model_version="1",
        metric=metric,
        estimate=Estimate(metric, value, lower, upper, rows=2000),
        trust=trust,
        prior_shift=None,
        at_promotion=0.80,
        greater_is_better=greater,
        max_degradation=0.05,
    )


@pytest.fixture
def trigger_config(config_factory):
    return lambda trigger: load_config(config_factory(drift={"trigger": trigger}))


def test_estimated_trigger_retrains_only_when_even_the_band_s_upper_edge_is_beyond_the_limit(trigger_config):
    cfg = trigger_config("estimated")
    low = estimated(0.70, 0.68, 0.74)  # upper edge 0.74: 0.06 below 0.80 at promotion
    straddling = estimated(0.72, 0.69, 0.76)  # upper edge only 0.04 below
    assert retraining_reason(CALM, "b.csv", cfg, low).startswith("estimated degradation in b.csv: estimated roc_auc")
    assert retraining_reason(DRIFTED, "b.csv", cfg, straddling) is None  # the drift alarm does not decide here
    assert retraining_reason(CALM, "b.csv", cfg, estimated(0.70, 0.68, 0.74, trust=UNTRUSTED)) is None
    assert trigger_line(estimated(0.70, 0.68, 0.74, trust=UNTRUSTED), cfg) == (
        "drift.trigger estimated: the estimator is untrusted, so the estimate decides nothing; "
        "no retrain on the estimate"
    )


def test_either_trusts_the_estimate_when_it_may_decide_and_the_drift_alarm_otherwise(trigger_config):
    cfg = trigger_config("either")
    assert retraining_reason(DRIFTED, "b.csv", cfg, estimated(0.79, 0.77, 0.81)) is None  # trusted, not degraded
    assert retraining_reason(DRIFTED, "b.csv", cfg, estimated(0.79, 0.77, 0.81, trust=UNTRUSTED)) == "drift in b.csv"
    assert retraining_reason(DRIFTED, "b.csv", cfg, None) == "drift in b.csv"  # a version with no estimator
    assert retraining_reason(DRIFTED, "b.csv", trigger_config("drift"), estimated(0.70, 0.68, 0.74)) == "drift in b.csv"


def test_a_metric_where_lower_is_better_retrains_on_the_band_s_lower_edge(trigger_config):
    cfg = trigger_config("estimated")
    rmse = estimated(0.95, 0.86, 1.04, metric="rmse", greater=False)  # lower edge 0.86: 0.06 above 0.80
    assert rmse.degraded and rmse.worse_by == pytest.approx(0.06)
    assert retraining_reason(CALM, "b.csv", cfg, rmse).startswith("estimated degradation")
    assert not estimated(0.95, 0.84, 1.04, metric="rmse", greater=False).degraded


def test_a_batch_too_small_to_estimate_says_so_and_decides_nothing(trigger_config):
    too_few = Estimate.without_value("roc_auc", 40, "40 rows; an estimate needs at least 100")
    small = EstimationCheck("1", "roc_auc", too_few, TRUSTED, None, 0.8, True, 0.05)
    assert small.verdict == "40 rows; an estimate needs at least 100" and not small.usable
    assert small.figures() == {"estimate_trusted": 1.0}
    assert retraining_reason(DRIFTED, "b.csv", trigger_config("either"), small) == "drift in b.csv"


def kept(rows: int = 1000) -> BatchEstimate:
    day = "2026-01-01T00:00:00+00:00"
    return BatchEstimate("1", "f" * 64, "b.csv", "roc_auc", 0.78, 0.75, 0.81, rows, "", day, day)


def test_labels_for_part_of_a_batch_are_compared_only_with_enough_rows(cfg):
    few = review_batch(kept(), pd.DataFrame(index=range(40)), 0.70, champion=None, cfg=cfg, classes=[0, 1])
    assert few.within is None
    assert few.note == "40 of 1000 rows labeled, fewer than estimation.min_rows=100: not compared yet"
    whole = review_batch(kept(), pd.DataFrame(index=range(1000)), 0.70, champion=None, cfg=cfg, classes=[0, 1])
    assert whole.within is False and whole.error == pytest.approx(0.08) and whole.labeled_rows == 1000
    assert whole.line() == (
        "b.csv v1: estimated roc_auc 0.7800 [0.7500, 0.8100], realized 0.7000 on 1000 labeled rows: OUTSIDE the band "
        "(error 0.0800)"
    )


def test_the_ledger_keeps_each_batch_s_newest_estimate_and_replays_its_checks_in_order(tmp_path):
    path = estimate_ledger.ledger_path(tmp_path)
    first = kept()
    second = replace(first, source_fingerprint="e" * 64, estimated_at="2026-01-08T00:00:00+00:00")
    estimate_ledger.record_estimates(path, [first, second])
    with path.open("a") as handle:
        handle.write('{"kind": "estimated", "model_version"')  # a line cut short by a crash
    estimate_ledger.record_checks(path, [compare(second, Estimate("roc_auc", 0.78, 0.75, 0.81, 1000), 0.70, 1000)])
    estimate_ledger.record_checks(path, [compare(first, Estimate("roc_auc", 0.78, 0.75, 0.81, 1000), 0.79, 1000)])
    ledger = estimate_ledger.read_ledger(path)
    assert set(ledger.estimates) == {first.key, second.key}
    assert ledger.outcomes("1") == [True, False]  # in the order the batches were estimated, not checked
    assert ledger.mean_error("1") == pytest.approx((0.01 + 0.08) / 2)
    assert ledger.outcomes("2") == [] and ledger.mean_error("2") is None


def test_a_holdout_of_one_class_registers_without_an_estimator_and_says_why(cfg):
    frame = make_frame(600, seed=3)
    frame.loc[frame.index[-150:], "churned"] = 0  # the newest rows: the time-based holdout holds one class
    trained = train_model(frame, cfg)
    assert isinstance(trained.estimator, EstimatorUnavailable)
    [(tag, reason)] = estimator_tags(trained).items()
    assert tag == "driftline.estimate.unavailable" and reason.startswith("the holdout's target has one class")


def test_the_estimate_error_kpi_is_the_champion_s_mean_error_with_its_trust():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    history = LoopHistory(
        [], [], [], "record", None, [], [], [], "3", EstimatorRecord("untrusted", "2 of 3", 4, 2, 0.031)
    )
    kpis = compute_kpis(history, at)
    assert (kpis.estimate_error, kpis.estimator_state) == (0.031, "untrusted")
    assert dict((name, (value, how)) for name, value, how in kpis.rows())["estimate error"] == (
        "0.0310",
        "mean |estimated − realized| over 4 labeled batches of v3 (2 outside the band); estimator untrusted: 2 of 3",
    )


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    """A churn model and its estimator, trained once for the tests that need a real one (slices by contract)."""
    cfg = load_config(write_config(tmp_path_factory.mktemp("churn"), gate={"slices": {"columns": ["contract"]}}))
    return cfg, train_model(make_frame(1500, seed=4), cfg)


def test_each_slice_of_gate_slices_gets_its_own_estimate_and_a_small_one_a_note(churn):
    cfg, trained = churn
    batch = make_frame(900, seed=5)
    batch = batch[(batch.contract != "two-year") | (batch.index < 60)]  # 1 of 3 contracts nearly gone
    features = feature_frame(batch, cfg.dataset)
    found = slice_estimates(batch, features, predict(trained.model, batch, cfg.dataset), trained.estimator, cfg)
    by_value = {value: estimate for _, value, estimate in found}
    assert sorted(by_value) == ["month-to-month", "one-year", "two-year"]
    assert {column for column, _, _ in found} == {"contract"}
    assert by_value["month-to-month"].lower < by_value["month-to-month"].value < by_value["month-to-month"].upper
    small = by_value["two-year"]
    assert small.value is None and small.note == f"{small.rows} rows; an estimate needs at least 100"


def test_a_file_that_came_with_part_of_its_labels_is_checked_on_the_labeled_rows(churn):
    cfg, trained = churn
    batch = make_frame(1000, seed=6)
    features, predictions = feature_frame(batch, cfg.dataset), predict(trained.model, batch, cfg.dataset)
    whole = trained.estimator.estimate(features, predictions)
    kept = BatchEstimate("1", "f" * 64, "b.csv", "roc_auc", whole.value, whole.lower, whole.upper, 1000, "", "", "")

    assert review_arrived(kept, batch.drop(columns="churned"), features, predictions, trained.estimator, cfg) is None
    all_labeled = review_arrived(kept, batch, features, predictions, trained.estimator, cfg)
    assert all_labeled.labeled_rows == 1000 and all_labeled.estimated == whole.value and all_labeled.within is not None
    part = batch.assign(churned=batch.churned.where(batch.index < 400))
    on_part = review_arrived(kept, part, features, predictions, trained.estimator, cfg)
    assert on_part.labeled_rows == 400 and on_part.estimated != whole.value
    assert on_part.note == "400 of 1000 rows labeled: compared on the labeled part"
    thirty = batch.assign(churned=batch.churned.where(batch.index < 30))
    few = review_arrived(kept, thirty, features, predictions, trained.estimator, cfg)
    assert (
        few.within is None and few.note == "30 of 1000 rows labeled, fewer than estimation.min_rows=100: not compared"
    )
