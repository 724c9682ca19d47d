"""Flow: validate a batch against the champion's reference profile and score it with the champion."""

from __future__ import annotations

from prefect import flow

from driftline.config import load_config
from flows.params import BatchParams, ScoringOutcome
from tasks.data import load_batch
from tasks.registry import load_champion
from tasks.scoring import score_batch
from tasks.validation import validate_batch


@flow(name="batch-scoring")
def batch_scoring(params: BatchParams) -> ScoringOutcome:
    cfg = load_config(params.config)
    champion = load_champion(cfg)
    batch = load_batch(params.data, cfg)
    validate_batch(batch, cfg, champion.reference.profile, for_training=False)
    scored = score_batch(batch, champion, cfg, params.output)
    return ScoringOutcome.of(batch, scored)
