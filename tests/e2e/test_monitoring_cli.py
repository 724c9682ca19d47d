"""Monitoring from the command line: labels, KPIs and the Evidently dashboard service."""

import json
import os
import subprocess
import time
import urllib.request

import pandas as pd
import pytest
from testkit.paths import DRIFTLINE

from driftline.stack import free_port

pytestmark = pytest.mark.slow


def test_labels_retrain_a_degraded_champion_and_kpis_and_dashboard_show_it(
    run_cli, config_path, demo_files, prefect_api_url, tmp_path
):
    config = str(config_path)
    assert run_cli("train", "--config", config, "--data", str(demo_files["reference"])).returncode == 0
    scored = run_cli("score", "--config", config, "--data", str(demo_files["concept_drift"]))
    assert scored.returncode == 0, scored.stderr
    inbox = tmp_path / "workspace" / "labels" / "churn-demo"
    inbox.mkdir(parents=True)
    pd.read_csv(demo_files["concept_drift"])[["customer_id", "churned"]].to_csv(inbox / "week11.csv", index=False)
    os.utime(inbox / "week11.csv", (time.time() - 60, time.time() - 60))  # complete: untouched for a while

    labels = run_cli("labels", "--config", config)
    assert labels.returncode == 0, labels.stderr
    said = " ".join(labels.stdout.split())  # rich wraps long lines
    assert said.startswith("3000 labels received, 3000 predictions labeled, 0 waiting")
    assert "champion v1: degraded (roc_auc" in said and "retrained v2 promoted" in said
    assert (inbox / "done" / "week11.csv").exists()

    bad = inbox / "broken.csv"
    bad.write_text("customer_id,churned\nC1,1\nC1,0\n")
    os.utime(bad, (time.time() - 60, time.time() - 60))
    rejected = run_cli("labels", "--config", config)
    assert rejected.returncode == 3 and len(rejected.stderr.strip().splitlines()) == 1
    assert "ids are labeled more than once" in rejected.stderr and "quarantined to" in rejected.stderr

    kpis = run_cli("kpis", "--config", config, "--json")
    assert kpis.returncode == 0, kpis.stderr
    measured = json.loads(kpis.stdout)
    assert (measured["promotions"], measured["incidents"], measured["open_incidents"]) == (2, 1, 0)
    assert measured["training_runs_source"].startswith("the Prefect API")

    port = free_port()
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url}
    server = subprocess.Popen(
        [str(DRIFTLINE), "dashboard", "--config", config, "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        projects = None
        for _ in range(120):  # up to a minute for the service to start
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/projects", timeout=2) as answer:
                    projects = json.loads(answer.read())
                break
            except OSError:
                time.sleep(0.5)
        assert projects is not None and [p["name"] for p in projects] == ["churn-demo"]
        url = f"http://127.0.0.1:{port}/api/projects/{projects[0]['id']}/snapshots"
        with urllib.request.urlopen(url, timeout=5) as answer:
            names = sorted(snapshot["name"] for snapshot in json.loads(answer.read()))
        assert names == ["performance concept_drift.csv v1"]
    finally:
        server.terminate()
        server.wait(timeout=30)
