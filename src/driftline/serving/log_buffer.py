"""Answered requests to the prediction log, off the response path: one new file per batch of rows.

A request only appends what it answered (`PredictionLogBuffer.add`). The buffer's own thread turns the waiting
answers into log rows many requests at a time (one frame, and with shadow on one challenger call, per batch), so
no pandas work and no shadow prediction is done per request. Files are written whole (temp name, then rename) by
`prediction_log.append`, so monitoring never reads half a file.
"""

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from driftline.config import DriftlineConfig
from driftline.data import prediction_log
from driftline.modeling.fast import Row, request_frame
from driftline.modeling.pipeline import Predictions
from driftline.modeling.threads import limit_openmp
from driftline.serving.follower import ServedModel

log = logging.getLogger("driftline.serve")

SOURCE = "online"  # the prediction log's `source` for rows the service answered
JOIN_EVERY = 100  # answered requests turned into log rows together
TICK_SECONDS = 0.5  # how often the buffer's thread looks at what waits, when nothing wakes it sooner


@dataclass(frozen=True)
class Answered:
    """What one request answered, logged after the response went out."""

    request_id: str
    rows: Sequence[Row]  # as validated: the inputs the log keeps
    arms: list[tuple[str, ServedModel, Sequence[int], Predictions]]  # (served_by, model, row positions, predictions)
    latency_ms: float
    scored_at: datetime
    shadow: ServedModel | None  # with shadow on: the challenger, which scores the same rows off the response path


class PredictionLogBuffer:
    """Rows answered online, written to the prediction log as one new file per `flush_rows` rows or `flush_seconds`."""

    def __init__(self, cfg: DriftlineConfig, folder: Path):
        self.cfg, self.folder = cfg, folder  # folder: the registry's prediction log
        self.flush_rows, self.flush_seconds = cfg.serving.log_flush_rows, cfg.serving.log_flush_seconds
        self._answers: list[Answered] = []  # not yet turned into log rows
        self._frames: list[pd.DataFrame] = []  # log rows not yet written
        self._rows = 0
        self._oldest: float | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="driftline-log-writer", daemon=True)
        self.files_written = 0

    def add(self, answered: Answered) -> None:
        """On the request path: an append; the buffer's thread does the rest."""
        with self._lock:
            self._answers.append(answered)
            self._rows += len(answered.rows)
            self._oldest = self._oldest or time.monotonic()
            due = len(self._answers) >= JOIN_EVERY or self._rows >= self.flush_rows
        if due:
            self._wake.set()

    def _join(self) -> None:
        with self._lock:
            answers, self._answers = self._answers, []
        if answers:
            rows = log_rows(answers, self.cfg)
            with self._lock:
                self._frames.append(rows)

    def flush(self) -> None:
        """Everything answered so far into one new log file."""
        self._join()
        with self._lock:
            frames, self._frames, self._rows, self._oldest = self._frames, [], 0, None
        if frames:
            prediction_log.append(pd.concat(frames, ignore_index=True), self.folder, SOURCE)
            self.files_written += 1

    def _run(self) -> None:
        limit_openmp(1)
        while not self._stop.is_set():
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()
            try:
                oldest = self._oldest
                if self._rows >= self.flush_rows or (oldest and time.monotonic() - oldest >= self.flush_seconds):
                    self.flush()
                else:
                    self._join()
            except OSError as error:  # disk full or gone: the rows are lost, the service keeps answering
                log.error("could not write the prediction log: %s", error)
            except Exception:  # a challenger failing in shadow must not stop the log: the rows are lost, logged
                log.exception("could not turn answered requests into prediction-log rows")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.flush()


def logged_beside(cfg: DriftlineConfig) -> list[str]:
    """The gate's watched columns (slices, fairness) and an A/B test's unit column that are not model inputs: a
    request may carry them, so its rows are sliced live like batch rows and joined to outcomes; they are logged and
    never given to the model."""
    inputs = {cfg.dataset.id_column, *cfg.dataset.feature_names}
    beside = [*cfg.gate.watched_columns, *([cfg.ab.unit_column] if cfg.ab.unit_column else [])]
    return [name for name in dict.fromkeys(beside) if name not in inputs]


def log_rows(answers: list[Answered], cfg: DriftlineConfig) -> pd.DataFrame:
    """The prediction-log rows of many answered requests: one frame per model that answered (request order within
    it); with shadow on, the challenger scores those rows in one call and its answers go beside them."""
    groups: dict[tuple[str, int, int], list[tuple[Answered, ServedModel, Sequence[int], Predictions]]] = {}
    for answered in answers:
        for arm, served, positions, predictions in answered.arms:
            key = (arm, id(served), id(answered.shadow))
            groups.setdefault(key, []).append((answered, served, positions, predictions))
    parts, beside = [], logged_beside(cfg)
    for (arm, _, _), group in groups.items():
        rows = [answered.rows[i] for answered, _, positions, _ in group for i in positions]
        counts = [len(positions) for _, _, positions, _ in group]
        served, requests = group[0][1], [answered for answered, *_ in group]
        records = prediction_log.records(
            request_frame(rows, cfg.dataset, beside),
            _joined([predictions for *_, predictions in group]),
            cfg,
            served.ref.version,
            SOURCE,
            np.repeat([answered.request_id for answered in requests], counts),
            [answered.scored_at for answered, count in zip(requests, counts, strict=True) for _ in range(count)],
            served_by=arm,
            latency_ms=np.repeat([answered.latency_ms for answered in requests], counts),
        )
        shadow = group[0][0].shadow
        if shadow is not None:
            prediction_log.add_shadow(records, shadow.predict(rows), shadow.ref.version, cfg.dataset.task)
        parts.append(records)
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _joined(parts: list[Predictions]) -> Predictions:
    if len(parts) == 1:
        return parts[0]
    proba = np.concatenate([p.proba for p in parts]) if parts[0].proba is not None else None
    return Predictions(np.concatenate([p.labels for p in parts]), proba, parts[0].classes)
