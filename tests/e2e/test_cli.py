"""The CLI as a user calls it: exit codes, one-line errors, files written."""

import json

import pandas as pd
import pytest
import yaml
from testkit.paths import DEMO_CONFIG

pytestmark = pytest.mark.slow


def test_train_score_run_and_status_from_the_command_line(run_cli, config_path, demo_files, tmp_path):
    config = str(config_path)
    trained = run_cli("train", "--config", config, "--data", str(demo_files["reference"]))
    assert trained.returncode == 0, trained.stderr
    assert "trained v1 promoted (roc_auc" in trained.stdout

    output = tmp_path / "scores.csv"
    scored = run_cli("score", "--config", config, "--data", str(demo_files["stable"]), "--output", str(output))
    assert scored.returncode == 0, scored.stderr
    assert len(pd.read_csv(output)) == 1000

    again = run_cli("train", "--config", config, "--data", str(demo_files["reference"]))
    assert again.returncode == 4
    assert again.stderr.strip().startswith("driftline: gate refused v2: Metric roc_auc minimum absolute change")
    assert len(again.stderr.strip().splitlines()) == 1

    rejected = run_cli("run", "--config", config, "--data", str(demo_files["faulty"]))
    assert rejected.returncode == 3
    line = rejected.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "faulty.csv rejected (quarantined to" in line and "unknown-plan" in line

    status = run_cli("status", "--config", config, "--json")
    assert status.returncode == 0, status.stderr
    registry = json.loads(status.stdout)
    assert registry["champion"] == "1"
    assert [(v["version"], v["gate_verdict"], v["aliases"]) for v in registry["versions"]] == [
        ("1", "promoted", ["champion"]),
        ("2", "refused", ["challenger"]),
    ]


def test_bad_config_exits_2_naming_field_and_file(run_cli, tmp_path, demo_files):
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["gate"]["min_improvement"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    result = run_cli("train", "--config", str(path), "--data", str(demo_files["reference"]))
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "min_improvement" in text)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"driftline: {path}:{line}: gate.min_improvement: Input should be greater than 0 (got -1)"
    )


def test_scoring_before_any_champion_exits_5(run_cli, config_path, demo_files, tmp_path):
    result = run_cli(
        "score",
        "--config",
        str(config_path),
        "--data",
        str(demo_files["stable"]),
        "--output",
        str(tmp_path / "o.parquet"),
    )
    assert result.returncode == 5
    assert "has no champion yet" in result.stderr and "driftline train" in result.stderr
