"""The sla-check flow on the session's Prefect server: a fleet's services probed over real HTTP, every SLA recorded,
a breach announced as a Prefect event; and the one fleet-wide deployment that runs it on an interval."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from testkit.configs import write_config
from testkit.events import model_events

from driftline.config import load_fleet
from driftline.data import prediction_log
from driftline.errors import DriftlineError
from driftline.fleet import sla
from driftline.flows.params import FleetParams
from driftline.flows.sla_check import deploy_sla_check, sla_check
from driftline.modeling.pipeline import Predictions
from driftline.registry import registry_folders
from driftline.serving.app import ServiceMetrics
from driftline.tasks.events import SLA_BREACHED


@pytest.fixture
def fleet_service() -> Iterator[tuple[int, set[str]]]:
    """A real HTTP server standing for the fleet service: /models/<name>/ready answers ready for the names in the set
    (503 for the others), /metrics the service's own exposition."""
    ready: set[str] = set()
    metrics = ServiceMetrics()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.removeprefix("/models/").removesuffix("/ready")
            if self.path == "/metrics":
                status, body = 200, metrics.exposition()
            elif name in ready:
                status, body = 200, json.dumps({"ready": True, "champion": "1"}).encode()
            else:
                status, body = 503, json.dumps({"ready": False, "reason": f"no champion of {name}"}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], ready
    server.shutdown()
    server.server_close()


def write_fleet(tmp_path: Path, port: int, **slas: float) -> Path:
    """Two models served by the fleet service on `port`, each promising availability (and `slas`); one config
    that does not load."""
    folder = tmp_path / "fleet"
    folder.mkdir()
    (folder / "fleet.yaml").write_text(f"serving: {{port: {port}}}\n")
    for name in ("sla-up", "sla-down"):
        write_config(folder, f"{name}.yaml", registry={"model_name": name}, sla={"availability": 0.99, **slas})
    (folder / "broken.yaml").write_text("dataset: [\n")
    return folder


def test_sla_check_probes_each_model_of_the_fleet_records_it_and_announces_a_breach(tmp_path, fleet_service):
    port, ready = fleet_service
    ready.add("sla-up")
    folder = write_fleet(tmp_path, port)
    since = datetime.now(UTC)  # tests share the server and these model names: earlier events are left out by time

    outcome = sla_check(FleetParams(config=str(folder)))

    fleet = load_fleet(folder)
    up, down = fleet.model("sla-up"), fleet.model("sla-down")
    assert sla.compliance(up) == {"availability": 1.0}
    assert sla.compliance(down) == {"availability": 0.0}
    assert list(outcome.breached) == ["sla-down"] and outcome.unchecked == {}
    assert (
        "503 from" in outcome.breached["sla-down"][0] and "no champion of sla-down" in outcome.breached["sla-down"][0]
    )
    [event] = model_events(SLA_BREACHED, "sla-down", since)
    assert (event["payload"]["sla"], event["payload"]["value"], event["payload"]["bound"]) == (
        "availability",
        0.0,
        0.99,
    )
    assert model_events(SLA_BREACHED, "sla-up", since, timeout=1) == []


def test_sla_check_of_a_fleet_whose_service_is_gone_records_failed_probes_and_keeps_running(tmp_path):
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    folder = write_fleet(tmp_path, port)

    outcome = sla_check(FleetParams(config=str(folder)))

    assert sorted(outcome.breached) == ["sla-down", "sla-up"]
    assert "ConnectError" in outcome.breached["sla-up"][0]


@pytest.mark.slow  # 8 s on 2 cores: the default suite stays under 5 minutes
def test_an_unreachable_registry_fails_the_run_naming_the_model_after_the_others_were_checked(tmp_path, fleet_service):
    port, ready = fleet_service
    ready.add("sla-up")
    folder = write_fleet(tmp_path, port)
    write_config(
        folder,
        "sla-down.yaml",
        registry={"model_name": "sla-down", "tracking_uri": "http://127.0.0.1:9", "environment_wins": False},
        reliability={"registry_http_retries": 0},
        sla={"availability": 0.99, "freshness_hours": 24},
    )

    with pytest.raises(DriftlineError, match="1 models not checked: sla-down: "):
        sla_check(FleetParams(config=str(folder)))
    assert sla.compliance(load_fleet(folder).model("sla-up"))["availability"] == 1.0


def test_deploy_sla_check_creates_one_fleet_deployment_on_the_probe_interval_and_updates_it(tmp_path):
    with get_client(sync_client=True) as client:
        if not [pool for pool in client.read_work_pools() if pool.name == "sla-test-pool"]:
            client.create_work_pool(WorkPoolCreate(name="sla-test-pool", type="process"))

    first = deploy_sla_check("configs/fleet", "sla-test-pool", 60)
    second = deploy_sla_check("configs/other-fleet", "sla-test-pool", 120, project_dir=tmp_path)

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("sla-check/fleet")
        both = [d for d in client.read_deployments() if d.name == "fleet" and d.flow_id == deployment.flow_id]
    assert first == second == "sla-check/fleet" and len(both) == 1
    assert [s.schedule.interval for s in deployment.schedules] == [timedelta(seconds=120)]
    assert deployment.parameters == {"params": {"config": "configs/other-fleet"}}
    assert (deployment.work_pool_name, deployment.entrypoint) == (
        "sla-test-pool",
        "driftline.flows.sla_check:sla_check",
    )


@pytest.mark.slow  # the models' folders come from the registry: MLflow's SQLite store is created (~12 s on 2 cores)
def test_freshness_is_read_from_the_prediction_log_the_registry_places_the_model_in(tmp_path, fleet_service):
    port, ready = fleet_service
    ready.update({"sla-up", "sla-down"})
    folder = write_fleet(tmp_path, port, freshness_hours=24)
    up = load_fleet(folder).model("sla-up")
    scored = datetime.now(UTC) - timedelta(hours=30)
    frame = pd.DataFrame({"customer_id": ["C1", "C2"]})
    predictions = Predictions(np.array([1, 0]), np.array([[0.2, 0.8], [0.9, 0.1]]), np.array([0, 1]))
    rows = prediction_log.records(frame, predictions, up, "1", "monday.csv", "fp", scored)
    prediction_log.append(rows, registry_folders(up).prediction_log, "monday.csv", now=scored)

    outcome = sla_check(FleetParams(config=str(folder)))

    assert list(outcome.breached) == ["sla-up"] and outcome.breached["sla-up"][0].startswith("freshness_hours 30")
    assert sla.compliance(up) == {"availability": 1.0, "freshness_hours": 0.0}
    assert sla.compliance(load_fleet(folder).model("sla-down")) == {"availability": 1.0, "freshness_hours": None}
