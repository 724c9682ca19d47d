"""A validated file cut into row ranges, each scored on its own (on whichever Dask worker runs it) into Parquet parts,
then the parts joined in row order into the one output file and one prediction-log file."""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from driftline.config import DriftlineConfig
from driftline.data.chunking import DataFile, read_ahead, read_chunks
from driftline.governance import rollout
from driftline.serving.batch_scoring import PendingScores, ScoredFile


@dataclass(frozen=True)
class RowRange:
    """Rows [start, stop) of a file: one partition scored on its own."""

    start: int
    stop: int


@dataclass(frozen=True)
class ScoredPart:
    rows: RowRange
    output: Path
    log: Path | None
    tally: rollout.Tally | None = None


def row_ranges(rows: int, partitions: int) -> list[RowRange]:
    """`partitions` contiguous ranges of near-equal size covering rows [0, rows); none empty."""
    bounds = np.linspace(0, rows, min(partitions, max(rows, 1)) + 1).round().astype(int)
    return [RowRange(int(start), int(stop)) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]


def parts_folder(output_path: Path) -> Path:
    """A hidden folder beside the output for the parts of one partitioned run."""
    return output_path.parent / f".{output_path.name}.parts-{uuid.uuid4().hex[:8]}"


def score_part(
    source: DataFile,
    model: Pipeline,
    cfg: DriftlineConfig,
    model_version: str,
    scored_at: datetime,
    rows: RowRange,
    folder: Path,
    challenger: rollout.Challenger | None = None,
) -> ScoredPart:
    """One partition streamed through the model into Parquet parts (output and log) for `assemble` to join."""
    chunks = read_ahead(read_chunks(source.path, cfg.dataset, cfg.scoring.chunk_rows, rows.start, rows.stop))
    name = f"{rows.start:012d}"
    output = folder / f"output-{name}.parquet"
    with PendingScores(source, cfg, model_version, output, scored_at, log_folder=folder) as pending:
        pending.score(chunks, model, challenger)
        scored = pending.commit(folder / f"log-{name}.parquet")
    return ScoredPart(rows, scored.output, scored.log, scored.tally)


def _read_parts(files: list[Path]) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    for path in files:
        yield from (batch.to_pandas() for batch in pq.ParquetFile(path).iter_batches())


def assemble(
    parts: list[ScoredPart], source: DataFile, cfg: DriftlineConfig, output_path: Path, model_version: str
) -> ScoredFile:
    """The parts, in row order, streamed into the one output file and one log file a single process writes."""
    parts = sorted(parts, key=lambda part: part.rows.start)
    with PendingScores(source, cfg, model_version, output_path) as pending:
        for frame in _read_parts([part.output for part in parts]):
            pending.output.write(frame)
        if pending.log is not None:
            for frame in _read_parts([part.log for part in parts if part.log is not None]):
                pending.log.write(frame)
        scored = pending.commit()
    tally = rollout.Tally()
    for part in parts:
        tally = tally.merged(part.tally or rollout.Tally())
    return dataclasses.replace(scored, tally=tally)


def remove_parts(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
