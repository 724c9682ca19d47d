"""Permutation importance of both models, and whether the challenger's top features moved away from the champion's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from driftline.config import DriftlineConfig
from driftline.evaluation.measure import primary_metric_of
from driftline.modeling.metrics import greater_is_better
from driftline.modeling.pipeline import Predictions, feature_frame


@dataclass(frozen=True)
class Explanation:
    """Permutation importance (drop of the primary metric when a feature is shuffled) of both models."""

    challenger: dict[str, float]
    champion: dict[str, float] | None
    top_overlap: float | None  # share of the champion's top features that are also the challenger's
    flagged: bool
    note: str


def permutation_importances(model: Pipeline, holdout: pd.DataFrame, cfg: DriftlineConfig) -> dict[str, float]:
    """Mean drop of the primary metric when each feature is shuffled, on a bounded seeded sample of the holdout."""
    from sklearn.inspection import permutation_importance

    settings = cfg.governance.explainability
    sample = holdout.sample(n=min(settings.sample_rows, len(holdout)), random_state=cfg.model.seed)
    sign = 1.0 if greater_is_better(cfg.dataset.task, cfg.primary_metric) else -1.0

    def score(estimator: Pipeline, features: pd.DataFrame, truth: pd.Series) -> float:
        if cfg.dataset.task.is_classification:  # one pass: labels from the probabilities, not a second predict
            proba = estimator.predict_proba(features)
            found = Predictions(estimator.classes_[proba.argmax(axis=1)], proba, estimator.classes_)
        else:
            found = Predictions(estimator.predict(features), None, np.array([]))
        value = primary_metric_of(found, truth, cfg)
        return sign * (value if value is not None else float("nan"))

    found = permutation_importance(
        model,
        feature_frame(sample, cfg.dataset),
        sample[cfg.dataset.target],
        scoring=score,
        n_repeats=settings.repeats,
        random_state=cfg.model.seed,
        n_jobs=1,
    )
    return {name: float(value) for name, value in zip(cfg.dataset.feature_names, found.importances_mean, strict=True)}


def top_features(importances: dict[str, float], count: int) -> list[str]:
    return [name for name, _ in sorted(importances.items(), key=lambda item: -item[1])[:count]]


def explain(challenger: dict[str, float], champion: dict[str, float] | None, cfg: DriftlineConfig) -> Explanation:
    """Flag a challenger whose top features share too few with the champion's: it decides on something else."""
    settings = cfg.governance.explainability
    count = min(settings.top_features, len(challenger))
    mine = top_features(challenger, count)
    if champion is None:
        return Explanation(challenger, None, None, False, f"top features: {', '.join(mine)}")
    theirs = top_features(champion, count)
    overlap = len(set(mine) & set(theirs)) / count
    flagged = overlap < settings.min_top_overlap
    note = f"top {count}: challenger {mine} vs champion {theirs} (shared {overlap:.0%})"
    return Explanation(challenger, champion, overlap, flagged, ("TOP FEATURES CHANGED: " if flagged else "") + note)
