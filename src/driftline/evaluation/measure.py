"""Metrics of predictions against the truth: on a holdout, on a subset of its rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from driftline.config import DriftlineConfig
from driftline.modeling.metrics import compute_metrics
from driftline.modeling.pipeline import Predictions, predict


def metrics_of(predictions: Predictions, truth: pd.Series, cfg: DriftlineConfig) -> dict[str, float]:
    return compute_metrics(cfg.dataset.task, truth, predictions.labels, predictions.proba, predictions.classes)


def holdout_metrics(model: Pipeline, holdout: pd.DataFrame, cfg: DriftlineConfig) -> dict[str, float]:
    return metrics_of(predict(model, holdout, cfg.dataset), holdout[cfg.dataset.target], cfg)


def primary_metric_of(predictions: Predictions, truth: pd.Series, cfg: DriftlineConfig) -> float | None:
    """The primary metric alone: permutation importance and slices call this many times per training."""
    return compute_metrics(
        cfg.dataset.task, truth, predictions.labels, predictions.proba, predictions.classes, only=[cfg.primary_metric]
    ).get(cfg.primary_metric)


def subset(predictions: Predictions, mask: np.ndarray) -> Predictions:
    proba = predictions.proba[mask] if predictions.proba is not None else None
    return Predictions(predictions.labels[mask], proba, predictions.classes)
