"""Task: drift of a batch against the champion's reference, with the Evidently report logged to MLflow."""

from __future__ import annotations

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline import drift
from driftline.config import DriftlineConfig
from driftline.data import DataBatch
from driftline.registry import Champion, Registry
from tasks.artifacts import publish_table


@task(name="check-drift", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def check_drift(batch: DataBatch, signal: np.ndarray, champion: Champion, cfg: DriftlineConfig) -> drift.DriftResult:
    reference = champion.reference
    result = drift.detect_drift(reference.stats, batch.frame, cfg, current_predictions=signal)
    report = drift.write_report(
        reference.features, batch.frame, cfg, cfg.report_dir / f"drift-{batch.path.stem}-{batch.fingerprint[:12]}.html"
    )
    metrics = {"drifted_feature_share": result.drifted_feature_share, "dataset_drift": float(result.detected)}
    metrics |= {f"drift_{c.role}_{c.column}": c.statistic for c in result.columns}
    run_id = Registry(cfg).log_monitoring(
        champion.ref, batch.name, batch.fingerprint, metrics, result.to_dict(), report
    )
    rows = [{"column": c.column, "role": c.role, "method": c.method, "statistic": round(c.statistic, 6),
             "threshold": c.threshold, "drifted": c.drifted} for c in result.columns]  # fmt: skip
    verdict = "DRIFT: " + "; ".join(result.reasons) if result.detected else (result.note or "no drift")
    publish_table(cfg, "drift", rows, f"Drift of {batch.name} vs champion v{champion.ref.version}: {verdict} "
                  f"(MLflow run {run_id}, report {report})")  # fmt: skip
    return result
