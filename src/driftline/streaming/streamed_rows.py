"""A micro-batch's prediction-log rows as Arrow columns, built from its checked rows with numpy: no DataFrame.

The columns and their order are those of `prediction_log.records` on `request_frame(rows)` (inputs as a request
frame reads them, outputs, version, source, time, latency), then where each message sat (topic, partition, offset).
Numeric inputs are always float64 (a frame makes a column without nulls int64), which every reader takes alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pyarrow as pa

from driftline.config import DatasetConfig, DriftlineConfig, FeatureType
from driftline.data import prediction_log
from driftline.modeling.fast import Row, category_text
from driftline.modeling.pipeline import Predictions
from driftline.streaming.messages import CheckedBatch

Columns = dict[str, np.ndarray | list]


def input_columns(rows: Sequence[Row], dataset: DatasetConfig, beside: Sequence[str] = ()) -> Columns:
    """The rows' inputs by column, as `request_frame` reads them: numbers as float64 (None → NaN); the id, the
    categories and the other logged fields (`beside`) as text, None missing."""
    columns: Columns = {}
    for name in dict.fromkeys([*([dataset.id_column] if dataset.id_column else []), *dataset.feature_names, *beside]):
        if dataset.features.get(name) is FeatureType.numeric:
            columns[name] = np.array([row[name] for row in rows], dtype=np.float64)
        else:
            columns[name] = [category_text(row.get(name)) for row in rows]
    return columns


def unlogged_rows(
    cfg: DriftlineConfig,
    inputs: Columns,
    checked: CheckedBatch,
    predictions: Predictions,
    version: str,
    latency_ms: float,
    scored_at: datetime,
    logged: dict[int, int],
) -> pa.Table:
    """The micro-batch's prediction-log rows (with topic, partition, offset) past what `logged` says each partition
    has in the log: a micro-batch scored again after a crash is not logged twice."""
    topic, count = cfg.streaming.input_topic, len(checked.rows)
    partitions = np.fromiter((m.partition for m in checked.accepted), dtype=np.int64, count=count)
    offsets = np.fromiter((m.offset for m in checked.accepted), dtype=np.int64, count=count)
    columns: dict[str, pa.Array] = {
        name: pa.array(values, pa.float64() if isinstance(values, np.ndarray) else pa.string())
        for name, values in inputs.items()
    }
    columns[prediction_log.PREDICTION] = pa.array(predictions.labels)
    columns[prediction_log.SIGNAL] = pa.array(predictions.signal(cfg.dataset.task))
    if predictions.proba is not None:
        for index, label in enumerate(predictions.classes):
            columns[f"proba_{label}"] = pa.array(predictions.proba[:, index])
    columns[prediction_log.MODEL_VERSION] = _same(version, count)
    columns[prediction_log.SERVED_BY] = _same("champion", count)
    columns[prediction_log.SOURCE] = _same(f"kafka:{topic}", count)
    columns[prediction_log.SOURCE_FINGERPRINT] = pa.array([m.coordinates for m in checked.accepted], pa.string())
    stamp = np.datetime64(scored_at.replace(tzinfo=None), "us")  # UTC, as the column's type says
    columns[prediction_log.SCORED_AT] = pa.array(np.full(count, stamp), pa.timestamp("us", tz="UTC"))
    columns[prediction_log.LATENCY_MS] = pa.array(np.full(count, latency_ms, dtype=np.float64))
    columns[prediction_log.KAFKA_TOPIC] = _same(topic, count)
    columns[prediction_log.KAFKA_PARTITION] = pa.array(partitions)
    columns[prediction_log.KAFKA_OFFSET] = pa.array(offsets)
    table = pa.table(columns)
    fresh = offsets > np.array([logged.get(int(p), -1) for p in partitions], dtype=np.int64)
    return table if fresh.all() else table.filter(pa.array(fresh))


def _same(text: str, count: int) -> pa.Array:
    return pa.array([text] * count, pa.string())
