"""Flow: every model's SLAs checked from outside its service (the stack's probe), recorded, breaches announced; and
the one fleet-wide deployment that runs it every fleet.probe_seconds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.objects import ConcurrencyLimitStrategy, ConcurrencyOptions
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.utilities.callables import parameter_schema

from driftline.config import load_fleet
from driftline.errors import DriftlineError
from driftline.flows.params import FleetParams, SlaCheckOutcome
from driftline.tasks.sla import check_slas, notify_sla_breaches, publish_slas

DEPLOYMENT = "fleet"
ENTRYPOINT = "driftline.flows.sla_check:sla_check"


@flow(name="sla-check")
def sla_check(params: FleetParams) -> SlaCheckOutcome:
    fleet = load_fleet(params.config)  # a config that does not load is named in the table; the others are checked
    checked = check_slas(fleet, served_together=Path(params.config).is_dir())  # a folder: by the fleet service
    notify_sla_breaches(checked, fleet)
    publish_slas(checked, fleet)
    outcome = SlaCheckOutcome.of(checked)
    if outcome.unchecked:  # after the others were recorded: the run fails naming them (checked again next probe)
        problems = "; ".join(f"{model}: {problem}" for model, problem in outcome.unchecked.items())
        raise DriftlineError(f"{len(outcome.unchecked)} models not checked: {problems}")
    return outcome


def deploy_sla_check(config: str, work_pool: str, probe_seconds: int, project_dir: Path | None = None) -> str:
    """Create or update the fleet's one `sla-check/fleet` deployment: every probe_seconds, on `config` (a folder or
    one config, as a path from `project_dir`), its runs starting in `project_dir` (default: this folder) as
    prefect.yaml's do. Returns its name."""
    schedule = DeploymentScheduleCreate(schedule=IntervalSchedule(interval=timedelta(seconds=probe_seconds)))
    working_dir = (project_dir or Path.cwd()).resolve()
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(sla_check.name)
        client.create_deployment(  # an upsert: the same flow and name update the deployment in place
            flow_id=flow_id,
            name=DEPLOYMENT,
            entrypoint=ENTRYPOINT,
            work_pool_name=work_pool,
            parameters={"params": {"config": config}},
            parameter_openapi_schema=parameter_schema(sla_check).model_dump_for_openapi(),
            schedules=[schedule],
            tags=["driftline", "sla"],
            description="Probes every model's service (/ready, /metrics) from outside and evaluates its SLAs.",
            pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(working_dir)}}],
            concurrency_limit=1,  # a check still running when the next is due: that one is skipped
            concurrency_options=ConcurrencyOptions(collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
        )
    return f"{sla_check.name}/{DEPLOYMENT}"
