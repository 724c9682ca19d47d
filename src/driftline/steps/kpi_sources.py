"""The KPIs measured from their sources: gate decisions, detections, drift checks, slice and fairness verdicts and
scoring runs from the registry, data freshness from the archive index, training runs from the orchestrator's history
(passed in). Calls the `Registry`: the registry never imports it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from driftline.config import DriftlineConfig
from driftline.data import archive
from driftline.monitoring.kpis import Kpis, LoopHistory, PipelineRun, compute_kpis
from driftline.registry import Registry

TrainingRunHistory = Callable[[DriftlineConfig], list[PipelineRun]]


def newest_training_data(archive_dir: Path) -> tuple[str, datetime] | None:
    """The newest labeled archived batch still in use and when its data is from (newest event time, else when it
    arrived)."""
    labeled = [entry for entry in archive.read_archive_index(archive_dir) if entry.labeled and entry.in_use]
    if not labeled:
        return None

    def as_of(entry: archive.ArchivedBatch) -> datetime:
        return datetime.fromisoformat(entry.event_time_max or entry.archived_at)

    newest = max(labeled, key=as_of)
    return newest.source_name, as_of(newest)


def measure_kpis(cfg: DriftlineConfig, prefect_training_runs: TrainingRunHistory) -> Kpis:
    """The KPIs now; training runs from the Prefect API's history, or from MLflow when no Prefect API answers."""
    registry = Registry(cfg)
    try:
        training_runs, source = prefect_training_runs(cfg), "the Prefect API (flow runs of `training`)"
    except Exception:  # no Prefect API reachable: MLflow's training runs, which miss failures before registration
        training_runs = registry.training_runs()
        source = "MLflow training runs (no Prefect API reachable: runs that failed before logging are not seen)"
    history = LoopHistory(
        transitions=registry.transitions(),
        detections=registry.detections(),
        training_runs=training_runs,
        training_runs_source=source,
        newest_training_data=newest_training_data(registry.folders.archive),
        scoring_runs=registry.scoring_runs(),
        monitored_batches=registry.monitored_batches(),
        live_checks=registry.live_checks(),
        champion_version=registry.alias_holders().champion,
    )
    return compute_kpis(history, datetime.now(UTC))
