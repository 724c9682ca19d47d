"""The backtest's library parts without Prefect: time order, policies and `--set`, the isolated config and
environment, prequential metrics from a scoring output, and the table, JSON, chart and page."""

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from testkit.paths import WEEK

from driftline.backtest import ordering, policies, prequential, report, table, workspace
from driftline.backtest.ordering import HistoryFile
from driftline.backtest.policies import Policy
from driftline.backtest.results import REJECTED, Backtest, PolicyReplay, ReplayedBatch, Start
from driftline.config import MLFLOW_UI_ENV, TRACKING_URI_ENV, load_config
from driftline.data.demo import START, make_frame
from driftline.errors import ConfigError, DataRejected, PathNotAllowed


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False) if path.suffix == ".parquet" else frame.to_csv(path, index=False)
    return path


def test_files_are_replayed_in_event_time_order_and_a_file_without_time_stays_after_its_predecessor(cfg, tmp_path):
    late = write(make_frame(50, seed=1, start=START + 3 * WEEK), tmp_path / "late.csv")
    early = write(make_frame(50, seed=2, start=START), tmp_path / "early.parquet")
    middle = write(make_frame(50, seed=3, start=START + WEEK), tmp_path / "middle.csv")
    timeless = write(make_frame(50, seed=4).drop(columns="event_time"), tmp_path / "timeless.csv")
    ordered = ordering.in_time_order([late, early, timeless, middle], cfg.dataset)
    # timeless.csv was given right after early.parquet: it stays there
    assert [file.name for file in ordered] == ["early.parquet", "timeless.csv", "middle.csv", "late.csv"]
    assert ordered[0].event_time == pd.read_parquet(early)["event_time"].max()
    assert ordered[1].event_time is None
    without_clock = cfg.dataset.model_copy(update={"event_time_column": None})
    assert [f.name for f in ordering.in_time_order([late, early], without_clock)] == ["late.csv", "early.parquet"]


def test_history_files_must_exist_in_allowed_folders_and_leave_one_to_replay(cfg, tmp_path):
    with pytest.raises(PathNotAllowed, match="outside the allowed folders"):
        ordering.history_of(["/etc/hosts"], cfg)
    with pytest.raises(DataRejected, match="file does not exist"):
        ordering.history_of([str(tmp_path / "missing.csv")], cfg)
    history = [HistoryFile(Path(f"{n}.csv"), None) for n in range(3)]
    assert [len(part) for part in ordering.split_history(history, 2)] == [2, 1]
    with pytest.raises(ConfigError, match="--initial 3 with 3 files"):
        ordering.split_history(history, 3)


def test_set_values_are_yaml_and_isolated_or_malformed_paths_are_refused():
    assert policies.parse_assignment("drift.drift_share=0.5") == ("drift.drift_share", 0.5)
    assert policies.parse_assignment("drift.retrain=false") == ("drift.retrain", False)
    assert policies.parse_assignment("drift.thresholds={ks: 0.01}") == ("drift.thresholds", {"ks": 0.01})
    assert policies.parse_assignment("drift.numeric_method=wasserstein") == ("drift.numeric_method", "wasserstein")
    with pytest.raises(ConfigError, match="expected PATH=VALUE"):
        policies.parse_assignment("drift.drift_share 0.5")
    with pytest.raises(ConfigError, match="storage.workspace is set by the backtest itself"):
        policies.parse_assignment("storage.workspace=/elsewhere")


def test_policies_are_the_named_ones_then_one_per_set_group():
    planned = policies.plan(
        ["current", "never"], [["drift.drift_share=0.5"], ["drift.numeric_method=psi", "drift.categorical_method=psi"]]
    )
    assert [p.name for p in planned] == [
        "current",
        "never",
        "drift.drift_share=0.5",
        "drift.numeric_method=psi drift.categorical_method=psi",
    ]
    assert planned[1].overrides == {"drift.retrain": False, "retraining.every_batch": False}
    assert planned[0].describe() == "the config as written"
    assert planned[1].describe() == "drift.retrain=false, retraining.every_batch=false"
    with pytest.raises(ConfigError, match="--policy sometimes: unknown; use current, never, every-batch"):
        policies.plan(["sometimes"], [])
    with pytest.raises(ConfigError, match="two --set groups are the same"):
        policies.plan([], [["drift.drift_share=0.5"], ["drift.drift_share=0.5"]])


def test_the_replay_config_keeps_the_model_and_moves_every_folder_and_store_into_the_replay(config_factory, tmp_path):
    cfg = load_config(
        config_factory(
            storage={"workspace": str(tmp_path / "mine"), "archive_dir": "/srv/archive"},
            dashboard={"workspace": "/srv/evidently"},
            gate={"mode": "manual"},
        )
    )
    policy = policies.variant(["drift.drift_share=0.5", "retraining.every_batch=true"])
    data = workspace.isolated_config(cfg, policy, tmp_path / "replay")
    assert data["storage"] == {"workspace": str(tmp_path / "replay" / "workspace")}
    assert data["registry"] == {
        "model_name": "churn-demo-backtest",
        "tracking_uri": f"sqlite:///{tmp_path / 'replay' / 'mlflow.db'}",
        "environment_wins": False,
    }
    assert "workspace" not in data["dashboard"] and data["gate"]["mode"] == "auto"
    assert (data["drift"]["drift_share"], data["retraining"]["every_batch"]) == (0.5, True)
    assert data["model"] == yaml.safe_load(cfg.source_text)["model"]  # the model and the rest: as written
    with pytest.raises(ConfigError, match="under policy 'drift.drift_sahre=0.5': drift.drift_sahre: unknown key"):
        workspace.isolated_config(cfg, policies.variant(["drift.drift_sahre=0.5"]), tmp_path / "bad")


def test_a_replay_workspace_uses_its_own_store_whatever_the_environment_names(cfg, tmp_path, monkeypatch):
    monkeypatch.setenv(TRACKING_URI_ENV, "sqlite:///users-own.db")
    monkeypatch.setenv(MLFLOW_UI_ENV, "http://mlflow.example")
    (tmp_path / "data").mkdir()
    source = write(make_frame(20, seed=1), tmp_path / "data" / "week.csv")
    history = [HistoryFile(source, None)]
    with workspace.sandbox() as folder, workspace.replay_workspace(cfg, Policy("current"), history, folder) as ws:
        replayed = load_config(ws.config)
        assert replayed.tracking_uri == ws.tracking_uri != "sqlite:///users-own.db"
        assert replayed.mlflow_ui_url is None  # links to the user's MLflow UI would name runs it does not have
        [copy] = ws.files
        assert copy.read_bytes() == source.read_bytes() and copy != source
        root = copy.parents[2]
    assert not root.exists() and not folder.exists() and source.exists()
    assert os.environ[TRACKING_URI_ENV] == "sqlite:///users-own.db"  # the environment was never changed
    assert os.environ[MLFLOW_UI_ENV] == "http://mlflow.example"


def scoring_output(batch: pd.DataFrame, proba: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": batch["customer_id"],
            "prediction": (proba >= 0.5).astype(int),
            "proba_0": 1 - proba,
            "proba_1": proba,
            "model_version": "1",
        }
    )


def test_served_metrics_join_the_scoring_output_to_the_batch_labels_by_id(cfg, tmp_path):
    batch = make_frame(400, seed=5)
    proba = np.random.default_rng(0).random(400) * 0.5 + 0.5 * batch["churned"].to_numpy()
    output = scoring_output(batch, proba).sample(frac=1, random_state=1)  # row order must not matter
    measured = prequential.served_metrics(
        write(output, tmp_path / "scored.parquet"), write(batch, tmp_path / "batch.csv"), cfg
    )
    assert measured["roc_auc"] == pytest.approx(roc_auc_score(batch["churned"], proba))
    assert measured["accuracy"] == pytest.approx(((proba >= 0.5).astype(int) == batch["churned"]).mean())
    unlabeled = write(batch.drop(columns="churned"), tmp_path / "unlabeled.csv")
    assert prequential.served_metrics(tmp_path / "scored.parquet", unlabeled, cfg) == {}


def test_served_metrics_follow_row_order_without_an_id_column(config_factory, tmp_path):
    cfg = load_config(config_factory(dataset={"id_column": None}, labels={"enabled": False}))
    batch = make_frame(300, seed=6)
    proba = np.random.default_rng(1).random(300)
    output = scoring_output(batch, proba).drop(columns="customer_id")
    measured = prequential.served_metrics(write(output, tmp_path / "s.parquet"), write(batch, tmp_path / "b.csv"), cfg)
    assert measured["roc_auc"] == pytest.approx(roc_auc_score(batch["churned"], proba))


def small_backtest() -> Backtest:
    history = [HistoryFile(Path(f"week-{n}.csv"), pd.Timestamp("2026-01-05", tz="UTC") + n * WEEK) for n in range(4)]
    start = Start("1", "promoted", 0.8, 1.0)
    current = [
        ReplayedBatch("week-1.csv", 100, "scored", "1", {"roc_auc": 0.80}, seconds=2.0),
        ReplayedBatch(
            "week-2.csv",
            100,
            "scored",
            "1",
            {"roc_auc": 0.60},
            True,
            ["tenure"],
            ["label"],
            True,
            "2",
            "promoted",
            champion_after="2",
            seconds=5.0,
        ),
        ReplayedBatch("week-3.csv", None, REJECTED, note="column 'age': 5% nulls; column 'x': bad"),
    ]
    never = [
        ReplayedBatch("week-1.csv", 100, "scored", "1", {"roc_auc": 0.80}),
        ReplayedBatch("week-2.csv", 100, "scored", "1", {"roc_auc": 0.60}, True, ["tenure"], ["label"]),
        ReplayedBatch("week-3.csv", 100, "scored", "1", {"roc_auc": 0.55}),
    ]
    replays = [PolicyReplay(Policy("current"), start, current), PolicyReplay(Policy("never"), start, never)]
    return Backtest("churn", "roc_auc", True, history, 1, replays, datetime(2026, 2, 1, tzinfo=UTC))


def test_the_table_shows_who_served_each_batch_what_happened_and_the_totals():
    result = small_backtest()
    rows = table.batch_rows(result)
    assert [row["batch"] for row in rows] == ["week-1.csv", "week-2.csv", "week-3.csv"]
    assert rows[1]["current"] == "v1 0.600\ndrift: tenure, label signal; → v2 promoted"
    assert rows[0]["never"] == "v1 0.800\nno drift"
    assert rows[2]["current"] == "rejected: column 'age': 5% nulls (+1 more)" and rows[2]["rows"] == "100"
    totals = {row["batch"]: row for row in table.total_rows(result)}
    assert totals["mean served roc_auc"] == {"batch": "mean served roc_auc", "current": "0.700", "never": "0.650"}
    assert totals["retrains"]["current"] == "1" and totals["promotions"]["current"] == "1"
    assert totals["drift alarms"] == {"batch": "drift alarms", "current": "1", "never": "1"}
    assert table.verdict(result) == (
        "best mean served roc_auc: current 0.700 with 1 retrains, 1 drift alarms; then never 0.650 (0 retrains)"
    )


def test_the_backtest_files_hold_the_json_chart_and_page(tmp_path):
    result = small_backtest()
    files = report.write_outputs(result, tmp_path / "out")
    saved = json.loads(files.json.read_text())
    assert saved["best_policy"] == "current" and saved["initial"] == ["week-0.csv"]
    assert saved["policies"][0]["batches"][1]["served_version"] == "1"
    assert saved["policies"][0]["totals"]["mean_metric"] == pytest.approx(0.7)
    assert files.png.read_bytes().startswith(b"\x89PNG")
    page = files.html.read_text()
    assert "<svg" in page and "v1 0.600<br>drift: tenure" in page and table.verdict(result) in page
    assert "![served roc_auc per batch](data:image/png;base64," in table.markdown(result, files.png)


def test_the_command_refuses_a_bad_policy_or_set_in_one_line_before_anything_runs(config_path, tmp_path, capsys):
    from driftline.cli.main import EXIT_CONFIG, main

    files = [str(write(make_frame(20, seed=n), tmp_path / f"b{n}.csv")) for n in range(2)]
    assert main(["backtest", "--config", str(config_path), "--data", *files, "--policy", "sometimes"]) == EXIT_CONFIG
    assert main(["backtest", "--config", str(config_path), "--data", *files, "--set", "storage.workspace=/x"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "driftline: --policy sometimes: unknown; use current, never, every-batch (or --set PATH=VALUE for "
        "a variant of the config)",
        "driftline: --set 'storage.workspace=/x': storage.workspace is set by the "
        "backtest itself (every replay runs in its own temporary workspace and registry); leave it out",
    ]
    assert not list(tmp_path.glob("workspace/backtests"))


def test_an_output_outside_the_allowed_folders_is_refused_before_any_replay(
    config_path, tmp_path, capsys, prefect_api_url
):
    from driftline.cli.main import EXIT_FAILED, main

    files = [str(write(make_frame(20, seed=n), tmp_path / f"b{n}.csv")) for n in range(2)]
    assert (
        main(["backtest", "--config", str(config_path), "--data", *files, "--output", "/elsewhere/bt"]) == EXIT_FAILED
    )
    err = capsys.readouterr().err
    assert "/elsewhere/bt: outside the allowed folders" in err and "first champion" not in err


def test_a_batch_retrains_on_drift_or_after_every_batch_when_configured(config_factory):
    from driftline.monitoring.drift import DriftResult
    from driftline.steps.retraining import retraining_reason

    drifted, calm = (
        DriftResult([], 0.5, True, ["50% of features drifted"], 10, 10),
        DriftResult([], 0, False, [], 10, 10),
    )
    on_drift = load_config(config_factory())
    every = load_config(config_factory(retraining={"every_batch": True}))
    frozen = load_config(config_factory(drift={"retrain": False}))
    assert retraining_reason(drifted, "b.csv", on_drift) == "drift in b.csv"
    assert retraining_reason(calm, "b.csv", on_drift) is None
    assert retraining_reason(calm, "b.csv", every) == "every batch: b.csv"
    assert retraining_reason(drifted, "b.csv", frozen) is None


def test_flight_batches_keep_flown_flights_with_the_dot_late_rule_and_the_departure_in_utc():
    from benchmarks.flights import COLUMNS, flights

    raw = pd.DataFrame(
        {
            "year": [2013, 2013, 2013],
            "month": [7, 1, 1],
            "day": [1, 1, 1],
            "sched_dep_time": [515, 515, 600],
            "sched_arr_time": [830, 2359, 900],
            "arr_delay": [15.0, 14.0, np.nan],
            "carrier": ["UA", "AA", "B6"],
            "flight": [1545, 33, 7],
            "origin": ["EWR", "JFK", "LGA"],
            "dest": ["IAH", "MIA", "FLL"],
            "distance": [1400, 1089, 1076],
            "hour": [5, 5, 6],
            "minute": [15, 15, 0],
        }
    )
    table = flights(raw)  # the unflown B6 flight (no arrival delay) is left out; rows in departure order
    assert list(table["flight_id"]) == ["2013-01-01-AA0033-JFK-0515", "2013-07-01-UA1545-EWR-0515"]
    assert list(table["late"]) == [0, 1]  # 14 minutes is on time, 15 is late
    # New York time to UTC: 5 hours in winter (EST), 4 in summer (EDT)
    assert list(table["event_time"]) == [
        pd.Timestamp("2013-01-01 10:15", tz="UTC"),
        pd.Timestamp("2013-07-01 09:15", tz="UTC"),
    ]
    assert list(table["day_of_week"]) == ["Tue", "Mon"] and list(table["sched_arr_hour"]) == [23, 8]
    assert set(COLUMNS) <= set(table.columns)
