"""Flow: validate a batch against the champion's reference profile and score it with the champion."""

from __future__ import annotations

from prefect import flow

from flows.params import BatchParams, ScoringOutcome
from flows.steps import admit_batch
from tasks.scoring import score_batch


@flow(name="batch-scoring")
def batch_scoring(params: BatchParams) -> ScoringOutcome:
    cfg, champion, batch = admit_batch(params)  # load → validate; a rejected file is quarantined, the run fails
    scored = score_batch(batch, champion, cfg, params.output)
    return ScoringOutcome.of(batch, scored)
