"""A file too large for memory validated chunk by chunk as it is read: GX's verdict on the whole file from its counts.

Each chunk is checked as it is read, on the read-ahead thread, and can then be handed on (to scoring) in the same
pass: the file is read once. Nothing is kept but the counts, and the hashes of the values that must be unique.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd

from driftline.config import DriftlineConfig
from driftline.data.chunking import Chunk, DataFile, iter_chunks, read_ahead, read_chunks
from driftline.data.loading import FileStamp, fingerprint_file, require_unchanged
from driftline.errors import ConfigError
from driftline.validation.expectations import Counts, build_expectations, chunk_checks, summable
from driftline.validation.labels import LabelRules, LabelTally
from driftline.validation.profile import ReferenceProfile
from driftline.validation.report import ValidationReport, build_report


class RepeatedValues:
    """Rows whose value appears more than once in a column, counted exactly over a file read in chunks.

    Memory stays bounded: each value's 64-bit hash is spilled to one of `BUCKETS` files on disk, and each bucket
    is checked alone. Values whose hash repeats are confirmed on the values themselves in a second read, which
    only a file with repeats (one that fails) pays for.
    """

    BUCKETS = 64

    def __init__(self, folder: Path):
        self._folder = folder
        self._files = [(folder / f"bucket-{i:02d}.u64").open("wb") for i in range(self.BUCKETS)]

    @staticmethod
    def _hashes(values: pd.Series) -> np.ndarray:
        # Python's own hash: equal values hash equal, as in pandas' duplicated(); ~10x faster than
        # hash_pandas_object on text. It differs between processes, and the buckets live only as long as this one.
        return np.fromiter(map(hash, values.to_numpy()), dtype=np.int64, count=len(values)).view(np.uint64)

    def add(self, values: pd.Series) -> None:
        hashes = self._hashes(values.dropna())
        bucket = (hashes >> np.uint64(58)).astype(np.intp)  # the top 6 bits pick one of 64 buckets
        order = np.argsort(bucket, kind="stable")
        bounds = np.cumsum(np.bincount(bucket, minlength=self.BUCKETS))[:-1]
        for handle, part in zip(self._files, np.split(hashes[order], bounds), strict=True):
            part.tofile(handle)

    def repeated_hashes(self) -> np.ndarray:
        for handle in self._files:
            handle.close()
        repeated = []
        for index in range(self.BUCKETS):
            hashes, counts = np.unique(
                np.fromfile(self._folder / f"bucket-{index:02d}.u64", dtype=np.uint64), return_counts=True
            )
            repeated.append(hashes[counts > 1])
        return np.concatenate(repeated)

    def count(self, column_again: Callable[[], Iterable[pd.Series]]) -> Counts:
        """Rows with a repeated value and the first of them in file order, reading the column once more if needed."""
        repeated = self.repeated_hashes()
        found = Counts()
        if not len(repeated):
            return found
        candidates: list[tuple[Any, int]] = []  # values whose hash repeats and their rows: repeats and collisions
        offset = 0
        for values in column_again():
            present = values.dropna()
            hit = np.isin(self._hashes(present), repeated)
            rows = offset + values.index.get_indexer(present.index[hit])
            candidates += zip(present[hit].tolist(), rows.tolist(), strict=True)
            offset += len(values)
        counts = Counter(value for value, _ in candidates)
        rows = [(value, row) for value, row in candidates if counts[value] > 1]
        found.add(0, 0, len(rows), [value for value, _ in rows], [row for _, row in rows])
        return found


class StreamedValidation:
    """The suite's verdict on one file, taken chunk by chunk; the chunks themselves are not kept.

    `expectations_for` builds the suite from the first chunk (its columns decide whether labels are checked); the
    labels, given a tally, are counted chunk by chunk and judged on the whole file.
    """

    def __init__(
        self,
        expectations_for: Callable[[pd.DataFrame], list[Any]],
        scratch: Path,
        suite_name: str,
        labels: LabelTally | None = None,
    ):
        self._expectations_for, self._labels, self._suite_name = expectations_for, labels, suite_name
        scratch.mkdir(parents=True, exist_ok=True)
        self._folder = tempfile.TemporaryDirectory(dir=scratch, prefix=".validation-")
        self._checks: list[Any] = []
        self._repeated: dict[str, RepeatedValues] = {}
        self._whole_table: list[str] = []
        self.rows, self.chunks, self.columns = 0, 0, ()

    def check(self, chunk: pd.DataFrame) -> None:
        if not self.chunks:
            expectations = self._expectations_for(chunk)
            self._whole_table = sorted({e.expectation_type for e in expectations if not summable(e)})
            self._checks = chunk_checks(expectations, self._suite_name)
            for column in {check.column for check in self._checks if check.across_file}:
                (Path(self._folder.name) / column).mkdir()
                self._repeated[column] = RepeatedValues(Path(self._folder.name) / column)
            self.columns = tuple(chunk.columns)
        elif self.chunks == 1 and self._whole_table:
            raise ConfigError(
                f"validation.extra_expectations: {self._whole_table} check the whole table and cannot be summed "
                "chunk by chunk; set scoring.chunk_rows: null to read files whole"
            )
        nulls: dict[str, np.ndarray] = {}  # each column's null mask, computed once for all its checks
        for check in self._checks:
            check.add(chunk, self.rows, nulls)
        for column, values in self._repeated.items():
            if column in chunk:
                values.add(chunk[column])
        if self._labels is not None:
            self._labels.add(chunk)
        self.rows, self.chunks = self.rows + len(chunk), self.chunks + 1

    @property
    def doomed(self) -> bool:
        """The file fails whatever its remaining chunks hold."""
        return any(check.doomed for check in self._checks)

    def report(self, column_again: Callable[[str], Iterable[pd.Series]]) -> ValidationReport:
        """The verdict on every chunk checked; `column_again` re-reads a column whose values repeat."""
        outcomes = []
        for check in self._checks:
            repeated = self._repeated.get(check.column) if check.across_file and check.failed is None else None
            again = partial(column_again, check.column)
            outcomes.append(check.outcome(repeated.count(again) if repeated else None))
        # GX reports the expectations whose metrics it could not compute first.
        failed_first = sorted(range(len(outcomes)), key=lambda index: not self._checks[index].metric_failed)
        labeled = self._labels.outcomes() if self._labels is not None else []
        return build_report([*(outcomes[index] for index in failed_first), *labeled])

    def close(self) -> None:
        self._folder.cleanup()


class CheckedFile:
    """A file read once, `scoring.chunk_rows` rows at a time: each chunk validated as it is read, then handed on.

    Iterating gives the chunks, the next one read and validated on a thread meanwhile; once a chunk dooms the file,
    the rest is read for the report but no longer handed on. `verdict()` finishes the read and judges the file.
    Use it as a context manager: the spilled hashes are removed on leaving.
    """

    def __init__(
        self,
        path: Path,
        cfg: DriftlineConfig,
        profile: ReferenceProfile | None,
        for_training: bool,
        labels: LabelRules | None = None,
        suite_name: str = "driftline",
    ):
        self.path, self._dataset, self._chunk_rows = path, cfg.dataset, cfg.scoring.chunk_rows
        self._before = FileStamp.of(path) if path.is_file() else None
        self.fingerprint = fingerprint_file(path) if path.is_file() else ""

        def expectations_for(first: pd.DataFrame) -> list[Any]:
            require_target = for_training or cfg.dataset.target in first
            return build_expectations(
                cfg.dataset,
                cfg.validation,
                profile,
                require_target,
                columns=first.columns,
                declared=cfg.declared_columns,
            )

        tally = LabelTally(labels or LabelRules.of(cfg))
        self._validation = StreamedValidation(expectations_for, cfg.folders.scratch, suite_name, tally)
        self._chunks = read_chunks(path, self._dataset, self._chunk_rows)
        self._reader: Iterator[Chunk] | None = None
        self._failure: Exception | None = None  # what stopped the read: the verdict raises it too
        self._report: ValidationReport | None = None

    @property
    def name(self) -> str:
        return self.path.name

    def __iter__(self) -> Iterator[Chunk]:
        self._reader = read_ahead(self._checked())
        return self._reader

    def _checked(self) -> Iterator[Chunk]:
        try:
            for chunk in self._chunks:
                self._validation.check(chunk.frame)
                if self._validation.doomed:
                    return  # the rest is read by verdict(): the report counts every row
                yield chunk
        except Exception as failure:
            self._failure = failure
            raise

    def _stop_reading_ahead(self) -> None:
        if self._reader is not None:
            self._reader.close()  # waits for the chunk being read on the thread
            self._reader = None

    def verdict(self) -> ValidationReport:
        """The whole file's verdict. DataRejected if the file changed while it was read (a writer still at work)."""
        if self._report is not None:
            return self._report
        self._stop_reading_ahead()
        if self._failure is not None:
            raise self._failure
        for chunk in self._chunks:
            self._validation.check(chunk.frame)

        def column_again(column: str) -> Iterator[pd.Series]:
            return (chunk[column] for chunk in iter_chunks(self.path, self._dataset, self._chunk_rows))

        report = self._validation.report(column_again)
        if self._before is not None:
            require_unchanged(self.path, self._before)
        self._report = report
        return report

    @property
    def source(self) -> DataFile:
        """The file as read: its path, fingerprint, rows and columns."""
        return DataFile(self.path, self.fingerprint, self._validation.rows, self._validation.columns)

    def __enter__(self) -> CheckedFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None):
        self._stop_reading_ahead()
        self._validation.close()


def validate_file(
    path: Path,
    cfg: DriftlineConfig,
    profile: ReferenceProfile | None,
    for_training: bool,
    labels: LabelRules | None = None,
) -> tuple[DataFile, ValidationReport]:
    """Read a file chunk by chunk (`scoring.chunk_rows`) and validate it in bounded memory; nothing is kept.

    Labels are required when training; labels a file carries are checked by `labels` (the rules of every labeled
    file; by default without a champion's classes). Unreadable files raise DataRejected.
    """
    with CheckedFile(path, cfg, profile, for_training, labels) as checked:
        report = checked.verdict()
        return checked.source, report
