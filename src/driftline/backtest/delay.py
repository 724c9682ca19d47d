"""Labels that come late in a replay (`--label-delay K`): each replayed file split into what the loop sees at its
turn (the file without its target column) and its label file (id and label), which reaches the loop K batches later
through the label path; the file with its labels stays to judge what was served."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from driftline.config import DriftlineConfig
from driftline.data.loading import CSV_SUFFIXES, load_batch
from driftline.errors import ConfigError, DataRejected


@dataclass(frozen=True)
class LaterFile:
    """A file replayed after the first champion: what the loop is given, what judges the served model, and the
    labels that arrive later (None: they came with the file, or it had none)."""

    seen: Path  # without its target column under a delay; else the file itself
    labeled: Path  # the file as given: its labels judge what was served (prequential)
    labels: Path | None = None

    @property
    def name(self) -> str:
        return self.labeled.name


def require_ids(cfg: DriftlineConfig, label_delay: int) -> None:
    """Late labels are joined to the served predictions by id, as the label path joins them: no id, no delay."""
    if label_delay and not cfg.dataset.id_column:
        raise ConfigError(
            f"--label-delay {label_delay}: late labels are joined to the served predictions by id, and "
            f"{cfg.source or 'the config'} sets no dataset.id_column; set it, or replay with --label-delay 0"
        )


def labels_due(turn: int, batches: int, label_delay: int) -> int | None:
    """Whose labels reach the loop after batch `turn` was served, before the next one: batch `turn + 1 - K`. None
    without a delay, before any are due, and after the last batch (nothing is served after it)."""
    due = turn + 1 - label_delay
    return due if label_delay and 0 <= due and turn + 1 < batches else None


def without_labels(source: Path, seen: Path, label_folder: Path, cfg: DriftlineConfig) -> LaterFile:
    """`seen`: the file without its target column (else a copy); in `label_folder`, its label file: the id and label
    of every row that has one. A file the loop cannot read, or one without ids or labels, is seen as it is (the loop
    names its problem)."""
    dataset = cfg.dataset
    seen.parent.mkdir(parents=True, exist_ok=True)
    try:
        frame = load_batch(source, dataset).frame
    except DataRejected:
        frame = None
    if frame is None or {dataset.target, dataset.id_column} - set(frame) or frame[dataset.target].isna().all():
        seen.write_bytes(source.read_bytes())
        return LaterFile(seen, source)
    known = frame[[dataset.id_column, dataset.target]].dropna(subset=[dataset.target])
    known.columns = [cfg.label_id_column, cfg.label_column]
    labels = label_folder / f"labels-{source.stem}.parquet"
    label_folder.mkdir(parents=True, exist_ok=True)
    known.to_parquet(labels, index=False)
    if source.suffix.lower() in CSV_SUFFIXES:  # the other columns as written, text for text
        text = pd.read_csv(source, sep=dataset.csv_delimiter, dtype=str, keep_default_na=False, encoding="utf-8")
        text.drop(columns=dataset.target).to_csv(seen, sep=dataset.csv_delimiter, index=False)
    else:
        pd.read_parquet(source).drop(columns=dataset.target).to_parquet(seen, index=False)
    return LaterFile(seen, source, labels)
