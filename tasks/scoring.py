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
from driftline.data import DataBatch, Observed
from driftline.modeling import predict
from driftline.registry import Champion, Registry
from tasks.artifacts import publish_markdown


@dataclass(frozen=True)
class ScoredBatch:
    output: Path
    rows: int
    model_version: str
    signal: np.ndarray  # what prediction drift compares with the reference


@task(name="score-batch", cache_policy=NO_CACHE)
def score_batch(batch: DataBatch, champion: Champion, cfg: DriftlineConfig, output: str | None) -> ScoredBatch:
    """Predictions to the output file; every row, with its inputs, to the prediction log that monitoring reads."""
    version, scored_at = champion.ref.version, datetime.now(UTC)
    started = time.perf_counter()
    scored, predictions = scoring.score_frame(champion.model, batch.frame, cfg, version, scored_at)
    Registry(cfg).log_scoring(version, batch.name, len(scored), time.perf_counter() - started)  # throughput KPI
    path = scoring.write_output(scored, Path(output) if output else scoring.default_output_path(cfg, batch.path))
    logged = ""
    if cfg.scoring.log_predictions:
        rows = prediction_log.records(batch.frame, predictions, cfg, version, batch.name, batch.fingerprint, scored_at)
        logged = f", logged to `{prediction_log.append(rows, cfg.prediction_log_dir, batch.name, scored_at)}`"
    publish_markdown(
        cfg, "scoring",
        f"Scored **{len(scored)}** rows of `{batch.name}` with v{version} → `{path}`{logged}",
        f"Batch scoring of {batch.name}",
    )  # fmt: skip
    return ScoredBatch(path, len(scored), version, predictions.signal(cfg.dataset.task))


@task(name="predict-batch", cache_policy=NO_CACHE)
def predict_batch(observed: Observed, champion: Champion, cfg: DriftlineConfig) -> np.ndarray:
    """The champion's prediction signal on what is monitored, without writing outputs."""
    return predict(champion.model, observed.frame, cfg.dataset).signal(cfg.dataset.task)
