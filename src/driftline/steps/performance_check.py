"""The performance check on delayed labels: every stored label joined to the prediction log, the champion measured
and judged, each newly labeled batch's estimate checked against its labels and its labels tested for drift, the
result logged to MLflow, newly labeled batches to the dashboard and the archive. Calls the `Registry`: the registry
never imports it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

import pandas as pd

from driftline.config import DriftlineConfig, RegistryFolders, Task
from driftline.data import archive, loading, prediction_log, storage
from driftline.monitoring import evidently_report, fairness_watch, label_store, performance
from driftline.monitoring.label_drift import LabelDrift, check_label_drift
from driftline.registry import Champion, Registry
from driftline.steps.estimate_review import SelfCheck, self_check
from driftline.steps.label_intake import LabelIntake


@dataclass(frozen=True)
class PerformanceReport:
    results: list[performance.Performance]
    degradation: performance.Degradation
    labeled_rows: int
    pending_predictions: int
    unmatched_labels: int
    mlflow_run_id: str
    mlflow_run_url: str | None  # None: no MLflow UI address configured
    labeled: pd.DataFrame  # the logged predictions that have a label, with it (what a rollout is judged on)
    steps: dict[str, int]  # each scoring batch's step in the MLflow charts
    live: fairness_watch.LiveChecks  # the champion's slices and fairness per labeled batch
    estimates: SelfCheck  # the newly labeled batches' estimates against their labels, the champion's trust after
    label_drift: LabelDrift  # the champion's newly labeled batches: labels vs training labels

    @property
    def degraded(self) -> bool:
        """The primary metric degraded, or (labels.fairness_counts_as_degradation) a slice or fairness breach."""
        return self.degradation.degraded or bool(self.live.counted)

    @property
    def degradation_reason(self) -> str:
        """Why it counts as degraded: what the retraining run records as its trigger."""
        return "; ".join(
            [f"performance degraded: {self.degradation.reason}"] * self.degradation.degraded
            + [f"slices or fairness breached: {reason}" for reason in self.live.counted]
        )

    def retraining_reason(self, cfg: DriftlineConfig) -> str:
        """Why the label run retrains ("" when it does not): a degradation with labels.retrain, and label drift as
        a drift alarm at label delay 0 would (drift.retrain, drift.trigger): the retrain's recorded trigger."""
        degraded = [self.degradation_reason] if self.degraded and cfg.labels.retrain else []
        trusted = self.estimates.trust is not None and self.estimates.trust.trusted
        return "; ".join(degraded + self.label_drift.retraining_reasons(cfg.drift, trusted))


def measure_performance(
    cfg: DriftlineConfig, champion: Champion, intake: LabelIntake, archived_by: str | None = None
) -> PerformanceReport:
    """Join every stored label to the whole prediction log; metrics per version and batch, logged to MLflow with
    steps; the champion judged against its metrics at promotion; the batches with new labels to the dashboard and
    the archive (indexed as archived by `archived_by`, the flow run)."""
    classes = champion.reference.trained_classes(cfg.dataset)
    registry = Registry(cfg)
    folders = registry.folders
    logged = prediction_log.read_window(prediction_log.log_files(folders.prediction_log)).frame
    joined = performance.join_labels(logged, label_store.read_labels(folders.label_store), cfg)
    results = performance.performance(joined, cfg, classes)
    version = champion.ref.version
    measured = next((r for r in results if not r.per_batch and r.model_version == version), None)
    degradation = performance.judge_degradation(
        version, measured, registry.holdout_metrics_of(champion.ref.run_id), cfg
    )
    new_rows = performance.newly_labeled(joined, folders.label_store, cfg.dataset.id_column)
    keys = touched_batches(new_rows)
    estimates = self_check(joined.labeled, results, keys, champion, cfg, classes, folders.root)
    results = estimates.results
    champion_batches = {source for v, source in keys if v == version}
    live = fairness_watch.check_batches(
        joined.labeled, version, registry.at_promotion(champion.ref.run_id), cfg, classes, champion_batches
    )
    label_drift_check = check_label_drift(joined.labeled, version, champion.reference.stats, cfg, champion_batches)
    counts = {
        "labeled_rows": len(joined.labeled),
        "pending_predictions": joined.pending_predictions,
        "unmatched_labels": joined.unmatched_labels,
        **estimates.figures(),
        "label_drifted_batches": len(label_drift_check.drifted),
    }
    summary = {
        **counts,
        "unmatched_examples": joined.unmatched_examples,
        "label_files": intake.accepted,
        "degradation": degradation,
        "results": results,
        "slices_and_fairness": {"verdict": live.summary, **asdict(live)},
        "estimate_checks": estimates.checks,
        "estimator_trust": estimates.trust,
        "label_drift": {"verdict": label_drift_check.summary, **asdict(label_drift_check)},
    }
    steps = performance.batch_steps(logged)
    run_id = registry.log_performance(
        champion.ref, results, steps, degradation, live, counts, summary, label_drift_check
    )
    add_dashboard_snapshots(joined, keys, results, live, cfg, classes)
    archive_labeled_rows(new_rows, cfg, folders, archived_by)
    return PerformanceReport(
        results=results,
        degradation=degradation,
        labeled_rows=len(joined.labeled),
        pending_predictions=joined.pending_predictions,
        unmatched_labels=joined.unmatched_labels,
        mlflow_run_id=run_id,
        mlflow_run_url=registry.run_url(run_id),
        labeled=joined.labeled,
        steps=steps,
        live=live,
        estimates=estimates,
        label_drift=label_drift_check,
    )


def touched_batches(new_rows: pd.DataFrame) -> set[tuple[str, str]]:
    """(model version, scoring batch) of the rows labeled in this run."""
    if new_rows.empty:
        return set()
    return set(zip(new_rows[prediction_log.MODEL_VERSION], new_rows[prediction_log.SOURCE], strict=True))


def add_dashboard_snapshots(
    joined: performance.LabelJoin,
    keys: set[tuple[str, str]],
    results: list[performance.Performance],
    live: fairness_watch.LiveChecks,
    cfg: DriftlineConfig,
    classes: list | None,
) -> None:
    """Evidently snapshots per scoring batch that gained labels in this run, at the time it was scored: the model's
    quality, and the champion's slices and fairness."""
    if not keys:
        return
    watched = {(batch.model_version, batch.source): batch for batch in live.judged}
    frame = joined.labeled.rename(columns={label_store.LABEL: cfg.dataset.target})
    probabilities = {}
    if classes is not None and cfg.dataset.task is Task.binary:
        probabilities = {classes[1]: f"{performance.PROBA_PREFIX}{classes[1]}"}
    for result in results:
        if (result.model_version, result.source) not in keys:
            continue
        rows = frame[
            (frame[prediction_log.MODEL_VERSION] == result.model_version)
            & (frame[prediction_log.SOURCE] == result.source)
        ]
        snapshot = evidently_report.Snapshot(
            f"performance {result.source} v{result.model_version}", result.data_time, result.model_version
        )
        evidently_report.add_performance_snapshot(rows, cfg, snapshot, prediction_log.PREDICTION, probabilities)
        if (result.model_version, result.source) in watched:
            add_watch_snapshots(watched[result.model_version, result.source], snapshot, cfg)


def add_watch_snapshots(
    batch: fairness_watch.BatchCheck, snapshot: evidently_report.Snapshot, cfg: DriftlineConfig
) -> None:
    """The batch's slice and fairness figures beside its performance snapshot, at the same time."""
    for tag, figures in (
        (evidently_report.SLICES_TAG, batch.slice_figures()),
        (evidently_report.FAIRNESS_TAG, batch.fairness_figures()),
    ):
        named = replace(snapshot, name=f"{tag} {batch.source} v{batch.model_version}")
        evidently_report.add_figures_snapshot(figures, tag, cfg, named)


def archive_labeled_rows(
    new_rows: pd.DataFrame, cfg: DriftlineConfig, folders: RegistryFolders, archived_by: str | None = None
) -> None:
    """Rows labeled since the last run become a labeled batch in the archive, so a retrain learns from them
    (rows of batches that arrived with their labels are in the archive already); either way they are taken in."""
    labeled_batches = {entry.fingerprint for entry in archive.read_archive_index(folders.archive) if entry.labeled}
    missing = performance.not_yet_in_training_data(new_rows, labeled_batches)
    if not missing.empty:
        rows = performance.as_training_rows(missing, cfg)
        path = folders.labeled / f"labeled-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.parquet"
        storage.write_atomically(path, lambda temp: rows.to_parquet(temp, index=False))
        archive.archive_batch(loading.load_batch(path, cfg.dataset), folders.archive, cfg.dataset, archived_by)
    if not new_rows.empty:
        label_store.mark_archived(new_rows[cfg.dataset.id_column], folders.label_store)
