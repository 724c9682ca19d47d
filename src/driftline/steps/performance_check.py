"""The performance check on delayed labels: every stored label joined to the prediction log, the champion measured
and judged, the result logged to MLflow, newly labeled batches to the dashboard and the archive. Calls the
`Registry`: the registry never imports it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from driftline.config import DriftlineConfig, RegistryFolders, Task
from driftline.data import archive, loading, prediction_log, storage
from driftline.monitoring import evidently_report, label_store, performance
from driftline.registry import Champion, Registry
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
    counts = {"labeled_rows": len(joined.labeled), "pending_predictions": joined.pending_predictions,
              "unmatched_labels": joined.unmatched_labels}  # fmt: skip
    summary = {**counts, "unmatched_examples": joined.unmatched_examples, "label_files": intake.accepted,
               "degradation": degradation, "results": results}  # fmt: skip
    steps = performance.batch_steps(logged)
    run_id = registry.log_performance(champion.ref, results, steps, degradation, counts, summary)
    new_rows = performance.newly_labeled(joined, folders.label_store, cfg.dataset.id_column)
    add_dashboard_snapshots(joined, new_rows, results, cfg, classes)
    archive_labeled_rows(new_rows, cfg, folders, archived_by)
    return PerformanceReport(
        results=results, degradation=degradation, labeled_rows=len(joined.labeled),
        pending_predictions=joined.pending_predictions, unmatched_labels=joined.unmatched_labels,
        mlflow_run_id=run_id, mlflow_run_url=registry.run_url(run_id), labeled=joined.labeled, steps=steps,
    )  # fmt: skip


def add_dashboard_snapshots(joined: performance.LabelJoin, touched: pd.DataFrame,
                            results: list[performance.Performance], cfg: DriftlineConfig,
                            classes: list | None) -> None:  # fmt: skip
    """One Evidently snapshot per scoring batch that gained labels in this run, at its data's time."""
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
        snapshot = evidently_report.Snapshot(f"performance {result.source} v{result.model_version}",
                                             result.data_time, result.model_version)  # fmt: skip
        evidently_report.add_performance_snapshot(rows, cfg, snapshot, prediction_log.PREDICTION, probabilities)


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
