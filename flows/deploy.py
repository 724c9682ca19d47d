"""How the flows are served (not a flow): work pool, deployments from prefect.yaml, limits, notifications.

`driftline deploy --config C` runs `deploy()`: every step is idempotent, so deploying again after a config change
updates schedules, the training limit and the notification automations in place.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prefect.client.orchestration import get_client
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from driftline.config import DriftlineConfig
from driftline.errors import DriftlineError
from driftline.tasks.concurrency import ensure_training_limit
from driftline.tasks.events import (
    DRIFT_DETECTED,
    FAIRNESS_BREACHED,
    GATE_REFUSED,
    MODEL_LABEL,
    MODEL_PROMOTED,
    MODEL_ROLLED_BACK,
    NOTIFIED_EVENTS,
    PERFORMANCE_DEGRADED,
    SLICE_DEGRADED,
)

WORK_POOL_ENV = "DRIFTLINE_WORK_POOL"
DEFAULT_WORK_POOL = "driftline"
PoolType = Literal["process", "docker", "kubernetes"]
# Base job templates of the container pools, relative to the project folder: the image, the shared workspace and the
# settings each flow run gets. A process pool uses Prefect's own template (runs start on the worker's machine).
JOB_TEMPLATES: dict[PoolType, str] = {
    "docker": "infra/work-pools/docker.json",
    "kubernetes": "infra/work-pools/kubernetes.json",
}
WEBHOOK_BLOCK = "driftline-webhook"
DEPLOYMENT_TAG = "driftline"
FLOWS = [
    "training",
    "batch-scoring",
    "drift-monitoring",
    "continuous-training",
    "performance-monitoring",
    "rollback",
    "backtest",
]

# Slack-compatible: incoming webhooks of Slack, Mattermost, Rocket.Chat and Teams' Slack mode read `text`.
WEBHOOK_JSON = {"text": "*{{subject}}*\n{{body}}"}

# What each notification says; Jinja over the triggering event (and, for flow runs, the run Prefect looks up).
MESSAGES: dict[str, tuple[str, str]] = {
    DRIFT_DETECTED: (
        "driftline {{ event.resource['driftline.model'] }}: drift detected",
        "Drift in {{ event.payload.batch }} ({{ event.payload.rows }} rows) against champion "
        "v{{ event.payload.champion_version }}: {{ event.payload.reasons | join('; ') }}. "
        "Report: {{ event.payload.report }}",
    ),
    PERFORMANCE_DEGRADED: (
        "driftline {{ event.resource['driftline.model'] }}: champion v{{ event.payload.champion_version }} degraded",
        "{{ event.payload.reason }}. Retraining: {{ event.payload.retraining }}. "
        "MLflow run {{ event.payload.mlflow_run_id }} {{ event.payload.mlflow_run_url or '' }}",
    ),
    FAIRNESS_BREACHED: (
        "driftline {{ event.resource['driftline.model'] }}: fairness of champion v{{ event.payload.champion_version }} "
        "breached",
        "{{ event.payload.reason }} (positive rates {{ event.payload.positive_rates }}). Retraining: "
        "{{ event.payload.retraining }}. MLflow run {{ event.payload.mlflow_run_id }} "
        "{{ event.payload.mlflow_run_url or '' }}",
    ),
    SLICE_DEGRADED: (
        "driftline {{ event.resource['driftline.model'] }}: slices of champion v{{ event.payload.champion_version }} "
        "degraded",
        "{{ event.payload.reason }}. Retraining: {{ event.payload.retraining }}. "
        "MLflow run {{ event.payload.mlflow_run_id }} {{ event.payload.mlflow_run_url or '' }}",
    ),
    MODEL_PROMOTED: (
        "driftline {{ event.resource['driftline.model'] }}: v{{ event.payload.version }} promoted",
        "v{{ event.payload.version }} is now champion (previous: v{{ event.payload.previous_version }}). "
        "MLflow run {{ event.payload.mlflow_run_id }} {{ event.payload.model_version_url or '' }}",
    ),
    GATE_REFUSED: (
        "driftline {{ event.resource['driftline.model'] }}: gate refused v{{ event.payload.version }}",
        "Champion v{{ event.payload.champion_version }} stays. {{ event.payload.reasons | join('; ') }}. "
        "MLflow run {{ event.payload.mlflow_run_id }}",
    ),
    MODEL_ROLLED_BACK: (
        "driftline {{ event.resource['driftline.model'] }}: rolled back to v{{ event.payload.version }}",
        "v{{ event.payload.version }} is champion again (was v{{ event.payload.from_version }}): "
        "{{ event.payload.reason }}. {{ event.payload.model_version_url or '' }}",
    ),
    NOTIFIED_EVENTS["flow_failed"]: (
        "driftline: flow run {{ flow_run.name }} failed",
        "{{ flow.name }} run {{ flow_run.name }} ({{ deployment.name }}) failed: {{ flow_run.state.message }}",
    ),
}


@dataclass(frozen=True)
class Deployed:
    model: str
    work_pool: str
    pool_type: PoolType
    deployments: list[str]
    notifications: str  # what is sent where, for the person deploying


def deploy_env(cfg: DriftlineConfig, config_path: str, project_dir: Path, work_pool: str) -> dict[str, str]:
    """The values prefect.yaml reads as {{ $DRIFTLINE_* }}: the model, its config and its schedules."""
    scoring, monitoring = cfg.schedules.batch_scoring, cfg.schedules.drift_monitoring
    performance = cfg.schedules.performance_monitoring
    return {
        "DRIFTLINE_MODEL": cfg.registry.model_name,
        "DRIFTLINE_CONFIG": config_path,
        "DRIFTLINE_PROJECT_DIR": str(project_dir),
        WORK_POOL_ENV: work_pool,
        "DRIFTLINE_SCORING_CRON": scoring.cron,
        "DRIFTLINE_SCORING_TIMEZONE": scoring.timezone,
        "DRIFTLINE_SCORING_ACTIVE": str(scoring.active).lower(),
        "DRIFTLINE_MONITORING_CRON": monitoring.cron,
        "DRIFTLINE_MONITORING_TIMEZONE": monitoring.timezone,
        "DRIFTLINE_MONITORING_ACTIVE": str(monitoring.active).lower(),
        "DRIFTLINE_PERFORMANCE_CRON": performance.cron,
        "DRIFTLINE_PERFORMANCE_TIMEZONE": performance.timezone,
        # without labels there is nothing to join: the deployment stays, for manual runs, its schedule paused
        "DRIFTLINE_PERFORMANCE_ACTIVE": str(performance.active and cfg.labels.enabled).lower(),
    }


@dataclass(frozen=True)
class WorkPoolSpec:
    """The pool runs go to; `template_file` and `image` only shape a pool that does not exist yet."""

    name: str = DEFAULT_WORK_POOL
    type: PoolType = "process"
    template_file: Path | None = None  # default: driftline's template of that type (JOB_TEMPLATES)
    image: str | None = None  # the image every run of a docker or kubernetes pool starts from


def base_job_template(pool: WorkPoolSpec, project_dir: Path) -> dict[str, Any]:
    """What a new pool starts from: the template file (JSON, as `prefect work-pool get-default-base-job-template`
    writes it), driftline's template of that type, or Prefect's own for a process pool."""
    if pool.template_file is None and pool.type == "process":
        from prefect.workers.process import ProcessWorker

        template = ProcessWorker.get_default_base_job_template()
    else:
        path = project_dir / (pool.template_file or JOB_TEMPLATES[pool.type])
        try:
            template = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise DriftlineError(f"work pool job template {path}: {error}") from error
    if pool.image:
        if "image" not in template["variables"]["properties"]:
            raise DriftlineError(f"--image: a {pool.type} work pool runs no image; use a docker or kubernetes pool")
        template["variables"]["properties"]["image"]["default"] = pool.image
    return template


def ensure_work_pool(pool: WorkPoolSpec, project_dir: Path) -> bool:
    """Create the pool when missing (True). An existing pool keeps the job template it has (it may have been edited
    in the UI); its type must match, or runs would wait for a worker that never comes."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            existing = client.read_work_pool(pool.name)
        except ObjectNotFound:
            template = base_job_template(pool, project_dir)
            client.create_work_pool(WorkPoolCreate(name=pool.name, type=pool.type, base_job_template=template))
            return True
    if existing.type != pool.type:
        raise DriftlineError(
            f"work pool {pool.name!r} is a {existing.type} pool, not {pool.type}: deploy with --pool-type "
            f"{existing.type}, another --pool, or delete it first (prefect work-pool delete {pool.name})"
        )
    return False


def ensure_webhook_block(cfg: DriftlineConfig) -> str | None:
    """The notification block, its URL from the environment (a secret, kept in the block's secret values)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    url = os.environ.get(cfg.notifications.webhook_url_env)
    if not url:
        return None
    block = CustomWebhookNotificationBlock(
        name=WEBHOOK_BLOCK, url="{{webhook_url}}", json_data=WEBHOOK_JSON, secrets={"webhook_url": url}
    )
    return str(block.save(WEBHOOK_BLOCK, overwrite=True))


def automation_name(cfg: DriftlineConfig, notification: str) -> str:
    return f"driftline {cfg.registry.model_name}: {notification.replace('_', ' ')}"


def notification_automations(cfg: DriftlineConfig, block_id: str) -> list[AutomationCore]:
    model = cfg.registry.model_name
    automations = []
    for name in cfg.notifications.events:
        event = NOTIFIED_EVENTS[name]
        subject, body = MESSAGES[event]
        if name == "flow_failed":  # Prefect's own event, for runs of this model's deployments
            match, match_related = (
                {"prefect.resource.id": "prefect.flow-run.*"},
                {"prefect.resource.id": f"prefect.tag.{model}"},
            )
        else:
            match, match_related = {MODEL_LABEL: model}, {}
        automations.append(
            AutomationCore(
                name=automation_name(cfg, name),
                description=f"Sends {event} for model {model} to the webhook in ${cfg.notifications.webhook_url_env}.",
                trigger=EventTrigger(
                    expect={event}, match=match, match_related=match_related, posture=Posture.Reactive, threshold=1
                ),
                actions=[SendNotification(block_document_id=block_id, subject=subject, body=body)],
            )
        )
    return automations


def ensure_notifications(cfg: DriftlineConfig) -> str:
    """Replace this model's notification automations; without a webhook URL there are none (and none stale)."""
    block_id = ensure_webhook_block(cfg)
    wanted = notification_automations(cfg, block_id) if block_id else []
    with get_client(sync_client=True) as client:
        for notification in NOTIFIED_EVENTS:
            for existing in client.read_automations_by_name(automation_name(cfg, notification)):
                client.delete_automation(existing.id)
        for automation in wanted:
            client.create_automation(automation)
    if not block_id:
        return f"no notifications: ${cfg.notifications.webhook_url_env} is not set"
    return f"{', '.join(cfg.notifications.events)} → webhook from ${cfg.notifications.webhook_url_env}"


def run_prefect_deploy(env: dict[str, str], project_dir: Path, prefect_file: Path) -> None:
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)]
    done = subprocess.run(command, cwd=project_dir, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode != 0:
        detail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise DriftlineError(f"prefect deploy failed ({prefect_file}): {detail}")


def deploy(
    cfg: DriftlineConfig, config_path: str, project_dir: Path, pool: WorkPoolSpec, prefect_file: Path
) -> Deployed:
    ensure_work_pool(pool, project_dir)
    ensure_training_limit(cfg)
    notifications = ensure_notifications(cfg)
    run_prefect_deploy(deploy_env(cfg, config_path, project_dir, pool.name), project_dir, prefect_file)
    model = cfg.registry.model_name
    return Deployed(model, pool.name, pool.type, [f"{flow}/{model}" for flow in FLOWS], notifications)
