"""Model building: a scikit-learn Pipeline derived from the feature types, the holdout split, and predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from driftline.config import DatasetConfig, DriftlineConfig, Task

MISSING_CATEGORY = "__missing__"


@dataclass(frozen=True)
class Predictions:
    labels: np.ndarray
    proba: np.ndarray | None  # one column per class, in `classes` order; None for regression
    classes: np.ndarray

    def signal(self, task: Task) -> np.ndarray:
        """The one-dimensional output that prediction drift watches."""
        if task is Task.binary:
            return self.proba[:, 1]
        if task is Task.regression:
            return self.labels.astype(float)
        return self.labels


def feature_frame(frame: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """Only the model's inputs, numerics as float with infinities treated as missing."""
    features = frame[dataset.feature_names].copy()
    for column in dataset.numeric_features:
        features[column] = (
            pd.to_numeric(features[column], errors="coerce").astype(float).replace([np.inf, -np.inf], np.nan)
        )
    return features


def build_pipeline(cfg: DriftlineConfig) -> Pipeline:
    estimator = cfg.model.estimator_class()(**cfg.model.params)
    if "random_state" in estimator.get_params() and "random_state" not in cfg.model.params:
        estimator.set_params(random_state=cfg.model.seed)
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    preprocess = ColumnTransformer(
        [
            ("numeric", numeric, cfg.dataset.numeric_features),
            ("categorical", categorical, cfg.dataset.categorical_features),
        ]
    )
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def holdout_strategy(cfg: DriftlineConfig) -> str:
    strategy = cfg.model.holdout.strategy
    if strategy == "auto":
        return "time" if cfg.dataset.event_time_column else "random"
    return strategy


def split_holdout(frame: pd.DataFrame, cfg: DriftlineConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train/holdout split: the most recent rows when time-based, so after drift both models face the new reality."""
    fraction = cfg.model.holdout.fraction
    if holdout_strategy(cfg) == "time":
        ordered = frame.sort_values(cfg.dataset.event_time_column, kind="stable")
        cut = int(round(len(ordered) * (1 - fraction)))
        return ordered.iloc[:cut], ordered.iloc[cut:]
    target = frame[cfg.dataset.target]
    stratify = target if cfg.dataset.task.is_classification and target.value_counts().min() >= 2 else None
    return train_test_split(frame, test_size=fraction, random_state=cfg.model.seed, stratify=stratify)


def fit(frame: pd.DataFrame, cfg: DriftlineConfig) -> Pipeline:
    pipeline = build_pipeline(cfg)
    pipeline.fit(feature_frame(frame, cfg.dataset), frame[cfg.dataset.target])
    return pipeline


# Classifiers whose `predict` is the most probable class of `predict_proba`: one pass through the model gives both.
LABEL_IS_MOST_PROBABLE = {
    "HistGradientBoostingClassifier",
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "DecisionTreeClassifier",
}


def predict(model: Pipeline, frame: pd.DataFrame, dataset: DatasetConfig) -> Predictions:
    # One pass through the preprocessing for both outputs (the calls Pipeline.predict and predict_proba each make).
    return estimator_predictions(model[-1], model[:-1].transform(feature_frame(frame, dataset)), dataset.task)


def estimator_predictions(
    estimator, transformed: np.ndarray, task: Task, proba: np.ndarray | None = None
) -> Predictions:
    """The final estimator's answers on preprocessed rows (`proba` when already computed); for tree classifiers the
    label is the most probable class, so one pass through the trees gives both."""
    if not task.is_classification:
        return Predictions(labels=estimator.predict(transformed), proba=None, classes=np.array([]))
    if proba is None:
        proba = estimator.predict_proba(transformed)
    if type(estimator).__name__ in LABEL_IS_MOST_PROBABLE:
        labels = estimator.classes_[np.argmax(proba, axis=1)]
    else:
        labels = estimator.predict(transformed)
    return Predictions(labels=labels, proba=proba, classes=estimator.classes_)
