"""Batch scoring: champion predictions per row with id, probabilities, model version and time, written atomically."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sklearn.pipeline import Pipeline

from driftline.config import DriftlineConfig
from driftline.data import CSV_SUFFIXES, PARQUET_SUFFIXES, write_atomically
from driftline.errors import DriftlineError
from driftline.modeling import Predictions, predict

PREDICTION = "prediction"
MODEL_VERSION = "model_version"
SCORED_AT = "scored_at"


def output_frame(
    frame: pd.DataFrame, predictions: Predictions, cfg: DriftlineConfig, model_version: str, scored_at: datetime
) -> pd.DataFrame:
    columns: dict[str, object] = {}
    if cfg.dataset.id_column:
        columns[cfg.dataset.id_column] = frame[cfg.dataset.id_column].to_numpy()
    columns[PREDICTION] = predictions.labels
    if predictions.proba is not None:
        for index, label in enumerate(predictions.classes):
            columns[f"proba_{label}"] = predictions.proba[:, index]
    columns[MODEL_VERSION] = model_version
    columns[SCORED_AT] = pd.Timestamp(scored_at)
    return pd.DataFrame(columns, index=range(len(frame)))


def score_frame(
    model: Pipeline, frame: pd.DataFrame, cfg: DriftlineConfig, model_version: str, scored_at: datetime | None = None
) -> tuple[pd.DataFrame, Predictions]:
    predictions = predict(model, frame, cfg.dataset)
    return output_frame(frame, predictions, cfg, model_version, scored_at or datetime.now(UTC)), predictions


def default_output_path(cfg: DriftlineConfig, source: Path) -> Path:
    return cfg.output_dir / f"{source.stem}.scored.parquet"


def write_output(scored: pd.DataFrame, path: Path) -> Path:
    """Parquet or CSV by suffix, through a temp file and a rename: a crash never leaves half a file."""
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return write_atomically(path, lambda temp: scored.to_parquet(temp, index=False))
    if suffix in CSV_SUFFIXES:
        return write_atomically(path, lambda temp: scored.to_csv(temp, index=False))
    raise DriftlineError(f"--output {path}: unsupported suffix {suffix or '(none)'!r}; use .parquet or .csv")
