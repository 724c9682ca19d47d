"""Task: drift of a batch (or a prediction-log window) against the champion's reference, logged to MLflow."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.data.loading import Observed
from driftline.data.prediction_log import LogWindow
from driftline.monitoring import drift, evidently_report
from driftline.monitoring.evidently_report import write_report
from driftline.registry import REPORTS, Champion, Registry
from tasks.artifacts import links_markdown, publish_table
from tasks.events import DRIFT_DETECTED, emit_model_event


def report_path(observed: Observed, cfg: DriftlineConfig) -> Path:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(observed.name).stem).strip("-")
    return cfg.folders.reports / f"drift-{stem}-{observed.fingerprint[:12]}.html"


@task(name="check-drift", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def check_drift(observed: Observed, signal: np.ndarray, champion: Champion, cfg: DriftlineConfig) -> drift.DriftResult:
    reference = champion.reference
    result = drift.detect_drift(reference.stats, observed.frame, cfg, current_predictions=signal)
    now = datetime.now(UTC)
    snapshot = evidently_report.Snapshot(f"drift {observed.name}", now, champion.ref.version)
    report = write_report(reference.features, observed.frame, cfg, report_path(observed, cfg), snapshot)
    watermark = observed.through if isinstance(observed, LogWindow) else None
    registry = Registry(cfg)
    run_id = registry.log_monitoring(
        champion.ref, observed.name, observed.fingerprint, result.figures(), result.to_dict(), report, watermark
    )
    registry.log_drift_trend(result.figures(), now)
    rows = [{"column": c.column, "role": c.role, "method": c.method, "statistic": round(c.statistic, 6),
             "threshold": c.threshold, "drifted": c.drifted} for c in result.columns]  # fmt: skip
    rows += [{"column": q.column, "role": "quality", "method": q.check, "statistic": round(q.current, 6),
              "threshold": round(q.threshold, 6), "drifted": q.breached} for q in result.quality]  # fmt: skip
    verdict = "DRIFT: " + "; ".join(result.reasons) if result.detected else (result.note or "no drift")
    if result.quality_breaches and not cfg.drift.data_quality.counts_as_drift:
        verdict += ". Data quality: " + "; ".join(result.quality_breaches)
    links = {
        "MLflow monitoring run": registry.run_url(run_id),
        "Evidently report": registry.artifact_url(run_id, f"{REPORTS}/{report.name}") or report.as_uri(),
        f"champion v{champion.ref.version}": registry.version_url(champion.ref.version),
    }
    publish_table(cfg, "drift", rows, f"Drift of {observed.name} ({observed.rows} rows) vs champion "
                  f"v{champion.ref.version}: {verdict}. {links_markdown(links, run_id)}")  # fmt: skip
    if result.detected:
        emit_model_event(DRIFT_DETECTED, cfg, {
            "batch": observed.name, "rows": observed.rows, "champion_version": champion.ref.version,
            "reasons": result.reasons, "drifted_features": result.drifted_features, "mlflow_run_id": run_id,
            "quality_breaches": result.quality_breaches,
            "mlflow_run_url": links["MLflow monitoring run"], "report": links["Evidently report"],
        })  # fmt: skip
    return result
