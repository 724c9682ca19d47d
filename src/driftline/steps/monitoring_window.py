"""What drift monitoring reads next: the prediction log past the watermark the last monitoring run left in MLflow."""

from __future__ import annotations

from driftline.config import DriftlineConfig
from driftline.data import prediction_log
from driftline.registry import Registry


def since_last_monitoring(cfg: DriftlineConfig) -> prediction_log.LogWindow:
    """What the prediction log gained since the last monitoring run of this model, settled files only."""
    registry = Registry(cfg)
    after = registry.monitored_through()
    files = prediction_log.pending(registry.folders.prediction_log, after, cfg.monitoring.settle_seconds)
    return prediction_log.read_window(files)
