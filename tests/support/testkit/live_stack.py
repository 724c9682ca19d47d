"""The live stack the integration tests drive: its handle, its data and config, runs started as the UI starts them."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.objects import FlowRun

from driftline import stack
from driftline.config import DriftlineConfig
from driftline.data.demo import CONCEPT_DRIFT, START, inject_quality_faults, make_frame
from testkit.paths import DEMO_CONFIG, WEEK, write_frames
from testkit.waiting import wait_for


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
    webhook: WebhookReceiver | None = None

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
    }
    folder.mkdir(parents=True)
    return write_frames(folder, frames)


def write_config(root: Path, **sections: dict) -> Path:
    """The demo config with the workspace under `root`, a faster model and watcher; `sections` replace sections."""
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["storage"] = {"workspace": str(root / "workspace")}
    data["model"]["params"] = {"max_iter": 60, "learning_rate": 0.1, "max_leaf_nodes": 15}
    data["landing"] = {"poll_seconds": 0.5, "stable_seconds": 1}
    data["schedules"] = {
        # six fields: the last is seconds. Monitoring runs every 20 s here; the scoring schedule is deployed paused.
        "drift_monitoring": {"cron": "* * * * * */20"},
        "batch_scoring": {"cron": "0 2 * * *", "active": False},
    }
    data |= sections
    path = root / "integration.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def deployment_id(live_stack: Stack, flow: str):
    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(f"{flow}/{live_stack.cfg.registry.model_name}").id


def start_run(live_stack: Stack, flow: str, params: dict) -> FlowRun:
    """What the UI's "Quick run / Custom run" form does: create a run of the deployment with typed parameters."""
    with get_client(sync_client=True) as client:
        return client.create_flow_run_from_deployment(deployment_id(live_stack, flow), parameters={"params": params})


def wait_until_final(flow_run_id, timeout: float = 240) -> FlowRun:
    def final() -> FlowRun | None:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run_id)
        return run if run.state is not None and run.state.is_final() else None

    return wait_for(final, timeout, f"flow run {flow_run_id} to finish")


def runs_of(live_stack: Stack, flow: str, auto_scheduled: bool | None = None) -> list[FlowRun]:
    flow_runs = None
    if auto_scheduled:
        flow_runs = FlowRunFilter(tags=FlowRunFilterTags(all_=["auto-scheduled"]))
    with get_client(sync_client=True) as client:
        found = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id(live_stack, flow)])),
            flow_run_filter=flow_runs,
        )
    return sorted(found, key=lambda run: run.created)


def finished(runs: list[FlowRun]) -> bool:
    return bool(runs) and all(run.state is not None and run.state.is_final() for run in runs)


def drop(live_stack: Stack, name: str, as_name: str | None = None) -> None:
    """Write-then-rename into the landing folder, as a well-behaved producer does."""
    landing = live_stack.cfg.folders.landing
    landing.mkdir(parents=True, exist_ok=True)
    temporary = landing / f".{as_name or live_stack.data[name].name}.part"
    shutil.copyfile(live_stack.data[name], temporary)
    temporary.rename(landing / (as_name or live_stack.data[name].name))


def arrival_events(live_stack: Stack, file_name: str) -> list[dict]:
    """The driftline.data.arrived events the watcher sent for a file, as the Prefect server stored them."""
    from prefect.events.filters import EventFilter, EventNameFilter

    query = EventFilter(event=EventNameFilter(name=["driftline.data.arrived"])).model_dump(mode="json")
    with get_client(sync_client=True) as client:
        events = client.request("POST", "/events/filter", json={"filter": query}).json()["events"]
    return [event for event in events if event["resource"]["driftline.path"].endswith(f"/{file_name}")]


def aliases(live_stack: Stack) -> dict[str, str]:
    client = MlflowClient(live_stack.tracking_uri, live_stack.tracking_uri)
    registered = client.get_registered_model(live_stack.cfg.registry.model_name)
    return {alias: str(version) for alias, version in registered.aliases.items()}
