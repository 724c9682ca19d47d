"""Data batches: reading CSV/Parquet into typed frames, content fingerprints, the immutable archive and quarantine."""

from __future__ import annotations

import codecs
import csv
import errno
import hashlib
import json
import numbers
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from driftline.config import DatasetConfig, RetrainingConfig
from driftline.errors import DataRejected, OutputNotWritten

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
ARCHIVE_INDEX = "index.jsonl"
# The first bytes of files that are often renamed to .csv/.parquet by mistake: named, instead of a parser error.
NOT_DATA_SIGNATURES = {
    b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image", b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive (also .xlsx, .docx)", b"\x1f\x8b": "a gzip archive", b"\x7fELF": "an executable",
    b"PAR1": "a Parquet file",
}  # fmt: skip


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
        raise DataRejected(str(path), [
            f"file changed while it was read (size {before.size} -> {after.size} bytes, modification time "
            f"{'changed' if after.mtime_ns != before.mtime_ns else 'kept'}); write files elsewhere and move them in "
            "when complete"
        ])  # fmt: skip


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


@dataclass(frozen=True)
class ArchivedBatch:
    """An entry of the archive index: where a validated batch lives and what it held."""

    fingerprint: str
    path: str  # relative to the archive folder, so the workspace can move
    source_name: str
    rows: int
    archived_at: str
    labeled: bool = True
    event_time_max: str | None = None

    def location(self, archive_dir: Path) -> Path:
        return archive_dir / self.path


def fingerprint_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _as_text(column: pd.Series) -> pd.Series:
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
def _read_errors(path: Path) -> Iterator[None]:
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


def _text_dtypes(dataset: DatasetConfig) -> dict[str, str]:
    return {c: "string" for c in [*dataset.categorical_features, dataset.id_column] if c is not None}


def _read_raw(path: Path, dataset: DatasetConfig) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        with _read_errors(path):
            return pd.read_csv(path, sep=dataset.csv_delimiter, dtype=_text_dtypes(dataset), encoding="utf-8")
    if suffix in PARQUET_SUFFIXES:
        with _read_errors(path):
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
    file_path = _existing(path)
    before = FileStamp.of(file_path)
    fingerprint = fingerprint_file(file_path)
    frame = _read_raw(file_path, dataset)
    require_unchanged(file_path, before)
    _check_table(frame, file_path, dataset)
    return DataBatch(path=file_path, frame=_typed(frame, file_path, dataset), fingerprint=fingerprint)


def _existing(path: str | Path) -> Path:
    """The path of a file that exists and whose first bytes can be data of its kind."""
    file_path = Path(path)
    if not file_path.is_file():
        raise DataRejected(str(file_path), ["file does not exist"])
    reason = _not_data(file_path) if file_path.suffix.lower() in CSV_SUFFIXES | PARQUET_SUFFIXES else None
    if reason:
        raise DataRejected(str(file_path), [reason])
    return file_path


def _check_table(frame: pd.DataFrame, path: Path, dataset: DatasetConfig) -> None:
    """What makes a file unusable as a table: one column read (wrong delimiter), no rows, repeated headers."""
    hint = _delimiter_hint(frame, dataset)
    if hint:
        raise DataRejected(str(path), [hint])
    if frame.empty:
        raise DataRejected(str(path), ["file has a header but no rows"])
    duplicated = _duplicate_headers(path, dataset)
    if duplicated:
        raise DataRejected(str(path), [f"column names appear more than once: {duplicated}"])


def _typed(frame: pd.DataFrame, path: Path, dataset: DatasetConfig) -> pd.DataFrame:
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
            frame[column] = _as_text(frame[column])
    for column in dataset.numeric_features:
        if column in frame:
            frame[column] = _as_number(frame[column])
    if clock and clock in frame:
        frame[clock] = pd.to_datetime(frame[clock], errors="coerce", utc=True, format="mixed")
    return frame


@dataclass(frozen=True)
class DataFile:
    """A data file read chunk by chunk (never whole): its path, the hash of its bytes and its row count."""

    path: Path
    fingerprint: str
    rows: int
    columns: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.name


def iter_chunks(
    path: str | Path, dataset: DatasetConfig, chunk_rows: int | None, start: int = 0, stop: int | None = None
) -> Iterator[pd.DataFrame]:
    """Rows [start, stop) of a file as typed frames of at most `chunk_rows` rows (None: one frame), read lazily.

    Typed as `load_batch` types a whole file; the checks of a whole table run on the first chunk of a full read.
    """
    file_path = _existing(path)
    suffix = file_path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        raw = _csv_chunks(file_path, dataset, chunk_rows, start, stop)
    elif suffix in PARQUET_SUFFIXES:
        raw = _parquet_chunks(file_path, chunk_rows, start, stop)
    else:
        raise DataRejected(str(file_path), [f"unsupported file type {suffix or '(none)'!r}; use .csv or .parquet"])
    first = True
    while True:
        # Only the read is translated: an error of the consumer, thrown in at `yield`, stays what it is.
        with _read_errors(file_path):
            frame = next(raw, None)
        if frame is None:
            if first and start == 0:  # a header and no row: the CSV reader yields nothing at all
                raise DataRejected(str(file_path), ["file has a header but no rows"])
            return
        if first and start == 0:
            _check_table(frame, file_path, dataset)
        first = False
        yield _typed(frame, file_path, dataset)


def read_ahead(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """The chunks, the next one read on a thread while the caller works on this one (the readers release the GIL)."""
    with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as pool:
        pending = pool.submit(next, chunks, None)
        while (chunk := pending.result()) is not None:
            pending = pool.submit(next, chunks, None)
            yield chunk


def _csv_chunks(
    path: Path, dataset: DatasetConfig, chunk_rows: int | None, start: int, stop: int | None
) -> Iterator[pd.DataFrame]:
    options: dict = {"sep": dataset.csv_delimiter, "dtype": _text_dtypes(dataset), "encoding": "utf-8"}
    if stop is not None:
        options["nrows"] = stop - start
    if start:
        # Past the header: name the columns ourselves; an int skiprows is counted by the tokenizer, so quoted
        # line breaks stay inside their row and memory does not grow with `start`.
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle, delimiter=dataset.csv_delimiter))
        options |= {"header": None, "names": header, "skiprows": start + 1}
    if chunk_rows is None:
        yield pd.read_csv(path, **options)
        return
    with pd.read_csv(path, chunksize=chunk_rows, **options) as reader:
        yield from reader


def _parquet_chunks(path: Path, chunk_rows: int | None, start: int, stop: int | None) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    if chunk_rows is None and start == 0 and stop is None:
        yield pd.read_parquet(path)
        return
    parquet = pq.ParquetFile(path)
    stop = parquet.metadata.num_rows if stop is None else min(stop, parquet.metadata.num_rows)
    # Only the row groups that hold rows of the range are read.
    groups, first_row, offset = [], None, 0
    for index in range(parquet.metadata.num_row_groups):
        rows = parquet.metadata.row_group(index).num_rows
        if offset + rows > start and offset < stop:
            groups.append(index)
            first_row = offset if first_row is None else first_row
        offset += rows
    position = first_row or 0
    batch_rows = chunk_rows or (stop - start)
    # One reader per row group: one reader over all of them keeps memory that grows with the file (measured:
    # +58 MB from 1M to 4M rows, against +8 MB this way).
    batches = (batch for group in groups
               for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=[group], use_pandas_metadata=True))
    for batch in batches:
        low, high = max(start - position, 0), min(stop - position, batch.num_rows)
        position += batch.num_rows
        if high > low:
            yield batch.slice(low, high - low).to_pandas()
        if position >= stop:
            return


def missing_columns(frame: pd.DataFrame, dataset: DatasetConfig, with_target: bool) -> list[str]:
    needed = [*dataset.feature_names, *([dataset.target] if with_target else [])]
    return [column for column in needed if column not in frame]


NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@contextmanager
def space_named(path: Path) -> Iterator[None]:
    """A full disk (or file-size limit) while writing `path` becomes one line naming it; the old file stays whole."""
    try:
        yield
    except OSError as error:
        # pyarrow reports the errno only in its message
        if error.errno not in NO_SPACE_ERRNOS and "No space left" not in str(error):
            raise
        raise OutputNotWritten(
            f"{path}: no space left on device while writing it ({error.strerror or error}); the previous file "
            "is intact; free space there or point storage.output_dir / --output at another disk"
        ) from None


def replace_durably(temp: Path, path: Path) -> Path:
    """fsync the finished temp file, rename it over `path`, fsync the folder: after a crash or power cut a reader
    finds the old file or the whole new one, never a name pointing at unwritten blocks."""
    with temp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return path


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Write through a temp file in the same folder, then rename: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temp_path = Path(temp_name)
    try:
        with space_named(path):
            write(temp_path)
            replace_durably(temp_path, path)
    finally:
        temp_path.unlink(missing_ok=True)
    return path


class IncrementalFile:
    """A Parquet or CSV file written chunk by chunk to a hidden temp file in its folder, visible only once committed.

    `commit` renames it into place; leaving the `with` block on an error deletes it: no reader, and no rerun, ever
    sees half a file. `text_columns` are stored as strings even when a chunk holds only missing values there.
    """

    def __init__(self, folder: Path, suffix: str, text_columns: Iterable[str] = ()):
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=folder, prefix=".", suffix=f"{suffix}.tmp")
        os.close(handle)
        self.temp = Path(temp_name)
        self.rows = 0
        self._parquet = suffix.lower() in PARQUET_SUFFIXES
        self._text_columns = set(text_columns)
        self._writer = None

    def write(self, frame: pd.DataFrame) -> None:
        if not self._parquet:
            frame.to_csv(self.temp, mode="a" if self.rows else "w", header=not self.rows, index=False)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            if self._writer is None:
                schema = pa.Schema.from_pandas(frame, preserve_index=False)
                for name in self._text_columns & set(schema.names):
                    schema = schema.set(schema.get_field_index(name), pa.field(name, pa.string()))
                self._writer = pq.ParquetWriter(self.temp, schema)
            self._writer.write_table(pa.Table.from_pandas(frame, schema=self._writer.schema, preserve_index=False))
        self.rows += len(frame)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def commit(self, path: Path) -> Path:
        self._close()
        path.parent.mkdir(parents=True, exist_ok=True)
        return replace_durably(self.temp, path)

    def __enter__(self) -> IncrementalFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._close()
        finally:
            self.temp.unlink(missing_ok=True)  # after a commit there is nothing left to remove


def read_archive_index(archive_dir: Path) -> list[ArchivedBatch]:
    index = archive_dir / ARCHIVE_INDEX
    if not index.exists():
        return []
    return [ArchivedBatch(**json.loads(line)) for line in index.read_text().splitlines() if line.strip()]


def archive_batch(batch: DataBatch, archive_dir: Path, dataset: DatasetConfig) -> ArchivedBatch:
    """Copy a validated batch to a content-addressed, read-only path and index it (once per fingerprint)."""
    existing = archived_entry(archive_dir, batch.fingerprint)
    if existing is not None:
        return existing
    archived_path = archive_dir / f"{batch.fingerprint}{batch.path.suffix.lower()}"
    if not archived_path.exists():
        write_atomically(archived_path, lambda temp: shutil.copyfile(batch.path, temp))
        archived_path.chmod(0o444)
    event_time_max = None
    if dataset.event_time_column and dataset.event_time_column in batch.frame:
        newest = batch.frame[dataset.event_time_column].max()
        event_time_max = None if pd.isna(newest) else newest.isoformat()
    entry = ArchivedBatch(
        fingerprint=batch.fingerprint,
        path=archived_path.name,
        source_name=batch.name,
        rows=batch.rows,
        archived_at=datetime.now(UTC).isoformat(),
        labeled=dataset.target in batch.frame,
        event_time_max=event_time_max,
    )
    # One short line per append: O_APPEND keeps concurrent writers from interleaving within a line.
    with (archive_dir / ARCHIVE_INDEX).open("a", encoding="utf-8") as index:
        index.write(json.dumps(asdict(entry)) + "\n")
    return entry


def select_retraining_batches(archive: list[ArchivedBatch], retraining: RetrainingConfig) -> list[ArchivedBatch]:
    """The labeled archived batches a retrain uses: all, the last N, or those within N days of the newest."""
    archive = [entry for entry in archive if entry.labeled]
    if retraining.window == "all" or not archive:
        return list(archive)
    if retraining.window == "last_batches":
        return archive[-retraining.size :]

    def newest_time(entry: ArchivedBatch) -> datetime:
        return datetime.fromisoformat(entry.event_time_max or entry.archived_at)

    cutoff = max(newest_time(entry) for entry in archive) - timedelta(days=retraining.size)
    return [entry for entry in archive if newest_time(entry) >= cutoff]


def quarantine_file(path: Path, quarantine_dir: Path, reasons: list[str], report: dict) -> Path:
    """Move a rejected file out of the way, with its reasons and validation report beside it."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    destination = quarantine_dir / f"{stamp}-{path.name}"
    destination.mkdir(parents=True, exist_ok=True)
    if path.exists():
        shutil.move(str(path), destination / path.name)
    summary = {"file": str(path), "quarantined_at": stamp, "reasons": reasons, "report": report}
    (destination / "validation.json").write_text(json.dumps(summary, indent=2, default=str))
    return destination


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


def archived_entry(archive_dir: Path, fingerprint: str) -> ArchivedBatch | None:
    """The archive entry of this content, if it was processed before."""
    return next((entry for entry in read_archive_index(archive_dir) if entry.fingerprint == fingerprint), None)
