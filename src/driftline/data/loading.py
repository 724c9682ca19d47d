"""Reading one data file (CSV/Parquet) into a frame typed by the config, with one-line rejections and the hash of its
bytes."""

from __future__ import annotations

import codecs
import csv
import hashlib
import numbers
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from driftline.config import DatasetConfig
from driftline.errors import DataRejected

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}


PARQUET_SUFFIXES = {".parquet", ".pq"}


# The first bytes of files that are often renamed to .csv/.parquet by mistake: named, instead of a parser error.
NOT_DATA_SIGNATURES = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive (also .xlsx, .docx)",
    b"\x1f\x8b": "a gzip archive",
    b"\x7fELF": "an executable",
    b"PAR1": "a Parquet file",
}


@dataclass(frozen=True)
class FileStamp:
    """Size and modification time of a file: different after a read means it changed while being read."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileStamp:
        status = path.stat()
        return cls(status.st_size, status.st_mtime_ns)


def require_unchanged(path: Path, before: FileStamp) -> None:
    """DataRejected if the file changed since `before` (a writer still at work): what was read is not the file."""
    after = FileStamp.of(path)
    if after != before:
        raise DataRejected(
            str(path),
            [
                f"file changed while it was read (size {before.size} -> {after.size} bytes, modification time "
                f"{'changed' if after.mtime_ns != before.mtime_ns else 'kept'}); "
                "write files elsewhere and move them in when complete"
            ],
        )


def _not_data(path: Path) -> str | None:
    """Why the file's first bytes say it is not what its suffix claims, if they do."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    expected = "a Parquet file" if path.suffix.lower() in PARQUET_SUFFIXES else "CSV text"
    found = next((kind for magic, kind in NOT_DATA_SIGNATURES.items() if head.startswith(magic)), None)
    if found is None and expected == "CSV text" and b"\0" in head:
        found = "binary content (NUL bytes)"
    if found is None or found == expected:
        return None
    return f"content is {found}, not {expected} as the suffix {path.suffix!r} says; this is not a data file"


@dataclass(frozen=True)
class DataBatch:
    """One data file as read: its typed frame and the hash of its bytes."""

    path: Path
    frame: pd.DataFrame
    fingerprint: str

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def name(self) -> str:
        return self.path.name


def fingerprint_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def as_text(column: pd.Series) -> pd.Series:
    """Categories and ids as plain strings with NaN for missing, whatever the file stored.

    Whole-number floats (integer codes that picked up a NaN) become '3', not '3.0', as they would in a CSV.
    """
    if column.dtype == object and pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty"):
        # Already text (Parquet strings): only missing values to unify, without copying every string.
        return column.where(column.notna(), np.nan) if column.isna().any() else column
    if pd.api.types.is_float_dtype(column):
        finite = column.dropna()
        if len(finite) and np.all(np.isfinite(finite)) and np.all(finite == np.round(finite)):
            column = column.astype("Int64")
    text = column.astype("string")
    return text.astype(object).where(text.notna(), np.nan)


def _as_number(column: pd.Series) -> pd.Series:
    """Numbers in any storage (nullable Int64/Float64, Decimal, bool) as float64; text stays text for validation."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column.astype("float64")
    values = column.dropna()
    if len(values) and values.map(lambda v: isinstance(v, numbers.Number) and not isinstance(v, bool)).all():
        return pd.to_numeric(column, errors="coerce").astype("float64")
    return column


@contextmanager
def read_errors_named(path: Path) -> Iterator[None]:
    """What the readers raise on a bad file, as the one-line reasons a user acts on."""
    suffix = path.suffix.lower()
    try:
        yield
    except pd.errors.EmptyDataError:
        raise DataRejected(str(path), ["file is empty (no header, no rows)"]) from None
    except UnicodeDecodeError:
        raise DataRejected(str(path), [_first_non_utf8(path)]) from None
    except (pd.errors.ParserError, ValueError) as exc:
        if suffix in PARQUET_SUFFIXES:
            raise DataRejected(str(path), [f"not a readable Parquet file: {str(exc).splitlines()[0]}"]) from None
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataRejected(str(path), [f"not parseable as CSV: {first_line}"]) from None
    except Exception as exc:  # pyarrow raises many types for corrupt files; all mean the same to a user
        if suffix not in PARQUET_SUFFIXES:
            raise
        raise DataRejected(str(path), [f"not a readable Parquet file: {str(exc).splitlines()[0]}"]) from None


def _first_non_utf8(path: Path) -> str:
    """Where the file stops being UTF-8: the reader's own offset counts from its buffer, not from the file."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 1
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            pending = len(decoder.getstate()[0])  # bytes of a character cut by the previous block
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                at = offset - pending + exc.start
                line = lines + exc.object[: exc.start].count(b"\n")
                return (
                    f"not UTF-8 text: byte {exc.object[exc.start]:#04x} at offset {at} (line {line}); "
                    "save the file as UTF-8"
                )
            offset += len(block)
            lines += block.count(b"\n")
    return "not UTF-8 text; save the file as UTF-8"


def text_dtypes(dataset: DatasetConfig) -> dict[str, str]:
    return {c: "string" for c in [*dataset.categorical_features, dataset.id_column] if c is not None}


def _read_raw(path: Path, dataset: DatasetConfig) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        with read_errors_named(path):
            return pd.read_csv(path, sep=dataset.csv_delimiter, dtype=text_dtypes(dataset), encoding="utf-8")
    if suffix in PARQUET_SUFFIXES:
        with read_errors_named(path):
            return pd.read_parquet(path)
    raise DataRejected(str(path), [f"unsupported file type {suffix or '(none)'!r}; use .csv or .parquet"])


def _duplicate_headers(path: Path, dataset: DatasetConfig) -> list[str]:
    """pandas silently renames a repeated header to `name.1`; a data contract should not."""
    if path.suffix.lower() not in CSV_SUFFIXES:
        return []
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        header = next(csv.reader(handle, delimiter=dataset.csv_delimiter), [])
    return sorted({name for name in header if header.count(name) > 1})


def _delimiter_hint(frame: pd.DataFrame, dataset: DatasetConfig) -> str | None:
    if frame.shape[1] != 1:
        return None
    header = str(frame.columns[0])
    for candidate in [";", "\t", "|", ","]:
        if candidate != dataset.csv_delimiter and candidate in header:
            return (
                f"one column {header[:60]!r} was read: the file looks {candidate!r}-delimited; "
                "set dataset.csv_delimiter"
            )
    return None


def load_batch(path: str | Path, dataset: DatasetConfig) -> DataBatch:
    """Read a file into a frame typed by the config; unreadable files raise DataRejected with the reason."""
    file_path = existing_data_file(path)
    before = FileStamp.of(file_path)
    fingerprint = fingerprint_file(file_path)
    frame = _read_raw(file_path, dataset)
    require_unchanged(file_path, before)
    check_table(frame, file_path, dataset)
    return DataBatch(path=file_path, frame=typed_frame(frame, file_path, dataset), fingerprint=fingerprint)


def existing_data_file(path: str | Path) -> Path:
    """The path of a file that exists and whose first bytes can be data of its kind."""
    file_path = Path(path)
    if not file_path.is_file():
        raise DataRejected(str(file_path), ["file does not exist"])
    reason = _not_data(file_path) if file_path.suffix.lower() in CSV_SUFFIXES | PARQUET_SUFFIXES else None
    if reason:
        raise DataRejected(str(file_path), [reason])
    return file_path


def check_table(frame: pd.DataFrame, path: Path, dataset: DatasetConfig) -> None:
    """What makes a file unusable as a table: one column read (wrong delimiter), no rows, repeated headers."""
    hint = _delimiter_hint(frame, dataset)
    if hint:
        raise DataRejected(str(path), [hint])
    if frame.empty:
        raise DataRejected(str(path), ["file has a header but no rows"])
    duplicated = _duplicate_headers(path, dataset)
    if duplicated:
        raise DataRejected(str(path), [f"column names appear more than once: {duplicated}"])


def typed_frame(frame: pd.DataFrame, path: Path, dataset: DatasetConfig) -> pd.DataFrame:
    """Columns typed by their role in the config; the same per chunk as for a whole file."""
    clock = dataset.event_time_column
    # A chunk whose times are all missing reads as float NaN: only values that are there can be numbers.
    if clock and clock in frame and pd.api.types.is_numeric_dtype(frame[clock]) and frame[clock].notna().any():
        raise DataRejected(
            str(path),
            [f"column {clock!r} holds numbers, not timestamps; write ISO-8601 times such as 2026-01-05T10:00:00Z"],
        )
    for column in [*dataset.categorical_features, dataset.id_column]:
        if column is not None and column in frame:
            frame[column] = as_text(frame[column])
    for column in dataset.numeric_features:
        if column in frame:
            frame[column] = _as_number(frame[column])
    if clock and clock in frame and not _utc_times(frame[clock]):  # Parquet times in UTC already: nothing to parse
        frame[clock] = pd.to_datetime(frame[clock], errors="coerce", utc=True, format="mixed")
    return frame


def newest_event_time(frame: pd.DataFrame, dataset: DatasetConfig) -> pd.Timestamp | None:
    """When a batch happened: its newest event time; None without an event-time column or any time in it."""
    clock = dataset.event_time_column
    if not clock or clock not in frame:
        return None
    newest = pd.to_datetime(frame[clock], errors="coerce", utc=True, format="mixed").max()
    return None if pd.isna(newest) else newest


def _utc_times(column: pd.Series) -> bool:
    return isinstance(column.dtype, pd.DatetimeTZDtype) and str(column.dtype.tz) == "UTC"


def missing_columns(frame: pd.DataFrame, dataset: DatasetConfig, with_target: bool) -> list[str]:
    needed = [*dataset.feature_names, *([dataset.target] if with_target else [])]
    return [column for column in needed if column not in frame]


class Observed(Protocol):
    """What monitoring looks at: one batch file, or a window of the prediction log."""

    @property
    def name(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def frame(self) -> pd.DataFrame: ...

    @property
    def rows(self) -> int: ...
