"""The metric catalog per task (name, direction) and how each is computed from predictions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from driftline.config import Task


@dataclass(frozen=True)
class Metric:
    greater_is_better: bool
    # (y_true, y_pred, probabilities with one column per class in `classes` order, classes) -> value
    compute: Callable[[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray], float]


def _positive_proba(proba: np.ndarray | None) -> np.ndarray:
    assert proba is not None
    return proba[:, 1]


_CATALOG: dict[Task, dict[str, Metric]] = {
    Task.binary: {
        "roc_auc": Metric(True, lambda y, p, pr, c: skm.roc_auc_score(y == c[1], _positive_proba(pr))),
        "accuracy": Metric(True, lambda y, p, pr, c: skm.accuracy_score(y, p)),
        "f1": Metric(True, lambda y, p, pr, c: skm.f1_score(y, p, pos_label=c[1])),
        "precision": Metric(True, lambda y, p, pr, c: skm.precision_score(y, p, pos_label=c[1], zero_division=0)),
        "recall": Metric(True, lambda y, p, pr, c: skm.recall_score(y, p, pos_label=c[1], zero_division=0)),
        "log_loss": Metric(False, lambda y, p, pr, c: skm.log_loss(y, pr, labels=c)),
    },
    Task.multiclass: {
        "f1_macro": Metric(True, lambda y, p, pr, c: skm.f1_score(y, p, average="macro")),
        "accuracy": Metric(True, lambda y, p, pr, c: skm.accuracy_score(y, p)),
        "roc_auc_ovr": Metric(True, lambda y, p, pr, c: skm.roc_auc_score(y, pr, multi_class="ovr", labels=c)),
        "log_loss": Metric(False, lambda y, p, pr, c: skm.log_loss(y, pr, labels=c)),
    },
    Task.regression: {
        "rmse": Metric(False, lambda y, p, pr, c: skm.root_mean_squared_error(y, p)),
        "mae": Metric(False, lambda y, p, pr, c: skm.mean_absolute_error(y, p)),
        "r2": Metric(True, lambda y, p, pr, c: skm.r2_score(y, p)),
    },
}

_DEFAULT_METRIC = {Task.binary: "roc_auc", Task.multiclass: "f1_macro", Task.regression: "rmse"}


def metric_names(task: Task) -> list[str]:
    return list(_CATALOG[task])


def default_metric(task: Task) -> str:
    return _DEFAULT_METRIC[task]


def greater_is_better(task: Task, name: str) -> bool:
    return _CATALOG[task][name].greater_is_better


def compute_metrics(
    task: Task, y_true: pd.Series, y_pred: np.ndarray, proba: np.ndarray | None, classes: np.ndarray
) -> dict[str, float]:
    """Every catalog metric for the task; a metric undefined on this data (one class only) is left out."""
    truth = np.asarray(y_true)
    results: dict[str, float] = {}
    for name, metric in _CATALOG[task].items():
        try:
            value = float(metric.compute(truth, np.asarray(y_pred), proba, classes))
        except ValueError:
            continue
        if np.isfinite(value):
            results[name] = value
    return results
