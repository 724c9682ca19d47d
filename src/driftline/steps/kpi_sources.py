"""The KPIs measured from their sources: gate decisions, detections, drift checks, slice and fairness verdicts and
scoring runs from the registry, data freshness from the archive index, training runs from the orchestrator's history
(passed in, when a Prefect API is at hand) or from driftline's own record of them, which every training run appends
to and which needs no server. Calls the `Registry`: the registry never imports it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from driftline.config import DriftlineConfig, load_config
from driftline.data import archive
from driftline.monitoring.kpis import EstimatorRecord, Kpis, LoopHistory, PipelineRun, compute_kpis
from driftline.registry import Registry
from driftline.steps.estimate_review import estimator_states

PREFECT_SOURCE = "the Prefect API (flow runs of `training`)"
RECORD_SOURCE = "driftline's record of `training` flow runs (no Prefect server asked)"
MLFLOW_SOURCE = "MLflow training runs (no record of flow runs yet: runs that failed before logging are not seen)"
TRAINING = "training"


@dataclass(frozen=True)
class RecordedRun:
    """One finished flow run, as its state hook recorded it: the flow, the run, the config it ran, how it ended."""

    flow: str
    flow_run_id: str
    config: str  # resolved path of the config the run was given
    state: str  # Prefect's final state type: COMPLETED, FAILED, CRASHED
    started_at: str  # ISO time

    @property
    def pipeline_run(self) -> PipelineRun:
        return PipelineRun(self.state == "COMPLETED", datetime.fromisoformat(self.started_at))


def run_record(cfg: DriftlineConfig) -> Path:
    """Driftline's record of pipeline runs: one JSON line per finished run, in the workspace, like the Prefect history
    the CLI's runs share with the stack's server (one per workspace)."""
    return cfg.folders.root / "pipeline-runs.jsonl"


def record_run(flow: str, config: str, flow_run_id: str, state: str, started_at: datetime) -> None:
    """Append one finished run of `flow` given `config`: a line written at once, so concurrent runs never interleave."""
    cfg = load_config(config)
    run = RecordedRun(flow, flow_run_id, str(Path(config).resolve()), state, started_at.astimezone(UTC).isoformat())
    path = run_record(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(run)) + "\n")


def recorded_training_runs(cfg: DriftlineConfig) -> list[PipelineRun] | None:
    """The `training` runs given this config (the latest line of each run), or None when nothing was ever recorded
    in this workspace (runs from before the record existed)."""
    path = run_record(cfg)
    if not path.exists():
        return None
    latest: dict[str, RecordedRun] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            run = RecordedRun(**json.loads(line))
        except (json.JSONDecodeError, TypeError):  # a line cut short by a crash while it was written
            continue
        if run.flow == TRAINING and cfg.source is not None and Path(run.config) == cfg.source:
            latest[run.flow_run_id] = run
    return [run.pipeline_run for run in latest.values()]


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


def measure_kpis(cfg: DriftlineConfig, prefect_training_runs: list[PipelineRun] | None = None) -> Kpis:
    """The KPIs now; training runs from the Prefect API's history when the caller read it, else from driftline's
    record of training runs, else (a workspace without one) from MLflow's training runs."""
    registry = Registry(cfg)
    if prefect_training_runs is not None:
        training_runs, source = prefect_training_runs, PREFECT_SOURCE
    elif (recorded := recorded_training_runs(cfg)) is not None:
        training_runs, source = recorded, RECORD_SOURCE
    else:
        training_runs, source = registry.training_runs(), MLFLOW_SOURCE
    champion = registry.alias_holders().champion
    history = LoopHistory(
        transitions=registry.transitions(),
        detections=registry.detections(),
        training_runs=training_runs,
        training_runs_source=source,
        newest_training_data=newest_training_data(registry.folders.archive),
        scoring_runs=registry.scoring_runs(),
        monitored_batches=registry.monitored_batches(),
        live_checks=registry.live_checks(),
        champion_version=champion,
        estimator=champion_estimator(cfg, registry, champion),
    )
    return compute_kpis(history, datetime.now(UTC))


def champion_estimator(cfg: DriftlineConfig, registry: Registry, champion: str | None) -> EstimatorRecord | None:
    """The champion's estimator from its version tags and the estimate ledger (None: no champion)."""
    if champion is None:
        return None
    versions = [info for info in registry.versions() if info.version == champion]
    state = estimator_states(cfg, versions, registry.folders.root).get(champion)
    if state is None:
        return None
    reason = state.trust.reason if state.trust else state.note
    return EstimatorRecord(state.shown, reason, state.compared, state.outside, state.mean_error)
