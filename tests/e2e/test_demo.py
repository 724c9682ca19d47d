"""`driftline demo` as `make demo` runs it: the whole story on the bundled demo config."""

import json

import pytest
import yaml
from testkit.paths import DEMO_CONFIG

pytestmark = pytest.mark.slow


def test_demo_shows_champion_refusal_promotion_and_rejection(run_cli, tmp_path):
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["storage"] = {"workspace": str(tmp_path / "workspace")}
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(data))

    demo = run_cli("demo", "--config", str(config), "--data-dir", "data/demo")
    assert demo.returncode == 0, demo.stderr[-3000:]
    out = demo.stdout
    assert "initial training on reference.parquet: v1 promoted" in out
    assert "batch_01_stable.csv: scored 2000 rows with v1; no drift" in out
    assert "batch_03_covariate_shift.csv: scored 2000 rows with v1; drift: " in out
    assert "v2 refused (roc_auc" in out
    assert "batch_04_concept_drift.csv: scored 4000 rows with v1; drift: " in out
    assert "v3 promoted (roc_auc" in out
    assert "batch_05_quality_faults.csv: rejected, quarantined to" in out
    assert "categories unseen in training (e.g. unknown-plan)" in out
    assert "MLflow UI:" in out and "Prefect UI:" in out

    status = json.loads(run_cli("status", "--config", str(config), "--json").stdout)
    aliases = {v["version"]: v["aliases"] for v in status["versions"]}
    # the challenger alias moved on to v3, then left it when v3 became champion
    assert aliases == {"1": ["previous"], "2": [], "3": ["champion"]}
    quarantined = list((tmp_path / "workspace" / "quarantine").glob("*-batch_05_quality_faults.csv"))
    assert len(quarantined) == 1 and (quarantined[0] / "validation.json").exists()

    again = run_cli("demo", "--config", str(config), "--data-dir", "data/demo")
    assert again.returncode == 2 and "demo --fresh" in again.stderr
