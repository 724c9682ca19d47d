"""The `driftline` command started as a user starts it, against the session's Prefect server, and killed hard."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from testkit.paths import DRIFTLINE


def cli_env(prefect_api_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url, "COLUMNS": "300", **extra}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def start_cli(args: list[str], env: dict[str, str], cwd: Path, **popen) -> subprocess.Popen:
    """`driftline ARGS` in its own process group, so a kill reaches everything it started."""
    return subprocess.Popen(
        [str(DRIFTLINE), *args],
        cwd=cwd,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def kill_hard(process: subprocess.Popen) -> None:
    """SIGKILL to the whole process group: no handler, no cleanup, no flush runs."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)
