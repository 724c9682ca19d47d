"""Tasks: score a batch with the champion (output file + prediction log; with a running A/B test's arm B on its share
of the units), or only predict for monitoring."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from pathlib import Path

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.data.chunking import DataFile
from driftline.data.loading import DataBatch, Observed
from driftline.governance import rollout
from driftline.registry import Champion, ModelRef
from driftline.serving.batch_scoring import ScoredBatch
from driftline.serving.partitions import RowRange, ScoredPart
from driftline.steps import scoring
from driftline.tasks.publishing import publish_markdown
from driftline.tasks.retries import retried
from driftline.tasks.validation import publish_verdict


@task(name="score-batch", cache_policy=NO_CACHE)
def score_batch(
    batch: DataBatch,
    champion: Champion,
    cfg: DriftlineConfig,
    output: str | None,
    challenger: rollout.Challenger | None = None,
) -> ScoredBatch:
    """Predictions to the output file; every row, with its inputs, to the prediction log that monitoring reads."""
    scored = scoring.score_batch(batch, champion, cfg, output, challenger)
    _publish(cfg, scored, batch.name)
    return scored


@task(name="load-ab-arm", cache_policy=NO_CACHE, **retried(2, [2, 10]))
def load_ab_arm(cfg: DriftlineConfig) -> rollout.Challenger | None:
    """A running A/B test's arm B, loaded to answer its share of the units; None when no test runs."""
    return scoring.load_ab_arm(cfg)


@task(name="predict-batch", cache_policy=NO_CACHE)
def predict_batch(observed: Observed, champion: Champion, cfg: DriftlineConfig) -> np.ndarray:
    """The champion's prediction signal on what is monitored, without writing outputs."""
    return scoring.predict_batch(observed, champion, cfg)


@task(name="validate-and-score-file", cache_policy=NO_CACHE)
def validate_and_score_file(
    path: str | Path,
    champion: Champion,
    cfg: DriftlineConfig,
    output: str | None,
    challenger: rollout.Challenger | None = None,
) -> tuple[DataFile, ScoredBatch]:
    """One pass over a file: each chunk read once, validated, scored and written (output and prediction log). The
    validation table shows the verdict, pass or fail; a failing file is quarantined whole and nothing appears."""
    source, scored = scoring.validate_and_score_file(
        path, champion, cfg, output, challenger, partial(publish_verdict, cfg)
    )
    _publish(cfg, scored, source.name)
    return source, scored


@task(name="score-partition", cache_policy=NO_CACHE, **retried(1, 5))
def score_partition(
    source: DataFile,
    champion: ModelRef,
    cfg: DriftlineConfig,
    scored_at: datetime,
    rows: RowRange,
    folder: Path,
    challenger_version: str | None = None,
    ab: rollout.AbSplit | None = None,
) -> ScoredPart:
    """One row range, on whichever worker runs it (the models loaded there from the registry)."""
    return scoring.score_partition(source, champion, cfg, scored_at, rows, folder, challenger_version, ab)


@task(name="assemble-output", cache_policy=NO_CACHE)
def assemble_output(
    parts: list[ScoredPart],
    source: DataFile,
    champion: ModelRef,
    cfg: DriftlineConfig,
    output: str | None,
    scored_at: datetime,
) -> ScoredBatch:
    """The parts joined in row order into the output file and one log file, each appearing whole."""
    scored = scoring.assemble_output(parts, source, champion, cfg, output, scored_at)
    _publish(cfg, scored, source.name)
    return scored


def _publish(cfg: DriftlineConfig, scored: ScoredBatch, name: str) -> None:
    """The scoring artifact: rows, version, where they went, and a rollout's figures."""
    logged = f", logged to `{scored.log}`" if scored.log else ""
    shown = "".join(f"\n- {figure}: {value:.4g}" for figure, value in scored.rollout_figures.items())
    publish_markdown(
        cfg,
        "scoring",
        f"Scored **{scored.rows}** rows of `{name}` with v{scored.model_version} → `{scored.output}`{logged}{shown}",
        f"Batch scoring of {name}",
    )
