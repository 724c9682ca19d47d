"""The real stack for the integration tests: PostgreSQL, Prefect server, MLflow server, a process worker and the
landing watcher, started as plain processes on loopback by `driftline.stack` (what `make up` runs), once per session.
A local HTTP receiver stands in for Slack. Everything started here is stopped at the end, and checked to be gone.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from prefect.settings import PREFECT_API_URL, temporary_settings

from driftline import stack
from driftline.config import DriftlineConfig, load_config
from driftline.data.demo import CONCEPT_DRIFT, START, inject_quality_faults, make_frame
from tests.conftest import DEMO_CONFIG, PROJECT_ROOT, WEEK

pytestmark = pytest.mark.integration


class WebhookReceiver(ThreadingHTTPServer):
    """Collects the JSON bodies POSTed to it, like a Slack incoming webhook would receive them."""

    def __init__(self) -> None:
        self.received: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler) -> None:  # noqa: N805 - the receiver is `self` here
                length = int(handler.headers.get("Content-Length", 0))
                self.received.append(json.loads(handler.rfile.read(length) or b"{}"))
                handler.send_response(200)
                handler.end_headers()
                handler.wfile.write(b"ok")

            def log_message(handler, *args) -> None:  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def texts(self) -> list[str]:
        return [body.get("text", "") for body in self.received]


@dataclass
class Stack:
    cfg: DriftlineConfig
    config_path: Path
    data: dict[str, Path]
    state: stack.StackState
    webhook: WebhookReceiver

    @property
    def prefect_api_url(self) -> str:
        return self.state.env["PREFECT_API_URL"]

    @property
    def tracking_uri(self) -> str:
        return self.state.env["MLFLOW_TRACKING_URI"]


def write_data(folder: Path) -> dict[str, Path]:
    frames = {
        "reference.parquet": make_frame(3000, seed=1, days=56),
        "concept_drift.csv": make_frame(3000, seed=4, start=START + 9 * WEEK, scenario=CONCEPT_DRIFT, id_offset=30_000),
        "stable_a.csv": make_frame(800, seed=2, start=START + 10 * WEEK, id_offset=10_000),
        "stable_b.csv": make_frame(800, seed=3, start=START + 10 * WEEK, id_offset=20_000),
        "faulty.csv": inject_quality_faults(make_frame(800, seed=5, start=START + 11 * WEEK, id_offset=40_000), 5),
    }  # fmt: skip
    folder.mkdir(parents=True)
    paths = {}
    for name, frame in frames.items():
        path = folder / name
        frame.to_parquet(path, index=False) if name.endswith(".parquet") else frame.to_csv(path, index=False)
        paths[Path(name).stem] = path
    return paths


def write_config(root: Path) -> Path:
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["storage"] = {"workspace": str(root / "workspace")}
    data["model"]["params"] = {"max_iter": 60, "learning_rate": 0.1, "max_leaf_nodes": 15}
    data["landing"] = {"poll_seconds": 0.5, "stable_seconds": 1}
    data["schedules"] = {
        # six fields: the last is seconds. Monitoring runs every 20 s here; the scoring schedule is deployed paused.
        "drift_monitoring": {"cron": "* * * * * */20"},
        "batch_scoring": {"cron": "0 2 * * *", "active": False},
    }
    path = root / "integration.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


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


def wait_for(condition: Callable[[], object], timeout: float, what: str, every: float = 1.0):
    """Poll until `condition()` is truthy; return its value, or fail naming what did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"within {timeout:.0f} s: {what}")
