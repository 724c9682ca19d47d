"""Prequential quality: what the served model scored on a batch, joined to that batch's own labels.

The continuous-training flow scores a batch with the champion of that moment before any retraining the batch
triggers, so the scoring output is what users were served; its labels judge it (test-then-train)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from driftline.config import DriftlineConfig
from driftline.data.loading import as_text, load_batch
from driftline.data.prediction_log import PREDICTION
from driftline.modeling.metrics import compute_metrics

PROBA_PREFIX = "proba_"  # the scoring output's probability column of each class


def served_metrics(output: Path, batch: Path, cfg: DriftlineConfig) -> dict[str, float]:
    """The served model's metrics on the batch's labels (empty when the batch carries none).

    Rows are joined by `dataset.id_column` when there is one (the output carries it), else by position (the output
    keeps the batch's row order). Classes are compared as text, so a label 1 in the batch and 1.0 in a file agree."""
    dataset = cfg.dataset
    frame = load_batch(batch, dataset).frame
    if dataset.target not in frame:
        return {}
    scored = pd.read_parquet(output) if output.suffix.lower() in {".parquet", ".pq"} else pd.read_csv(output)
    if dataset.id_column:
        truth = frame.set_index(as_text(frame[dataset.id_column]))[dataset.target]
        labels = truth.reindex(as_text(scored[dataset.id_column])).reset_index(drop=True)
    else:
        labels = frame[dataset.target].reset_index(drop=True)
    known = labels.notna().to_numpy()
    if not known.any():
        return {}
    scored, labels = scored[known].reset_index(drop=True), labels[known].reset_index(drop=True)
    if not dataset.task.is_classification:
        return compute_metrics(
            dataset.task, labels.astype(float), scored[PREDICTION].to_numpy(dtype=float), None, np.array([])
        )
    classes = [column.removeprefix(PROBA_PREFIX) for column in scored if column.startswith(PROBA_PREFIX)]
    proba = scored[[f"{PROBA_PREFIX}{label}" for label in classes]].to_numpy(dtype=float) if classes else None
    return compute_metrics(
        dataset.task, as_text(labels).to_numpy(), as_text(scored[PREDICTION]).to_numpy(), proba, np.array(classes)
    )
