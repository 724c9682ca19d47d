"""One Prefect history: what the CLI ran without a server (`make demo`) is in the Prefect UI of the stack (`make up`),
a command run while the stack is up reports to its server, and `driftline kpis` never starts a server of its own."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.settings import PREFECT_API_URL, temporary_settings
from testkit.paths import DRIFTLINE

from driftline import stack
from driftline.config import load_config
from driftline.stack.processes import start_process, stop_process, wait_until_answers

pytestmark = pytest.mark.slow  # a CLI training and a Prefect server started: make test-slow


def cli_env(tmp_path: Path) -> dict[str, str]:
    """A person's shell: no Prefect API or database named, Prefect's home of their own."""
    named = ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", *stack.PREFECT_DB_ENVS)
    env = {key: value for key, value in os.environ.items() if key not in named}
    return env | {"PREFECT_HOME": str(tmp_path / "prefect-home"), "COLUMNS": "200"}


def driftline(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(DRIFTLINE), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"driftline {' '.join(args)}: {done.stderr}"
    return done


def test_the_stack_s_prefect_server_shows_the_cli_s_runs_and_kpis_start_no_server(config_path, demo_files, tmp_path):
    cfg, env, config = load_config(config_path), cli_env(tmp_path), str(config_path)
    driftline(env, tmp_path, "train", "--config", config, "--data", str(demo_files["reference"]))
    assert (cfg.folders.root / "prefect" / "prefect.db").exists()  # the workspace's Prefect history

    serverless = env | {"PREFECT_SERVER_EPHEMERAL_ENABLED": "false"}  # a Prefect client call would fail
    offline = json.loads(driftline(serverless, tmp_path, "kpis", "--config", config, "--json").stdout)
    assert (offline["training_runs"], offline["training_success_rate"]) == (1, 1.0)
    assert not offline["training_runs_source"].startswith("the Prefect API")

    # The Prefect server as `driftline stack up` starts it, recorded where `stack up` records it.
    settings = stack.StackSettings(
        root=cfg.folders.stack,
        project_dir=tmp_path,
        config=config,
        prefect_port=stack.free_port(),
        prefect_store=stack.prefect_database_url(cfg.folders.root, env),
    )
    cfg.folders.stack.mkdir(parents=True)
    state = stack.StackState(root=str(cfg.folders.stack))
    prefect_db, _ = stack.database_urls(settings, env, state)
    assert prefect_db == settings.prefect_store  # the SQLite profile serves the CLI's database
    server = start_process(
        "prefect-server",
        stack.prefect_server_command(settings.host, settings.prefect_port),
        cfg.folders.stack,
        env | {stack.PREFECT_DB_ENV: prefect_db},
        tmp_path,
    )
    server.url = f"http://{settings.host}:{settings.prefect_port}"
    state.processes.append(server)
    state.env = {"PREFECT_API_URL": f"{server.url}/api"}
    state.save()
    try:
        wait_until_answers(f"{server.url}/api/health", server, timeout=120)
        with (
            temporary_settings({PREFECT_API_URL: state.env["PREFECT_API_URL"]}),
            get_client(sync_client=True) as client,
        ):
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["training"])))
        assert [(run.parameters["params"]["config"], run.state_type.value) for run in runs] == [(config, "COMPLETED")]

        online = json.loads(driftline(serverless, tmp_path, "kpis", "--config", config, "--json").stdout)
        assert online["training_runs_source"].startswith("the Prefect API")  # the stack's server, found by the CLI
        assert (online["training_runs"], online["training_success_rate"]) == (1, 1.0)
    finally:
        stop_process(server)
        (cfg.folders.stack / "state.json").unlink(missing_ok=True)
