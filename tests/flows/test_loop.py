"""The continuous-training loop through Prefect (one temporary server per session) and MLflow on SQLite."""

import json

import pandas as pd
import pytest
from prefect.client.orchestration import get_client

from driftline.data.archive import read_archive_index
from driftline.errors import DataRejected, NoChampion
from driftline.flows.batch_scoring import batch_scoring
from driftline.flows.continuous_training import continuous_training
from driftline.flows.drift_monitoring import drift_monitoring
from driftline.flows.params import BatchParams, MonitorParams, ScoringParams, TrainParams
from driftline.flows.training import training
from driftline.monitoring import evidently_report
from driftline.registry import CHALLENGER, CHAMPION, PREVIOUS, Registry, registry_folders


@pytest.fixture
def champion_v1(config_path, demo_files):
    outcome = training(TrainParams(config=str(config_path), data=[str(demo_files["reference"])], reason="initial"))
    assert outcome.verdict == "promoted" and outcome.champion_version == "1"
    return outcome


def versions(cfg):
    return {v.version: v for v in Registry(cfg).versions()}


def test_first_training_promotes_a_champion_with_lineage(cfg, champion_v1, demo_files):
    registry = Registry(cfg)
    assert registry.champion().version == "1"
    v1 = versions(cfg)["1"]
    assert v1.aliases == [CHAMPION]
    assert v1.gate_verdict == "promoted"
    assert v1.tags["driftline.gate.reasons"].startswith("first model: roc_auc")
    lineage = v1.to_dict()
    archived = read_archive_index(registry_folders(cfg).archive)
    assert lineage["data_fingerprints"] == [archived[0].fingerprint]
    assert lineage["training_rows"] == 3000 and lineage["seed"] == "42"
    assert lineage["config_fingerprint"] == cfg.fingerprint


def test_retraining_on_the_same_data_is_refused_and_recorded(cfg, config_path, champion_v1, demo_files):
    outcome = training(TrainParams(config=str(config_path), data=[str(demo_files["reference"])]))
    assert outcome.verdict == "refused" and outcome.champion_version == "1"
    assert "minimum absolute change check failed" in outcome.reasons[0]
    v2 = versions(cfg)["2"]
    assert v2.aliases == [CHALLENGER] and v2.gate_verdict == "refused"
    assert v2.tags["driftline.gate.champion_version"] == "1"
    assert Registry(cfg).champion().version == "1"


def test_stable_batch_is_scored_without_drift_or_new_version(cfg, config_path, champion_v1, demo_files, tmp_path):
    output = tmp_path / "scores.parquet"
    summary = continuous_training(
        BatchParams(config=str(config_path), data=str(demo_files["stable"]), output=str(output))
    )
    assert not summary.monitoring.drift_detected and summary.monitoring.retraining is None
    scored = pd.read_parquet(output)
    assert len(scored) == 1000 and scored["customer_id"].is_unique
    assert set(scored["model_version"]) == {"1"}
    assert list(versions(cfg)) == ["1"]
    assert len(list(cfg.folders.reports.glob("drift-stable-*.html"))) == 1
    # on the dashboards the batch sits at its own time (its newest event), not at the moment the run happened
    newest = pd.read_csv(demo_files["stable"], parse_dates=["event_time"])["event_time"].max()
    [snapshot] = [s for s in evidently_report.dashboard_snapshots(cfg) if evidently_report.DRIFT_TAG in s["tags"]]
    assert snapshot["timestamp"] == newest.floor("us")
    registry = Registry(cfg)
    trend = registry.client.search_runs([registry.experiment_id], "tags.`driftline.run_type` = 'trends'")[0]
    [point] = registry.client.get_metric_history(trend.info.run_id, "drifted_feature_share")
    assert (point.step, point.timestamp) == (0, int(newest.timestamp() * 1000))


def test_concept_drift_triggers_retraining_and_promotion(cfg, config_path, champion_v1, demo_files):
    summary = continuous_training(BatchParams(config=str(config_path), data=str(demo_files["concept_drift"])))
    monitoring = summary.monitoring
    assert monitoring.drift_detected
    retraining = monitoring.retraining
    assert retraining.verdict == "promoted", retraining.reasons
    assert retraining.challenger_value > retraining.champion_value + cfg.gate.min_improvement
    registry = Registry(cfg)
    assert registry.champion().version == retraining.candidate_version == "2"
    assert registry.alias(PREVIOUS).version == "1"
    assert versions(cfg)["2"].tags["driftline.trigger"] == "drift in concept_drift.csv"
    # the retrain used the archive window: the reference and the drifted batch
    assert versions(cfg)["2"].to_dict()["training_rows"] == 6000


def test_a_drifted_batch_without_labels_retrains_nothing_the_champion_did_not_learn_already(
    cfg, config_path, champion_v1, demo_files, tmp_path
):
    unlabeled = tmp_path / "covariate_shift_unlabeled.csv"
    pd.read_csv(demo_files["covariate_shift"]).drop(columns="churned").to_csv(unlabeled, index=False)
    summary = continuous_training(BatchParams(config=str(config_path), data=str(unlabeled)))
    monitoring = summary.monitoring
    # the alarm stands, but the window a retrain would use is still v1's alone: the same data gives the same model
    assert monitoring.drift_detected and monitoring.retraining is None
    assert monitoring.retrain_skipped == (
        "v1 was trained on this same window (1 labeled batch) with this config: a retrain waits for new labeled data"
    )
    assert list(versions(cfg)) == ["1"]


def test_rejected_batch_is_quarantined_and_nothing_downstream_runs(cfg, config_path, champion_v1, demo_files):
    with pytest.raises(DataRejected) as rejected:
        continuous_training(BatchParams(config=str(config_path), data=str(demo_files["faulty"])))
    quarantine = cfg.folders.quarantine / rejected.value.quarantined_to.split("/")[-1]
    assert (quarantine / "faulty.csv").exists() and not demo_files["faulty"].exists()
    report = json.loads((quarantine / "validation.json").read_text())
    assert any("categories unseen in training (e.g. unknown-plan)" in reason for reason in report["reasons"])
    assert list(versions(cfg)) == ["1"]
    assert not cfg.folders.outputs.exists()
    assert [entry.source_name for entry in read_archive_index(registry_folders(cfg).archive)] == ["reference.parquet"]


def test_rejected_batch_ends_the_flow_run_failed_on_the_server(config_path, champion_v1, demo_files):
    state = continuous_training(BatchParams(config=str(config_path), data=str(demo_files["faulty"])), return_state=True)
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        recorded = client.read_flow_run(state.state_details.flow_run_id)
    assert recorded.state.is_failed()
    assert "unknown-plan" in recorded.state.message


@pytest.mark.slow  # two trainings and a monitoring run: make test-slow
def test_monitoring_flow_retrains_on_drift_and_scoring_needs_a_champion(cfg, config_path, demo_files, tmp_path):
    with pytest.raises(NoChampion, match="train one first"):
        batch_scoring(
            ScoringParams(config=str(config_path), data=str(demo_files["stable"]), output=str(tmp_path / "o.csv"))
        )
    training(TrainParams(config=str(config_path), data=[str(demo_files["reference"])]))
    outcome = drift_monitoring(MonitorParams(config=str(config_path), data=str(demo_files["covariate_shift"])))
    assert outcome.drift_detected
    assert {"tenure_months", "monthly_charges"} <= set(outcome.drifted_features)
    assert outcome.retraining is not None and outcome.retraining.candidate_version == "2"
    report = batch_scoring(
        ScoringParams(config=str(config_path), data=str(demo_files["stable"]), output=str(tmp_path / "o.csv"))
    )
    [scored] = report.scored
    assert scored.rows == 1000 and scored.model_version == Registry(cfg).champion().version


def test_a_mistyped_path_is_rejected_without_a_quarantine_entry(cfg, config_path, champion_v1, tmp_path):
    with pytest.raises(DataRejected, match="file does not exist"):
        continuous_training(BatchParams(config=str(config_path), data=str(tmp_path / "no_such_batch.csv")))
    assert not cfg.folders.quarantine.exists() or not any(cfg.folders.quarantine.iterdir())
