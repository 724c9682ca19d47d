"""Task: the operational KPIs published; the Prefect API's history of training runs is their Prefect adapter, and a
state hook of the training flow keeps driftline's own record of them, read when no Prefect server is at hand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import PrefectHTTPStatusError

from driftline.config import DriftlineConfig
from driftline.monitoring import kpis
from driftline.steps import kpi_sources
from driftline.tasks.publishing import publish_markdown
from driftline.tasks.retries import retried

PAGE = 200


def _of_this_model(parameters: dict, cfg: DriftlineConfig) -> bool:
    config = (parameters.get("params") or {}).get("config")
    return config is not None and cfg.source is not None and Path(config).resolve() == cfg.source


def prefect_api_running() -> bool:
    """Whether a Prefect API answers without starting one: a server the settings name (PREFECT_API_URL, which the
    CLI sets to the stack's server when it is up), or the one the current flow run reports to."""
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url) or FlowRunContext.get() is not None or TaskRunContext.get() is not None


def prefect_training_runs(cfg: DriftlineConfig) -> list[kpis.PipelineRun]:
    """Runs of the `training` flow for this config (by its parameter), from the Prefect API: failures before a
    challenger was logged count too."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    finished = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED]
    runs: list = []
    with get_client(sync_client=True) as client:
        while True:  # the API answers at most PAGE runs per call
            page = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[kpi_sources.TRAINING])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=finished))),
                limit=PAGE,
                offset=len(runs),
            )
            runs += page
            if len(page) < PAGE:
                break
    return [
        kpis.PipelineRun(run.state_type is StateType.COMPLETED, run.start_time or run.created)
        for run in runs
        if _of_this_model(run.parameters, cfg)
    ]


def gather_kpis(cfg: DriftlineConfig) -> kpis.Kpis:
    """The KPIs (what `driftline kpis` and `publish-kpis` show), with the training runs from the Prefect API when one
    is running, else from driftline's record: no Prefect server is started for them."""
    from_prefect = None
    if prefect_api_running():
        try:
            from_prefect = prefect_training_runs(cfg)
        except (httpx.TransportError, PrefectHTTPStatusError) as error:  # the server is down: the record answers
            if isinstance(error, PrefectHTTPStatusError) and error.response.status_code < 500:
                raise
    return kpi_sources.measure_kpis(cfg, from_prefect)


def record_training_run(flow, flow_run, state) -> None:
    """A state hook of the `training` flow (on completion, failure and crash): the finished run goes to driftline's
    record of training runs, so `driftline kpis` counts it without asking a Prefect server."""
    params = flow_run.parameters.get("params")
    config = params.get("config") if isinstance(params, dict) else getattr(params, "config", None)
    if config is not None:
        started = flow_run.start_time or flow_run.created or datetime.now(UTC)
        kpi_sources.record_run(kpi_sources.TRAINING, config, str(flow_run.id), state.type.value, started)


def kpis_markdown(cfg: DriftlineConfig, measured: kpis.Kpis) -> str:
    lines = [f"## Operational KPIs of {cfg.registry.model_name}", "", "| KPI | value | measured as |", "|---|---|---|"]
    return "\n".join(lines + [f"| {name} | {value} | {how} |" for name, value, how in measured.rows()])


@task(name="publish-kpis", cache_policy=NO_CACHE, **retried(1, 5))
def publish_kpis(cfg: DriftlineConfig) -> kpis.Kpis:
    """The KPIs as a Prefect markdown artifact (key `<model>-kpis`), refreshed by every monitoring run."""
    measured = gather_kpis(cfg)
    publish_markdown(cfg, "kpis", kpis_markdown(cfg, measured), f"Operational KPIs of {cfg.registry.model_name}")
    return measured
