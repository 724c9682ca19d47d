"""Task: the operational KPIs published; the Prefect API's history of training runs is their Prefect adapter."""

from __future__ import annotations

from pathlib import Path

from driftline.tasks.artifacts import publish_markdown
from driftline.tasks.retries import retried
from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.monitoring import kpis
from driftline.steps import kpi_sources

TRAINING_FLOW = "training"
PAGE = 200


def _of_this_model(parameters: dict, cfg: DriftlineConfig) -> bool:
    config = (parameters.get("params") or {}).get("config")
    return config is not None and cfg.source is not None and Path(config).resolve() == cfg.source


def prefect_training_runs(cfg: DriftlineConfig) -> list[kpis.PipelineRun]:
    """Runs of the `training` flow for this config (by its parameter), from the Prefect API: failures before a
    challenger was logged count too. Raises when no Prefect API answers."""
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
                flow_filter=FlowFilter(name=FlowFilterName(any_=[TRAINING_FLOW])),
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
    """The KPIs with the Prefect API's history of training runs (what `driftline kpis` and `publish-kpis` show)."""
    return kpi_sources.measure_kpis(cfg, prefect_training_runs)


def kpis_markdown(cfg: DriftlineConfig, measured: kpis.Kpis) -> str:
    lines = [f"## Operational KPIs of {cfg.registry.model_name}", "", "| KPI | value | measured as |", "|---|---|---|"]
    return "\n".join(lines + [f"| {name} | {value} | {how} |" for name, value, how in measured.rows()])


@task(name="publish-kpis", cache_policy=NO_CACHE, **retried(1, 5))
def publish_kpis(cfg: DriftlineConfig) -> kpis.Kpis:
    """The KPIs as a Prefect markdown artifact (key `<model>-kpis`), refreshed by every monitoring run."""
    measured = gather_kpis(cfg)
    publish_markdown(cfg, "kpis", kpis_markdown(cfg, measured), f"Operational KPIs of {cfg.registry.model_name}")
    return measured
