"""`backtest` through Prefect and MLflow on SQLite: the demo's history replayed under the current policy and both
baselines, each batch served by the champion of its moment, and the user's own registry and archive untouched."""

import hashlib
import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from testkit.paths import DEMO_CONFIG

from driftline.backtest.results import REJECTED
from driftline.config import TRACKING_URI_ENV, load_config
from driftline.data.archive import read_archive_index
from driftline.data.demo import write_demo_data
from driftline.data.loading import load_batch
from driftline.flows.backtest import backtest
from driftline.flows.params import BacktestParams, TrainParams
from driftline.flows.training import training
from driftline.registry import Registry, registry_folders

pytestmark = pytest.mark.slow  # three replays of the demo, eight trainings: make test-slow


def user_state(config: Path, data: Path) -> dict:
    """What a backtest must leave as it found it: versions and aliases, the audit log, the experiments' runs, the
    archive, the quarantine, and the data files themselves."""
    cfg = load_config(config)
    registry = Registry(cfg)
    experiments = {
        e.name: len(registry.client.search_runs([e.experiment_id]))
        for e in registry.client.search_experiments()
        if not e.name.endswith("-backtests")
    }
    return {
        "versions": {v.version: (v.aliases, v.gate_verdict) for v in registry.versions()},
        "audit": [(e.action, e.version) for e in registry.audit_log()],
        "experiments": experiments,
        "archive": [(e.fingerprint, e.source_name) for e in read_archive_index(registry_folders(cfg).archive)],
        "quarantine": sorted(p.name for p in cfg.folders.quarantine.glob("*")),
        "data": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(data.iterdir())},
    }


@pytest.fixture(scope="module")
def replayed(prefect_api_url, tmp_path_factory):
    """The demo's files, given out of order, replayed from the user's config while the user's MLflow store is the
    environment's (what wins over a config) and the user's model already has a champion and an archive."""
    root = tmp_path_factory.mktemp("backtest")
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["storage"] = {"workspace": str(root / "mine"), "allowed_roots": [str(root / "data")]}
    data["model"]["params"] = {"max_iter": 60, "learning_rate": 0.1, "max_leaf_nodes": 15}
    config = root / "demo.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    files = write_demo_data(root / "data")
    training(TrainParams(config=str(config), data=[str(files.reference)], reason="the user's own champion"))
    before = user_state(config, root / "data")
    temporary = set(Path(tempfile.gettempdir()).glob("driftline-backtest-*"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TRACKING_URI_ENV, load_config(config).tracking_uri)
        shuffled = [str(path) for path in [*files.batches[::-1], files.reference]]
        outcome = backtest(BacktestParams(config=str(config), data=shuffled, output=str(root / "mine" / "backtest")))
    left = set(Path(tempfile.gettempdir()).glob("driftline-backtest-*")) - temporary
    return outcome, before, user_state(config, root / "data"), left, load_config(config)


def by_policy(outcome) -> dict:
    return {replay.policy.name: replay for replay in outcome.backtest.replays}


def test_the_demo_replays_in_time_order_and_reproduces_v1_v2_refused_v3_promoted(replayed):
    outcome = replayed[0]
    assert [file.name for file in outcome.backtest.history] == [
        "reference.parquet",
        "batch_01_stable.csv",
        "batch_02_stable.csv",
        "batch_03_covariate_shift.csv",
        "batch_04_concept_drift.csv",
        "batch_05_quality_faults.csv",
    ]
    current = by_policy(outcome)["current"]
    assert (current.start.version, current.start.verdict) == ("1", "promoted")
    assert [(b.served_version, b.drift, b.candidate_version, b.gate) for b in current.batches] == [
        ("1", False, None, None),
        ("1", False, None, None),
        ("1", True, "2", "refused"),
        ("1", True, "3", "promoted"),
        (None, False, None, None),
    ]
    assert {"tenure_months", "monthly_charges"} <= set(current.batches[2].drifted_features)
    assert "label" in current.batches[3].signals
    rejected = current.batches[4]
    assert rejected.status == REJECTED and "categories unseen in training (e.g. unknown-plan)" in rejected.note
    totals = outcome.backtest.totals()["current"]
    assert (totals.alarms, totals.retrains, totals.promotions, totals.refused, totals.rejected) == (2, 2, 1, 1, 1)


def test_the_baselines_replay_the_same_history_frozen_and_retrained_after_every_batch(replayed):
    policies = by_policy(replayed[0])
    never, every = policies["never"], policies["every-batch"]
    assert [b.served_version for b in never.batches] == ["1", "1", "1", "1", None]
    assert not any(b.retrained for b in never.batches) and [b.drift for b in never.batches][2:4] == [True, True]
    scored = [b for b in every.batches if b.status == "scored"]
    assert all(b.retrained for b in scored) and len(scored) == 4
    assert {b.gate for b in scored} == {"promoted", "refused"}  # the gate still decides
    assert [b.candidate_version for b in scored] == ["2", "3", "4", "5"]


def test_each_batch_is_scored_by_the_champion_of_its_moment_never_a_later_one(replayed):
    for replay in by_policy(replayed[0]).values():
        serving = replay.start.version
        for batch in replay.batches:
            if batch.status == "scored":
                assert batch.served_version == serving, (replay.policy.name, batch.batch)
                serving = batch.champion_after  # a promotion serves from the next batch on
    policies = by_policy(replayed[0])
    # v3 was promoted on batch 4's retrain, yet batch 4 was measured on v1: the same model, rows and value as frozen
    assert policies["current"].batches[3].metrics == policies["never"].batches[3].metrics
    assert policies["current"].batches[3].metrics["roc_auc"] < policies["current"].batches[2].metrics["roc_auc"]


def test_the_users_registry_archive_and_files_are_untouched_and_the_replay_is_cleaned_up(replayed):
    _, before, after, left, _ = replayed
    assert after == before
    assert before["versions"] == {"1": (["champion"], "promoted")} and len(before["archive"]) == 1
    assert left == set()


def test_the_result_is_written_and_recorded_in_the_backtests_experiment_at_the_data_time(replayed):
    outcome, *_, cfg = replayed
    assert Path(outcome.page).read_text().count("<svg") == 1 and Path(outcome.chart).stat().st_size > 10_000
    registry = Registry(cfg)
    experiment = registry.client.get_experiment_by_name(f"{cfg.experiment_name}-backtests")
    [run] = registry.client.search_runs([experiment.experiment_id])
    assert run.info.run_id == outcome.mlflow_run_id and run.data.tags["driftline.best_policy"]
    history = registry.client.get_metric_history(run.info.run_id, "current.served_roc_auc")
    assert [point.step for point in history] == [0, 1, 2, 3]
    event_times = [file.event_time for file in outcome.backtest.later[:4]]
    assert [point.timestamp for point in history] == [int(t.timestamp() * 1000) for t in event_times]
    assert run.data.metrics["every-batch.retrains"] == 4
    # a week of the demo's own time between batches, not the seconds between the runs
    assert all(b - a > pd.Timedelta(days=6) for a, b in zip(event_times, event_times[1:], strict=False))


@pytest.fixture(scope="module")
def replayed_late(prefect_api_url, tmp_path_factory):
    """The demo's history under the current policy with each batch's labels one batch late."""
    root = tmp_path_factory.mktemp("late")
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["storage"] = {"workspace": str(root / "mine"), "allowed_roots": [str(root / "data")]}
    data["model"]["params"] = {"max_iter": 60, "learning_rate": 0.1, "max_leaf_nodes": 15}
    config = root / "demo.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    files = write_demo_data(root / "data")
    history = [str(path) for path in [files.reference, *files.batches]]
    params = BacktestParams(config=str(config), data=history, policies=["current"], label_delay=1)
    rows = {path.name: len(load_batch(path, load_config(config).dataset).frame) for path in map(Path, history)}
    return backtest(params), rows


def test_with_labels_one_batch_late_a_retrain_trains_only_on_the_labels_that_have_arrived(replayed, replayed_late):
    outcome, rows = replayed_late
    late, on_time = by_policy(outcome)["current"].batches, by_policy(replayed[0])["current"].batches
    assert outcome.backtest.label_delay == 1
    # batch 03 drifts: its retrain trains on the last three labeled batches that had arrived, the reference, 01 and 02;
    # with labels on time it trained on 01, 02 and 03
    assert (late[2].drift, late[2].retrained) == (True, True)
    assert (
        late[2].training_rows == rows["reference.parquet"] + rows["batch_01_stable.csv"] + rows["batch_02_stable.csv"]
    )
    assert on_time[2].training_rows == sum(rows[f.name] for f in outcome.backtest.later[:3])
    # each batch is still judged on its own labels: v1 served batch 03 either way, with the same value
    assert late[2].served_version == on_time[2].served_version == "1" and late[2].metrics == on_time[2].metrics
    # after each batch, its own labels reach the loop (before the next batch); the last batch's never do
    assert [b.labels.batch if b.labels else None for b in late] == [
        "batch_01_stable.csv",
        "batch_02_stable.csv",
        "batch_03_covariate_shift.csv",
        "batch_04_concept_drift.csv",
        None,
    ]
    # the concept-drift batch comes without labels: no label signal, and no retrain, since the window is the one v3
    # was trained on when batch 03's labels came; its own labels then show the champion degraded, and the retrain
    # they start is promoted
    assert "label" in on_time[3].signals and "label" not in late[3].signals
    assert (late[3].drift, late[3].retrained, late[3].gate) == (True, False, None)
    assert late[3].retrain_skipped.startswith("v3 was trained on this same window (3 labeled batches)")
    arrival = late[3].labels
    assert arrival.rows == rows["batch_04_concept_drift.csv"] and arrival.degraded and arrival.gate == "promoted"
    assert arrival.training_rows == sum(rows[f.name] for f in outcome.backtest.later[1:4])
    assert late[3].champion_after == arrival.candidate_version
    saved = json.loads(Path(outcome.json_file).read_text())
    assert saved["label_delay"] == 1 and saved["policies"][0]["batches"][3]["labels"]["gate"] == "promoted"
