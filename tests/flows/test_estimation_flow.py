"""Performance estimation through the flows, with a real champion trained in tmp_path: the estimate and its band before
labels, the label-shift flag, the self-check when labels come, and `drift.trigger: estimated`."""

from __future__ import annotations

import pandas as pd
import pytest
from testkit.paths import WEEK

from driftline.config import load_config
from driftline.data.demo import START, make_frame
from driftline.flows.batch_scoring import batch_scoring
from driftline.flows.drift_monitoring import drift_monitoring
from driftline.flows.params import LabelParams, MonitorParams, ScoringParams, TrainParams
from driftline.flows.performance_monitoring import performance_monitoring
from driftline.flows.training import training
from driftline.modeling.pipeline import predict
from driftline.monitoring import evidently_report
from driftline.registry import Registry
from driftline.registry.refs import ESTIMATE_HOLDOUT_WITHIN, ESTIMATE_UNAVAILABLE
from driftline.steps.estimate_review import estimator_states
from driftline.tasks.kpis import gather_kpis

pytestmark = pytest.mark.slow  # each trains a champion (and one a second model)


@pytest.fixture
def estimated_config(config_factory):
    return config_factory(
        labels={"enabled": True, "min_rows": 100, "max_degradation": 0.05, "retrain": False},
        drift={"retrain": False},
        monitoring={"settle_seconds": 0},
    )


@pytest.fixture
def champion(estimated_config, demo_files):
    outcome = training(TrainParams(config=str(estimated_config), data=[str(demo_files["reference"])]))
    assert outcome.verdict == "promoted"
    return outcome


def test_covariate_shift_estimate_holds_its_band_and_the_labels_confirm_it(
    estimated_config, champion, demo_files, tmp_path
):
    config = str(estimated_config)
    cfg = load_config(config)
    assert Registry(cfg).version_tags("1")[ESTIMATE_HOLDOUT_WITHIN] == "true"  # the estimator starts trusted
    shifted = demo_files["covariate_shift"]
    batch_scoring(ScoringParams(config=config, data=str(shifted), output=str(tmp_path / "scored.parquet")))

    monitored = drift_monitoring(MonitorParams(config=config))  # the prediction log since the last run
    estimate = monitored.estimate
    assert estimate.metric == "roc_auc" and estimate.rows == 1000
    assert estimate.lower < estimate.value < estimate.upper and estimate.trusted and not estimate.label_shift
    assert {"accuracy", "f1"} <= set(estimate.others)

    truth = pd.read_csv(shifted)[["customer_id", "churned"]]
    truth.to_csv(tmp_path / "labels.csv", index=False)
    labeled = performance_monitoring(LabelParams(config=config, data=str(tmp_path / "labels.csv")))
    assert estimate.lower <= labeled.champion_value <= estimate.upper  # the realized roc_auc, in the band
    [check] = labeled.estimate_checks
    assert check.startswith("covariate_shift.csv v1: estimated roc_auc") and "inside the band" in check
    assert labeled.estimate_error == pytest.approx(abs(estimate.value - labeled.champion_value))
    assert labeled.estimate_trusted is True

    registry = Registry(cfg)
    [run] = registry.client.search_runs([registry.experiment_id], "tags.`driftline.run_type` = 'performance'")
    assert run.data.metrics["estimate_error"] == pytest.approx(labeled.estimate_error)
    assert run.data.metrics["batch_estimate_within"] == 1.0
    kpis = gather_kpis(cfg)
    assert kpis.estimate_error == pytest.approx(labeled.estimate_error) and kpis.estimator_state == "trusted"
    [snapshot] = [s for s in evidently_report.dashboard_snapshots(cfg) if evidently_report.ESTIMATE_TAG in s["tags"]]
    assert snapshot["name"] == "estimate covariate_shift.csv v1"


def test_label_shift_batch_is_flagged_and_its_estimate_decides_nothing(estimated_config, champion, tmp_path):
    # the reference world, with most customers who stay left out: the features move only as the class prior does
    world = make_frame(4000, seed=11, start=START + 9 * WEEK, id_offset=50_000)
    churners, stayers = world[world.churned == 1], world[world.churned == 0]
    shifted = pd.concat([churners, stayers.sample(len(churners) // 2, random_state=0)]).sort_values("event_time")
    path = tmp_path / "data" / "label_shift.csv"
    shifted.drop(columns="churned").to_csv(path, index=False)

    monitored = drift_monitoring(MonitorParams(config=str(estimated_config), data=str(path)))
    estimate = monitored.estimate
    assert estimate.label_shift, estimate.label_shift_reason
    assert estimate.label_shift_reason.startswith("label shift: the class prior moved (")
    assert estimate.trusted and not estimate.decides and "it decides nothing" in estimate.verdict


def uncertain_customers(cfg, count: int) -> pd.DataFrame:
    """Customers the champion is unsure about, chosen by their features alone: covariate shift the estimate sees."""
    champion = Registry(cfg).load_champion()
    world = make_frame(count, seed=12, start=START + 9 * WEEK, id_offset=60_000)
    positive = predict(champion.model, world, cfg.dataset).proba[:, 1]
    return world[(positive > 0.3) & (positive < 0.6)]


def test_estimated_trigger_retrains_on_an_estimated_degradation(config_factory, demo_files, tmp_path):
    config = config_factory(drift={"trigger": "estimated", "retrain": True}, labels={"max_degradation": 0.05})
    training(TrainParams(config=str(config), data=[str(demo_files["reference"])]))
    cfg = load_config(config)
    path = tmp_path / "data" / "uncertain.csv"
    uncertain_customers(cfg, 12_000).to_csv(path, index=False)

    monitored = drift_monitoring(MonitorParams(config=str(config), data=str(path)))

    estimate = monitored.estimate
    assert estimate.decides and estimate.degraded and estimate.upper < estimate.at_promotion - 0.05
    assert monitored.estimate.labels_with_the_batch.startswith("uncertain.csv v1: estimated roc_auc")  # checked at once
    assert monitored.retraining is not None
    trigger = Registry(cfg).version_tags(monitored.retraining.candidate_version)["driftline.trigger"]
    assert trigger.startswith("estimated degradation in uncertain.csv: estimated roc_auc")


def test_a_version_without_an_estimator_is_monitored_without_an_estimate(config_factory, demo_files):
    config = config_factory(estimation={"enabled": False}, drift={"retrain": False})
    training(TrainParams(config=str(config), data=[str(demo_files["reference"])]))

    monitored = drift_monitoring(MonitorParams(config=str(config), data=str(demo_files["stable"])))

    assert monitored.estimate.value is None and monitored.estimate.trusted is None
    assert monitored.estimate.verdict == (
        "v1 was trained without an estimator (before estimation existed, or with estimation.enabled off): no estimate"
    )
    assert ESTIMATE_UNAVAILABLE not in Registry(load_config(config)).version_tags("1")


def south_mislabeled(seed: int, path) -> str:
    """A stable batch whose southern customers' labels are shuffled among them: the estimate holds everywhere but in
    the south, where the relation it assumes is gone."""
    batch = make_frame(3000, seed=seed, start=START + 9 * WEEK, id_offset=70_000 + 3000 * seed)
    south = batch.region == "south"
    batch.loc[south, "churned"] = batch.loc[south, "churned"].sample(frac=1, random_state=seed).to_numpy()
    batch.to_csv(path, index=False)
    return str(path)


def test_a_slice_whose_estimates_miss_its_labels_loses_trust_on_its_own(config_factory, demo_files, tmp_path):
    config = config_factory(gate={"slices": {"columns": ["region"]}}, drift={"retrain": False})
    training(TrainParams(config=str(config), data=[str(demo_files["reference"])]))
    for seed in (21, 22):  # each file comes with its labels: its estimates are checked at once, whole and per slice
        monitored = drift_monitoring(
            MonitorParams(config=str(config), data=south_mislabeled(seed, tmp_path / f"{seed}.csv"))
        )
    assert monitored.estimate.slice_trust == {f"region={r}": True for r in ("east", "north", "south", "west")}

    monitored = drift_monitoring(MonitorParams(config=str(config), data=str(demo_files["stable"])))

    trust = monitored.estimate.slice_trust
    assert trust.pop("region=south") is False
    assert set(trust.values()) == {True} and monitored.estimate.trusted
    cfg = load_config(config)
    registry = Registry(cfg)
    [state] = estimator_states(cfg, registry.versions(), registry.folders.root).values()
    assert state.untrusted_slices == ["region=south"] and "untrusted on slices region=south" in state.line()
