"""Tasks: score a batch with the champion (output file + prediction log), or only predict for monitoring."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.data import paths, prediction_log
from driftline.data.chunking import DataFile
from driftline.data.loading import DataBatch, Observed
from driftline.governance import rollout
from driftline.registry import Champion, ModelRef, Registry
from driftline.serving import batch_scoring
from driftline.training.modeling import predict
from tasks.artifacts import publish_markdown


@dataclass(frozen=True)
class ScoredBatch:
    output: Path
    rows: int
    model_version: str
    signal: np.ndarray | None = None  # what prediction drift compares with the reference (in-memory batches)


@task(name="score-batch", cache_policy=NO_CACHE)
def score_batch(
    batch: DataBatch, champion: Champion, cfg: DriftlineConfig, output: str | None,
    challenger: rollout.Challenger | None = None,
) -> ScoredBatch:  # fmt: skip
    """Predictions to the output file; every row, with its inputs, to the prediction log that monitoring reads."""
    version, scored_at = champion.ref.version, datetime.now(UTC)
    started = time.perf_counter()
    scored, answered = batch_scoring.score_frame(champion.model, batch.frame, cfg, version, scored_at, challenger)
    path = batch_scoring.write_output(scored, output_path(output, cfg, batch.path))
    log = None
    if cfg.scoring.log_predictions:
        rows = batch_scoring.log_records(batch.frame, answered, cfg, batch.name, batch.fingerprint, scored_at)
        key = prediction_log.batch_key(batch.fingerprint, version)
        log = prediction_log.append(rows, cfg.folders.prediction_log, batch.name, scored_at, key)
    tally = rollout.Tally()
    tally.add(answered, cfg.dataset.task)
    scored_file = batch_scoring.ScoredFile(path, len(scored), log, tally)
    _announce(cfg, scored_file, batch.name, version, time.perf_counter() - started)
    return ScoredBatch(path, len(scored), version, answered.champion_signal(cfg.dataset.task))


@task(name="predict-batch", cache_policy=NO_CACHE)
def predict_batch(observed: Observed, champion: Champion, cfg: DriftlineConfig) -> np.ndarray:
    """The champion's prediction signal on what is monitored, without writing outputs."""
    return predict(champion.model, observed.frame, cfg.dataset).signal(cfg.dataset.task)


def output_path(output: str | None, cfg: DriftlineConfig, source: Path) -> Path:
    return paths.allowed_path(output, cfg) if output else batch_scoring.default_output_path(cfg, source)


def _announce(cfg: DriftlineConfig, scored: batch_scoring.ScoredFile, name: str, version: str, seconds: float) -> None:
    """The scoring artifact, and the rows and seconds of the run (the scoring-throughput KPI), with the canary's
    rows and the shadow's agreement under a rollout."""
    rollout_figures = scored.tally.figures(cfg.dataset.task) if scored.tally else {}
    Registry(cfg).log_scoring(version, name, scored.rows, seconds, rollout_figures)
    logged = f", logged to `{scored.log}`" if scored.log else ""
    shown = "".join(f"\n- {figure}: {value:.4g}" for figure, value in rollout_figures.items())
    publish_markdown(
        cfg, "scoring",
        f"Scored **{scored.rows}** rows of `{name}` with v{version} → `{scored.output}`{logged}{shown}",
        f"Batch scoring of {name}",
    )  # fmt: skip


def _published(
    scored: batch_scoring.ScoredFile, source: DataFile, version: str, cfg: DriftlineConfig, seconds: float
) -> ScoredBatch:
    _announce(cfg, scored, source.name, version, seconds)
    return ScoredBatch(scored.output, scored.rows, version)


@task(name="score-file", cache_policy=NO_CACHE)
def score_file(
    source: DataFile, champion: Champion, cfg: DriftlineConfig, output: str | None,
    challenger: rollout.Challenger | None = None,
) -> ScoredBatch:  # fmt: skip
    """A validated file streamed through the champion (and a rollout's challenger) into the output file and one
    prediction-log file."""
    path, started = output_path(output, cfg, source.path), time.perf_counter()
    scored = batch_scoring.score_file(source, champion.model, cfg, champion.ref.version, path, challenger=challenger)
    return _published(scored, source, champion.ref.version, cfg, time.perf_counter() - started)


@task(name="score-partition", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def score_partition(
    source: DataFile, champion: ModelRef, cfg: DriftlineConfig, scored_at: datetime, rows: batch_scoring.RowRange,
    folder: Path, challenger_version: str | None = None,
) -> batch_scoring.ScoredPart:  # fmt: skip
    """One row range, on whichever worker runs it; the worker loads the model versions from the registry (skops,
    reviewed types) instead of receiving pickled models."""
    registry, held = Registry(cfg), None
    if challenger_version is not None:
        model = registry.load_model(ModelRef(champion.name, challenger_version, run_id=""))  # by name and version
        held = rollout.Challenger.of(model, challenger_version, cfg)
    model = registry.load_model(champion)
    return batch_scoring.score_part(source, model, cfg, champion.version, scored_at, rows, folder, held)


@task(name="assemble-output", cache_policy=NO_CACHE)
def assemble_output(
    parts: list[batch_scoring.ScoredPart], source: DataFile, champion: ModelRef, cfg: DriftlineConfig,
    output: str | None, scored_at: datetime,
) -> ScoredBatch:  # fmt: skip
    """The parts joined in row order into the output file and one log file, each appearing whole."""
    scored = batch_scoring.assemble(parts, source, cfg, output_path(output, cfg, source.path), champion.version)
    return _published(scored, source, champion.version, cfg, (datetime.now(UTC) - scored_at).total_seconds())
