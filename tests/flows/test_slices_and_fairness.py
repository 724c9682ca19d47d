"""Slices and fairness watched in production, through Prefect and MLflow on SQLite: a breach on a labeled batch is an
event (and a notification), with labels.fairness_counts_as_degradation a retrain; a fair batch is neither."""

from datetime import UTC, datetime

import pandas as pd
import pytest
from testkit.events import model_events
from testkit.paths import WEEK
from testkit.slices import labels_flipped_in, unfair_to

from driftline.config import load_config
from driftline.data.demo import START, make_frame
from driftline.flows.batch_scoring import batch_scoring
from driftline.flows.params import LabelParams, PerformanceOutcome, ScoringParams, TrainParams
from driftline.flows.performance_monitoring import performance_monitoring
from driftline.flows.training import training
from driftline.monitoring import evidently_report
from driftline.registry import Registry
from driftline.tasks.events import FAIRNESS_BREACHED, SLICE_DEGRADED
from driftline.tasks.kpis import gather_kpis

WATCHED = {
    "slices": {"columns": ["region"], "min_rows": 100, "tolerance": 0.1},
    "fairness": {"attribute": "region", "min_disparate_impact": 0.6},
}
# a loose primary-metric rule, so that only the slices and fairness decide here
LABELS = {"enabled": True, "min_rows": 100, "max_degradation": 0.5}


def trained(config_path, demo_files) -> str:
    outcome = training(TrainParams(config=str(config_path), data=[str(demo_files["reference"])]))
    assert outcome.verdict == "promoted", outcome.reasons  # the first model passes the fairness gate too
    return str(config_path)


def scored_then_labeled(config: str, frame: pd.DataFrame, name: str, folder) -> PerformanceOutcome:
    """The champion scores the batch; later its labels arrive and the label run judges it."""
    frame.to_csv(folder / name, index=False)
    batch_scoring(ScoringParams(config=config, data=str(folder / name), output=str(folder / f"scored-{name}")))
    frame[["customer_id", "churned"]].to_csv(folder / f"labels-{name}", index=False)
    return performance_monitoring(LabelParams(config=config, data=str(folder / f"labels-{name}")))


def week(number: int, seed: int) -> pd.DataFrame:
    return make_frame(1000, seed=seed, start=START + number * WEEK, id_offset=number * 10_000)


@pytest.mark.slow  # two trainings and a label run: ~19 s
def test_a_degraded_slice_is_notified_and_a_fair_batch_is_not(config_factory, demo_files, tmp_path):
    config = trained(config_factory(gate=WATCHED, labels=LABELS), demo_files)
    cfg, started = load_config(config), datetime.now(UTC)

    fair = scored_then_labeled(config, week(9, seed=2), "fair.csv", tmp_path)
    assert not fair.fairness_breached and fair.degraded_slices == [] and fair.retraining is None
    assert fair.slices_and_fairness == "slices and fairness hold on 1 newly labeled batch"

    flipped = scored_then_labeled(config, labels_flipped_in(week(10, seed=4)), "flipped.csv", tmp_path)
    assert flipped.degraded_slices == ["region=south"] and not flipped.fairness_breached
    assert flipped.retraining is None and Registry(cfg).champion().version == "1"  # a notice: the switch is off
    [event] = model_events(SLICE_DEGRADED, cfg.registry.model_name, started)  # none for the fair batch
    payload = event["payload"]
    assert (payload["batch"], payload["champion_version"], payload["counts_as_degradation"]) == (
        "flipped.csv",
        "1",
        False,
    )
    [south] = payload["slices"]
    assert south["slice"] == "region=south" and south["at_promotion"] - south["measured"] > 0.1
    assert payload["retraining"] == "labels.fairness_counts_as_degradation is off"

    kpis = gather_kpis(cfg)
    assert kpis.champion_watch == "breached" and "slices degraded: region=south" in kpis.champion_watch_detail


@pytest.mark.slow  # a retrain: ~16 s
def test_a_fairness_breach_is_notified_and_retrains_when_it_counts_as_degradation(config_factory, demo_files, tmp_path):
    labels = {**LABELS, "fairness_counts_as_degradation": True}
    config = trained(config_factory(gate=WATCHED, labels=labels), demo_files)
    cfg, started = load_config(config), datetime.now(UTC)

    outcome = scored_then_labeled(config, unfair_to(week(9, seed=3)), "unfair.csv", tmp_path)
    assert outcome.fairness_breached and not outcome.degraded  # the primary metric alone would not retrain
    assert outcome.retraining is not None
    registry = Registry(cfg)
    v2 = {v.version: v for v in registry.versions()}["2"]
    assert v2.tags["driftline.trigger"].startswith("slices or fairness breached: disparate impact on region")
    [event] = model_events(FAIRNESS_BREACHED, cfg.registry.model_name, started)
    payload = event["payload"]
    assert (payload["batch"], payload["attribute"], payload["minimum"]) == ("unfair.csv", "region", 0.6)
    assert payload["disparate_impact"] < 0.2 and payload["positive_rates"]["south"] < 0.1
    assert payload["counts_as_degradation"] and payload["retraining"] == "retraining on the archive window"

    # the batch's disparate impact is an MLflow metric at the batch's step, and a dashboard snapshot
    run = registry.client.search_runs([registry.experiment_id], "tags.`driftline.run_type` = 'performance'")[0]
    [point] = registry.client.get_metric_history(run.info.run_id, "batch_disparate_impact/region")
    assert (point.step, point.value) == (0, pytest.approx(payload["disparate_impact"]))
    assert run.data.metrics["fairness_breached"] == 1
    snapshots = [
        s["name"] for s in evidently_report.dashboard_snapshots(cfg) if evidently_report.FAIRNESS_TAG in s["tags"]
    ]
    assert snapshots == ["fairness unfair.csv v1"]
