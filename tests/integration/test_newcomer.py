"""The newcomer's path, end to end: the demo (its CLI equivalent), `make up` on the same workspace, a new file dropped
into the landing folder, a run failed by an MLflow outage and retried when the file is dropped again, `make down`.

The tests share one stack (the `newcomer` fixture) and build on each other in file order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pandas as pd
import pytest
from mlflow import MlflowClient
from testkit.live_stack import Stack, aliases, drop, runs_of, wait_until_final
from testkit.outcomes import expect
from testkit.paths import DRIFTLINE, PROJECT_ROOT
from testkit.waiting import wait_for

from driftline.config.workspace import REGISTRY_MARKER

pytestmark = pytest.mark.integration


def runs_for(newcomer: Stack, file_name: str) -> list:
    return [
        run
        for run in runs_of(newcomer, "continuous-training")
        if run.parameters["params"]["data"].endswith(f"/{file_name}")
    ]


def landing_status(newcomer: Stack) -> dict:
    """`driftline status --json` as a person runs it on the machine: straight on the workspace's store."""
    env = {key: value for key, value in os.environ.items() if key not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")}
    done = subprocess.run(
        [str(DRIFTLINE), "status", "--config", str(newcomer.config_path), "--json"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_the_stack_s_mlflow_shows_the_versions_and_aliases_the_demo_registered(newcomer: Stack):
    client = MlflowClient(newcomer.tracking_uri, newcomer.tracking_uri)
    name = newcomer.cfg.registry.model_name
    assert [str(v.version) for v in client.search_model_versions(f"name = '{name}'")] == ["1"]
    assert aliases(newcomer) == {"champion": "1"}
    # the same store through the server: the same identity, so the same local state (archive, ledger, cache)
    [marker] = newcomer.cfg.folders.registries.glob(f"*/{REGISTRY_MARKER}")
    assert (
        client.get_registered_model(name).tags["driftline.registry_id"] == json.loads(marker.read_text())["registry_id"]
    )


def test_a_new_file_in_the_landing_folder_runs_with_the_demo_s_champion_and_a_demo_batch_is_not_rerun(
    newcomer: Stack,
):
    drop(newcomer, "stable_c")
    [run] = wait_for(lambda: runs_for(newcomer, "stable_c.csv"), 60, "the file to start a run")
    done = wait_until_final(run.id, timeout=300)
    assert done.state.is_completed(), done.state.message
    versions = ",".join(
        sorted(set(pd.read_parquet(newcomer.cfg.folders.outputs / "stable_c.scored.parquet").model_version))
    )
    expect(
        case="make demo, then make up: a new file dropped into the landing folder",
        expected="run completed, scored by the demo's champion v1",
        observed=f"run {done.state.name.lower()}, scored by the demo's champion v{versions}",
    )
    drop(newcomer, "stable_a")  # what the demo processed already, in the same registry: done, not run again
    wait_for(lambda: not landing_status(newcomer)["landing"]["pending"], 30, "the watcher to see the demo's batch")
    assert runs_for(newcomer, "stable_a.csv") == []


def test_a_run_failed_by_an_mlflow_outage_is_run_again_when_its_file_is_dropped_again(newcomer: Stack):
    mlflow = next(p for p in newcomer.state.processes if p.name == "mlflow-server")
    os.killpg(mlflow.pid, signal.SIGSTOP)  # the server stops answering, for a moment
    try:
        drop(newcomer, "stable_d")
        [run] = wait_for(lambda: runs_for(newcomer, "stable_d.csv"), 60, "the file to start a run")
        failed = wait_until_final(run.id, timeout=400)
    finally:
        os.killpg(mlflow.pid, signal.SIGCONT)
    assert failed.state.is_failed(), failed.state.message
    [recorded] = landing_status(newcomer)["landing"]["failed"]
    assert recorded["flow_run_id"] == str(run.id) and "unavailable" in recorded["reason"]

    drop(newcomer, "stable_d")
    retried = wait_for(
        lambda: [r for r in runs_for(newcomer, "stable_d.csv") if r.id != run.id],
        60,
        "the file dropped again to start a run",
    )[0]
    done = wait_until_final(retried.id, timeout=300)
    versions = ",".join(
        sorted(set(pd.read_parquet(newcomer.cfg.folders.outputs / "stable_d.scored.parquet").model_version))
    )
    expect(
        case="a landed file's run failed (MLflow server stopped), the file dropped again (live stack)",
        expected="run again: completed, scored by v1",
        observed=f"run again: {done.state.name.lower()}, scored by v{versions}",
    )
    landing = landing_status(newcomer)["landing"]
    assert landing["failed"] == [] and (landing["recent"][0]["state"], landing["recent"][0]["flow_run_id"]) == (
        "succeeded",
        str(retried.id),
    )
