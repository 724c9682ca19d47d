"""How each metric of the config's catalog (`driftline.config.base.METRICS`) is computed from predictions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from driftline.config.base import DEFAULT_METRIC, METRICS, Task

# (y_true, y_pred, probabilities with one column per class in `classes` order, classes) -> value
Compute = Callable[[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray], float]


def _positive_proba(proba: np.ndarray | None) -> np.ndarray:
    assert proba is not None
    return proba[:, 1]


# Keyed by name: a metric that two tasks share (accuracy, log_loss) is computed the same way for both.
_COMPUTE: dict[str, Compute] = {
    "roc_auc": lambda y, p, pr, c: skm.roc_auc_score(y == c[1], _positive_proba(pr)),
    "accuracy": lambda y, p, pr, c: skm.accuracy_score(y, p),
    "f1": lambda y, p, pr, c: skm.f1_score(y, p, pos_label=c[1]),
    "precision": lambda y, p, pr, c: skm.precision_score(y, p, pos_label=c[1], zero_division=0),
    "recall": lambda y, p, pr, c: skm.recall_score(y, p, pos_label=c[1], zero_division=0),
    "log_loss": lambda y, p, pr, c: skm.log_loss(y, pr, labels=c),
    "f1_macro": lambda y, p, pr, c: skm.f1_score(y, p, average="macro"),
    "roc_auc_ovr": lambda y, p, pr, c: skm.roc_auc_score(y, pr, multi_class="ovr", labels=c),
    "rmse": lambda y, p, pr, c: skm.root_mean_squared_error(y, p),
    "mae": lambda y, p, pr, c: skm.mean_absolute_error(y, p),
    "r2": lambda y, p, pr, c: skm.r2_score(y, p),
}


def metric_names(task: Task) -> list[str]:
    return list(METRICS[task])


def default_metric(task: Task) -> str:
    return DEFAULT_METRIC[task]


def greater_is_better(task: Task, name: str) -> bool:
    return METRICS[task][name]


def compute_metrics(
    task: Task,
    y_true: pd.Series,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    classes: np.ndarray,
    only: list[str] | None = None,
) -> dict[str, float]:
    """Every catalog metric for the task (or those in `only`); one undefined on this data (one class) is left out."""
    truth = np.asarray(y_true)
    results: dict[str, float] = {}
    for name in only or METRICS[task]:
        try:
            value = float(_COMPUTE[name](truth, np.asarray(y_pred), proba, classes))
        except ValueError:
            continue
        if np.isfinite(value):
            results[name] = value
    return results
