"""The fleet inventory from the runs themselves: real flows of three models on one workspace, one of them whose
training always fails, read back by `driftline fleet status` (exit 7 with the flags) and `fleet report`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from testkit.configs import write_config

from driftline.cli.main import main
from driftline.errors import DataRejected
from driftline.fleet.flow_runs import read_summary
from driftline.flows.batch_scoring import batch_scoring
from driftline.flows.params import ScoringParams, TrainParams
from driftline.flows.training import training

GOOD, FAILING, ORPHAN = "fleet-good", "fleet-failing", "fleet-orphan"


@pytest.fixture
def fleet_folder(tmp_path: Path, demo_files: dict[str, Path]) -> Path:
    """Three model configs over one fleet.yaml (the workspace, the data folder), and a config that does not load."""
    folder = tmp_path / "fleet"
    folder.mkdir()
    shared = {"storage": {"workspace": str(tmp_path / "workspace"), "allowed_roots": [str(tmp_path / "data")]}}
    (folder / "fleet.yaml").write_text(yaml.safe_dump(shared))
    cards = {
        GOOD: {"model_card": {"owner": "team-good", "risk_tier": "low"}, "sla": {"freshness_hours": 24}},
        FAILING: {"model_card": {"owner": "team-failing"}},
        ORPHAN: {"model_card": {"review_date": "2026-01-01"}, "sla": {"freshness_hours": 1}},
    }
    for name, sections in cards.items():
        path = write_config(folder, f"{name}.yaml", registry={"model_name": name}, **sections)
        data = yaml.safe_load(path.read_text())
        del data["storage"]  # the fleet's
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    (folder / "broken.yaml").write_text("name: broken\ndataset:\n  target: [unclosed\n")
    return folder


@pytest.mark.slow  # three models trained through the flows (31 s on 2 cores)
def test_a_model_whose_training_always_fails_is_flagged_failing_while_the_others_finish(
    fleet_folder: Path, demo_files: dict[str, Path], capsys
):
    good, failing = fleet_folder / f"{GOOD}.yaml", fleet_folder / f"{FAILING}.yaml"
    training(TrainParams(config=str(good), data=[str(demo_files["reference"])]))
    kept = fleet_folder.parent / "faulty.keep.csv"
    shutil.copy(demo_files["faulty"], kept)
    for _ in range(3):  # each attempt quarantines the file: the next gets a fresh copy
        shutil.copy(kept, demo_files["faulty"])
        with pytest.raises(DataRejected):
            training(TrainParams(config=str(failing), data=[str(demo_files["faulty"])]))
    batch_scoring(ScoringParams(config=str(good), data=str(demo_files["stable"])))
    capsys.readouterr()

    code = main(["fleet", "status", "--config", str(fleet_folder), "--json"])

    out, err = capsys.readouterr()
    assert code == 7
    rows = {row["model"]: row for row in json.loads(out)["models"]}
    assert sorted(rows) == ["broken", FAILING, GOOD, ORPHAN]
    assert rows[GOOD]["flags"] == []
    assert (rows[GOOD]["champion"], rows[GOOD]["last_retrain_verdict"], rows[GOOD]["owner"]) == (
        "1",
        "promoted",
        "team-good",
    )
    assert rows[GOOD]["last_scored"] is not None and rows[GOOD]["metric_at_promotion"] > 0.7
    assert rows[FAILING]["champion"] is None
    (failing_flag,) = rows[FAILING]["flags"]
    assert failing_flag.startswith(
        f"failing: its last 3 flow runs failed (last: training: DataRejected: {demo_files['faulty']} rejected"
    )
    assert "column 'monthly_charges'" in failing_flag  # the error's own line
    assert rows[ORPHAN]["flags"][0].startswith("stale: review date 2026-01-01 passed ")
    assert rows[ORPHAN]["flags"][1:] == [
        "stale: no batch scored yet (sla.freshness_hours 1)",
        "orphaned: no owner (model_card.owner is 'unassigned')",
    ]
    assert rows["broken"]["config_error"].startswith(f"{fleet_folder / 'broken.yaml'}: not valid YAML at line 4")
    assert rows["broken"]["flags"] == [f"broken config: {rows['broken']['config_error']}"]
    assert err.strip().startswith(
        f"driftline: 3 of 4 models need a person (broken config: broken; failing: {FAILING}; stale: {ORPHAN}; "
        f"orphaned: {ORPHAN})"
    )
    recorded = read_summary(fleet_folder.parent / "workspace", FAILING).recent
    assert [(run.flow, run.state) for run in recorded] == [("training", "FAILED")] * 3

    code = main(["fleet", "status", "--config", str(fleet_folder)])
    out, _ = capsys.readouterr()
    assert code == 7
    assert f"FLAGGED {FAILING}: failing: its last 3 flow runs failed" in out
    assert f"FLAGGED {ORPHAN}: orphaned: no owner" in out

    assert main(["fleet", "report", "--config", str(fleet_folder)]) == 0
    page = (fleet_folder.parent / "workspace" / "reports" / "fleet.html").read_text()
    assert page.count("<section>") == 4 and "failing: its last 3 flow runs failed" in page
