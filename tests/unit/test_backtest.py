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

from driftline.backtest import delay, ordering, policies, prequential, report, table, workspace
from driftline.backtest.ordering import HistoryFile
from driftline.backtest.policies import Policy
from driftline.backtest.results import REJECTED, Backtest, LabelArrival, PolicyReplay, ReplayedBatch, Start
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
    assert planned[1].overrides == {"drift.retrain": False, "retraining.every_batch": False, "labels.retrain": False}
    assert planned[0].describe() == "the config as written"
    assert planned[1].describe() == "drift.retrain=false, retraining.every_batch=false, labels.retrain=false"
    [estimated] = policies.plan(["estimated"], [])
    assert estimated.overrides == {"drift.trigger": "estimated"}
    with pytest.raises(ConfigError, match="--policy sometimes: unknown; use current, never, every-batch, estimated"):
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
    with (
        workspace.sandbox() as folder,
        workspace.replay_workspace(cfg, Policy("current"), history, 1, 0, folder) as ws,
    ):
        replayed = load_config(ws.config)
        assert replayed.tracking_uri == ws.tracking_uri != "sqlite:///users-own.db"
        assert replayed.mlflow_ui_url is None  # links to the user's MLflow UI would name runs it does not have
        [copy] = ws.first
        assert copy.read_bytes() == source.read_bytes() and copy != source
        root = copy.parents[2]
    assert not root.exists() and not folder.exists() and source.exists()
    assert os.environ[TRACKING_URI_ENV] == "sqlite:///users-own.db"  # the environment was never changed
    assert os.environ[MLFLOW_UI_ENV] == "http://mlflow.example"


def test_under_a_label_delay_the_loop_sees_each_later_file_without_labels_and_its_labels_wait_in_a_label_file(
    cfg, tmp_path
):
    (tmp_path / "data").mkdir()
    first = write(make_frame(30, seed=1), tmp_path / "data" / "first.csv")
    partly = make_frame(40, seed=2)
    partly.loc[:9, "churned"] = np.nan  # labels for only part of the batch
    later = [
        write(partly, tmp_path / "data" / "partly.csv"),
        write(make_frame(20, seed=3), tmp_path / "data" / "week.parquet"),
        write(make_frame(20, seed=4).drop(columns="churned"), tmp_path / "data" / "unlabeled.csv"),
        write(pd.DataFrame({"x": [1]}), tmp_path / "data" / "broken.parquet"),
    ]
    history = [HistoryFile(path, None) for path in [first, *later]]
    with (
        workspace.sandbox() as folder,
        workspace.replay_workspace(cfg, Policy("current"), history, 1, 2, folder) as ws,
    ):
        assert load_config(ws.config).labels.enabled  # the label path takes the late labels in
        [trained] = ws.first
        assert "churned" in pd.read_csv(trained)  # the first champion trains on labels known from the start
        partial, weekly, without, broken = ws.later
        seen = pd.read_csv(partial.seen, dtype=str, keep_default_na=False)
        original = pd.read_csv(later[0], dtype=str, keep_default_na=False)
        assert seen.equals(original.drop(columns="churned"))  # every other column as written
        assert partial.labeled.read_bytes() == later[0].read_bytes() and partial.name == "partly.csv"
        labels = pd.read_parquet(partial.labels)
        assert list(labels.columns) == ["customer_id", "churned"] and len(labels) == 30
        assert list(labels["customer_id"]) == list(partly["customer_id"][10:].astype(str))
        assert "churned" not in pd.read_parquet(weekly.seen) and len(pd.read_parquet(weekly.labels)) == 20
        assert without.labels is None and without.seen.read_bytes() == later[2].read_bytes()
        assert broken.labels is None and broken.seen.read_bytes() == later[3].read_bytes()  # the loop rejects it


def test_with_labels_k_batches_late_batch_t_s_labels_arrive_before_batch_t_plus_k_and_never_after_the_last():
    assert [delay.labels_due(turn, 5, 1) for turn in range(5)] == [0, 1, 2, 3, None]
    assert [delay.labels_due(turn, 5, 2) for turn in range(5)] == [None, 0, 1, 2, None]
    assert [delay.labels_due(turn, 5, 0) for turn in range(5)] == [None] * 5  # they came with each batch
    assert [delay.labels_due(turn, 3, 4) for turn in range(3)] == [None] * 3


def test_a_label_delay_needs_an_id_to_join_the_late_labels(config_factory):
    cfg = load_config(config_factory(dataset={"id_column": None}, labels={"enabled": False}))
    delay.require_ids(cfg, 0)
    with pytest.raises(ConfigError, match="--label-delay 1: late labels are joined to the served predictions by id"):
        delay.require_ids(cfg, 1)


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


LONG_DRIFT = [f"customer_lifetime_feature_number_{n:02d}" for n in range(15)]


def late_backtest() -> Backtest:
    """Labels one batch late, estimates beside the realized metric, long drift lists and a long variant name."""
    history = [
        HistoryFile(Path(f"flights-2013-{n:02d}.parquet"), pd.Timestamp("2013-01-31", tz="UTC") + n * 4 * WEEK)
        for n in range(1, 5)
    ]
    start = Start("1", "promoted", 0.7, 1.0)
    late = LabelArrival("flights-2013-02.parquet", 26_000, 0.61, True, "3", "promoted", training_rows=80_000)
    drifted = dict(drift=True, drifted_features=LONG_DRIFT, signals=["prediction"])
    estimated = dict(estimated_lower=0.6, estimated_upper=0.7)
    current = [
        ReplayedBatch(
            "flights-2013-02.parquet",
            26_000,
            "scored",
            "1",
            {"roc_auc": 0.64},
            **drifted,
            retrained=True,
            candidate_version="2",
            gate="refused",
            champion_after="1",
            estimated_metric=0.66,
            **estimated,
        ),
        ReplayedBatch(
            "flights-2013-03.parquet",
            27_000,
            "scored",
            "1",
            {"roc_auc": 0.60},
            estimated_metric=0.68,
            **estimated,
            estimate_trusted=False,
            labels=late,
            champion_after="3",
        ),
        ReplayedBatch(
            "flights-2013-04.parquet", 26_500, "scored", "3", {"roc_auc": 0.65}, estimate_note="no estimator"
        ),
    ]
    frozen = [
        ReplayedBatch(b.batch, b.rows, "scored", "1", {"roc_auc": value}, **drifted, estimated_metric=0.66)
        for b, value in zip(current, [0.64, 0.60, 0.58], strict=True)
    ]
    variant = Policy("drift.numeric_method=wasserstein drift.categorical_method=jensenshannon", {"x": 1})
    replays = [
        PolicyReplay(Policy("current"), start, current),
        PolicyReplay(Policy("never"), start, frozen),
        PolicyReplay(Policy("every-batch"), start, frozen),
        PolicyReplay(variant, start, frozen),
    ]
    return Backtest("flights-late", "roc_auc", True, history, 1, replays, datetime(2013, 6, 1, tzinfo=UTC), 1)


def test_late_labels_count_their_retrains_and_each_batch_carries_its_estimate_beside_the_realized_metric(tmp_path):
    result = late_backtest()
    totals = result.totals()["current"]
    # the retrain on batch 02 (refused) and the one its late labels started after batch 03 (promoted)
    assert (totals.retrains, totals.promotions, totals.refused, totals.degraded) == (2, 1, 1, 1)
    assert totals.estimate_error == pytest.approx((0.02 + 0.08) / 2)  # batch 04 had no estimate
    saved = json.loads(report.write_outputs(result, tmp_path / "out").json.read_text())
    assert saved["label_delay"] == 1
    batches = saved["policies"][0]["batches"]
    assert [(b["metrics"]["roc_auc"], b["estimated_metric"]) for b in batches] == [
        (0.64, 0.66),
        (0.6, 0.68),
        (0.65, None),
    ]
    assert (batches[0]["estimated_lower"], batches[0]["estimated_upper"]) == (0.6, 0.7)
    assert batches[2]["estimate_note"] == "no estimator"
    assert batches[1]["labels"]["batch"] == "flights-2013-02.parquet" and batches[1]["labels"]["gate"] == "promoted"
    assert saved["policies"][0]["totals"]["estimate_error"] == pytest.approx(0.05)
    cells = table.batch_rows(result)
    assert cells[1]["current"] == (
        "v1 0.600\nest. 0.680 [0.600, 0.700], untrusted\nno drift\n"
        "labels of flights-2013-02.parquet: 26,000 rows, champion 0.610, degraded → v3 promoted"
    )
    assert cells[2]["current"] == "v3 0.650\nno estimate: no estimator\nno drift"
    shown = {row["batch"]: row["current"] for row in table.total_rows(result)}
    assert (shown["estimate error"], shown["degraded on labels"], shown["retrains"]) == ("0.050", "1", "2")


def test_at_80_columns_the_terminal_table_keeps_to_figures_and_symbols_and_the_page_keeps_the_words(tmp_path):
    import io

    from rich.console import Console

    from driftline.cli.backtest import backtest_table

    result = late_backtest()
    screen = Console(width=80, file=io.StringIO(), record=True)
    screen.print(backtest_table(result))
    for line in table.short_key(result):
        screen.print(line, markup=False)
    text = screen.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert not any(feature in text for feature in LONG_DRIFT) and "wasserstein" in text.splitlines()[-1]
    rows = table.short_rows(result)
    assert [row["batch"] for row in rows] == ["02", "03", "04"]
    assert list(rows[0]) == ["batch", "rows", "current", "never", "every-batch", "A"]
    assert rows[0]["current"] == "v1 0.640\n~0.660\n▲16 →v2✗"  # 15 features and the prediction signal
    assert rows[1]["current"] == "v1 0.600\n~0.680\n↓ →v3✓"
    assert rows[2]["current"] == "v3 0.650\n~–"
    assert table.short_key(result)[1] == "A: drift.numeric_method=wasserstein drift.categorical_method=jensenshannon"
    page = report.page(result)
    assert all(feature in page for feature in LONG_DRIFT) and "labels came late" in page.lower()


def test_the_command_refuses_a_bad_policy_or_set_in_one_line_before_anything_runs(config_path, tmp_path, capsys):
    from driftline.cli.main import EXIT_CONFIG, main

    files = [str(write(make_frame(20, seed=n), tmp_path / f"b{n}.csv")) for n in range(2)]
    assert main(["backtest", "--config", str(config_path), "--data", *files, "--policy", "sometimes"]) == EXIT_CONFIG
    assert main(["backtest", "--config", str(config_path), "--data", *files, "--set", "storage.workspace=/x"]) == 2
    assert main(["backtest", "--config", str(config_path), "--data", *files, "--label-delay", "-1"]) == EXIT_CONFIG
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "driftline: --policy sometimes: unknown; use current, never, every-batch, estimated (or --set PATH=VALUE for "
        "a variant of the config)",
        "driftline: --set 'storage.workspace=/x': storage.workspace is set by the "
        "backtest itself (every replay runs in its own temporary workspace and registry); leave it out",
        "driftline: --label-delay -1: must be 0 or more batches",
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
