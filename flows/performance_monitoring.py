"""Flow: delayed labels joined to the logged predictions; the champion measured, and retrained when it degraded or
its newly labeled batches' labels drifted."""

from __future__ import annotations

from prefect import flow

from driftline.config import load_config
from driftline.fleet.flow_runs import record_flow_run
from driftline.flows.params import LabelParams, PerformanceOutcome, TrainParams
from driftline.flows.training import training
from driftline.steps.champion_watch import automatic_rollback_reason
from driftline.tasks.governance import watch_new_champion
from driftline.tasks.kpis import publish_kpis
from driftline.tasks.performance import (
    judge_rollout,
    measure_performance,
    notify_degradation,
    notify_slices_and_fairness,
    receive_labels,
)
from driftline.tasks.registry import conclude_rollout, load_champion, roll_back


@flow(
    name="performance-monitoring",
    on_completion=[record_flow_run],  # the fleet's record of every flow run (driftline fleet status)
    on_failure=[record_flow_run],
    on_crashed=[record_flow_run],
)
def performance_monitoring(params: LabelParams) -> PerformanceOutcome:
    cfg = load_config(params.config)
    cfg.require_labels()  # raises ConfigError: nothing to join without labels (and an id column)
    champion = load_champion(cfg)
    intake = receive_labels(cfg, champion, params.data)  # a bad label file is quarantined; a named one fails the run
    report = measure_performance(cfg, champion, intake)
    if cfg.rollout.mode != "off":  # a held challenger: promoted, held or dropped on its labeled live rows
        verdict = judge_rollout(cfg, champion, report)
        if verdict is not None:
            conclude_rollout(cfg, verdict)
    retrain = "retraining on the archive window" if cfg.labels.retrain else "labels.retrain is off"
    breaches = report.live.counted  # slice and fairness breaches, with labels.fairness_counts_as_degradation
    if report.live.reasons:  # gate.slices / gate.fairness breached on the champion's newly labeled batches
        notify_slices_and_fairness(report, cfg, retrain if breaches else "labels.fairness_counts_as_degradation is off")
    if report.degradation.rows >= cfg.labels.min_rows or breaches:  # governance.auto_rollback: a degraded new champion
        live = report.degradation.live_metrics  # goes back to `previous`
        watch = watch_new_champion(None, champion, cfg, live_metrics=live, live_breaches=breaches)
        if watch.roll_back:
            evidence = {"automatic": True, "live": live, "breaches": breaches}
            roll_back(cfg, automatic_rollback_reason(watch), evidence=evidence)
    retraining = None
    if report.degradation.degraded:
        notify_degradation(report, cfg, retrain)
    # the primary metric or breaches that count (labels.retrain); label drift as a drift alarm (drift.retrain, trigger)
    reason = report.retraining_reason(cfg)
    if reason:
        retraining = training(TrainParams(config=params.config, reason=reason))
    publish_kpis(cfg)
    intake.raise_if_rejected()  # after the good files counted, the run fails naming the bad ones
    return PerformanceOutcome.of(intake, report, retraining)
