"""`driftline backtest` as a user runs it: progress per batch on stderr, the comparison table, the files."""

import json

import pytest

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
