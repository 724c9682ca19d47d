"""The fleet inventory's evidence and flags on real files and a real MLflow store (SQLite), no flow run: the record
of flow runs, the prediction log, the card, the crons; `fleet status --json` and its exit; the report's chart."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from testkit.configs import write_config

from driftline.cli.inventory import cmd_fleet_status
from driftline.config import load_config, load_fleet
from driftline.data import prediction_log
from driftline.errors import NeedsAttention
from driftline.fleet.flow_runs import FlowRun, facts_of, read_summary, record
from driftline.fleet.inventory import next_run, take_inventory
from driftline.fleet.report import chart
from driftline.flows.params import ScoringOutcome, ScoringReport
from driftline.registry import registry_folders
from driftline.registry.inventory_queries import Series

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """One workspace (and MLflow store) for the module's fleets: each test's models have names of their own."""
    return tmp_path_factory.mktemp("fleets") / "workspace"


def write_fleet(folder: Path, workspace: Path, models: dict[str, dict]) -> Path:
    """A fleet folder: fleet.yaml with the workspace, one demo config per model with its own sections."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fleet.yaml").write_text(yaml.safe_dump({"storage": {"workspace": str(workspace)}}))
    for name, sections in models.items():
        path = write_config(folder, f"{name}.yaml", registry={"model_name": name}, **sections)
        data = yaml.safe_load(path.read_text())
        del data["storage"]
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def ran(model: str, state: str, minutes_ago: int, flow: str = "drift-monitoring", error: str = "") -> FlowRun:
    ended = NOW - timedelta(minutes=minutes_ago)
    return FlowRun(model, flow, f"run-{minutes_ago}", state, ended - timedelta(minutes=1), ended, error)


@pytest.mark.slow  # 8 s on 2 cores: the default suite stays under 5 minutes
def test_a_model_is_failing_only_when_its_last_failing_runs_all_failed(tmp_path: Path, workspace: Path):
    folder = write_fleet(tmp_path / "fleet", workspace, {"m": {"model_card": {"owner": "team"}}})
    cfg = load_config(folder / "m.yaml")
    for state, minutes_ago in [("FAILED", 50), ("COMPLETED", 40), ("FAILED", 30), ("CRASHED", 20)]:
        record(cfg, ran("m", state, minutes_ago, error="RuntimeError: boom"))
    assert take_inventory(load_fleet(folder), NOW).rows[0].flags == []  # 2 failures since the last success

    record(cfg, ran("m", "FAILED", 10, flow="batch-scoring", error="DataRejected: b.csv rejected: no rows"))

    (row,) = take_inventory(load_fleet(folder), NOW).rows
    assert row.flags == [
        "failing: its last 3 flow runs failed (last: batch-scoring: DataRejected: b.csv rejected: no rows)"
    ]
    summary = read_summary(cfg.folders.root, cfg.registry.model_name)
    assert [run.state for run in summary.recent] == ["FAILED", "COMPLETED", "FAILED", "CRASHED", "FAILED"]
    assert summary.completed["drift-monitoring"].flow_run_id == "run-40"  # its facts outlive the later failures
    history = (workspace / "flow-runs" / "m.jsonl").read_text().splitlines()
    assert len(history) == 5 and json.loads(history[-1])["error"] == "DataRejected: b.csv rejected: no rows"


def test_stale_when_no_batch_was_scored_within_freshness_hours_or_the_review_date_passed(
    tmp_path: Path, workspace: Path
):
    folder = write_fleet(
        tmp_path / "fleet",
        workspace,
        {
            "fresh": {"model_card": {"owner": "a", "review_date": "2026-06-02"}, "sla": {"freshness_hours": 24}},
            "late": {"model_card": {"owner": "b", "review_date": "2026-05-31"}, "sla": {"freshness_hours": 24}},
        },
    )
    for name, hours_ago in [("fresh", 2), ("late", 30)]:
        log = registry_folders(load_config(folder / f"{name}.yaml")).prediction_log  # registers the model
        rows = pd.DataFrame({"id": ["a"], "prediction": [1]})
        prediction_log.append(rows, log, "batch.csv", now=NOW - timedelta(hours=hours_ago))
        prediction_log.append(rows, log, "online", now=NOW - timedelta(hours=1))  # the service's rows: no batch

    fresh, late = take_inventory(load_fleet(folder), NOW).rows

    assert (fresh.model, fresh.flags, fresh.last_scored) == ("fresh", [], NOW - timedelta(hours=2))
    assert late.flags == [
        "stale: review date 2026-05-31 passed 1 days ago",
        "stale: last batch scored 30.0 h ago (sla.freshness_hours 24)",
    ]


def test_status_json_has_a_row_per_model_and_per_broken_config_and_exits_7_naming_them(
    tmp_path: Path, workspace: Path, capsys
):
    folder = write_fleet(
        tmp_path / "fleet",
        workspace,
        {"owned": {"model_card": {"owner": "team", "risk_tier": "high"}}, "orphan": {"model_card": {}}},
    )
    (folder / "typo.yaml").write_text((folder / "owned.yaml").read_text().replace("risk_tier:", "risk_teir:"))

    with pytest.raises(NeedsAttention) as flagged:
        cmd_fleet_status(argparse.Namespace(config=str(folder), json=True))

    shown = json.loads(capsys.readouterr().out)
    rows = {row["model"]: row for row in shown["models"]}
    assert (shown["flagged"], sorted(rows)) == (2, ["orphan", "owned", "typo"])
    assert (rows["owned"]["owner"], rows["owned"]["risk_tier"], rows["owned"]["flags"]) == ("team", "high", [])
    assert rows["owned"]["next_run"] in ("batch-scoring", "drift-monitoring", "performance-monitoring")
    assert rows["orphan"]["flags"] == ["orphaned: no owner (model_card.owner is 'unassigned')"]
    line = next(n for n, text in enumerate((folder / "typo.yaml").read_text().splitlines(), 1) if "risk_teir" in text)
    assert (
        rows["typo"]["config_error"]
        == f"{folder / 'typo.yaml'}:{line}: model_card.risk_teir: unknown key; remove it or check its spelling"
    )
    assert str(flagged.value) == (
        "2 of 3 models need a person (orphaned: orphan; broken config: typo); see driftline fleet status"
    )


def test_the_next_run_comes_from_the_crons_it_is_deployed_with(tmp_path: Path):
    own = {
        "batch_scoring": {"cron": "30 2 * * *", "timezone": "Europe/Paris"},
        "drift_monitoring": {"cron": "0 * * * * */20"},  # Prefect's sixth field: seconds, last
        "performance_monitoring": {"cron": "0 4 * * *"},
    }
    cfg = load_config(write_config(tmp_path, schedules=own, labels={"enabled": False}))
    assert next_run(cfg, NOW) == ("drift-monitoring", NOW + timedelta(seconds=20))
    paused = load_config(
        write_config(
            tmp_path, "paused.yaml", schedules={**own, "drift_monitoring": {"cron": "0 * * * *", "active": False}}
        )
    )
    assert next_run(paused, NOW) == ("batch-scoring", datetime(2026, 6, 2, 0, 30, tzinfo=UTC))  # 02:30 in Paris


def test_the_flow_outcomes_facts_are_what_the_inventory_reads():
    report = ScoringReport(
        scored=[ScoringOutcome(batch=f"b{i}.csv", rows=100 * i, output="o", model_version="3") for i in (1, 2)],
        rejected=["b3.csv: no rows"],
    )
    assert facts_of(report) == {"rows": 300, "files": 2}
    assert facts_of(None) == {}


def test_the_chart_places_each_point_at_its_data_time_and_marks_drift_alarms():
    days = [NOW - timedelta(days=back) for back in (10, 5, 1)]  # ticks a day apart or more: dates
    svg = chart(
        Series("served roc_auc", list(zip(days, [0.8, 0.78, 0.7], strict=True))),
        Series("drifted feature share", list(zip(days, [0.1, 0.2, 0.6], strict=True))),
        Series("drift alarm", list(zip(days, [0.0, 0.0, 1.0], strict=True))),
    )
    assert svg.count("<circle") == 3 and svg.count("width='6'") == 3
    assert svg.count("drift alarm 2026-05-31 12:00") == 1
    assert f"{days[0]:%Y-%m-%d}" in svg and f"{days[-1]:%Y-%m-%d}" in svg
    assert "nothing to chart" in chart(Series("m", []), Series("d", []), Series("a", []))
