"""Flow: drift of a batch, or of the predictions logged since the last run, against the champion, and the champion's
metric estimated before labels; maybe retrain."""

from __future__ import annotations

from prefect import flow

from driftline.config import load_config
from driftline.fleet.flow_runs import record_flow_run
from driftline.flows.params import MonitoringOutcome, MonitorParams, TrainParams
from driftline.flows.training import training
from driftline.steps.champion_watch import automatic_rollback_reason
from driftline.steps.retraining import retraining_reason
from driftline.tasks.data import archive_batch, load_batch, new_predictions, window_trained_already
from driftline.tasks.drift import check_drift
from driftline.tasks.estimation import estimate_performance
from driftline.tasks.governance import watch_new_champion
from driftline.tasks.kpis import publish_kpis
from driftline.tasks.registry import load_champion, roll_back
from driftline.tasks.scoring import predict_batch
from driftline.tasks.validation import validate_batch


@flow(
    name="drift-monitoring",
    on_completion=[record_flow_run],  # the fleet's record of every flow run (driftline fleet status)
    on_failure=[record_flow_run],
    on_crashed=[record_flow_run],
)
def drift_monitoring(params: MonitorParams) -> MonitoringOutcome:
    cfg = load_config(params.config)
    champion = load_champion(cfg)
    if params.data:
        observed = load_batch(params.data, cfg)
        profile, classes = champion.reference.profile, champion.reference.trained_classes(cfg.dataset)
        validate_batch(observed, cfg, profile, for_training=False, trained_classes=classes)  # failing: quarantined
        archive_batch(observed, cfg)
    else:
        observed = new_predictions(cfg)  # the scheduled run: the prediction log since the last monitoring run
        if not observed.rows:
            return MonitoringOutcome.of(observed, drift=None, retraining=None)
    estimation = estimate_performance(observed, champion, cfg)  # before labels: the estimate, its band, its trust
    drift = check_drift(observed, predict_batch(observed, champion, cfg), champion, cfg, estimation)
    watch = watch_new_champion(drift, champion, cfg)  # governance.auto_rollback: has a new champion degraded?
    if watch.roll_back:
        roll_back(cfg, automatic_rollback_reason(watch), evidence={"automatic": True, "live": None})
    retraining = trained_already = None
    if reason := retraining_reason(drift, observed.name, cfg, estimation):  # by drift.trigger, or every batch
        trained_already = window_trained_already(cfg)  # predictions have no labels: nothing new unless some came
        retraining = None if trained_already else training(TrainParams(config=params.config, reason=reason))
    publish_kpis(cfg)
    return MonitoringOutcome.of(observed, drift, retraining, estimation, trained_already)
