"""Flow: one new batch through the loop: validate → archive → score → monitor drift → maybe retrain."""

from __future__ import annotations

from prefect import flow

from flows.params import BatchParams, MonitoringOutcome, RunSummary, ScoringOutcome, TrainParams
from flows.steps import admit_batch
from flows.training import training
from tasks.data import archive_batch
from tasks.drift import check_drift
from tasks.scoring import score_batch


@flow(name="continuous-training")
def continuous_training(params: BatchParams) -> RunSummary:
    cfg, champion, batch = admit_batch(params)  # load → validate; a rejected file is quarantined, the run fails
    archive_batch(batch, cfg)
    scored = score_batch(batch, champion, cfg, params.output)
    drift = check_drift(batch, scored.signal, champion, cfg)
    retraining = None
    if drift.detected and cfg.drift.retrain:
        retraining = training(TrainParams(config=params.config, reason=f"drift in {batch.name}"))
    return RunSummary(
        scoring=ScoringOutcome.of(batch, scored), monitoring=MonitoringOutcome.of(batch, drift, retraining)
    )
