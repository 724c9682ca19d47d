"""Task: drift of a batch (or a prediction-log window) against the champion, published as a table and an event."""

from __future__ import annotations

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.data.loading import Observed
from driftline.monitoring.drift import DriftResult
from driftline.registry import Champion
from driftline.steps import drift_check
from driftline.steps.estimate_check import EstimationCheck
from driftline.tasks.events import DRIFT_DETECTED, emit_model_event
from driftline.tasks.publishing import links_markdown, publish_table
from driftline.tasks.retries import retried


@task(name="check-drift", cache_policy=NO_CACHE, **retried(1, 5))
def check_drift(
    observed: Observed,
    signal: np.ndarray,
    champion: Champion,
    cfg: DriftlineConfig,
    estimation: EstimationCheck | None = None,
) -> DriftResult:
    """The drift check, logged with the estimate of the champion's metric when the flow made one."""
    figures, record = (estimation.figures(), estimation.to_dict()) if estimation is not None else (None, None)
    checked = drift_check.check_drift(observed, signal, champion, cfg, figures, record)
    result, run_id, version = checked.result, checked.mlflow_run_id, champion.ref.version
    rows = [
        {
            "column": c.column,
            "role": c.role,
            "method": c.method,
            "statistic": round(c.statistic, 6),
            "threshold": c.threshold,
            "calibrated": c.calibrated,
            "drifted": c.drifted,
        }
        for c in result.columns
    ]
    rows += [
        {
            "column": q.column,
            "role": "quality",
            "method": q.check,
            "statistic": round(q.current, 6),
            "threshold": round(q.threshold, 6),
            "calibrated": False,
            "drifted": q.breached,
        }
        for q in result.quality
    ]
    verdict = "DRIFT: " + "; ".join(result.reasons) if result.detected else (result.note or "no drift")
    if result.quality_breaches and not cfg.drift.data_quality.counts_as_drift:
        verdict += ". Data quality: " + "; ".join(result.quality_breaches)
    if estimation is not None:
        verdict += f". Estimate: {estimation.verdict}"
    links = {
        "MLflow monitoring run": checked.run_url,
        "Evidently report": checked.report_url,
        f"champion v{version}": checked.champion_url,
    }
    publish_table(
        cfg,
        "drift",
        rows,
        f"Drift of {observed.name} ({observed.rows} rows) vs champion "
        f"v{version}: {verdict}. {links_markdown(links, run_id)}",
    )
    if result.detected:
        emit_model_event(
            DRIFT_DETECTED,
            cfg,
            {
                "batch": observed.name,
                "rows": observed.rows,
                "champion_version": version,
                "reasons": result.reasons,
                "drifted_features": result.drifted_features,
                "mlflow_run_id": run_id,
                "quality_breaches": result.quality_breaches,
                "mlflow_run_url": checked.run_url,
                "report": checked.report_url,
            },
        )
    return result
