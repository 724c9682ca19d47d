"""Flow: measure a batch's drift against the champion's reference; on drift, retrain and let the gate decide."""

from __future__ import annotations

from prefect import flow

from driftline.config import load_config
from flows.params import BatchParams, MonitoringOutcome, TrainParams
from flows.training import training
from tasks.data import archive_batch, load_batch
from tasks.drift import check_drift
from tasks.registry import load_champion
from tasks.scoring import predict_batch
from tasks.validation import validate_batch


@flow(name="drift-monitoring")
def drift_monitoring(params: BatchParams) -> MonitoringOutcome:
    cfg = load_config(params.config)
    champion = load_champion(cfg)
    batch = load_batch(params.data, cfg)
    validate_batch(batch, cfg, champion.reference.profile, for_training=False)
    archive_batch(batch, cfg)
    drift = check_drift(batch, predict_batch(batch, champion, cfg), champion, cfg)
    retraining = None
    if drift.detected and cfg.drift.retrain:
        retraining = training(TrainParams(config=params.config, reason=f"drift in {batch.name}"))
    return MonitoringOutcome.of(batch, drift, retraining)
