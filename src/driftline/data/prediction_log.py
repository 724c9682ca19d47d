"""The prediction log: every scored row with its inputs, outputs, model version, time and source.

Batch scoring, the online service and the streaming consumer append the same Parquet format; the monitoring flow
reads what was logged since its last run (drift), and the label join reads it once ground truth arrives
(performance). Each append is one file, written to a temp name and renamed, so readers never see half a file. File
names start with a UTC timestamp, so their order is the order of writing and "everything after file X" is a
watermark that survives restarts.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from driftline.config import DriftlineConfig
from driftline.data.storage import write_atomically
from driftline.modeling.pipeline import Predictions

SOURCE = "source"
SOURCE_FINGERPRINT = "source_fingerprint"
MODEL_VERSION = "model_version"
SERVED_BY = "served_by"  # which alias answered: champion, or challenger for canary rows
SCORED_AT = "scored_at"
LATENCY_MS = "latency_ms"
PREDICTION = "prediction"
SIGNAL = "prediction_signal"  # what prediction drift compares with the reference
# With shadow serving, the challenger's answer to the same row, logged beside the one that was returned.
SHADOW_PREDICTION = "shadow_prediction"
SHADOW_SIGNAL = "shadow_prediction_signal"
SHADOW_MODEL_VERSION = "shadow_model_version"
STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
# Streamed rows: where each input message sat. A file of streamed rows is named by its topic and each partition's
# last offset in it (`stream_key`), so a micro-batch scored again after a crash is not logged twice.
KAFKA_TOPIC, KAFKA_PARTITION, KAFKA_OFFSET = "kafka_topic", "kafka_partition", "kafka_offset"
PARTITIONS_PER_FILE = 12  # a streamed file's name lists its partitions: at most this many, so names stay short


@dataclass(frozen=True)
class LogWindow:
    """Rows read from a run of log files: what one monitoring run looks at."""

    files: list[Path]
    frame: pd.DataFrame

    @property
    def through(self) -> str | None:
        """The watermark: the name of the newest file read."""
        return self.files[-1].name if self.files else None

    @property
    def name(self) -> str:
        if not self.files:
            return "prediction log (nothing new)"
        return f"prediction log {_stamp_of(self.files[0]):%Y-%m-%d %H:%M} to {_stamp_of(self.files[-1]):%Y-%m-%d %H:%M}"

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256("\n".join(f.name for f in self.files).encode()).hexdigest()


def records(
    frame: pd.DataFrame,
    predictions: Predictions,
    cfg: DriftlineConfig,
    model_version: str | np.ndarray,
    source: str,
    source_fingerprint: str | np.ndarray,
    scored_at: datetime | list[datetime],
    served_by: str | np.ndarray = "champion",
    latency_ms: float | np.ndarray | None = None,
) -> pd.DataFrame:
    """One log row per scored row: id, the model's inputs as given (and the gate's slice and fairness columns),
    outputs, and where they came from."""
    columns = record_columns(
        frame, predictions, cfg, model_version, source, source_fingerprint, scored_at, served_by, latency_ms
    )
    return pd.DataFrame(columns, index=range(len(frame)))


def record_columns(
    frame: pd.DataFrame,
    predictions: Predictions,
    cfg: DriftlineConfig,
    model_version: str | np.ndarray,
    source: str,
    source_fingerprint: str,
    scored_at: datetime,
    served_by: str | np.ndarray = "champion",
    latency_ms: float | np.ndarray | None = None,
) -> dict[str, Any]:
    """The log rows as columns: arrays, or one value for every row (what a streamed writer takes without a frame)."""
    dataset = cfg.dataset
    columns: dict[str, Any] = {}
    for name in dict.fromkeys(
        [
            dataset.id_column,
            dataset.event_time_column,
            *dataset.feature_names,
            *cfg.gate.watched_columns,
            cfg.ab.unit_column,  # an A/B test's unit: outcomes are joined to arms by it
        ]
    ):
        if name and name in frame:
            # Times as their array: to_numpy() makes one Timestamp object per value. The rest as plain arrays: an
            # object array's .array is converted to one again, counting its missing values on the way.
            column = frame[name]
            columns[name] = column.array if isinstance(column.dtype, pd.DatetimeTZDtype) else column.to_numpy()
    columns[PREDICTION] = predictions.labels
    columns[SIGNAL] = predictions.signal(dataset.task)
    if predictions.proba is not None:
        for index, label in enumerate(predictions.classes):
            columns[f"proba_{label}"] = predictions.proba[:, index]
    columns[MODEL_VERSION] = model_version if isinstance(model_version, str) else model_version.astype(str)
    columns[SERVED_BY] = served_by
    columns[SOURCE] = source
    columns[SOURCE_FINGERPRINT] = source_fingerprint
    # one time for a batch, or one per row (the service logs many requests at once); microseconds either way
    columns[SCORED_AT] = (
        pd.Timestamp(scored_at)
        if isinstance(scored_at, datetime)
        else (pd.DatetimeIndex(scored_at).as_unit("us").array)
    )
    columns[LATENCY_MS] = np.nan if latency_ms is None else latency_ms
    return columns


def add_shadow(rows: pd.DataFrame | dict[str, Any], shadow: Predictions, version: str, task) -> pd.DataFrame:
    """The challenger's answers to the same rows, beside the served ones (shadow rollout or serving)."""
    rows[SHADOW_PREDICTION] = shadow.labels
    rows[SHADOW_SIGNAL] = shadow.signal(task)
    rows[SHADOW_MODEL_VERSION] = version
    return rows


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "batch"


def _stamp_of(path: Path) -> datetime:
    return datetime.strptime(path.name.split("-", 1)[0], STAMP_FORMAT).replace(tzinfo=UTC)


def new_file_path(log_dir: Path, source: str, now: datetime | None = None, key: str | None = None) -> Path:
    """Where a log file written now goes: under date=YYYY-MM-DD/, named to sort by time of writing.

    `key` (see `batch_key`) names what was scored; without one (the online service) a random tag keeps names apart.
    """
    now = now or datetime.now(UTC)
    tag = key or uuid.uuid4().hex[:8]
    return log_dir / f"date={now:%Y-%m-%d}" / f"{now:{STAMP_FORMAT}}-{tag}-{_slug(source)}.parquet"


def batch_key(source_fingerprint: str, model_version: str) -> str:
    """The same content scored by the same version (a rerun, a copy under another name): its rows are logged once."""
    return "b" + hashlib.sha256(f"{source_fingerprint}|{model_version}".encode()).hexdigest()[:15]


def logged_already(log_dir: Path, key: str) -> Path | None:
    """The log file a run with this key committed (whole: log files appear by rename), if one did."""
    return next(iter(sorted(log_dir.glob(f"date=*/*-{key}-*.parquet"))), None) if log_dir.is_dir() else None


def file_for(log_dir: Path, source: str, key: str, now: datetime | None = None) -> Path:
    """Where this run's rows go: the file an earlier, interrupted run of the same key logged them to, or a new one."""
    return logged_already(log_dir, key) or new_file_path(log_dir, source, now, key)


def append(rows: pd.DataFrame, log_dir: Path, source: str, now: datetime | None = None, key: str | None = None) -> Path:
    """Write rows as one new log file under date=YYYY-MM-DD/; the name sorts by time of writing.

    With a `key` logged before (a rerun after a crash), nothing is written: those rows are in the log already.
    """
    path = logged_already(log_dir, key) if key else None
    if path is not None:
        return path
    return write_atomically(new_file_path(log_dir, source, now, key), lambda temp: rows.to_parquet(temp, index=False))


def log_files(log_dir: Path) -> list[Path]:
    """Every log file, oldest first."""
    if not log_dir.is_dir():
        return []
    return sorted(log_dir.glob("date=*/*.parquet"), key=lambda path: path.name)


def pending(log_dir: Path, after: str | None, settle_seconds: float, now: datetime | None = None) -> list[Path]:
    """Files written after the watermark `after` and older than `settle_seconds`.

    The settle time covers writers whose timestamped file lands a moment after a newer one: it is read next time.
    """
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=settle_seconds)
    return [f for f in log_files(log_dir) if (after is None or f.name > after) and _stamp_of(f) <= cutoff]


def read_window(files: list[Path]) -> LogWindow:
    frames = [pd.read_parquet(path) for path in files]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return LogWindow(files=list(files), frame=frame)


def _topic_tag(topic: str) -> str:
    return "k" + hashlib.sha256(topic.encode()).hexdigest()[:8]


def stream_key(topic: str, last_offsets: dict[int, int]) -> str:
    """The key of streamed rows: the topic's tag and each partition's last offset among them (read back by
    `logged_through`)."""
    return _topic_tag(topic) + "".join(f"p{partition}o{offset}" for partition, offset in sorted(last_offsets.items()))


def logged_through(log_dir: Path, topic: str) -> dict[int, int]:
    """Per partition of `topic`: the last offset logged. Every scored message up to it is in the log already."""
    marks: dict[int, int] = {}
    if not log_dir.is_dir():
        return marks
    for path in log_dir.glob(f"date=*/*-{_topic_tag(topic)}p*.parquet"):
        for partition, offset in re.findall(r"p(\d+)o(\d+)", path.name.split("-")[1]):
            marks[int(partition)] = max(marks.get(int(partition), -1), int(offset))
    return marks


def append_streamed(rows: pa.Table, log_dir: Path, topic: str, now: datetime | None = None) -> list[Path]:
    """Streamed rows (with KAFKA_PARTITION and KAFKA_OFFSET) as new log files, named by `stream_key`: one file per
    PARTITIONS_PER_FILE partitions, each written whole (a crash leaves a partition's rows all logged or none)."""
    row_partitions = rows.column(KAFKA_PARTITION).to_numpy()
    row_offsets = rows.column(KAFKA_OFFSET).to_numpy()
    partitions = [int(p) for p in np.unique(row_partitions)]
    paths = []
    for start in range(0, len(partitions), PARTITIONS_PER_FILE):
        chunk = partitions[start : start + PARTITIONS_PER_FILE]
        part = rows.filter(pa.array(np.isin(row_partitions, chunk))) if len(chunk) < len(partitions) else rows
        key = stream_key(topic, {p: int(row_offsets[row_partitions == p].max()) for p in chunk})
        path = new_file_path(log_dir, f"kafka:{topic}", now, key)
        paths.append(write_atomically(path, lambda temp, part=part: pq.write_table(part, temp)))
    return paths
