"""Flow: measure a batch's drift against the champion's reference; on drift, retrain and let the gate decide."""

from __future__ import annotations

from prefect import flow

from flows.params import BatchParams, MonitoringOutcome, TrainParams
from flows.steps import admit_batch
from flows.training import training
from tasks.data import archive_batch
from tasks.drift import check_drift
from tasks.scoring import predict_batch


@flow(name="drift-monitoring")
def drift_monitoring(params: BatchParams) -> MonitoringOutcome:
    cfg, champion, batch = admit_batch(params)  # load → validate; a rejected file is quarantined, the run fails
    archive_batch(batch, cfg)
    drift = check_drift(batch, predict_batch(batch, champion, cfg), champion, cfg)
    retraining = None
    if drift.detected and cfg.drift.retrain:
        retraining = training(TrainParams(config=params.config, reason=f"drift in {batch.name}"))
    return MonitoringOutcome.of(batch, drift, retraining)
