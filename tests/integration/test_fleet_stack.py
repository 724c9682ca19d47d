"""The fleet demo on one stack, as a user brings it up: `python -m driftline.stack.fleet_demo` (make fleet-demo: data
and a first champion per model), `driftline stack up --config DIR` (make up CONFIG=DIR), files dropped into two
models' landing folders at once: each starts its own model's continuous-training run and both complete, the fleet
service answers for every model, and `driftline stack down` stops everything it started."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from testkit.paths import DRIFTLINE, PROJECT_ROOT
from testkit.processes import cli_env
from testkit.waiting import wait_for

from driftline import stack
from driftline.config import load_fleet

pytestmark = pytest.mark.integration


def fleet_copy(root: Path) -> Path:
    """configs/fleet-demo with its workspace, data and service port under this test, and quicker models."""
    folder = root / "fleet"
    shutil.copytree(PROJECT_ROOT / "configs" / "fleet-demo", folder)
    shared = yaml.safe_load((folder / "fleet.yaml").read_text())
    shared["storage"] = {"workspace": str(root / "workspace"), "allowed_roots": [str(root / "data")]}
    shared["serving"] = {"port": stack.free_port()}
    shared["landing"] = {"poll_seconds": 0.5, "stable_seconds": 1}
    shared["model"] = {"params": {"max_iter": 40, "learning_rate": 0.1, "max_leaf_nodes": 15}}
    (folder / "fleet.yaml").write_text(yaml.safe_dump(shared, sort_keys=False))
    return folder


def landing_runs(prefect_api: str) -> dict[str, object]:
    """The flow runs started for files in a landing folder, by the file they were given."""
    with temporary_settings({PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(limit=200)
    return {
        run.parameters["params"]["data"]: run
        for run in runs
        if "/landing/" in str(run.parameters.get("params", {}).get("data"))
    }


def test_the_fleet_demo_runs_on_one_stack_and_files_landing_for_two_models_both_complete(prefect_api_url: str):
    root = Path(tempfile.mkdtemp(prefix="driftline-fleet-"))
    folder = fleet_copy(root)
    data = root / "data"
    setup = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftline.stack.fleet_demo",
            str(folder),
            "--data-dir",
            str(data),
        ],
        env=cli_env(prefect_api_url),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert setup.returncode == 0, setup.stderr
    assert setup.stdout.count("promoted") == 3, setup.stdout

    stack_env = {
        key: value for key, value in os.environ.items() if key not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")
    }
    stack_env |= {"PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_WORKER_PREFETCH_SECONDS": "2", "COLUMNS": "300"}
    ports = ["--prefect-port", str(stack.free_port()), "--mlflow-port", str(stack.free_port())]

    def driftline_stack(action: str, *extra: str) -> subprocess.CompletedProcess:
        command = [str(DRIFTLINE), "stack", action, "--config", str(folder), *extra]
        return subprocess.run(command, env=stack_env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)

    fleet = load_fleet(folder)
    shared = fleet.workspace
    up = driftline_stack("up", *ports)
    state = stack.StackState.load(shared.folders.stack)
    try:
        assert up.returncode == 0, up.stderr or up.stdout
        assert sorted(p.name for p in state.processes) == [
            "mlflow-server",
            "prefect-server",
            "service",
            "watcher",
            "worker",
        ]  # one of each for the whole fleet
        churn, demand = fleet.model("fleet-churn"), fleet.model("fleet-demand")
        dropped = []
        for cfg, batch in ((churn, "batch_01_stable.csv"), (demand, "batch_03_covariate_shift.csv")):
            partial = cfg.folders.landing / f".{batch}.part"
            shutil.copyfile(data / cfg.registry.model_name / batch, partial)
            dropped.append(str(partial.rename(cfg.folders.landing / batch)))

        api = state.env["PREFECT_API_URL"]
        runs = wait_for(lambda: (found := landing_runs(api)) and len(found) == 2 and found, 90, "both files' runs")
        assert sorted(runs) == sorted(dropped)

        def final() -> dict | None:
            now = landing_runs(api)
            return now if all(run.state.is_final() for run in now.values()) else None

        ended = wait_for(final, 400, "both landing runs to finish", every=3)
        assert all(run.state.is_completed() for run in ended.values()), {p: r.state.message for p, r in ended.items()}
        for path, run in ended.items():  # each file ran for its own model
            model = "fleet-churn" if "/fleet-churn/" in path else "fleet-demand"
            assert run.parameters["params"]["config"].endswith(f"{fleet.model(model).source.name}")

        service = next(p.url for p in state.processes if p.name == "service")
        with urllib.request.urlopen(f"{service}/models", timeout=30) as answer:
            served = {model["name"]: model["champion"] for model in json.load(answer)["models"]}
        assert set(served) == {"fleet-churn", "fleet-demand", "fleet-plans"} and all(served.values())
    finally:
        down = driftline_stack("down")
        leftovers = [p.name for p in (state.processes if state else []) if stack.alive(p.pid)]
        assert down.returncode == 0 and not leftovers, f"still running after stack down: {leftovers}; {down.stderr}"
    shutil.rmtree(root)
