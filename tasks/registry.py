"""Tasks on the MLflow registry: find and load the champion, promote a challenger."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.registry import Champion, ModelRef, Registry
from tasks.events import MODEL_PROMOTED, emit_model_event

REGISTRY_RETRIES = {"retries": 2, "retry_delay_seconds": [2, 10], "cache_policy": NO_CACHE}


@task(name="load-champion", **REGISTRY_RETRIES)
def load_champion(cfg: DriftlineConfig) -> Champion:
    """The champion model and its drift reference; fails with NoChampion before the first promotion."""
    return Registry(cfg).load_champion()


@task(name="promote", **REGISTRY_RETRIES)
def promote(candidate: ModelRef, cfg: DriftlineConfig) -> ModelRef | None:
    registry = Registry(cfg)
    former = registry.promote(candidate)
    emit_model_event(MODEL_PROMOTED, cfg, {
        "version": candidate.version, "previous_version": former.version if former else None,
        "mlflow_run_id": candidate.run_id, "model_version_url": registry.version_url(candidate.version),
    })  # fmt: skip
    return former
