"""Writing files whole: atomic replace (fsync, rename), incremental files that appear only when committed, a full disk
named in one line."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline.data.loading import PARQUET_SUFFIXES
from driftline.errors import OutputNotWritten

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
    sees half a file. `text_columns` are stored as strings even when a chunk holds only missing values there;
    `distinct_columns` (ids) are text whose values rarely repeat, so they are not dictionary-encoded. Without
    `statistics`, Parquet row groups carry no min/max: for files always read whole, where they only cost time.
    """

    def __init__(
        self,
        folder: Path,
        suffix: str,
        text_columns: Iterable[str] = (),
        distinct_columns: Iterable[str] = (),
        statistics: bool = True,
    ):
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=folder, prefix=".", suffix=f"{suffix}.tmp")
        os.close(handle)
        self.temp = Path(temp_name)
        self.rows = 0
        self._parquet = suffix.lower() in PARQUET_SUFFIXES
        self._text_columns, self._distinct_columns = set(text_columns), set(distinct_columns)
        self._writer, self._statistics = None, statistics

    def write(self, data: pd.DataFrame | Mapping[str, Any], rows: int | None = None) -> None:
        """A chunk: a frame, or its columns (numpy, pandas or Arrow arrays, or one value for every row) and its number
        of `rows`."""
        rows = len(data) if isinstance(data, pd.DataFrame) else rows
        if not self._parquet:
            frame = data if isinstance(data, pd.DataFrame) else _frame_of(data, rows)
            frame.to_csv(self.temp, mode="a" if self.rows else "w", header=not self.rows, index=False)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            if self._writer is None:  # the file's types: what pandas would write for the first chunk
                first = data if isinstance(data, pd.DataFrame) else _frame_of(data, rows)
                schema = pa.Schema.from_pandas(first, preserve_index=False)
                for name in self._text_columns & set(schema.names):
                    schema = schema.set(schema.get_field_index(name), pa.field(name, pa.string()))
                # Dictionary pages pay off for text that repeats; for ids and numbers they only cost time (half of
                # the writing time of a prediction log, measured).
                repeating = [
                    f.name for f in schema if pa.types.is_string(f.type) and f.name not in self._distinct_columns
                ]
                self._writer = pq.ParquetWriter(
                    self.temp, schema, use_dictionary=repeating, write_statistics=self._statistics
                )
            schema = self._writer.schema
            if isinstance(data, pd.DataFrame):
                table = pa.Table.from_pandas(data, schema=schema, preserve_index=False)
            else:
                table = _arrow_table(data, rows, schema)
            self._writer.write_table(table)
        self.rows += rows

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


def _frame_of(columns: Mapping[str, Any], rows: int) -> pd.DataFrame:
    import pyarrow as pa

    values = {name: value.to_pandas() if isinstance(value, pa.Array) else value for name, value in columns.items()}
    return pd.DataFrame(values, index=range(rows))


def _arrow_table(columns: Mapping[str, Any], rows: int, schema: Any) -> Any:
    """Columns straight into Arrow with the file's types, missing values as nulls as pandas writes them. No frame in
    between: building one (its blocks consolidated) and converting it back cost twice the conversion alone. Arrow
    arrays (text as the reader made it) are taken as they are."""
    import pyarrow as pa

    arrays = []
    for field in schema:
        value = columns[field.name]
        if isinstance(value, pa.Array):
            arrays.append(value.cast(field.type))
        elif isinstance(value, np.ndarray | pd.api.extensions.ExtensionArray):
            arrays.append(pa.array(value, type=field.type, from_pandas=True))
        else:
            arrays.append(pa.repeat(pa.scalar(value, type=field.type, from_pandas=True), rows))
    return pa.Table.from_arrays(arrays, schema=schema)
