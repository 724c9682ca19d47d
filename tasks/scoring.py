"""Task: score a batch with the champion and write the output atomically."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline import scoring
from driftline.config import DriftlineConfig
from driftline.data import DataBatch
from driftline.modeling import predict
from driftline.registry import Champion
from tasks.artifacts import publish_markdown


@dataclass(frozen=True)
class ScoredBatch:
    output: Path
    rows: int
    model_version: str
    signal: np.ndarray  # what prediction drift compares with the reference


@task(name="score-batch", cache_policy=NO_CACHE)
def score_batch(batch: DataBatch, champion: Champion, cfg: DriftlineConfig, output: str | None) -> ScoredBatch:
    scored, predictions = scoring.score_frame(champion.model, batch.frame, cfg, champion.ref.version)
    path = scoring.write_output(scored, Path(output) if output else scoring.default_output_path(cfg, batch.path))
    publish_markdown(
        cfg, "scoring",
        f"Scored **{len(scored)}** rows of `{batch.name}` with v{champion.ref.version} → `{path}`",
        f"Batch scoring of {batch.name}",
    )  # fmt: skip
    return ScoredBatch(path, len(scored), champion.ref.version, predictions.signal(cfg.dataset.task))


@task(name="predict-batch", cache_policy=NO_CACHE)
def predict_batch(batch: DataBatch, champion: Champion, cfg: DriftlineConfig) -> np.ndarray:
    """The champion's prediction signal for a batch, for monitoring without writing outputs."""
    return predict(champion.model, batch.frame, cfg.dataset).signal(cfg.dataset.task)
