"""Run the `driftline` console script as a user does, reporting to the session's Prefect server."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from testkit.paths import DRIFTLINE


@pytest.fixture
def run_cli(prefect_api_url: str, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url, "COLUMNS": "200"}
    env.pop("MLFLOW_TRACKING_URI", None)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(DRIFTLINE), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )

    return run
