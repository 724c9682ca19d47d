"""Fixtures of the fault-injection tests: a registry with a champion, real servers to stop and restart, a proxy
that answers 5xx on cue, a small disk that fills up, and the CLI run as a separate process that can be killed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from testkit.processes import kill_hard
from testkit.waiting import wait_for

from driftline.config import DriftlineConfig
from driftline.data import loading
from driftline.evaluation.gate import decide
from driftline.registry import ModelRef, Registry
from driftline.stack import FILE_LEASES, LEASE_STORAGE_ENV, free_port
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import TrainedModel, train_model


def register(cfg: DriftlineConfig, trained: TrainedModel, batch: loading.DataBatch, passed: bool | None) -> ModelRef:
    """One more registered version of `trained`; its gate verdict recorded as a pass, a refusal, or not at all."""
    source = DataSource(batch.fingerprint, batch.rows, batch.name, batch.path.name)
    registry = Registry(cfg)
    ref = registry.log_candidate(trained, collect_lineage(cfg, [source]), "reliability test")
    if passed is not None:
        metric = cfg.gate.metric
        registry.record_gate(ref, decide(cfg, {metric: 0.9 if passed else 0.1}, None, None))
    return ref


@dataclass
class Trained:
    cfg: DriftlineConfig
    batch: loading.DataBatch
    model: TrainedModel

    def register(self, passed: bool | None = True) -> ModelRef:
        return register(self.cfg, self.model, self.batch, passed)


@pytest.fixture
def trained(cfg: DriftlineConfig, demo_files: dict[str, Path]) -> Trained:
    """One model trained on the small reference file, to register as many versions as a test needs."""
    batch = loading.load_batch(demo_files["reference"], cfg.dataset)
    return Trained(cfg, batch, train_model(batch.frame, cfg))


@pytest.fixture
def champion(trained: Trained) -> ModelRef:
    ref = trained.register()
    Registry(trained.cfg).promote(ref)
    return ref


class FlakyProxy(ThreadingHTTPServer):
    """An HTTP proxy in front of a real server that answers 503 to the requests `failing` selects (all when the
    target is None); it counts every request it sees by path."""

    def __init__(self, target: str | None = None) -> None:
        self.target = target
        self.failing: Callable[[str, str, bytes], bool] = lambda method, path, body: target is None
        self.seen: list[tuple[str, str, int]] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(handler) -> None:  # noqa: N805 - the proxy is `self` here
                length = int(handler.headers.get("Content-Length", 0))
                body = handler.rfile.read(length) if length else b""
                if self.failing(handler.command, handler.path, body):
                    self.seen.append((handler.command, handler.path, 503))
                    handler.send_response(503)
                    handler.send_header("Content-Length", "0")
                    handler.end_headers()
                    return
                host, port = self.target.split(":")
                upstream = HTTPConnection(host, int(port), timeout=60)
                headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(handler.command, handler.path, body=body, headers=headers)
                answer = upstream.getresponse()
                content = answer.read()
                self.seen.append((handler.command, handler.path, answer.status))
                handler.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        handler.send_header(key, value)
                handler.send_header("Content-Length", str(len(content)))
                handler.end_headers()
                handler.wfile.write(content)
                upstream.close()

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

            def log_message(handler, *args) -> None:  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def flaky_proxy() -> Callable[[str | None], FlakyProxy]:
    started: list[FlakyProxy] = []

    def start(target: str | None = None) -> FlakyProxy:
        proxy = FlakyProxy(target)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.shutdown()
        proxy.server_close()


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


@dataclass
class Server:
    """A server process on a fixed port that a test can stop (SIGKILL) and start again on the same state."""

    command: list[str]
    health_url: str
    log: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        wait_for(lambda: _serving(self.health_url), timeout, f"{self.command[1]} answering {self.health_url}", 0.5)

    def kill(self) -> None:
        if self.process is not None:
            kill_hard(self.process)
            self.process = None


@pytest.fixture
def mlflow_server(cfg: DriftlineConfig, tmp_path: Path) -> Iterator[Server]:
    """`mlflow server` over the config's own SQLite store and artifact folder (the test's registry, served)."""
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    server = Server(
        [
            str(mlflow),
            "server",
            "--backend-store-uri",
            cfg.tracking_uri,
            "--default-artifact-root",
            str(cfg.folders.root / "mlartifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        f"http://127.0.0.1:{port}/health",
        tmp_path / "mlflow-server.log",
        dict(os.environ),
    )
    server.start()
    yield server
    server.kill()


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[Server]:
    """`prefect server start` on its own SQLite database; leases kept on disk, so they survive a restart."""
    port = free_port()
    home = tmp_path / "prefect-home"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        LEASE_STORAGE_ENV: FILE_LEASES,
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    prefect = Path(sys.executable).parent / "prefect"
    server = Server(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        f"http://127.0.0.1:{port}/api/health",
        tmp_path / "prefect-server.log",
        env,
    )
    server.start()
    yield server
    server.kill()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 3 MB tmpfs (root only); skipped where mounting is not allowed."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)
    shutil.rmtree(mount, ignore_errors=True)
