"""Tasks for delayed labels: receive label files, join them to the prediction log, measure and judge the champion."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig, Task
from driftline.data import archive, landing, loading, paths, prediction_log, storage
from driftline.data.quarantine import quarantine_file
from driftline.errors import DataRejected
from driftline.governance import rollout
from driftline.monitoring import evidently_report, label_store, performance
from driftline.registry import Champion, Registry
from tasks.artifacts import links_markdown, publish_markdown, publish_table
from tasks.events import PERFORMANCE_DEGRADED, emit_model_event


def trained_classes(champion: Champion, cfg: DriftlineConfig) -> list | None:
    """The labels the champion was trained on (None for regression): label files must use these."""
    if not cfg.dataset.task.is_classification:
        return None
    return list(champion.reference.stats.columns[cfg.dataset.target].counts.index)


@dataclass
class LabelIntake:
    """What one run received: the label files accepted (and how many rows), those rejected (now in quarantine)."""

    accepted: dict[str, int] = field(default_factory=dict)
    already_received: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def raise_if_rejected(self) -> None:
        if self.rejected:
            raise DataRejected(f"{len(self.rejected)} label file(s)", self.rejected)


@task(name="receive-labels", cache_policy=NO_CACHE)
def receive_labels(cfg: DriftlineConfig, champion: Champion, path: str | None) -> LabelIntake:
    """The label files waiting in labels.folder (or the one named): checked, kept in the label store and filed
    away to done/; a bad file is quarantined with its reasons and the others still count."""
    classes, intake = trained_classes(champion, cfg), LabelIntake()
    waiting = (
        [paths.allowed_path(path, cfg)] if path
        else landing.settled_files(cfg.folders.labels, cfg.landing.stable_seconds, time.time())
    )
    for label_path in waiting:
        try:
            labels = label_store.load_labels(label_path, cfg, classes)
        except DataRejected as rejected:
            if not label_path.is_file():
                raise  # a mistyped path: nothing to quarantine
            destination = quarantine_file(label_path, cfg.folders.quarantine, rejected.reasons, {"stage": "labels"})
            quarantined = DataRejected(rejected.path, rejected.reasons, str(destination))
            if path:
                raise quarantined from None
            intake.rejected.append(str(quarantined))
            continue
        if label_store.store_labels(labels, cfg.folders.label_store) is None:
            intake.already_received.append(label_path.name)
        else:
            intake.accepted[label_path.name] = labels.rows
        if not path:
            landing.file_away(label_path, cfg.folders.labels / "done")
    return intake


@dataclass(frozen=True)
class PerformanceReport:
    results: list[performance.Performance]
    degradation: performance.Degradation
    labeled_rows: int
    pending_predictions: int
    unmatched_labels: int
    mlflow_run_id: str
    labeled: pd.DataFrame  # the logged predictions that have a label, with it (what a rollout is judged on)
    steps: dict[str, int]  # each scoring batch's step in the MLflow charts


def _archive_labeled_rows(new_rows: pd.DataFrame, cfg: DriftlineConfig) -> None:
    """Rows labeled since the last run become a labeled batch in the archive, so a retrain learns from them
    (rows of batches that arrived with their labels are in the archive already); either way they are taken in."""
    labeled_batches = {entry.fingerprint for entry in archive.read_archive_index(cfg.folders.archive) if entry.labeled}
    missing = performance.not_yet_in_training_data(new_rows, labeled_batches)
    if not missing.empty:
        rows = performance.as_training_rows(missing, cfg)
        path = cfg.folders.labeled / f"labeled-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.parquet"
        storage.write_atomically(path, lambda temp: rows.to_parquet(temp, index=False))
        archive.archive_batch(loading.load_batch(path, cfg.dataset), cfg.folders.archive, cfg.dataset)
    if not new_rows.empty:
        label_store.mark_archived(new_rows[cfg.dataset.id_column], cfg.folders.label_store)


@task(name="measure-performance", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def measure_performance(cfg: DriftlineConfig, champion: Champion, intake: LabelIntake) -> PerformanceReport:
    """Join every stored label to the whole prediction log; metrics per version and batch, logged to MLflow with
    steps; the champion judged against its metrics at promotion; the batches with new labels to the dashboard."""
    classes = trained_classes(champion, cfg)
    logged = prediction_log.read_window(prediction_log.log_files(cfg.folders.prediction_log)).frame
    joined = performance.join_labels(logged, label_store.read_labels(cfg.folders.label_store), cfg)
    results = performance.performance(joined, cfg, classes)
    version = champion.ref.version
    measured = next((r for r in results if not r.per_batch and r.model_version == version), None)
    registry = Registry(cfg)
    degradation = performance.judge_degradation(
        version, measured, registry.holdout_metrics_of(champion.ref.run_id), cfg
    )
    counts = {"labeled_rows": len(joined.labeled), "pending_predictions": joined.pending_predictions,
              "unmatched_labels": joined.unmatched_labels}  # fmt: skip
    summary = {**counts, "unmatched_examples": joined.unmatched_examples, "label_files": intake.accepted,
               "degradation": degradation, "results": results}  # fmt: skip
    steps = performance.batch_steps(logged)
    run_id = registry.log_performance(champion.ref, results, steps, degradation, counts, summary)
    new_rows = performance.newly_labeled(joined, cfg.folders.label_store, cfg.dataset.id_column)
    _add_dashboard_snapshots(joined, new_rows, results, cfg, classes)
    _archive_labeled_rows(new_rows, cfg)
    rows = [{"model version": f"v{r.model_version}", "batch": r.source, "labeled rows": r.rows,
             **{name: round(value, 4) for name, value in r.metrics.items()}} for r in results]  # fmt: skip
    links = {"MLflow performance run": registry.run_url(run_id)}
    publish_table(cfg, "performance", rows, (
        f"Performance on labeled predictions: {len(joined.labeled)} labeled, {joined.pending_predictions} "
        f"waiting for a label, {joined.unmatched_labels} labels without a prediction. "
        f"{'DEGRADED: ' if degradation.degraded else ''}{degradation.reason}. {links_markdown(links, run_id)}"
    ))  # fmt: skip
    return PerformanceReport(results, degradation, len(joined.labeled), joined.pending_predictions,
                             joined.unmatched_labels, run_id, joined.labeled, steps)  # fmt: skip


def _add_dashboard_snapshots(joined, touched, results, cfg: DriftlineConfig, classes: list | None) -> None:
    """One Evidently snapshot per scoring batch that gained labels in this run, at the time it was scored."""
    if touched.empty:
        return
    keys = set(zip(touched[prediction_log.MODEL_VERSION], touched[prediction_log.SOURCE], strict=True))
    frame = joined.labeled.rename(columns={label_store.LABEL: cfg.dataset.target})
    probabilities = {}
    if classes is not None and cfg.dataset.task is Task.binary:
        probabilities = {classes[1]: f"{performance.PROBA_PREFIX}{classes[1]}"}
    for result in results:
        if (result.model_version, result.source) not in keys:
            continue
        rows = frame[(frame[prediction_log.MODEL_VERSION] == result.model_version)
                     & (frame[prediction_log.SOURCE] == result.source)]  # fmt: skip
        snapshot = evidently_report.Snapshot(f"performance {result.source} v{result.model_version}", result.scored_at,
                                  result.model_version)  # fmt: skip
        evidently_report.add_performance_snapshot(rows, cfg, snapshot, prediction_log.PREDICTION, probabilities)


@task(name="judge-rollout", cache_policy=NO_CACHE)
def judge_rollout(cfg: DriftlineConfig, champion: Champion, report: PerformanceReport) -> rollout.RolloutVerdict | None:
    """The held challenger's labeled live rows against the champion's: promote, hold or drop (None: none held)."""
    registry = Registry(cfg)
    held = registry.live_challenger()
    if held is None:
        return None
    judge = rollout.judge_shadow if cfg.rollout.mode == "shadow" else rollout.judge_canary
    verdict = judge(report.labeled, cfg, champion.ref.version, held.version, trained_classes(champion, cfg))
    registry.log_rollout(report.mlflow_run_id, verdict.summary, verdict.evidence, verdict.batch_points(report.steps))
    evidence = json.dumps(verdict.evidence, indent=2, default=str)
    publish_markdown(cfg, "rollout", f"## {verdict.summary}\n\nEvidence:\n```json\n{evidence}\n```",
                     f"Rollout of v{held.version}: {verdict.action}")  # fmt: skip
    return verdict


@task(name="notify-degradation", cache_policy=NO_CACHE)
def notify_degradation(report: PerformanceReport, cfg: DriftlineConfig, retraining: str) -> None:
    registry = Registry(cfg)
    degradation = report.degradation
    emit_model_event(PERFORMANCE_DEGRADED, cfg, {
        "champion_version": degradation.model_version, "metric": degradation.metric,
        "at_promotion": degradation.at_promotion, "measured": degradation.measured, "rows": degradation.rows,
        "reason": degradation.reason, "retraining": retraining, "mlflow_run_id": report.mlflow_run_id,
        "mlflow_run_url": registry.run_url(report.mlflow_run_id),
    })  # fmt: skip
