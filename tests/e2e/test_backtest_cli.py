"""`driftline backtest` as a user runs it: progress per batch on stderr, the comparison table, the files."""

import json
import os
import subprocess

import pytest
from testkit.paths import DRIFTLINE

pytestmark = pytest.mark.slow


def test_backtest_shows_progress_per_batch_then_the_table_and_writes_its_files(
    run_cli, config_path, demo_files, tmp_path
):
    history = [str(demo_files[name]) for name in ("covariate_shift", "reference", "stable")]
    output = tmp_path / "workspace" / "bt"
    done = run_cli(
        "backtest",
        "--config",
        str(config_path),
        "--data",
        *history,
        "--policy",
        "never",
        "--set",
        "drift.drift_share=0.5",
        "drift.prediction_drift=false",
        "--output",
        str(output),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[never] first champion: v1 from 1 file(s)" in done.stderr
    assert "[never] stable.csv: no drift" in done.stderr
    assert "[drift.drift_share=0.5 drift.prediction_drift=false] covariate_shift.csv: " in done.stderr
    assert "Backtest of churn-demo: served roc_auc per batch" in done.stdout
    assert "mean served roc_auc" in done.stdout and "best mean served roc_auc:" in done.stdout
    saved = json.loads((output / "backtest.json").read_text())
    assert [p["name"] for p in saved["policies"]] == ["never", "drift.drift_share=0.5 drift.prediction_drift=false"]
    assert [b["batch"] for b in saved["batches"]] == ["stable.csv", "covariate_shift.csv"]
    assert (output / "backtest.png").exists() and (output / "backtest.html").exists()


def test_labels_one_batch_late_and_the_estimated_policy_on_an_80_column_terminal(
    prefect_api_url, config_path, demo_files, tmp_path
):
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url, "COLUMNS": "80"}
    env.pop("MLFLOW_TRACKING_URI", None)
    history = [str(demo_files[name]) for name in ("reference", "stable", "covariate_shift", "concept_drift")]
    output = tmp_path / "workspace" / "late"
    command = [str(DRIFTLINE), "backtest", "--config", str(config_path), "--data", *history]
    command += ["--policy", "current", "estimated", "--label-delay", "1", "--output", str(output)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[current] labels of stable.csv: 1,000 rows, champion " in done.stderr
    drawn = [line for line in done.stdout.splitlines() if line[:1] in "┏┃┡│├└"]  # the table, not the file paths
    assert len(drawn) > 10 and max(len(line) for line in drawn) <= 80
    assert "labels 1 batch late" in done.stdout and "▲" in done.stdout and "tenure_months" not in done.stdout
    saved = json.loads((output / "backtest.json").read_text())
    assert saved["label_delay"] == 1 and [p["name"] for p in saved["policies"]] == ["current", "estimated"]
    for policy in saved["policies"]:
        assert all(isinstance(batch["estimated_metric"], float) for batch in policy["batches"])
        assert 0 <= policy["totals"]["estimate_error"] < 0.2
    assert "tenure_months" in (output / "backtest.html").read_text()
