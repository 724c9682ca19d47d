"""The drift check of a batch (or a prediction-log window) against the champion: the verdict, the Evidently report and
dashboard snapshot, the MLflow monitoring run and trend point; and the window itself, the prediction log since the last
check. Calls the `Registry`: the registry never imports it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from driftline.config import DriftlineConfig
from driftline.data import prediction_log
from driftline.data.loading import Observed, newest_event_time
from driftline.data.prediction_log import LogWindow
from driftline.monitoring import evidently_report
from driftline.monitoring.drift import DriftResult, detect_drift
from driftline.registry import REPORTS, Champion, Registry


@dataclass(frozen=True)
class DriftCheck:
    """A drift verdict and where a person reads it: the MLflow run, the Evidently report, the champion's version."""

    result: DriftResult
    mlflow_run_id: str
    report: Path
    run_url: str | None  # None: no MLflow UI address configured
    report_url: str  # in MLflow when it has a UI address, else the local file
    champion_url: str | None


def report_path(observed: Observed, cfg: DriftlineConfig) -> Path:
    """reports/drift-<batch name>-<fingerprint>.html: one report per content, named so a person finds it."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(observed.name).stem).strip("-")
    return cfg.folders.reports / f"drift-{stem}-{observed.fingerprint[:12]}.html"


def data_time(observed: Observed, cfg: DriftlineConfig) -> datetime:
    """Where a monitoring run sits on the dashboards' time axis: the newest event time of what it observed (the
    data's time, so a replayed or late batch lands where it happened), else now (arrival order)."""
    return newest_event_time(observed.frame, cfg.dataset) or datetime.now(UTC)


def check_drift(
    observed: Observed,
    signal: np.ndarray,
    champion: Champion,
    cfg: DriftlineConfig,
    estimated: dict[str, float] | None = None,
    estimation: dict | None = None,
) -> DriftCheck:
    """Drift of `observed` (with the champion's predictions on it, `signal`) against the champion's reference; the
    report written, a dashboard snapshot added, and a monitoring run and a trend point logged to MLflow, with the
    estimate of the champion's metric beside the drift figures when there is one (`estimated`: its figures,
    `estimation`: its record for the run's JSON).

    A prediction-log window's run records the newest log file it read: the next scheduled run starts after it.
    """
    reference = champion.reference
    result = detect_drift(reference.stats, observed.frame, cfg, current_predictions=signal)
    at = data_time(observed, cfg)
    snapshot = evidently_report.Snapshot(f"drift {observed.name}", at, champion.ref.version)
    report = evidently_report.write_report(
        reference.features, observed.frame, cfg, report_path(observed, cfg), snapshot, result.columns
    )
    watermark = observed.through if isinstance(observed, LogWindow) else None
    registry = Registry(cfg)
    figures = result.figures() | (estimated or {})
    summary = result.to_dict() | ({"estimate": estimation} if estimation is not None else {})
    run_id = registry.log_monitoring(
        champion.ref, observed.name, observed.fingerprint, figures, summary, report, watermark
    )
    registry.log_drift_trend(figures, at)
    return DriftCheck(
        result,
        run_id,
        report,
        registry.run_url(run_id),
        registry.artifact_url(run_id, f"{REPORTS}/{report.name}") or report.as_uri(),
        registry.version_url(champion.ref.version),
    )


def since_last_monitoring(cfg: DriftlineConfig) -> LogWindow:
    """What the prediction log gained since the last monitoring run of this model (its watermark is in MLflow),
    settled files only."""
    registry = Registry(cfg)
    after = registry.monitored_through()
    files = prediction_log.pending(registry.folders.prediction_log, after, cfg.monitoring.settle_seconds)
    return prediction_log.read_window(files)
