"""Monitoring through Prefect and MLflow on SQLite: delayed labels, degradation → retraining, the Evidently
dashboard, and the operational KPIs of a demo-like sequence."""

from datetime import UTC, datetime

import pandas as pd
import pytest
from testkit.events import model_events

from driftline.errors import ConfigError, DataRejected
from driftline.flows.batch_scoring import batch_scoring
from driftline.flows.continuous_training import continuous_training
from driftline.flows.params import BatchParams, LabelParams, ScoringParams, TrainParams
from driftline.flows.performance_monitoring import performance_monitoring
from driftline.flows.training import training
from driftline.monitoring import evidently_report
from driftline.registry import Registry
from driftline.tasks.events import PERFORMANCE_DEGRADED
from driftline.tasks.kpis import gather_kpis


@pytest.fixture
def labeled_config(config_factory):
    # the time-based holdout of the retrain is the concept-drift batch itself: the gate sees the new world
    return config_factory(labels={"enabled": True, "min_rows": 100, "max_degradation": 0.05})


@pytest.fixture
def champion(labeled_config, demo_files):
    outcome = training(TrainParams(config=str(labeled_config), data=[str(demo_files["reference"])]))
    assert outcome.verdict == "promoted"
    return outcome


def write_labels(frame: pd.DataFrame, path) -> str:
    frame[["customer_id", "churned"]].to_csv(path, index=False)
    return str(path)


def test_degraded_champion_is_retrained_and_notified(labeled_config, champion, demo_files, tmp_path):
    cfg_path = str(labeled_config)
    started = datetime.now(UTC)
    batch_scoring(
        ScoringParams(config=cfg_path, data=str(demo_files["concept_drift"]), output=str(tmp_path / "scored.parquet"))
    )
    truth = pd.read_csv(demo_files["concept_drift"])
    labels = pd.concat([truth.iloc[500:], pd.DataFrame({"customer_id": ["C9999999"], "churned": [1]})])
    outcome = performance_monitoring(LabelParams(config=cfg_path, data=write_labels(labels, tmp_path / "l.csv")))

    assert outcome.labeled_rows == 2500 and outcome.pending_predictions == 500 and outcome.unmatched_labels == 1
    assert outcome.degraded, outcome.reason
    assert outcome.at_promotion - outcome.champion_value > 0.05
    assert outcome.retraining is not None and outcome.retraining.verdict == "promoted"
    cfg = _cfg(labeled_config)
    registry = Registry(cfg)
    assert registry.champion().version == "2"
    v2 = {v.version: v for v in registry.versions()}["2"]
    assert v2.tags["driftline.trigger"].startswith("performance degraded: roc_auc")
    [event] = model_events(PERFORMANCE_DEGRADED, cfg.registry.model_name, started)
    assert event["payload"]["champion_version"] == "1" and event["payload"]["rows"] == 2500

    # the per-batch and per-version figures are MLflow metrics with steps
    run = registry.client.search_runs([registry.experiment_id], "tags.`driftline.run_type` = 'performance'")[0]
    history = registry.client.get_metric_history(run.info.run_id, "batch_roc_auc")
    assert [point.step for point in history] == [0]
    newest = pd.to_datetime(truth["event_time"], utc=True).iloc[500:].max()  # the labeled rows' time
    assert history[0].timestamp == int(newest.timestamp() * 1000)
    assert registry.client.get_metric_history(run.info.run_id, "version_roc_auc")[0].step == 1

    # the dashboard project holds the batch's performance snapshot
    snapshots = evidently_report.dashboard_snapshots(cfg)
    [snapshot] = [s for s in snapshots if evidently_report.PERFORMANCE_TAG in s["tags"]]
    assert (snapshot["name"], snapshot["timestamp"]) == ("performance concept_drift.csv v1", newest.floor("us"))


def _cfg(path):
    from driftline.config import load_config

    return load_config(path)


def test_stable_labels_keep_the_champion_and_late_predictions_match_kept_labels(
    labeled_config, champion, demo_files, tmp_path
):
    cfg_path, cfg = str(labeled_config), _cfg(labeled_config)
    stable = pd.read_csv(demo_files["stable"])
    # labels first: no prediction matches them yet, they are kept
    early = performance_monitoring(LabelParams(config=cfg_path, data=write_labels(stable, tmp_path / "early.csv")))
    assert (early.labeled_rows, early.unmatched_labels) == (0, 1000)
    assert not early.degraded and "fewer than labels.min_rows=100" in early.reason
    batch_scoring(ScoringParams(config=cfg_path, data=str(demo_files["stable"]), output=str(tmp_path / "s.parquet")))
    later = performance_monitoring(LabelParams(config=cfg_path))  # nothing new: the stored labels match now
    assert (later.labeled_rows, later.pending_predictions, later.unmatched_labels) == (1000, 0, 0)
    assert not later.degraded and later.retraining is None
    assert Registry(cfg).champion().version == "1"


def test_a_label_file_that_labels_an_id_twice_is_quarantined(labeled_config, champion, demo_files, tmp_path):
    stable = pd.read_csv(demo_files["stable"]).head(50)
    twice = pd.concat([stable, stable.head(3).assign(churned=1 - stable.head(3)["churned"])])
    with pytest.raises(DataRejected, match="3 ids are labeled more than once") as rejected:
        performance_monitoring(LabelParams(config=str(labeled_config), data=write_labels(twice, tmp_path / "t.csv")))
    assert rejected.value.quarantined_to and not (tmp_path / "t.csv").exists()


def test_a_label_run_without_labels_enabled_fails_naming_the_setting(config_factory):
    with pytest.raises(ConfigError, match="labels.enabled is false"):
        performance_monitoring(LabelParams(config=str(config_factory(labels={"enabled": False}))))


@pytest.mark.slow  # a training and several monitoring runs: make test-slow
def test_drift_runs_feed_the_dashboard_and_the_kpis_count_the_loop(labeled_config, champion, demo_files):
    cfg_path, cfg = str(labeled_config), _cfg(labeled_config)
    continuous_training(BatchParams(config=cfg_path, data=str(demo_files["concept_drift"])))  # drift → v2 promoted
    training(TrainParams(config=cfg_path))  # the same window again: refused

    snapshots = evidently_report.dashboard_snapshots(cfg)
    assert [s["name"] for s in snapshots if evidently_report.DRIFT_TAG in s["tags"]] == ["drift concept_drift.csv"]
    assert snapshots[0]["metadata"]["model_version"] == "1"

    measured = gather_kpis(cfg)
    assert (measured.promotions, measured.refusals) == (2, 1)
    assert (measured.incidents, measured.open_incidents) == (1, 0) and measured.mttr_hours < 1
    assert measured.training_runs == 3 and measured.training_success_rate == 1.0
    assert measured.training_runs_source.startswith("the Prefect API")
    assert (measured.scoring_runs, measured.scored_rows) == (1, 3000) and measured.scoring_rows_per_second > 0
    assert measured.newest_training_data == "concept_drift.csv"
    registry = Registry(cfg)
    trend = registry.client.search_runs([registry.experiment_id], "tags.`driftline.run_type` = 'trends'")[0]
    [point] = registry.client.get_metric_history(trend.info.run_id, "dataset_drift")
    assert (point.step, point.value) == (0, 1.0)
