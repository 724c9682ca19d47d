"""How the flows are served (not a flow): work pool, deployments from prefect.yaml, limits, notifications.

`driftline deploy --config C` runs `deploy()`: every step is idempotent, so deploying again after a config change
updates schedules, the training limit and the notification automations in place.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from driftline.config import DriftlineConfig, Fleet
from driftline.config.loading import model_config_files
from driftline.config.operations import SchedulesConfig
from driftline.errors import DriftlineError
from driftline.fleet.deployments import ModelChange, ModelOnServer, WantedModel, plan
from driftline.fleet.schedules import spread_schedules
from driftline.flows.prefect_deployments import (
    FLOWS,
    Automations,
    PrefectFile,
    config_param,
    models_on_server,
    set_paused,
)
from driftline.tasks.concurrency import ensure_model_queue, ensure_pool_limit, ensure_training_limit, model_queue_name
from driftline.tasks.events import (
    DRIFT_DETECTED,
    FAIRNESS_BREACHED,
    GATE_REFUSED,
    MODEL_LABEL,
    MODEL_PROMOTED,
    MODEL_ROLLED_BACK,
    NOTIFIED_EVENTS,
    PERFORMANCE_DEGRADED,
    SLA_BREACHED,
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
    SLA_BREACHED: (
        "driftline {{ event.resource['driftline.model'] }}: SLA {{ event.payload.sla }} breached",
        "{{ event.payload.sla }} is {{ event.payload.value }} against its bound {{ event.payload.bound }} "
        "({{ event.payload.at }}): {{ event.payload.detail }}",
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
    schedules: SchedulesConfig  # as deployed: the config's own crons, or its slot of the fleet's night


def deploy_env(cfg: DriftlineConfig, config_path: str, project_dir: Path, work_pool: str) -> dict[str, str]:
    """The values prefect.yaml reads as {{ $DRIFTLINE_* }}: the model, its config, its work queue and its schedules
    (its own crons, or its slot of the fleet's night when it sets none)."""
    schedules = spread_schedules(cfg)
    scoring, monitoring = schedules.batch_scoring, schedules.drift_monitoring
    performance, ab_analysis = schedules.performance_monitoring, schedules.ab_analysis
    return {
        "DRIFTLINE_MODEL": cfg.registry.model_name,
        "DRIFTLINE_CONFIG": config_path,
        "DRIFTLINE_PROJECT_DIR": str(project_dir),
        WORK_POOL_ENV: work_pool,
        "DRIFTLINE_WORK_QUEUE": model_queue_name(cfg),
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
        "DRIFTLINE_AB_CRON": ab_analysis.cron,
        "DRIFTLINE_AB_TIMEZONE": ab_analysis.timezone,
        "DRIFTLINE_AB_ACTIVE": str(ab_analysis.active).lower(),
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


def ensure_notifications(
    cfg: DriftlineConfig, client: SyncPrefectClient, block_id: str | None, existing: Automations
) -> str:
    """Replace this model's notification automations; without a webhook URL there are none (and none stale)."""
    for notification in NOTIFIED_EVENTS:
        for automation_id in existing.by_name.get(automation_name(cfg, notification), []):
            client.delete_automation(automation_id)
    for automation in notification_automations(cfg, block_id) if block_id else []:
        client.create_automation(automation)
    if not block_id:
        return f"no notifications: ${cfg.notifications.webhook_url_env} is not set"
    return f"{', '.join(cfg.notifications.events)} → webhook from ${cfg.notifications.webhook_url_env}"


def deploy(
    cfg: DriftlineConfig, config_path: str, project_dir: Path, pool: WorkPoolSpec, prefect_file: Path
) -> Deployed:
    """One config's model: its deployments (kept paused if `driftline fleet pause` paused them), queue, limits."""
    ensure_work_pool(pool, project_dir)
    block_id = ensure_webhook_block(cfg)
    with get_client(sync_client=True) as client:
        ensure_pool_limit(client, pool.name, cfg.fleet.max_concurrent_runs)
        existing = models_on_server(client, pool.name).get(cfg.registry.model_name)
        notifications = deploy_model(
            client,
            cfg,
            config_path,
            project_dir,
            pool.name,
            PrefectFile(prefect_file),
            existing,
            Automations.read(client),
            block_id,
        )
    model = cfg.registry.model_name
    deployments = [f"{flow}/{model}" for flow in FLOWS]
    return Deployed(model, pool.name, pool.type, deployments, notifications, spread_schedules(cfg))


def deploy_model(
    client: SyncPrefectClient,
    cfg: DriftlineConfig,
    config_path: str,
    project_dir: Path,
    work_pool: str,
    source: PrefectFile,
    existing: ModelOnServer | None,
    automations: Automations,
    block_id: str | None,
) -> str:
    """Everything one model runs with: landing folder, work queue, training limit, notifications, deployments. A
    model paused by `driftline fleet pause` stays paused; one paused because its config had left is resumed."""
    if existing is not None and existing.removed_config:
        set_paused(client, existing, paused=False)
    paused = existing is not None and existing.paused and not existing.removed_config
    cfg.folders.landing.mkdir(parents=True, exist_ok=True)
    ensure_model_queue(client, work_pool, cfg)
    ensure_training_limit(cfg, client)
    notifications = ensure_notifications(cfg, client, block_id, automations)
    source.apply(client, deploy_env(cfg, config_path, project_dir, work_pool), paused, new=existing is None)
    return notifications


# --- a fleet: every config of a folder ------------------------------------------------------------------------------
# The fleet-wide SLA probe (flows/sla_check.py), deployed with the fleet when installed.
SLA_CHECK_FLOW = importlib.util.find_spec("driftline.flows.sla_check") is not None


@dataclass(frozen=True)
class FleetDeployed:
    work_pool: str
    pool_change: str  # what the pool's limit is, or becomes
    changes: list[ModelChange]
    sla_check: str | None  # the fleet-wide deployment, when that flow is installed


def _pool_change(client: SyncPrefectClient, pool: WorkPoolSpec, limit: int) -> tuple[bool, str]:
    """Whether the pool exists, and what its limit is or becomes."""
    from prefect.exceptions import ObjectNotFound

    try:
        existing = client.read_work_pool(pool.name).concurrency_limit
    except ObjectNotFound:
        return False, f"create {pool.type} work pool {pool.name}: {limit} concurrent flow runs"
    if existing == limit:
        return True, f"work pool {pool.name}: {limit} concurrent flow runs (unchanged)"
    return True, f"work pool {pool.name}: concurrent flow runs {existing or 'unlimited'} -> {limit}"


def deploy_fleet(
    fleet: Fleet, folder: str, project_dir: Path, pool: WorkPoolSpec, prefect_file: Path, dry_run: bool = False
) -> FleetDeployed:
    """Deploy every loaded config of the fleet, pause the models whose config left the folder, set the limits; with
    `dry_run`, only say what that would do. Broken configs are the caller's to report: their models are left as
    they are (their file is still there)."""
    project_dir = project_dir.resolve()
    limits = fleet.workspace.fleet
    configs = {cfg.registry.model_name: cfg for cfg in fleet.configs}
    wanted = [WantedModel.of(cfg, config_param(cfg.source, project_dir)) for cfg in fleet.configs]
    present = {config_param(path, project_dir) for path in model_config_files(fleet.folder)}
    source = PrefectFile(prefect_file)
    with get_client(sync_client=True) as client:
        pool_exists, pool_change = _pool_change(client, pool, limits.max_concurrent_runs)
        known = models_on_server(client, pool.name) if pool_exists else {}
        whole_folder = Path(folder).is_dir()  # one config file: that model alone, nothing paused
        in_folder = {
            name: model
            for name, model in known.items()
            if name in configs
            or (whole_folder and (project_dir / model.config).resolve().parent == fleet.folder.resolve())
        }
        changes = plan(wanted, in_folder, present, len(source.deployments))
        if dry_run:
            sla = f"sla-check/fleet: probes every model every {limits.probe_seconds} s" if SLA_CHECK_FLOW else None
            return FleetDeployed(pool.name, pool_change, changes, sla)
        ensure_work_pool(pool, project_dir)
        ensure_pool_limit(client, pool.name, limits.max_concurrent_runs)
        automations = Automations.read(client)
        source.prepare(client)
        blocks: dict[str, str | None] = {}  # the webhook block, saved once per environment variable named
        for cfg in fleet.configs:
            if cfg.notifications.webhook_url_env not in blocks:
                blocks[cfg.notifications.webhook_url_env] = ensure_webhook_block(cfg)
        for change in changes:
            if change.action == "pause":
                set_paused(client, in_folder[change.model], paused=True, removed=True)
        # One model after another: the server's SQLite database takes one writer at a time (concurrent deploys
        # were answered 503, database locked, on this 2-core machine), and each request is short.
        for cfg in fleet.configs:
            existing, block = in_folder.get(cfg.registry.model_name), blocks[cfg.notifications.webhook_url_env]
            config = config_param(cfg.source, project_dir)
            deploy_model(client, cfg, config, project_dir, pool.name, source, existing, automations, block)
    sla = None
    if SLA_CHECK_FLOW:
        from driftline.flows.sla_check import deploy_sla_check

        fleet_config = config_param(Path(folder), project_dir)  # as the runs see it, from the project folder
        sla = deploy_sla_check(config=fleet_config, work_pool=pool.name, probe_seconds=limits.probe_seconds)
    return FleetDeployed(pool.name, pool_change, changes, sla)
