"""Flow: one new batch through the loop: validate → archive → score → monitor drift → maybe retrain."""

from __future__ import annotations

from prefect import flow

from driftline.config import load_config
from driftline.data.ledger import FAILED, RUNNING, SUCCEEDED
from driftline.fleet.flow_runs import record_flow_run
from driftline.flows.params import BatchParams, MonitoringOutcome, RunSummary, ScoringOutcome, TrainParams
from driftline.flows.training import training
from driftline.steps import batch_outcomes
from driftline.steps.retraining import retraining_reason
from driftline.tasks.data import archive_batch, load_batch, processed_before, window_trained_already
from driftline.tasks.drift import check_drift
from driftline.tasks.estimation import estimate_performance
from driftline.tasks.registry import load_challenger, load_champion
from driftline.tasks.scoring import score_batch
from driftline.tasks.validation import validate_batch


def record_outcome(outcome: str):
    """A state hook: the run's outcome for its batch's content goes to the landing ledger (the event path retries
    content whose run failed), whether the watcher's event or a person (`driftline run`) started the run."""

    def hook(flow, flow_run, state) -> None:
        params = BatchParams.model_validate(flow_run.parameters["params"])
        error = state.result(raise_on_failure=False) if outcome == FAILED else None
        if outcome == FAILED and not isinstance(error, BaseException):
            error = RuntimeError(state.message or state.name)
        batch_outcomes.record_run(params.config, params.data, outcome, str(flow_run.id), error)

    return hook


@flow(
    name="continuous-training",
    on_running=[record_outcome(RUNNING)],
    on_completion=[record_outcome(SUCCEEDED), record_flow_run],
    on_failure=[record_outcome(FAILED), record_flow_run],
    on_crashed=[record_outcome(FAILED), record_flow_run],
)
def continuous_training(params: BatchParams) -> RunSummary:
    cfg = load_config(params.config)
    champion = load_champion(cfg)  # NoChampion before the first promotion: nothing is written
    batch = load_batch(params.data, cfg)
    profile, classes = champion.reference.profile, champion.reference.trained_classes(cfg.dataset)
    validate_batch(batch, cfg, profile, for_training=False, trained_classes=classes)  # failing: quarantined, run fails
    earlier = processed_before(batch, cfg)
    if earlier is not None:  # the same bytes again, processed before (a re-sent event, a copy): nothing new
        return RunSummary(batch=batch.name, fingerprint=batch.fingerprint, duplicate_of=earlier)
    archive_batch(batch, cfg)
    scored = score_batch(batch, champion, cfg, params.output, load_challenger(cfg))
    estimation = estimate_performance(batch, champion, cfg)  # before labels: the estimate, its band, its trust
    drift = check_drift(batch, scored.signal, champion, cfg, estimation)
    retraining = trained_already = None
    if reason := retraining_reason(drift, batch.name, cfg, estimation):  # by drift.trigger, or every batch
        trained_already = window_trained_already(cfg)  # a batch without labels and none since: nothing new
        retraining = None if trained_already else training(TrainParams(config=params.config, reason=reason))
    return RunSummary(
        batch=batch.name,
        fingerprint=batch.fingerprint,
        scoring=ScoringOutcome.of(batch, scored),
        monitoring=MonitoringOutcome.of(batch, drift, retraining, estimation, trained_already),
    )
