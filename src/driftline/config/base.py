"""What every config section builds on: the section base, task and feature kinds, the metric names of each task,
defaults per task, and the environment variables that may override connection settings."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

# Connection settings and secrets may come from the environment (12-factor); nothing else does.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
MLFLOW_UI_ENV = "DRIFTLINE_MLFLOW_UI_URL"
WEBHOOK_URL_ENV = "DRIFTLINE_WEBHOOK_URL"
API_KEY_ENV = "DRIFTLINE_API_KEY"
REMOTE_TRACKING_SCHEMES = ("http://", "https://", "databricks")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Task(StrEnum):
    binary = "binary"
    multiclass = "multiclass"
    regression = "regression"

    @property
    def is_classification(self) -> bool:
        return self is not Task.regression


class FeatureType(StrEnum):
    numeric = "numeric"
    categorical = "categorical"


# The metrics of each task, name -> greater is better; driftline.modeling.metrics computes each of them.
METRICS: dict[Task, dict[str, bool]] = {
    Task.binary: {"roc_auc": True, "accuracy": True, "f1": True, "precision": True, "recall": True, "log_loss": False},
    Task.multiclass: {"f1_macro": True, "accuracy": True, "roc_auc_ovr": True, "log_loss": False},
    Task.regression: {"rmse": False, "mae": False, "r2": True},
}
DEFAULT_METRIC = {Task.binary: "roc_auc", Task.multiclass: "f1_macro", Task.regression: "rmse"}

DEFAULT_ESTIMATORS = {
    "binary": "sklearn.ensemble.HistGradientBoostingClassifier",
    "multiclass": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}

# `auto`: Evidently's choice by size (DataDriftPreset() with no method), per column and batch (docs/drift.md).
NumericDriftMethod = Literal["auto", "ks", "wasserstein", "psi", "jensenshannon"]
CategoricalDriftMethod = Literal["auto", "chisquare", "z", "psi", "jensenshannon"]
# p-values for the tests, distances for the rest; the same defaults Evidently uses.
DEFAULT_DRIFT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chisquare": 0.05,
    "z": 0.05,
    "wasserstein": 0.1,
    "psi": 0.1,
    "jensenshannon": 0.1,
}
# Methods whose statistic is a p-value: drift when it falls under the threshold. The rest are distances.
P_VALUE_DRIFT_METHODS = frozenset({"ks", "chisquare", "z"})
# A threshold derived per feature from the training data's own variation (`drift.calibration`).
CALIBRATED = "calibrated"

NotificationEvent = Literal[
    "drift_detected",
    "performance_degraded",
    "fairness_breached",
    "slice_degraded",
    "model_promoted",
    "gate_refused",
    "flow_failed",
    "model_rolled_back",
    "sla_breached",
]
