"""The production profile's authentication, on real servers on loopback: the Prefect server behind its auth string,
the MLflow server behind its basic-auth app. Requests without (or with wrong) credentials are refused; with them, a
training run and a scoring run go through a worker and register a model. Then every log and record of those runs is
searched for the secrets the stack was given in its environment: none may appear (issue 6, security).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings
from testkit.live_stack import Stack, WebhookReceiver, start_run, wait_until_final, write_config, write_data
from testkit.outcomes import expect
from testkit.paths import PROJECT_ROOT

from driftline import stack
from driftline.config import load_config

pytestmark = pytest.mark.integration

PREFECT_AUTH = f"driftline:{secrets.token_urlsafe(18)}"
MLFLOW_ADMIN_PASSWORD = secrets.token_urlsafe(18)
WEBHOOK_TOKEN = secrets.token_urlsafe(18)
API_KEY = secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def auth_stack() -> Iterator[Stack]:
    """Both servers with authentication on (SQLite: the auth is what is tested here), a worker, no watcher."""
    root = Path(tempfile.mkdtemp(prefix="driftline-auth-"))
    webhook = WebhookReceiver()
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    config_path = write_config(root)
    raw = yaml.safe_load(config_path.read_text())
    raw["schedules"] = {
        name: {"cron": "0 3 * * *", "active": False}
        for name in ("batch_scoring", "drift_monitoring", "performance_monitoring")
    }
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    settings = stack.StackSettings(
        root=root / "stack",
        project_dir=PROJECT_ROOT,
        config=str(config_path),
        prefect_port=stack.free_port(),
        mlflow_port=stack.free_port(),
        extra_env={
            stack.PREFECT_SERVER_AUTH_ENV: PREFECT_AUTH,
            stack.MLFLOW_ADMIN_PASSWORD_ENV: MLFLOW_ADMIN_PASSWORD,
            "DRIFTLINE_WEBHOOK_URL": f"{webhook.url}?token={WEBHOOK_TOKEN}",
            "DRIFTLINE_API_KEY": API_KEY,
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_WORKER_PREFETCH_SECONDS": "2",
        },
    )
    state = stack.up(settings, with_watcher=False, progress=lambda line: print(f"auth stack: {line}"))
    credentials = {stack.MLFLOW_USER_ENV: "admin", stack.MLFLOW_PASSWORD_ENV: MLFLOW_ADMIN_PASSWORD}
    saved = {key: os.environ.get(key) for key in credentials}
    os.environ.update(credentials)  # what MLflow clients read, here as on the worker
    try:
        with temporary_settings({PREFECT_API_URL: state.env["PREFECT_API_URL"], PREFECT_API_AUTH_STRING: PREFECT_AUTH}):
            yield Stack(load_config(config_path), config_path, write_data(root / "data"), state, webhook)
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
        stack.down(settings.root, progress=lambda line: print(f"auth stack: {line}"))
        webhook.shutdown()
        shutil.rmtree(root, ignore_errors=True)


def mlflow_client(auth_stack: Stack) -> MlflowClient:
    """Both URIs: without registry_uri a client takes the registry an earlier Registry set process-wide."""
    return MlflowClient(tracking_uri=auth_stack.tracking_uri, registry_uri=auth_stack.tracking_uri)


def status_of(url: str, authorization: str | None = None, body: dict | None = None) -> str:
    """The HTTP status a request gets, as text; a body makes it a POST."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode() if body is not None else None, headers={"Content-Type": "application/json"}
    )
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.status)
    except urllib.error.HTTPError as refused:
        return str(refused.code)


def basic(user_password: str) -> str:
    return "Basic " + base64.b64encode(user_password.encode()).decode()


def test_requests_without_valid_credentials_are_refused_by_both_servers(auth_stack: Stack):
    prefect = auth_stack.prefect_api_url
    mlflow = f"{auth_stack.tracking_uri}/api/2.0/mlflow/experiments/search?max_results=1"
    tries = [
        ("Prefect API without credentials", status_of(f"{prefect}/flows/filter", body={}), "401"),
        (
            "Prefect API with a wrong auth string",
            status_of(f"{prefect}/flows/filter", basic("driftline:guess"), {}),
            "401",
        ),
        ("Prefect API with the auth string", status_of(f"{prefect}/flows/filter", basic(PREFECT_AUTH), {}), "200"),
        ("Prefect health probe without credentials", status_of(f"{prefect}/health"), "200"),
        ("MLflow API without credentials", status_of(mlflow), "401"),
        ("MLflow API with a wrong password", status_of(mlflow, basic("admin:guess")), "401"),
        ("MLflow API with the admin's password", status_of(mlflow, basic(f"admin:{MLFLOW_ADMIN_PASSWORD}")), "200"),
    ]
    for case, observed, expected in tries:
        expect(case=case, expected=f"HTTP {expected}", observed=f"HTTP {observed}")


def test_authenticated_training_and_scoring_runs_complete_and_register_the_model(auth_stack: Stack):
    config, data = str(auth_stack.config_path), auth_stack.data
    trained = wait_until_final(
        start_run(auth_stack, "training", {"config": config, "data": [str(data["reference"])], "reason": "initial"}).id,
        timeout=400,
    )
    assert trained.state.is_completed(), trained.state.message
    registered = mlflow_client(auth_stack).get_registered_model(auth_stack.cfg.registry.model_name)
    assert {alias: str(version) for alias, version in registered.aliases.items()} == {"champion": "1"}
    scored = wait_until_final(
        start_run(auth_stack, "batch-scoring", {"config": config, "data": str(data["stable_a"])}).id
    )
    assert scored.state.is_completed(), scored.state.message
    assert (auth_stack.cfg.folders.outputs / "stable_a.scored.parquet").is_file()


def _mlflow_records(client: MlflowClient, name: str) -> list[str]:
    """Every param and tag MLflow holds for the model's runs and versions, as text."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    records = [
        json.dumps({"params": run.data.params, "tags": run.data.tags})
        for run in client.search_runs(experiments, max_results=1000)
    ]
    return records + [json.dumps(version.tags) for version in client.search_model_versions(f"name = '{name}'")]


def _prefect_logs() -> list[str]:
    """Every log line of every flow run, page by page (the API serves at most 200 at a time)."""
    messages: list[str] = []
    with get_client(sync_client=True) as client:
        runs = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id for run in client.read_flow_runs()]))
        while page := client.read_logs(log_filter=runs, limit=200, offset=len(messages)):
            messages += [log.message for log in page]
    return messages


def test_no_secret_appears_in_any_log_record_or_notification(auth_stack: Stack):
    """After the runs above: the servers' and worker's logs, the flow runs' logs, MLflow's params and tags, the
    notifications sent, the stack's state file and the workspace hold none of the secrets the environment gave."""
    root = Path(auth_stack.state.root)
    found = {
        "stack logs": [path.read_text(errors="replace") for path in (root / "logs").glob("*.log")],
        "state.json": [(root / "state.json").read_text()],
        "flow run logs": _prefect_logs(),
        "MLflow params and tags": _mlflow_records(mlflow_client(auth_stack), auth_stack.cfg.registry.model_name),
        "notifications sent": [json.dumps(body) for body in auth_stack.webhook.received],
        "workspace files": [
            path.read_text(errors="replace")
            for path in auth_stack.cfg.folders.root.rglob("*")
            if path.is_file() and path.suffix in {".json", ".jsonl", ".yaml", ".md", ".log", ".txt"}
        ],
    }
    assert found["flow run logs"] and found["MLflow params and tags"], "the runs above left no logs to search"
    assert found["notifications sent"], "no notification reached the webhook"
    secret_values = {
        "Prefect auth string": PREFECT_AUTH,
        "MLflow admin password": MLFLOW_ADMIN_PASSWORD,
        "webhook token": WEBHOOK_TOKEN,
        "API key": API_KEY,
        "MLflow server secret key": (root / "mlflow-key").read_text(),
    }
    for where, texts in found.items():
        leaked = sorted(name for name, value in secret_values.items() if any(value in text for text in texts))
        expect(case=f"secrets in {where}", expected="none", observed=", ".join(leaked) or "none")


def test_server_secrets_stay_out_of_the_worker_environment(auth_stack: Stack):
    """Flow runs inherit the worker's environment: the servers' own secrets must not be there."""
    [worker] = [started for started in auth_stack.state.processes if started.name == "worker"]
    environment = dict(
        line.split("=", 1)
        for line in Path(f"/proc/{worker.pid}/environ").read_bytes().decode(errors="replace").split("\0")
        if "=" in line
    )
    present = sorted(key for key in stack.SERVER_ONLY_ENV if key in environment)
    expect(
        case="server-only secrets in the worker's environment", expected="none", observed=", ".join(present) or "none"
    )
