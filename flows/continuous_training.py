"""Flow: one new batch through the loop: validate → archive → score → monitor drift → maybe retrain."""

from __future__ import annotations

from prefect import flow

from driftline.config import load_config
from flows.params import BatchParams, MonitoringOutcome, RunSummary, ScoringOutcome, TrainParams
from flows.training import training
from tasks.data import archive_batch, load_batch
from tasks.drift import check_drift
from tasks.registry import load_champion
from tasks.scoring import score_batch
from tasks.validation import validate_batch


@flow(name="continuous-training")
def continuous_training(params: BatchParams) -> RunSummary:
    cfg = load_config(params.config)
    champion = load_champion(cfg)
    batch = load_batch(params.data, cfg)
    validate_batch(batch, cfg, champion.reference.profile, for_training=False)  # raises DataRejected: quarantined
    archive_batch(batch, cfg)
    scored = score_batch(batch, champion, cfg, params.output)
    drift = check_drift(batch, scored.signal, champion, cfg)
    retraining = None
    if drift.detected and cfg.drift.retrain:
        retraining = training(TrainParams(config=params.config, reason=f"drift in {batch.name}"))
    return RunSummary(
        scoring=ScoringOutcome.of(batch, scored), monitoring=MonitoringOutcome.of(batch, drift, retraining)
    )
