"""The real stack for the integration tests: PostgreSQL, Prefect server, MLflow server, a process worker and the
landing watcher, started as plain processes on loopback by `driftline.stack` (what `make up` runs), once per session.
A local HTTP receiver stands in for Slack. A second stack, per module, walks the newcomer's path: the demo's CLI
equivalent, then `driftline stack up` on the same workspace with the default profile (SQLite, the CLI's store).
Everything started here is stopped at the end, and checked to be gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from testkit.live_stack import Stack, WebhookReceiver, write_config, write_data
from testkit.paths import DRIFTLINE, PROJECT_ROOT, WEEK
from testkit.processes import cli_env

from driftline import stack
from driftline.config import load_config
from driftline.data.demo import START, make_frame

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
        root=root / "stack",
        project_dir=PROJECT_ROOT,
        config=str(config_path),
        profile="postgres",
        prefect_port=stack.free_port(),
        mlflow_port=stack.free_port(),
        postgres_port=stack.free_port(),
        extra_env={
            "DRIFTLINE_WEBHOOK_URL": webhook.url,
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_WORKER_PREFETCH_SECONDS": "2",
        },
    )
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


def newcomer_data(folder: Path) -> dict[str, Path]:
    """The integration data, plus new content for the landing folder (stable batches of later weeks)."""
    paths = write_data(folder)
    for name, seed in (("stable_c", 6), ("stable_d", 7)):
        paths[name] = folder / f"{name}.csv"
        make_frame(800, seed=seed, start=START + 10 * WEEK, id_offset=seed * 10_000).to_csv(paths[name], index=False)
    return paths


@pytest.fixture(scope="module")
def newcomer(prefect_api_url: str, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The newcomer's path up to `make up`: the demo's CLI equivalent (a champion, two batches through continuous
    training) on a fresh workspace, then `driftline stack up` on that workspace with the default (SQLite) profile,
    started and stopped as `make up` and `make down` do. MLflow calls give up fast, so an outage fails a run fast."""
    root = Path(tempfile.mkdtemp(prefix="driftline-newcomer-"))
    config_path = write_config(
        root,
        schedules={
            "drift_monitoring": {"cron": "0 3 * * *", "active": False},
            "batch_scoring": {"cron": "0 2 * * *", "active": False},
        },
        reliability={"registry_http_retries": 1, "registry_backoff_seconds": 0, "registry_timeout_seconds": 5},
    )
    data = newcomer_data(root / "data")
    demo_env = cli_env(prefect_api_url)
    for step in (
        ["train", "--data", str(data["reference"])],
        ["run", "--data", str(data["stable_a"])],
        ["run", "--data", str(data["stable_b"])],
    ):
        done = subprocess.run(
            [str(DRIFTLINE), step[0], "--config", str(config_path), *step[1:]],
            env=demo_env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"driftline {' '.join(step)}: {done.stderr}"
    stack_env = {
        key: value for key, value in os.environ.items() if key not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")
    }
    stack_env |= {"PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_WORKER_PREFETCH_SECONDS": "2", "COLUMNS": "300"}
    ports = ["--prefect-port", str(stack.free_port()), "--mlflow-port", str(stack.free_port())]

    def driftline_stack(action: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(DRIFTLINE), "stack", action, "--config", str(config_path), *extra],
            env=stack_env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )

    cfg = load_config(config_path)
    up = driftline_stack("up", *ports)
    state = stack.StackState.load(cfg.folders.stack)
    try:
        assert up.returncode == 0, up.stderr or up.stdout
        print(up.stdout)
        with temporary_settings({PREFECT_API_URL: state.env["PREFECT_API_URL"]}):
            yield Stack(cfg, config_path, data, state)
    finally:
        down = driftline_stack("down")
        leftovers = [p.name for p in (state.processes if state else []) if stack.alive(p.pid)]
        assert down.returncode == 0 and not leftovers, f"still running after stack down: {leftovers}; {down.stderr}"
        if request.session.testsfailed:
            print(f"stack: logs of the failed run kept in {cfg.folders.stack / 'logs'}")
        else:
            shutil.rmtree(root)


@dataclass(frozen=True)
class KafkaBroker:
    """librdkafka's mock cluster in a process of its own, the Kafka protocol on loopback (no Kafka broker installs
    here: docs/deployment.md). `paused()` stops the process: every connection to it hangs, as in a partition."""

    address: str
    pid: int

    @contextmanager
    def paused(self) -> Iterator[None]:
        os.kill(self.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.pid, signal.SIGCONT)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One mock Kafka broker for the session (`python -m driftline.streaming.clients`); auto-created topics have
    4 partitions. Each test names topics and groups of its own."""
    process = subprocess.Popen(
        [sys.executable, "-m", "driftline.streaming.clients"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        address = process.stdout.readline().strip()
        assert address, "the mock Kafka broker did not start"
        yield KafkaBroker(address, process.pid)
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        process.wait(timeout=30)
