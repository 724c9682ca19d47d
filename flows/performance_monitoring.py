"""Flow: delayed labels joined to the logged predictions; the champion measured, and retrained when it degraded."""

from __future__ import annotations

from prefect import flow

from driftline.config import load_config
from driftline.steps.champion_watch import automatic_rollback_reason
from flows.params import LabelParams, PerformanceOutcome, TrainParams
from flows.training import training
from tasks.governance import watch_new_champion
from tasks.kpis import publish_kpis
from tasks.performance import judge_rollout, measure_performance, notify_degradation, receive_labels
from tasks.registry import conclude_rollout, load_champion, roll_back


@flow(name="performance-monitoring")
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
    if report.degradation.rows >= cfg.labels.min_rows:  # governance.auto_rollback: a degraded new champion goes back
        live = report.degradation.live_metrics
        watch = watch_new_champion(None, champion, cfg, live_metrics=live)
        if watch.roll_back:
            roll_back(cfg, automatic_rollback_reason(watch), evidence={"automatic": True, "live": live})
    retraining = None
    if report.degradation.degraded:
        retrain = cfg.labels.retrain
        notify_degradation(report, cfg, "retraining on the archive window" if retrain else "labels.retrain is off")
        if retrain:
            reason = f"performance degraded: {report.degradation.reason}"
            retraining = training(TrainParams(config=params.config, reason=reason))
    publish_kpis(cfg)
    intake.raise_if_rejected()  # after the good files counted, the run fails naming the bad ones
    return PerformanceOutcome.of(intake, report, retraining)
