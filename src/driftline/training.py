"""One training run as a plain function: split, fit, measure on the holdout, capture the drift reference."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.pipeline import Pipeline

from driftline.config import DriftlineConfig
from driftline.drift import DriftReference, build_reference
from driftline.evaluation import holdout_metrics
from driftline.modeling import feature_frame, fit, holdout_strategy, predict, split_holdout


@dataclass(frozen=True)
class TrainedModel:
    model: Pipeline
    holdout: pd.DataFrame
    metrics: dict[str, float]
    reference: DriftReference
    params: dict[str, object]
    input_example: pd.DataFrame


def train_model(frame: pd.DataFrame, cfg: DriftlineConfig) -> TrainedModel:
    train, holdout = split_holdout(frame, cfg)
    model = fit(train, cfg)
    signal = predict(model, holdout, cfg.dataset).signal(cfg.dataset.task)
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
        metrics=holdout_metrics(model, holdout, cfg),
        reference=build_reference(train, signal, cfg),
        params=params,
        input_example=feature_frame(train.head(5), cfg.dataset),
    )
