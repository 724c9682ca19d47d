"""The real stack for the integration tests: PostgreSQL, Prefect server, MLflow server, a process worker and the
landing watcher, started as plain processes on loopback by `driftline.stack` (what `make up` runs), once per session.
A local HTTP receiver stands in for Slack. Everything started here is stopped at the end, and checked to be gone.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from testkit.live_stack import Stack, WebhookReceiver, write_config, write_data
from testkit.paths import PROJECT_ROOT

from driftline import stack
from driftline.config import load_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def live_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    # The private PostgreSQL cluster runs as the `postgres` user when tests run as root: its folders must be reachable.
    root = Path(tempfile.mkdtemp(prefix="driftline-integration-"))
    root.chmod(0o755)
    webhook = WebhookReceiver()
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    config_path = write_config(root)
    settings = stack.StackSettings(
        root=root / "stack", project_dir=PROJECT_ROOT, config=str(config_path), profile="postgres",
        prefect_port=stack.free_port(), mlflow_port=stack.free_port(), postgres_port=stack.free_port(),
        extra_env={
            "DRIFTLINE_WEBHOOK_URL": webhook.url,
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_WORKER_PREFETCH_SECONDS": "2",
        },
    )  # fmt: skip
    state = stack.up(settings, progress=lambda line: print(f"stack: {line}"))
    try:
        with temporary_settings({PREFECT_API_URL: state.env["PREFECT_API_URL"]}):
            yield Stack(load_config(config_path), config_path, write_data(root / "data"), state, webhook)
    finally:
        stack.down(settings.root, progress=lambda line: print(f"stack: {line}"))
        webhook.shutdown()
        leftovers = [p.name for p in state.processes if stack.alive(p.pid)]
        assert not leftovers, f"still running after stack down: {leftovers}"
        assert not (root / "stack" / "postgres" / "data" / "postmaster.pid").exists(), "PostgreSQL still running"
        if request.session.testsfailed:
            print(f"stack: logs of the failed run kept in {root / 'stack' / 'logs'}")
        else:
            shutil.rmtree(root)
