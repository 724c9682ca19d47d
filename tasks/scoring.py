"""Tasks: score a batch with the champion (output file + prediction log), or only predict for monitoring."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline import prediction_log, scoring
from driftline.config import DriftlineConfig
from driftline.data import DataBatch, DataFile, Observed
from driftline.modeling import predict
from driftline.registry import Champion, ModelRef, Registry
from tasks.artifacts import publish_markdown


@dataclass(frozen=True)
class ScoredBatch:
    output: Path
    rows: int
    model_version: str
    signal: np.ndarray | None = None  # what prediction drift compares with the reference (in-memory batches)


@task(name="score-batch", cache_policy=NO_CACHE)
def score_batch(batch: DataBatch, champion: Champion, cfg: DriftlineConfig, output: str | None) -> ScoredBatch:
    """Predictions to the output file; every row, with its inputs, to the prediction log that monitoring reads."""
    version, scored_at = champion.ref.version, datetime.now(UTC)
    started = time.perf_counter()
    scored, predictions = scoring.score_frame(champion.model, batch.frame, cfg, version, scored_at)
    path = scoring.write_output(scored, output_path(output, cfg, batch.path))
    log = None
    if cfg.scoring.log_predictions:
        rows = prediction_log.records(batch.frame, predictions, cfg, version, batch.name, batch.fingerprint, scored_at)
        key = prediction_log.batch_key(batch.fingerprint, version)
        log = prediction_log.append(rows, cfg.prediction_log_dir, batch.name, scored_at, key)
    _announce(cfg, scoring.ScoredFile(path, len(scored), log), batch.name, version, time.perf_counter() - started)
    return ScoredBatch(path, len(scored), version, predictions.signal(cfg.dataset.task))


@task(name="predict-batch", cache_policy=NO_CACHE)
def predict_batch(observed: Observed, champion: Champion, cfg: DriftlineConfig) -> np.ndarray:
    """The champion's prediction signal on what is monitored, without writing outputs."""
    return predict(champion.model, observed.frame, cfg.dataset).signal(cfg.dataset.task)


def output_path(output: str | None, cfg: DriftlineConfig, source: Path) -> Path:
    return Path(output) if output else scoring.default_output_path(cfg, source)


def _announce(cfg: DriftlineConfig, scored: scoring.ScoredFile, name: str, version: str, seconds: float) -> None:
    """The scoring artifact, and the rows and seconds of the run for the scoring-throughput KPI."""
    Registry(cfg).log_scoring(version, name, scored.rows, seconds)
    logged = f", logged to `{scored.log}`" if scored.log else ""
    publish_markdown(
        cfg, "scoring",
        f"Scored **{scored.rows}** rows of `{name}` with v{version} → `{scored.output}`{logged}",
        f"Batch scoring of {name}",
    )  # fmt: skip


def _published(
    scored: scoring.ScoredFile, source: DataFile, version: str, cfg: DriftlineConfig, seconds: float
) -> ScoredBatch:
    _announce(cfg, scored, source.name, version, seconds)
    return ScoredBatch(scored.output, scored.rows, version)


@task(name="score-file", cache_policy=NO_CACHE)
def score_file(source: DataFile, champion: Champion, cfg: DriftlineConfig, output: str | None) -> ScoredBatch:
    """A validated file streamed through the champion into the output file and one prediction-log file."""
    path, started = output_path(output, cfg, source.path), time.perf_counter()
    scored = scoring.score_file(source, champion.model, cfg, champion.ref.version, path)
    return _published(scored, source, champion.ref.version, cfg, time.perf_counter() - started)


@task(name="score-partition", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def score_partition(
    source: DataFile, champion: ModelRef, cfg: DriftlineConfig, scored_at: datetime, rows: scoring.RowRange,
    folder: Path,
) -> scoring.ScoredPart:  # fmt: skip
    """One row range, on whichever worker runs it; the worker loads the model version from the registry (skops,
    reviewed types) instead of receiving a pickled model."""
    model = Registry(cfg).load_model(champion)
    return scoring.score_part(source, model, cfg, champion.version, scored_at, rows, folder)


@task(name="assemble-output", cache_policy=NO_CACHE)
def assemble_output(
    parts: list[scoring.ScoredPart], source: DataFile, champion: ModelRef, cfg: DriftlineConfig, output: str | None,
    scored_at: datetime,
) -> ScoredBatch:  # fmt: skip
    """The parts joined in row order into the output file and one log file, each appearing whole."""
    scored = scoring.assemble(parts, source, cfg, output_path(output, cfg, source.path), champion.version)
    return _published(scored, source, champion.version, cfg, (datetime.now(UTC) - scored_at).total_seconds())
