"""Label drift on late labels through Prefect and MLflow on SQLite: `driftline labels` tests each newly labeled batch's
labels against the champion's training labels, and retrains on label drift as a drift alarm would at label delay 0."""

import json
from pathlib import Path

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from testkit.churn import churn_resampled
from testkit.paths import WEEK

from driftline.cli.main import EXIT_REFUSED, main
from driftline.config import load_config
from driftline.data.demo import START, make_frame
from driftline.flows.batch_scoring import batch_scoring
from driftline.flows.params import LabelParams, ScoringParams, TrainParams
from driftline.flows.performance_monitoring import performance_monitoring
from driftline.flows.training import training
from driftline.monitoring.performance import ALL_BATCHES
from driftline.registry import Registry
from driftline.tasks.publishing import artifact_key


def write_labels(frame: pd.DataFrame, path) -> str:
    frame[["customer_id", "churned"]].to_csv(path, index=False)
    return str(path)


def with_champion(config_factory, reference: Path, **drift) -> str:
    """The config, with champion v1 trained on `reference`."""
    labels = {"enabled": True, "min_rows": 100, "max_degradation": 0.05}
    config = str(config_factory(labels=labels, drift={"target_drift": True, **drift}))
    assert training(TrainParams(config=config, data=[str(reference)])).verdict == "promoted"
    return config


def score_moved_batch(config: str, tmp_path, rows: int = 600) -> pd.DataFrame:
    """The champion scores a batch whose customers churned at 80 % (the same kind of customers: only the label
    distribution moved, from 49 % in training)."""
    source = make_frame(rows * 5 // 2, seed=3, start=START + 10 * WEEK, id_offset=20_000)
    moved = churn_resampled(source, rows, 0.8, seed=3)
    moved.to_csv(tmp_path / "data" / "churn80.csv", index=False)
    data, output = str(tmp_path / "data" / "churn80.csv"), str(tmp_path / "churn80.parquet")
    batch_scoring(ScoringParams(config=config, data=data, output=output))
    return moved


@pytest.mark.slow  # a training, two scorings and a label run: about 11 s
def test_drifted_late_labels_are_reported_logged_per_batch_and_under_trigger_estimated_do_not_retrain(
    config_factory, tmp_path
):
    reference = tmp_path / "data" / "reference.parquet"
    reference.parent.mkdir(exist_ok=True)
    make_frame(1200, seed=1, days=56).to_parquet(reference)
    config = with_champion(config_factory, reference, trigger="estimated")  # drift alarms report only, as at delay 0
    moved = score_moved_batch(config, tmp_path, rows=300)
    cfg = load_config(config)
    registry = Registry(cfg)

    outcome = performance_monitoring(LabelParams(config=config, data=write_labels(moved, tmp_path / "l.csv")))

    [line] = outcome.label_drift_checks
    assert line.startswith("churn80.csv: DRIFTED on 300 labeled rows (chisquare = ")
    [reason] = outcome.label_drift_reasons
    assert reason.startswith("label drift in churn80.csv: target 'churned' drifted (chisquare = ")
    assert outcome.retraining is None and [v.version for v in registry.versions()] == ["1"]

    # MLflow: the statistic at the batch's step; the table artifact says it in words
    [run] = registry.client.search_runs([registry.experiment_id], "tags.`driftline.run_type` = 'performance'")
    [point] = registry.client.get_metric_history(run.info.run_id, "batch_label_drift_chisquare")
    assert point.step == 0 and point.value < cfg.drift.signal_p_value
    assert run.data.metrics["label_drifted_batches"] == 1
    saved = json.loads(registry.run_text(run.info.run_id, "performance.json"))
    assert saved["label_drift"]["verdict"] == reason
    with get_client(sync_client=True) as client:
        tables = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key(cfg, "performance")]))
        )
    table = max(tables, key=lambda artifact: artifact.created)  # the key is the model's: this run's is the newest
    assert f"Label drift of v1: DRIFTED: {reason}." in table.description
    rows = {row["batch"]: row["label drift"] for row in json.loads(table.data)}
    assert rows == {ALL_BATCHES: "–", "churn80.csv": line.removeprefix("churn80.csv: ")}


@pytest.mark.slow  # three label runs, two scorings, two trainings: about 25 s
def test_stable_labels_do_not_drift_and_a_batch_labeled_in_parts_retrains_with_the_label_drift_reason(
    config_factory, demo_files, tmp_path, capsys
):
    champion_config = with_champion(config_factory, demo_files["reference"])
    batch_scoring(
        ScoringParams(config=champion_config, data=str(demo_files["stable"]), output=str(tmp_path / "stable.parquet"))
    )
    moved = score_moved_batch(champion_config, tmp_path)
    stable = pd.read_csv(demo_files["stable"])
    registry = Registry(load_config(champion_config))
    capsys.readouterr()

    assert main(["labels", "--config", champion_config, "--data", write_labels(stable, tmp_path / "stable.csv")]) == 0
    out = capsys.readouterr().out
    assert "  label drift of stable.csv: no drift on 1000 labeled rows (chisquare = " in out
    assert "threshold 0.001)" in out and "retrained" not in out
    assert [v.version for v in registry.versions()] == ["1"]

    # the first 30 labels of the moved batch: too few for a verdict, and the stable batch is not judged again
    part = performance_monitoring(
        LabelParams(config=champion_config, data=write_labels(moved.head(30), tmp_path / "1.csv"))
    )
    assert part.label_drift_checks == [
        "churn80.csv: 30 labeled rows, fewer than drift.min_rows=50: no label drift verdict"
    ]
    assert part.retraining is None

    # the rest: the batch is judged on all its 600 labeled rows, and its drifted labels alone retrain
    rest = write_labels(moved.iloc[30:], tmp_path / "2.csv")
    assert main(["labels", "--config", champion_config, "--data", rest]) in (0, EXIT_REFUSED)  # the gate may refuse it
    out = capsys.readouterr().out
    assert "  label drift of churn80.csv: DRIFTED on 600 labeled rows (chisquare = " in out
    assert "retrained" in out
    trigger = {v.version: v.tags for v in registry.versions()}["2"]["driftline.trigger"]
    assert trigger.startswith("label drift in churn80.csv: target 'churned' drifted (chisquare = ")
