"""Batch scoring: champion predictions per row with id, probabilities, model version and time, written atomically.

A batch already in memory is scored whole (`score_batch`). Files are streamed chunk by chunk into `PendingScores`
(the chunks of a file validated as it is read, in one pass, or `score_file`: a file read again), so memory does not
grow with the file; `partitions` cuts a file into row ranges scored apart and joined.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from driftline.config import DriftlineConfig
from driftline.data import paths, prediction_log
from driftline.data.chunking import Chunk, DataFile, read_ahead, read_chunks
from driftline.data.loading import CSV_SUFFIXES, PARQUET_SUFFIXES, DataBatch
from driftline.data.storage import IncrementalFile, space_named, write_atomically
from driftline.errors import DriftlineError
from driftline.governance import rollout
from driftline.modeling.pipeline import Predictions
from driftline.modeling.threads import limit_openmp, usable_cores
from driftline.registry import registry_folders

PREDICTION = "prediction"
MODEL_VERSION = "model_version"
SERVED_BY = "served_by"  # under a canary rollout or an A/B test: champion or challenger, per row
ARM = "arm"  # under an A/B test: A or B, per row (by its unit)
SCORED_AT = "scored_at"
MAX_ANSWER_THREADS = 4


def output_frame(
    frame: pd.DataFrame,
    predictions: Predictions,
    cfg: DriftlineConfig,
    model_version: str | np.ndarray,
    scored_at: datetime,
    served_by: str | np.ndarray | None = None,
    arm: np.ndarray | None = None,
) -> pd.DataFrame:
    columns = output_columns(frame, predictions, cfg, model_version, scored_at, served_by, arm)
    return pd.DataFrame(columns, index=range(len(frame)))


def output_columns(
    frame: pd.DataFrame,
    predictions: Predictions,
    cfg: DriftlineConfig,
    model_version: str | np.ndarray,
    scored_at: datetime,
    served_by: str | np.ndarray | None = None,
    arm: np.ndarray | None = None,
) -> dict[str, Any]:
    """The output rows as columns: arrays, or one value for every row."""
    columns: dict[str, Any] = {}
    if cfg.dataset.id_column:
        columns[cfg.dataset.id_column] = frame[cfg.dataset.id_column].to_numpy()
    columns[PREDICTION] = predictions.labels
    if predictions.proba is not None:
        for index, label in enumerate(predictions.classes):
            columns[f"proba_{label}"] = predictions.proba[:, index]
    columns[MODEL_VERSION] = model_version
    if served_by is not None and not isinstance(served_by, str):
        columns[SERVED_BY] = served_by
    if arm is not None:
        columns[ARM] = arm
    columns[SCORED_AT] = pd.Timestamp(scored_at)
    return columns


def score_frame(
    model: Pipeline,
    frame: pd.DataFrame,
    cfg: DriftlineConfig,
    model_version: str,
    scored_at: datetime | None = None,
    challenger: rollout.Challenger | None = None,
) -> tuple[pd.DataFrame, rollout.Answered]:
    """The output rows (what is served) and the answers behind them (with the shadow's, under a rollout)."""
    answered = rollout.answer(model, model_version, frame, cfg.dataset, challenger)
    scored = output_frame(
        frame,
        answered.predictions,
        cfg,
        answered.model_version,
        scored_at or datetime.now(UTC),
        answered.served_by,
        answered.arm,
    )
    return scored, answered


def log_records(
    frame: pd.DataFrame,
    answered: rollout.Answered,
    cfg: DriftlineConfig,
    source: str,
    fingerprint: str,
    scored_at: datetime,
) -> pd.DataFrame:
    """The prediction-log rows of scored rows: what was served, by whom, and the shadow's answers beside."""
    return pd.DataFrame(log_columns(frame, answered, cfg, source, fingerprint, scored_at), index=range(len(frame)))


def log_columns(
    frame: pd.DataFrame,
    answered: rollout.Answered,
    cfg: DriftlineConfig,
    source: str,
    fingerprint: str,
    scored_at: datetime,
) -> dict[str, Any]:
    """`log_records` as columns: arrays, or one value for every row."""
    rows = prediction_log.record_columns(
        frame,
        answered.predictions,
        cfg,
        answered.model_version,
        source,
        fingerprint,
        scored_at,
        served_by=answered.served_by,
    )
    if answered.shadow is not None:
        prediction_log.add_shadow(rows, answered.shadow, answered.shadow_version, cfg.dataset.task)
    return rows


def output_path(output: str | None, cfg: DriftlineConfig, source: Path) -> Path:
    """Where the predictions go: `--output` when it lies under an allowed folder (else PathNotAllowed) and ends in
    .parquet or .csv (else DriftlineError), by default `<outputs>/<source stem>.scored.parquet`."""
    path = paths.allowed_path(output, cfg) if output else cfg.folders.outputs / f"{source.stem}.scored.parquet"
    _check_suffix(path)
    return path


def write_output(scored: pd.DataFrame, path: Path) -> Path:
    """Parquet or CSV by suffix, through a temp file and a rename: a crash never leaves half a file."""
    _check_suffix(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return write_atomically(path, lambda temp: scored.to_parquet(temp, index=False))
    return write_atomically(path, lambda temp: scored.to_csv(temp, index=False))


@dataclass(frozen=True)
class ScoredFile:
    output: Path
    rows: int
    log: Path | None  # the prediction-log file of this run (None when scoring.log_predictions is off)
    tally: rollout.Tally | None = None  # canary rows and shadow agreement, under a rollout


@dataclass(frozen=True)
class ScoredBatch:
    """What one scoring run did: the output file, its rows, the version that answered, and what the run logged."""

    output: Path
    rows: int
    model_version: str
    log: Path | None = None  # the prediction-log file of this run (None when scoring.log_predictions is off)
    rollout_figures: dict[str, float] = field(default_factory=dict)  # canary share, shadow agreement
    signal: np.ndarray | None = None  # what prediction drift compares with the reference (in-memory batches)


def score_batch(
    batch: DataBatch,
    model: Pipeline,
    cfg: DriftlineConfig,
    model_version: str,
    output_path: Path,
    challenger: rollout.Challenger | None = None,
) -> tuple[ScoredFile, np.ndarray]:
    """An in-memory batch: predictions to the output file; every row, with its inputs, to one prediction-log file
    named by the batch's key (content and version). Also returns the champion's signal on the rows it answered."""
    scored_at = datetime.now(UTC)
    scored, answered = score_frame(model, batch.frame, cfg, model_version, scored_at, challenger)
    path = write_output(scored, output_path)
    log = None
    if cfg.scoring.log_predictions:
        rows = log_records(batch.frame, answered, cfg, batch.name, batch.fingerprint, scored_at)
        key = prediction_log.batch_key(batch.fingerprint, model_version)
        log = prediction_log.append(rows, registry_folders(cfg).prediction_log, batch.name, scored_at, key)
    tally = rollout.Tally()
    tally.add(answered, cfg.dataset.task)
    return ScoredFile(path, len(scored), log, tally), answered.champion_signal(cfg.dataset.task)


# --- files too large for memory: streamed through the model ----------------------------------------------------
def _check_suffix(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in PARQUET_SUFFIXES | CSV_SUFFIXES:
        raise DriftlineError(f"--output {path}: unsupported suffix {suffix or '(none)'!r}; use .parquet or .csv")


def _text_columns(cfg: DriftlineConfig) -> list[str]:
    return [c for c in [cfg.dataset.id_column, *cfg.dataset.categorical_features] if c]


def _id_column(cfg: DriftlineConfig) -> list[str]:
    return [cfg.dataset.id_column] if cfg.dataset.id_column else []


class Source(Protocol):
    """What the prediction log records of the file scored: its name and the hash of its bytes."""

    @property
    def name(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...


class PendingScores:
    """One run's scores on their way to two files, the output and one prediction-log file (with
    scoring.log_predictions), each written chunk by chunk to a hidden temp file beside where it goes.

    `score` streams chunks through the model into them; `commit` renames them into place, the output first. Leaving
    the `with` block without a commit removes both: nothing half-written ever appears. A full disk is one line naming
    the output.
    """

    def __init__(
        self,
        source: Source,
        cfg: DriftlineConfig,
        model_version: str,
        output_path: Path,
        scored_at: datetime | None = None,
        log_folder: Path | None = None,
    ):
        _check_suffix(output_path)
        self._source, self._cfg, self._model_version = source, cfg, model_version
        self.output_path, self.scored_at = output_path, scored_at or datetime.now(UTC)
        self._log_folder = log_folder or registry_folders(cfg).prediction_log
        self.tally = rollout.Tally()
        self._files = ExitStack()

    def __enter__(self) -> PendingScores:
        with ExitStack() as files:
            files.enter_context(space_named(self.output_path))
            self.output = files.enter_context(
                IncrementalFile(
                    self.output_path.parent, self.output_path.suffix, _text_columns(self._cfg), _id_column(self._cfg)
                )
            )
            self.log = files.enter_context(_log_file(self._cfg, self._log_folder))
            self._files = files.pop_all()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None):
        return self._files.__exit__(kind, error, trace)

    def score(self, chunks: Iterable[Chunk], model: Pipeline, challenger: rollout.Challenger | None = None) -> None:
        """Every chunk answered (`scoring.threads` at once) and written in the order read."""
        cfg, model_version, scored_at, source = self._cfg, self._model_version, self.scored_at, self._source
        output, log = self.output, self.log

        # Several chunks are answered at once, each on its own thread with its share of the cores: one model call using
        # every core through OpenMP left a core idle through the single-threaded preprocessing, and its spinning threads
        # slowed the reader and writer beside it (docs/performance.md). Answers are taken in chunk order, and written on
        # one thread behind, one chunk at a time, so the files keep the rows' order. Rows go to the writers as columns.
        def answer(chunk: Chunk) -> tuple[rollout.Answered, dict[str, Any], dict[str, Any] | None, int]:
            limit_openmp(cores_per_thread)
            answered = rollout.answer(model, model_version, chunk.frame, cfg.dataset, challenger)
            scored = chunk.as_read(
                output_columns(
                    chunk.frame,
                    answered.predictions,
                    cfg,
                    answered.model_version,
                    scored_at,
                    answered.served_by,
                    answered.arm,
                )
            )
            logged = None
            if log is not None:
                logged = chunk.as_read(
                    log_columns(chunk.frame, answered, cfg, source.name, source.fingerprint, scored_at)
                )
            return answered, scored, logged, len(chunk)

        threads = answer_threads(cfg)
        cores_per_thread = max(1, usable_cores() // threads)
        tally = rollout.Tally()
        with (
            ThreadPoolExecutor(threads, thread_name_prefix="answer") as answering,
            ThreadPoolExecutor(1, thread_name_prefix="write-behind") as writer,
        ):
            pending: deque[Future] = deque()
            written: Future | None = None

            def write_next() -> Future:
                answered, scored, logged, rows = pending.popleft().result()  # raises what answering it raised
                tally.add(answered, cfg.dataset.task)
                if written is not None:
                    written.result()  # raises what the previous write raised
                return writer.submit(_write, output, scored, log, logged, rows)

            for chunk in chunks:
                pending.append(answering.submit(answer, chunk))
                if len(pending) == threads:
                    written = write_next()
            while pending:
                written = write_next()
            if written is not None:
                written.result()
        self.tally = self.tally.merged(tally)

    def commit(self, log_path: Path | None = None) -> ScoredFile:
        """Output first, then the log: a run killed in between is rerun (the file was not filed away), which replaces
        the same output and logs every row once. The log goes to `log_path`, by default the batch's log file, named
        now that it is complete (so monitoring's watermark never passes over it) and by the key of the content and
        version: a log file already there is the whole log of an earlier run of both, kept, not written twice."""
        self.output.commit(self.output_path)
        logged = None
        if self.log is not None:
            if log_path is None:
                key = prediction_log.batch_key(self._source.fingerprint, self._model_version)
                log_path = prediction_log.file_for(self._log_folder, self._source.name, key)
            logged = log_path if log_path.exists() else self.log.commit(log_path)
        return ScoredFile(self.output_path, self.output.rows, logged, self.tally)


def answer_threads(cfg: DriftlineConfig) -> int:
    """How many chunks are answered at once: `scoring.threads`, or one per usable core, at most MAX_ANSWER_THREADS
    (past that, the preprocessing that holds Python's lock, not the cores, sets the pace)."""
    return cfg.scoring.threads or min(usable_cores(), MAX_ANSWER_THREADS)


def _write(
    output: IncrementalFile,
    scored: dict[str, Any],
    log: IncrementalFile | None,
    logged: dict[str, Any] | None,
    rows: int,
) -> None:
    output.write(scored, rows)
    if log is not None:
        log.write(logged, rows)


def _log_file(cfg: DriftlineConfig, folder: Path) -> IncrementalFile | nullcontext[None]:
    if not cfg.scoring.log_predictions:
        return nullcontext(None)
    # The log is always read whole (monitoring, the label join): min/max statistics took 12 % of its writing time.
    return IncrementalFile(folder, ".parquet", _text_columns(cfg), _id_column(cfg), statistics=False)


def score_chunks(
    chunks: Iterable[Chunk],
    source: Source,
    model: Pipeline,
    cfg: DriftlineConfig,
    model_version: str,
    output_path: Path,
    scored_at: datetime | None = None,
    challenger: rollout.Challenger | None = None,
) -> ScoredFile:
    """Stream chunks through the model into the output file and one prediction-log file; both are written
    incrementally and appear whole, at the end, or not at all (`PendingScores`)."""
    with PendingScores(source, cfg, model_version, output_path, scored_at) as pending:
        pending.score(chunks, model, challenger)
        return pending.commit()


def score_file(
    source: DataFile,
    model: Pipeline,
    cfg: DriftlineConfig,
    model_version: str,
    output_path: Path,
    scored_at: datetime | None = None,
    challenger: rollout.Challenger | None = None,
) -> ScoredFile:
    """A file validated before, read again `scoring.chunk_rows` rows at a time and scored (`score_chunks`)."""
    chunks = read_ahead(read_chunks(source.path, cfg.dataset, cfg.scoring.chunk_rows))
    return score_chunks(chunks, source, model, cfg, model_version, output_path, scored_at, challenger)
