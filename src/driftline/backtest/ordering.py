"""A history's files in the order they happened: by their newest event time when the config has one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from driftline.config import DatasetConfig, DriftlineConfig
from driftline.data.loading import CSV_SUFFIXES, PARQUET_SUFFIXES, newest_event_time
from driftline.data.paths import allowed_path
from driftline.errors import ConfigError, DataRejected


@dataclass(frozen=True)
class HistoryFile:
    """One file of the history and when it happened (None: no event time to tell)."""

    path: Path
    event_time: pd.Timestamp | None

    @property
    def name(self) -> str:
        return self.path.name


def read_event_time(path: Path, dataset: DatasetConfig) -> pd.Timestamp | None:
    """The file's newest event time, reading that one column. None when the config has no event time, or the file
    lacks the column or cannot be read: the loop names that problem when the file's turn comes."""
    clock = dataset.event_time_column
    if not clock:
        return None
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            frame = pd.read_parquet(path, columns=[clock])
        elif path.suffix.lower() in CSV_SUFFIXES:
            frame = pd.read_csv(path, usecols=[clock], sep=dataset.csv_delimiter)
        else:
            return None
    except Exception:  # unreadable for any reason: ordered by its place in the list, rejected when its turn comes
        return None
    return newest_event_time(frame, dataset)


def history_of(paths: list[str], cfg: DriftlineConfig) -> list[HistoryFile]:
    """The files, each in an allowed folder (else PathNotAllowed) and present (else DataRejected), in time order."""
    found = [allowed_path(path, cfg) for path in paths]
    for path in found:
        if not path.is_file():
            raise DataRejected(str(path), ["file does not exist"])
    return in_time_order(found, cfg.dataset)


def in_time_order(paths: list[Path], dataset: DatasetConfig) -> list[HistoryFile]:
    """Sorted by newest event time (ties and files without one keep the order given: a file without an event time
    stays right after the file given before it)."""
    files = [HistoryFile(path, read_event_time(path, dataset)) for path in paths]
    keys, previous = [], pd.Timestamp.min.tz_localize("UTC")
    for file in files:
        previous = file.event_time if file.event_time is not None else previous
        keys.append(previous)
    order = sorted(range(len(files)), key=lambda index: (keys[index], index))
    return [files[index] for index in order]


def split_history(history: list[HistoryFile], initial: int) -> tuple[list[HistoryFile], list[HistoryFile]]:
    """The first `initial` files (they train the first champion) and the batches replayed after them."""
    if initial < 1 or initial >= len(history):
        raise ConfigError(
            f"--initial {initial} with {len(history)} files: the first champion needs at least one "
            "file and one must be left to replay; give more files or a smaller --initial"
        )
    return history[:initial], history[initial:]
