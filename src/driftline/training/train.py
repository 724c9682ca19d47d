"""One training run as a plain function: split, fit, measure on the holdout, capture the drift reference, fit the
performance estimator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from sklearn.pipeline import Pipeline

from driftline.config import DriftlineConfig
from driftline.errors import DataRejected
from driftline.evaluation.measure import metrics_of
from driftline.modeling.pipeline import Predictions, feature_frame, fit, holdout_strategy, predict, split_holdout
from driftline.monitoring.estimation import EstimatorUnavailable, PerformanceEstimator, fit_estimator
from driftline.monitoring.reference import DriftReference, build_reference
from driftline.validation.labels import LabelRules, label_problems

MIN_TRAINING_ROWS = 20


def untrainable_reasons(frame: pd.DataFrame, cfg: DriftlineConfig) -> list[str]:
    """Why this data cannot train a model of the configured task, before any time is spent fitting: too few rows,
    labels that break the label rules (driftline.validation.labels), too few classes or rows per class."""
    target = cfg.dataset.target
    reasons = []
    if len(frame) < MIN_TRAINING_ROWS:
        reasons.append(f"only {len(frame)} rows; training needs at least {MIN_TRAINING_ROWS}")
    broken_labels = label_problems(frame, LabelRules.of(cfg))
    reasons += broken_labels
    if broken_labels or not cfg.dataset.task.is_classification:
        return reasons
    counts = frame[target].value_counts()
    if len(counts) < 2:
        reasons.append(
            f"target {target!r} has one class {sorted(map(str, counts.index))}; a classifier needs two or more"
        )
    elif counts.min() < 2:
        reasons.append(f"class {counts.idxmin()!r} of target {target!r} has one row; each class needs at least two")
    return reasons


@dataclass(frozen=True)
class TrainedModel:
    model: Pipeline
    holdout: pd.DataFrame
    metrics: dict[str, float]
    reference: DriftReference
    params: dict[str, object]
    input_example: pd.DataFrame
    # what estimates the version's metric before labels; unavailable (with why) when it cannot be fitted, None when
    # estimation is off
    estimator: PerformanceEstimator | EstimatorUnavailable | None = None


def holdout_estimator(
    holdout: pd.DataFrame, predictions: Predictions, cfg: DriftlineConfig
) -> PerformanceEstimator | EstimatorUnavailable | None:
    """The estimator of the primary metric, fitted on the holdout's answers and labels (estimation.enabled)."""
    if not cfg.estimation.enabled:
        return None
    dataset = cfg.dataset
    return fit_estimator(
        feature_frame(holdout, dataset),
        holdout[dataset.target],
        predictions,
        dataset.task,
        cfg.primary_metric,
        cfg.estimation,
    )


def train_model(
    frame: pd.DataFrame, cfg: DriftlineConfig, source: str = "training data", file_rows: Sequence[int] = ()
) -> TrainedModel:
    """Split, fit, measure on the holdout and capture the drift reference. `file_rows`: the rows of each file in
    `frame`, the batch size calibrated drift thresholds default to."""
    reasons = untrainable_reasons(frame, cfg)
    if reasons:
        raise DataRejected(source, reasons)
    train, holdout = split_holdout(frame, cfg)
    model = fit(train, cfg)
    answers = predict(model, holdout, cfg.dataset)
    signal = answers.signal(cfg.dataset.task)
    params = {
        "estimator": cfg.model.estimator,
        **{f"estimator.{key}": value for key, value in cfg.model.params.items()},
        "seed": cfg.model.seed,
        "holdout.strategy": holdout_strategy(cfg),
        "holdout.fraction": cfg.model.holdout.fraction,
        "rows.train": len(train),
        "rows.holdout": len(holdout),
        "features": ",".join(cfg.dataset.feature_names),
        "config_fingerprint": cfg.fingerprint,
    }
    return TrainedModel(
        model=model,
        holdout=holdout,
        metrics=metrics_of(answers, holdout[cfg.dataset.target], cfg),
        reference=build_reference(train, holdout, signal, cfg, file_rows),
        params=params,
        input_example=feature_frame(train.head(5), cfg.dataset),
        estimator=holdout_estimator(holdout, answers, cfg),
    )
