"""Answered requests to the prediction log, after the response went out: one new file per batch of rows.

Files are written whole (temp name, then rename) by `prediction_log.append`, so monitoring never reads half a file.
"""

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from driftline.config import DriftlineConfig
from driftline.data import prediction_log
from driftline.modeling.pipeline import Predictions, predict
from driftline.serving.batcher import one_openmp_thread
from driftline.serving.follower import ServedModel

log = logging.getLogger("driftline.serve")

SOURCE = "online"  # the prediction log's `source` for rows the service answered
JOIN_EVERY = 100  # buffered request frames joined into one as they come, so no flush stalls the requests


class PredictionLogBuffer:
    """Rows answered online, written to the prediction log as one new file per `flush_rows` rows or `flush_seconds`."""

    def __init__(self, log_dir: Path, flush_rows: int, flush_seconds: float):
        self.log_dir, self.flush_rows, self.flush_seconds = log_dir, flush_rows, flush_seconds
        self._frames: list[pd.DataFrame] = []
        self._small = 0  # frames added since the last join
        self._rows = 0
        self._oldest: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="driftline-log-flusher", daemon=True)
        self.files_written = 0

    def add(self, rows: pd.DataFrame) -> None:
        with self._lock:
            self._frames.append(rows)
            self._small += 1
            if self._small >= JOIN_EVERY:  # one join of 1,500 one-row frames at flush held the GIL for ~0.3 s
                self._frames[-JOIN_EVERY:] = [pd.concat(self._frames[-JOIN_EVERY:], ignore_index=True)]
                self._small = 0
            self._rows += len(rows)
            self._oldest = self._oldest or time.monotonic()
            due = self._rows >= self.flush_rows
        if due:
            self.flush()

    def flush(self) -> Path | None:
        with self._lock:
            frames, self._frames, self._rows, self._oldest, self._small = self._frames, [], 0, None, 0
        if not frames:
            return None
        path = prediction_log.append(pd.concat(frames, ignore_index=True), self.log_dir, SOURCE)
        self.files_written += 1
        return path

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            oldest = self._oldest
            if oldest is not None and time.monotonic() - oldest >= self.flush_seconds:
                try:
                    self.flush()
                except OSError as error:  # disk full or gone: the rows are lost, the service keeps answering
                    log.error("could not write the prediction log: %s", error)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()


@dataclass
class Answered:
    """What the background step logs after the response went out."""

    request_id: str
    frame: pd.DataFrame
    arms: list[tuple[str, ServedModel, np.ndarray, Predictions]]  # (served_by, model, row mask, predictions)
    latency_ms: float
    scored_at: datetime
    shadow: ServedModel | None  # with shadow on: the challenger, which scores the same rows off the response path


def log_answer(answered: Answered, cfg: DriftlineConfig, buffer: PredictionLogBuffer) -> None:
    """Prediction-log rows of one request; with shadow on, the challenger scores the same rows here, beside them."""
    one_openmp_thread()
    parts = []
    for arm, served, mask, predictions in answered.arms:
        rows = prediction_log.records(
            answered.frame[mask].reset_index(drop=True), predictions, cfg, served.ref.version, SOURCE,
            answered.request_id, answered.scored_at, served_by=arm, latency_ms=answered.latency_ms,
        )  # fmt: skip
        if answered.shadow is not None:
            shadow = predict(answered.shadow.model, answered.frame[mask], cfg.dataset)
            prediction_log.add_shadow(rows, shadow, answered.shadow.ref.version, cfg.dataset.task)
        parts.append(rows)
    buffer.add(pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0])
