"""A file too large for memory validated chunk by chunk: GX's verdict on the whole file from its counts per chunk."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline.config import DriftlineConfig
from driftline.data.chunking import DataFile, iter_chunks, read_ahead
from driftline.data.loading import FileStamp, fingerprint_file, require_unchanged
from driftline.errors import ConfigError
from driftline.validation.expectations import ALL_CHUNKS_PASS, build_expectations, summable, validator
from driftline.validation.labels import LabelRules, LabelTally
from driftline.validation.profile import ReferenceProfile
from driftline.validation.report import Outcome, ValidationReport, build_report

UNIQUE = "expect_column_values_to_be_unique"


PARTIAL_EXAMPLES = 20  # GX's BASIC result format keeps this many unexpected values


def _mostly_success(considered: int, unexpected: int, mostly: float | None) -> bool:
    """GX's rule for map expectations: the share of expected values reaches `mostly` (no rows: vacuously true)."""
    return considered == 0 or (considered - unexpected) / considered >= (1.0 if mostly is None else mostly)


def _summed(outcomes: list[Outcome]) -> Outcome:
    """The whole file's verdict of one expectation from its verdicts on each chunk, as GX computes it on a frame."""
    first = outcomes[0]
    failed = next((o for o in outcomes if o.error is not None), None) or (
        next((o for o in outcomes if not o.success), None) if first.kind in ALL_CHUNKS_PASS else None
    )
    if failed is not None or first.kind in ALL_CHUNKS_PASS:
        return failed or first
    results = [o.result for o in outcomes]
    elements = sum(r.get("element_count") or 0 for r in results)
    unexpected = sum(r.get("unexpected_count") or 0 for r in results)
    # Checks that count nulls as values (not_be_null) report no missing_count: every row is considered.
    counts_missing = "missing_count" in first.result
    missing = sum(r.get("missing_count") or 0 for r in results) if counts_missing else 0
    examples = [v for r in results for v in r.get("partial_unexpected_list") or []][:PARTIAL_EXAMPLES]
    return _with_counts(first, elements, missing, unexpected, examples, counts_missing)


def _with_counts(
    first: Outcome, elements: int, missing: int, unexpected: int, examples: list[Any], counts_missing: bool
) -> Outcome:
    considered = elements - missing
    result: dict[str, Any] = {
        "element_count": elements,
        "unexpected_count": unexpected,
        "unexpected_percent": unexpected / considered * 100 if considered else None,
        "partial_unexpected_list": examples,
    }
    if counts_missing:
        result |= {"missing_count": missing, "missing_percent": missing / elements * 100 if elements else None}
    success = _mostly_success(considered, unexpected, first.kwargs.get("mostly"))
    return Outcome(first.kind, first.kwargs, success, result)


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
        return pd.util.hash_pandas_object(values.dropna(), index=False).to_numpy()

    def add(self, values: pd.Series) -> None:
        hashes = self._hashes(values)
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
            hashes, counts = np.unique(np.fromfile(self._folder / f"bucket-{index:02d}.u64", dtype=np.uint64),
                                       return_counts=True)  # fmt: skip
            repeated.append(hashes[counts > 1])
        return np.concatenate(repeated)

    def count(self, column_again: Iterable[pd.Series]) -> tuple[int, list[Any]]:
        """Rows with a repeated value and the first of them in file order, reading the column once more if needed."""
        repeated = self.repeated_hashes()
        if not len(repeated):
            return 0, []
        candidates: list[Any] = []  # values whose hash repeats, in row order: the repeats and any hash collision
        for values in column_again:
            present = values.dropna()
            candidates += present[np.isin(self._hashes(present), repeated)].tolist()
        counts = Counter(candidates)
        rows = [value for value in candidates if counts[value] > 1]
        return len(rows), rows[:PARTIAL_EXAMPLES]


def validate_chunks(
    chunks: Iterable[pd.DataFrame],
    expectations_for: Callable[[pd.DataFrame], list[Any]],
    column_again: Callable[[str], Iterable[pd.Series]],
    scratch: Path,
    labels: LabelTally,
    suite_name: str = "driftline",
) -> ValidationReport:
    """The suite on each chunk, then the counts summed into the verdict GX gives on the whole file; the labels
    tallied chunk by chunk and judged on the whole file.

    `expectations_for` builds the suite from the first chunk (its columns decide whether labels are required);
    `column_again` re-reads one column, for the exact count of repeated ids across chunks.
    """
    per_expectation: list[list[Outcome]] = []
    validate: Callable[[pd.DataFrame], list[Outcome]] | None = None
    repeated: dict[str, RepeatedValues] = {}
    with tempfile.TemporaryDirectory(dir=scratch, prefix=".validation-") as folder:
        for number, chunk in enumerate(chunks):
            if validate is None:
                expectations = expectations_for(chunk)
                whole_table = sorted({e.expectation_type for e in expectations if not summable(e)})
                validate = validator(expectations, suite_name)
                for column in {e.column for e in expectations if e.expectation_type == UNIQUE}:
                    (Path(folder) / column).mkdir()
                    repeated[column] = RepeatedValues(Path(folder) / column)
            elif number == 1 and whole_table:
                raise ConfigError(
                    f"validation.extra_expectations: {whole_table} check the whole table and cannot be summed "
                    "chunk by chunk; set scoring.chunk_rows: null to read files whole"
                )
            for index, outcome in enumerate(validate(chunk)):
                if number == 0:
                    per_expectation.append([])
                per_expectation[index].append(outcome)
            for column, values in repeated.items():
                if column in chunk:
                    values.add(chunk[column])
            labels.add(chunk)
        outcomes = []
        for chunk_outcomes in per_expectation:
            if len(chunk_outcomes) == 1:  # one chunk: GX's own verdict on the whole file
                outcomes.append(chunk_outcomes[0])
                continue
            outcome = _summed(chunk_outcomes)
            if outcome.kind == UNIQUE and outcome.error is None and outcome.kwargs["column"] in repeated:
                column = outcome.kwargs["column"]
                elements = sum(o.result.get("element_count") or 0 for o in chunk_outcomes)
                unexpected, examples = repeated[column].count(column_again(column))
                missing = outcome.result.get("missing_count") or 0
                outcome = _with_counts(outcome, elements, missing, unexpected, examples, counts_missing=True)
            outcomes.append(outcome)
    return build_report([*outcomes, *labels.outcomes()])


def validate_file(
    path: Path, cfg: DriftlineConfig, profile: ReferenceProfile | None, for_training: bool,
    labels: LabelRules | None = None,
) -> tuple[DataFile, ValidationReport]:  # fmt: skip
    """Read a file chunk by chunk (`scoring.chunk_rows`) and validate it in bounded memory; nothing is kept.

    Labels are required when training; labels a file carries are checked by `labels` (the rules of every labeled
    file; by default without a champion's classes). Unreadable files raise DataRejected.
    """
    dataset, chunk_rows = cfg.dataset, cfg.scoring.chunk_rows
    before = FileStamp.of(path) if path.is_file() else None
    fingerprint = fingerprint_file(path) if path.is_file() else ""
    seen = {"rows": 0, "columns": ()}

    def counted() -> Iterator[pd.DataFrame]:
        for chunk in iter_chunks(path, dataset, chunk_rows):
            seen["rows"] += len(chunk)
            seen["columns"] = seen["columns"] or tuple(chunk.columns)
            yield chunk

    def expectations_for(first: pd.DataFrame) -> list[Any]:
        require_target = for_training or dataset.target in first
        return build_expectations(dataset, cfg.validation, profile, require_target, columns=first.columns)

    def column_again(column: str) -> Iterator[pd.Series]:
        return (chunk[column] for chunk in iter_chunks(path, dataset, chunk_rows))

    scratch = cfg.folders.scratch
    scratch.mkdir(parents=True, exist_ok=True)
    tally = LabelTally(labels or LabelRules.of(cfg))
    report = validate_chunks(read_ahead(counted()), expectations_for, column_again, scratch, tally)
    if before is not None:
        require_unchanged(path, before)
    return DataFile(path, fingerprint, int(seen["rows"]), tuple(seen["columns"])), report
