"""prefect.yaml's deployments on the Prefect server: created from the file through the API, read back per model,
paused and resumed.

prefect.yaml stays the one source of what a deployment is (entrypoint, parameters, tags, limits, schedules,
triggers); `PrefectFile` renders it with a model's `{{ $DRIFTLINE_* }}` values as `prefect deploy` does and creates
the deployments in this process, one API call each, instead of one `prefect deploy` process per model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate, DeploymentUpdate
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterTags,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import ConcurrencyOptions
from prefect.client.schemas.schedules import CronSchedule
from prefect.events import DeploymentTriggerTypes
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema
from pydantic import TypeAdapter

from driftline.errors import ConfigError, DriftlineError
from driftline.fleet.deployments import SCHEDULED, ModelOnServer, Schedule

DEPLOYMENT_TAG = "driftline"
# The flows prefect.yaml deploys per model, by flow name (each entrypoint's function, with - for _).
FLOWS = [
    "training",
    "batch-scoring",
    "drift-monitoring",
    "continuous-training",
    "performance-monitoring",
    "ab-analysis",
    "rollback",
    "backtest",
]

TRIGGERS: TypeAdapter[DeploymentTriggerTypes] = TypeAdapter(DeploymentTriggerTypes)

REMOVED_TAG = "config-removed"  # set on the deployments a deploy paused because their config left the folder


ENV_PLACEHOLDER = re.compile(r"{{\s*\$(\w+)\s*}}")


def render(template: Any, values: dict[str, str]) -> Any:
    """prefect.yaml's `{{ $NAME }}` placeholders filled from `values`, as `prefect deploy` fills them from the
    environment (without writing this process's environment); event templates such as `{{ event.resource }}` stay."""
    if isinstance(template, str):
        return ENV_PLACEHOLDER.sub(lambda found: values.get(found[1], found[0]), template)
    if isinstance(template, dict):
        return {key: render(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [render(item, values) for item in template]
    return template


@dataclass(frozen=True)
class Automations:
    """Every automation on the server by name, read in one request (a model's notifications are found by name)."""

    by_name: dict[str, list[UUID]]

    @classmethod
    def read(cls, client: SyncPrefectClient) -> Automations:
        by_name: dict[str, list[UUID]] = {}
        for automation in client.read_automations():
            by_name.setdefault(automation.name, []).append(automation.id)
        return cls(by_name)


class PrefectFile:
    """prefect.yaml's deployments, created through the Prefect API in this process: the file stays the one source of
    what a deployment is (entrypoint, parameters, tags, limits, schedules, triggers), rendered with a model's
    `deploy_env` values as `prefect deploy` renders them, without a `prefect deploy` process per model."""

    def __init__(self, path: Path) -> None:
        try:
            document = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise DriftlineError(f"{path}: {error}") from error
        self.path = path
        self.deployments: list[dict[str, Any]] = document["deployments"]
        self.pull_steps: list[dict[str, Any]] = document.get("pull") or []
        self._flows: dict[str, tuple[UUID, dict[str, Any], str]] = {}

    def prepare(self, client: SyncPrefectClient) -> None:
        """Import each flow once and register it: its id, parameter schema and description, shared by every model
        (and by the threads deploying them)."""
        for spec in self.deployments:
            if spec["entrypoint"] not in self._flows:
                flow = load_flow_from_entrypoint(spec["entrypoint"])
                schema = parameter_schema(flow).model_dump(exclude_unset=True)
                flow_id = client.create_flow_from_name(flow.name)
                self._flows[spec["entrypoint"]] = (flow_id, schema, flow.description or "")

    def rendered(self, env: dict[str, str]) -> list[dict[str, Any]]:
        return [render(spec, env) for spec in self.deployments]

    def apply(self, client: SyncPrefectClient, env: dict[str, str], paused: bool, new: bool) -> list[UUID]:
        """Create or update one model's deployments (schedules replaced, runs kept), with their triggers enabled
        unless the model is paused: Prefect runs a paused deployment's trigger all the same. A `new` model's
        deployments own no trigger automations yet to replace (the server lists no owner with an automation)."""
        self.prepare(client)
        ids = []
        pull_steps = render(self.pull_steps, env)
        for spec in self.rendered(env):
            flow_id, schema, flow_description = self._flows[spec["entrypoint"]]
            limit = spec.get("concurrency_limit") or {}
            deployment_id = client.create_deployment(
                flow_id=flow_id,
                name=spec["name"],
                entrypoint=spec["entrypoint"],
                work_pool_name=spec["work_pool"]["name"],
                work_queue_name=spec["work_pool"].get("work_queue_name"),
                job_variables=spec["work_pool"].get("job_variables") or {},
                parameters=spec.get("parameters") or {},
                parameter_openapi_schema=schema,
                enforce_parameter_schema=True,
                description=spec.get("description") or flow_description,
                tags=spec.get("tags") or [],
                concurrency_limit=limit.get("limit"),
                concurrency_options=ConcurrencyOptions(collision_strategy=limit["collision_strategy"])
                if limit
                else None,
                schedules=[
                    DeploymentScheduleCreate(
                        schedule=CronSchedule(cron=s["cron"], timezone=s.get("timezone")), active=s.get("active", True)
                    )
                    for s in spec.get("schedules") or []
                ],
                pull_steps=pull_steps,
                paused=paused,
            )
            if not new:
                client.delete_resource_owned_automations(f"prefect.deployment.{deployment_id}")
            for number, trigger_spec in enumerate(spec.get("triggers") or [], start=1):
                trigger = TRIGGERS.validate_python(
                    {"name": f"{spec['name']}__automation_{number}", **trigger_spec}
                    | {"enabled": trigger_spec.get("enabled", True) and not paused}
                )
                trigger.set_deployment_id(deployment_id)
                client.create_automation(trigger.as_automation())
            ids.append(deployment_id)
        return ids


def config_param(path: Path, project_dir: Path) -> str:
    """The config path a deployment passes to its runs: relative to the project folder runs start in, when inside."""
    resolved = path.resolve()
    return str(resolved.relative_to(project_dir)) if resolved.is_relative_to(project_dir) else str(resolved)


def models_on_server(client: SyncPrefectClient, work_pool: str) -> dict[str, ModelOnServer]:
    """Every model's deployments in the pool (named after the model, tagged driftline), as plain values."""
    by_model: dict[str, list[Any]] = {}
    page, offset = 200, 0
    while True:
        found = client.read_deployments(
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[DEPLOYMENT_TAG])),
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[work_pool])),
            limit=page,
            offset=offset,
        )
        for deployment in found:
            if (deployment.entrypoint or "").rpartition(":")[2].replace("_", "-") not in FLOWS:
                continue  # a fleet-wide deployment (sla-check), not a model's
            by_model.setdefault(deployment.name, []).append(deployment)
        if len(found) < page:
            break
        offset += page
    limits = {queue.name: queue.concurrency_limit for queue in client.read_work_queues(work_pool_name=work_pool)}
    models = {}
    for name, deployments in by_model.items():
        schedules = {}
        for deployment in deployments:
            flow_function = (deployment.entrypoint or "").rpartition(":")[2]
            if flow_function in SCHEDULED and deployment.schedules:
                first = deployment.schedules[0]
                schedules[flow_function] = Schedule(first.schedule.cron, first.schedule.timezone, first.active)
        models[name] = ModelOnServer(
            model=name,
            config=str((deployments[0].parameters.get("params") or {}).get("config", "")),
            deployment_ids=tuple(str(d.id) for d in deployments),
            paused=all(d.paused for d in deployments),
            removed_config=any(REMOVED_TAG in d.tags for d in deployments),
            schedules=schedules,
            queue_limit=limits.get(name),
        )
    return models


def set_paused(client: SyncPrefectClient, model: ModelOnServer, paused: bool, removed: bool = False) -> None:
    """Pause (or resume) a model's deployments: their schedules, and their triggers, which a paused deployment would
    still fire on a landed file. Nothing is deleted; a run in flight goes on."""
    for deployment_id in model.deployment_ids:
        if paused:
            client.pause_deployment(deployment_id)
        else:
            client.resume_deployment(deployment_id)
        for automation in client.read_resource_related_automations(f"prefect.deployment.{deployment_id}"):
            if paused:
                client.pause_automation(automation.id)
            else:
                client.resume_automation(automation.id)
        tags = [tag for tag in client.read_deployment(deployment_id).tags if tag != REMOVED_TAG]
        client.update_deployment(deployment_id, DeploymentUpdate(tags=tags + [REMOVED_TAG] if removed else tags))


def pause_models(work_pool: str, names: list[str], paused: bool) -> list[str]:
    """Pause (or resume) these models' deployments, schedules and landing trigger; what changed, a line a model."""
    with get_client(sync_client=True) as client:
        on_server = models_on_server(client, work_pool)
        missing = [name for name in names if name not in on_server]
        if missing:
            raise ConfigError(
                f"not deployed in work pool {work_pool}: {', '.join(missing)}; run driftline deploy first"
            )
        changed = []
        for name in names:
            model = on_server[name]
            if model.paused == paused:
                changed.append(f"{name}: already {'paused' if paused else 'running'}")
                continue
            set_paused(client, model, paused)
            what = "paused" if paused else "resumed"
            changed.append(f"{name}: {len(model.deployment_ids)} deployments {what} (schedules and landing trigger)")
    return changed
