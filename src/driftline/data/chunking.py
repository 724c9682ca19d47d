"""Files too large for memory: typed chunks of a row range, read lazily, the next one read ahead on a thread."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from driftline.config import DatasetConfig
from driftline.data.loading import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    check_table,
    existing_data_file,
    read_errors_named,
    text_dtypes,
    typed_frame,
)
from driftline.errors import DataRejected

Item = TypeVar("Item")


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


@dataclass(frozen=True)
class Chunk:
    """Typed rows of a file, and the Arrow arrays the Parquet reader made of its text columns (categories and id).

    The arrays hold the values of the frame's text columns (missing values as nulls), so writers take them as they
    are instead of converting the frame's Python strings back, which holds Python's lock. Empty for CSV files.
    """

    frame: pd.DataFrame
    text: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    def as_read(self, columns: dict[str, Any]) -> dict[str, Any]:
        """`columns` (the frame's, as arrays) with each text column the reader made in Arrow given as that array."""
        return {name: self.text.get(name, value) for name, value in columns.items()}


def read_chunks(
    path: str | Path, dataset: DatasetConfig, chunk_rows: int | None, start: int = 0, stop: int | None = None
) -> Iterator[Chunk]:
    """Rows [start, stop) of a file as typed chunks of at most `chunk_rows` rows (None: one chunk), read lazily.

    Typed as `load_batch` types a whole file; the checks of a whole table run on the first chunk of a full read.
    """
    file_path = existing_data_file(path)
    suffix = file_path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        raw = ((frame, {}) for frame in _csv_chunks(file_path, dataset, chunk_rows, start, stop))
    elif suffix in PARQUET_SUFFIXES:
        raw = _parquet_chunks(file_path, chunk_rows, start, stop, dataset)
    else:
        raise DataRejected(str(file_path), [f"unsupported file type {suffix or '(none)'!r}; use .csv or .parquet"])
    first = True
    while True:
        # Only the read is translated: an error of the consumer, thrown in at `yield`, stays what it is.
        with read_errors_named(file_path):
            frame, text = next(raw, (None, None))
        if frame is None:
            if first and start == 0:  # a header and no row: the CSV reader yields nothing at all
                raise DataRejected(str(file_path), ["file has a header but no rows"])
            return
        if first and start == 0:
            check_table(frame, file_path, dataset)
        first = False
        yield Chunk(typed_frame(frame, file_path, dataset), text)


def iter_chunks(
    path: str | Path, dataset: DatasetConfig, chunk_rows: int | None, start: int = 0, stop: int | None = None
) -> Iterator[pd.DataFrame]:
    """`read_chunks`' typed frames alone."""
    return (chunk.frame for chunk in read_chunks(path, dataset, chunk_rows, start, stop))


def read_ahead(chunks: Iterator[Item]) -> Iterator[Item]:
    """The chunks, the next one read on a thread while the caller works on this one (the readers release the GIL)."""
    with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as pool:
        pending = pool.submit(next, chunks, None)
        while (chunk := pending.result()) is not None:
            pending = pool.submit(next, chunks, None)
            yield chunk


def _csv_chunks(
    path: Path, dataset: DatasetConfig, chunk_rows: int | None, start: int, stop: int | None
) -> Iterator[pd.DataFrame]:
    options: dict = {"sep": dataset.csv_delimiter, "dtype": text_dtypes(dataset), "encoding": "utf-8"}
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


def _parquet_chunks(
    path: Path, chunk_rows: int | None, start: int, stop: int | None, dataset: DatasetConfig
) -> Iterator[tuple[pd.DataFrame, dict[str, Any]]]:
    import pyarrow.parquet as pq

    if chunk_rows is None and start == 0 and stop is None:
        yield pd.read_parquet(path), {}
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
    batches = (
        batch
        for group in groups
        for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=[group], use_pandas_metadata=True)
    )
    text_columns = {dataset.id_column, *dataset.categorical_features} - {None}
    for batch in batches:
        low, high = max(start - position, 0), min(stop - position, batch.num_rows)
        position += batch.num_rows
        if high > low:
            rows = batch.slice(low, high - low)
            yield _frame(rows, dataset.id_column), _text_arrays(rows, text_columns)
        if position >= stop:
            return


def _text_arrays(batch: Any, text_columns: set[str]) -> dict[str, Any]:
    """The batch's text columns stored as strings: `as_text` keeps their values, so the arrays stay true to them."""
    import pyarrow as pa

    return {
        name: batch.column(name)
        for name in text_columns & set(batch.schema.names)
        if pa.types.is_string(batch.schema.field(name).type) or pa.types.is_large_string(batch.schema.field(name).type)
    }


def _frame(batch, id_column: str | None) -> pd.DataFrame:
    """A record batch as pandas: text that repeats (categories) as shared string objects, as pyarrow does by default,
    but ids converted without looking each one up (on unique ids that costs six times the conversion), and no
    consolidation of the columns into blocks, which the typing undoes anyway."""
    names = batch.schema.names
    if id_column not in names:
        return batch.to_pandas(split_blocks=True)
    frame = batch.drop_columns([id_column]).to_pandas(split_blocks=True)
    order = [name for name in names if name == id_column or name in frame.columns]  # an index column is not one
    frame.insert(order.index(id_column), id_column, batch.column(id_column).to_pandas(deduplicate_objects=False))
    return frame
