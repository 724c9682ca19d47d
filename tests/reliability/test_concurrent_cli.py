"""The CLI on a busy machine: commands started at once without PREFECT_API_URL each start their own temporary Prefect
server and all finish; with PREFECT_API_URL set, a command uses that server and starts none."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from testkit.outcomes import expect
from testkit.paths import WEEK
from testkit.processes import start_cli

from driftline.data.demo import START, make_frame

pytestmark = pytest.mark.slow
STARTED_SERVER = re.compile(r"Starting temporary server on (http://127\.0\.0\.1:\d+)")


def write_batch(path: Path, seed: int) -> Path:
    make_frame(500, seed=seed, start=START + 9 * WEEK, id_offset=100_000 * seed).to_csv(path, index=False)
    return path


def local_env(tmp_path: Path) -> dict[str, str]:
    """A shell with no Prefect server configured: a fresh Prefect home, Prefect's and driftline's defaults."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "COLUMNS": "300"}
    for variable in ("PREFECT_API_URL", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "MLFLOW_TRACKING_URI"):
        env.pop(variable, None)
    return env


def test_three_commands_started_at_once_each_start_a_server_and_all_succeed(config_path, champion, tmp_path):
    config = str(config_path)
    commands = {
        "run": ["run", "--config", config, "--data", str(write_batch(tmp_path / "a.csv", 11))],
        "score": [
            "score",
            "--config",
            config,
            "--data",
            str(write_batch(tmp_path / "b.csv", 12)),
            "--output",
            str(tmp_path / "b.scored.csv"),
        ],
        "monitor": ["monitor", "--config", config, "--data", str(write_batch(tmp_path / "c.csv", 13))],
    }
    env = local_env(tmp_path)
    started = {name: start_cli(["--verbose", *args], env, tmp_path) for name, args in commands.items()}
    ended = {name: process.communicate(timeout=900) for name, process in started.items()}
    for name, (_, err) in ended.items():  # shown by pytest when the test fails: why a command exited non-zero
        print(f"--- {name} exit {started[name].returncode}\n{err[-3000:]}")
    servers = {name: STARTED_SERVER.findall(out + err) for name, (out, err) in ended.items()}
    codes = ", ".join(f"{name} {process.returncode}" for name, process in started.items())
    last_lines = {name: err.strip().splitlines()[-1:] for name, (_, err) in ended.items() if started[name].returncode}
    own = all(len(found) == 1 for found in servers.values()) and len({f[0] for f in servers.values()}) == 3
    expect(
        case="concurrent CLI starts: run + score + monitor at once, no PREFECT_API_URL",
        expected="exit run 0, score 0, monitor 0; each on its own temporary Prefect server",
        observed=f"exit {codes}{f' {last_lines}' if last_lines else ''}; "
        f"{'each on its own temporary Prefect server' if own else f'servers started: {servers}'}",
    )


def test_with_prefect_api_url_set_a_command_uses_that_server(config_path, champion, tmp_path, prefect_api_url):
    env = {**local_env(tmp_path), "PREFECT_API_URL": prefect_api_url}
    args = [
        "--verbose",
        "score",
        "--config",
        str(config_path),
        "--data",
        str(write_batch(tmp_path / "d.csv", 14)),
        "--output",
        str(tmp_path / "d.scored.csv"),
    ]
    process = start_cli(args, env, tmp_path)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-2000:]
    assert STARTED_SERVER.findall(out + err) == []
    assert prefect_api_url.removesuffix("/api") in out + err  # the flow run's link points at the running server
