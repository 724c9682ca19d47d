"""Flow: one new batch through the loop: validate → archive → score → monitor drift → maybe retrain."""

from __future__ import annotations

from prefect import flow

from flows.params import BatchParams, MonitoringOutcome, RunSummary, ScoringOutcome, TrainParams
from flows.steps import admit_batch, retraining_reason
from flows.training import training
from tasks.data import already_processed, archive_batch
from tasks.drift import check_drift
from tasks.registry import load_challenger
from tasks.scoring import score_batch


@flow(name="continuous-training")
def continuous_training(params: BatchParams) -> RunSummary:
    cfg, champion, batch = admit_batch(params)  # load → validate; a rejected file is quarantined, the run fails
    earlier = already_processed(batch, cfg)
    if earlier is not None:  # the same bytes again (a re-sent event, a copy): nothing new to learn from
        return RunSummary(batch=batch.name, fingerprint=batch.fingerprint, duplicate_of=earlier.source_name)
    archive_batch(batch, cfg)
    scored = score_batch(batch, champion, cfg, params.output, load_challenger(cfg))
    drift = check_drift(batch, scored.signal, champion, cfg)
    retraining = None
    if reason := retraining_reason(drift, batch.name, cfg):  # on drift, or after every batch
        retraining = training(TrainParams(config=params.config, reason=reason))
    return RunSummary(
        batch=batch.name, fingerprint=batch.fingerprint,
        scoring=ScoringOutcome.of(batch, scored), monitoring=MonitoringOutcome.of(batch, drift, retraining),
    )  # fmt: skip
