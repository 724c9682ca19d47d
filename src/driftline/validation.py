"""Data validation: expectations derived from the config and the reference profile, run by Great Expectations 1.x.

The only module that imports great_expectations.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline.config import DatasetConfig, DriftlineConfig, ValidationConfig
from driftline.data import DataFile, FileStamp, fingerprint_file, iter_chunks, read_ahead, require_unchanged
from driftline.errors import ConfigError

NUMERIC_DTYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "Int8", "Int16", "Int32", "Int64", "Float32", "Float64",
]  # fmt: skip


@dataclass(frozen=True)
class ReferenceProfile:
    """What the training data looked like: numeric ranges and known categories, for range and set checks."""

    numeric_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
        return cls(
            numeric_ranges={k: (float(lo), float(hi)) for k, (lo, hi) in data.get("numeric_ranges", {}).items()},
            categories={k: list(v) for k, v in data.get("categories", {}).items()},
        )


@dataclass(frozen=True)
class ValidationReport:
    success: bool
    failures: list[str]
    checked: int
    details: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def learn_profile(frame: pd.DataFrame, dataset: DatasetConfig) -> ReferenceProfile:
    ranges = {}
    for column in dataset.numeric_features:
        values = pd.to_numeric(frame[column], errors="coerce")
        values = values[np.isfinite(values)]
        if len(values):
            ranges[column] = (float(values.min()), float(values.max()))
    categories = {
        column: sorted(str(v) for v in frame[column].dropna().unique()) for column in dataset.categorical_features
    }
    return ReferenceProfile(numeric_ranges=ranges, categories=categories)


def _gx():
    import great_expectations as gx

    return gx


def _expectation(name: str, **kwargs: Any):
    """Build a GX expectation from its snake-case type name, the form configs use."""
    class_name = "".join(part.capitalize() for part in name.split("_"))
    expectation_class = getattr(_gx().expectations, class_name, None)
    if expectation_class is None:
        raise ConfigError(f"validation.extra_expectations: unknown expectation type {name!r}")
    try:
        return expectation_class(**kwargs)
    except Exception as exc:  # pydantic errors from GX: surface them as a config problem
        raise ConfigError(f"validation.extra_expectations: {name} {kwargs}: {str(exc).splitlines()[0]}") from None


def build_expectations(
    dataset: DatasetConfig,
    rules: ValidationConfig,
    profile: ReferenceProfile | None,
    require_target: bool,
    columns: Iterable[str] | None = None,
) -> list[Any]:
    """The suite for one batch: schema checks always, range/set checks once a reference profile exists.

    Given the file's `columns`, a column the config does not declare (not a feature, the target, the id, the event
    time or a `dataset.passthrough_columns` entry) fails the batch.
    """
    allowed_nulls = 1.0 - rules.max_null_fraction
    expected = []
    required = [*dataset.feature_names, *([dataset.target] if require_target else [])]
    required += [c for c in (dataset.id_column, dataset.event_time_column) if c]
    expected += [_expectation("expect_column_to_exist", column=c) for c in required]
    if columns is not None:
        declared = {*required, dataset.target, *dataset.passthrough_columns}
        # Exactly the declared columns the file has: any other column fails it (missing ones fail above).
        present = [str(c) for c in columns if c in declared]
        expected.append(_expectation("expect_table_columns_to_match_set", column_set=present, exact_match=True))
    for column in dataset.numeric_features:
        expected.append(
            _expectation("expect_column_values_to_be_in_type_list", column=column, type_list=NUMERIC_DTYPES)
        )
        expected.append(_expectation("expect_column_values_to_not_be_null", column=column, mostly=allowed_nulls))
        bound = rules.max_abs_value  # infinities and sentinel-sized values, with or without a reference profile
        expected.append(
            _expectation("expect_column_values_to_be_between", column=column, min_value=-bound, max_value=bound)
        )
        if profile and column in profile.numeric_ranges:
            low, high = profile.numeric_ranges[column]
            width = (high - low) or max(abs(high), 1.0)  # constant in training: scale the tolerance by its size
            margin = width * rules.range_tolerance
            expected.append(
                _expectation(
                    "expect_column_values_to_be_between",
                    column=column,
                    min_value=low - margin,
                    max_value=high + margin,
                    mostly=1.0 - rules.max_out_of_range_fraction,
                )
            )
    for column in dataset.categorical_features:
        expected.append(_expectation("expect_column_values_to_not_be_null", column=column, mostly=allowed_nulls))
        if profile and column in profile.categories:
            expected.append(
                _expectation(
                    "expect_column_values_to_be_in_set",
                    column=column,
                    value_set=profile.categories[column],
                    mostly=1.0 - rules.max_unseen_category_fraction,
                )
            )
    if require_target:
        expected.append(_expectation("expect_column_values_to_not_be_null", column=dataset.target))
    if dataset.id_column:
        expected.append(_expectation("expect_column_values_to_not_be_null", column=dataset.id_column))
        expected.append(_expectation("expect_column_values_to_be_unique", column=dataset.id_column))
    if dataset.event_time_column:
        expected.append(_expectation("expect_column_values_to_not_be_null", column=dataset.event_time_column))
    expected += [_expectation(extra.type, **extra.kwargs) for extra in rules.extra_expectations]
    return expected


def _percent(value: Any) -> str:
    return f"{float(value):.1f}%" if value is not None else "?"


def _examples(result: dict[str, Any], shown: Callable[[str], bool] = lambda value: True) -> str:
    values = [v for v in dict.fromkeys(str(v) for v in result.get("partial_unexpected_list") or []) if shown(v)][:3]
    return f" (e.g. {', '.join(values)})" if values else ""


def _not_a_number(text: str) -> bool:
    """In a text column, the values that made it text: '47.0' beside 'forty' is not the problem."""
    try:
        float(text)
    except ValueError:
        return True
    return False


def _describe_failure(kind: str, kwargs: dict[str, Any], result: dict[str, Any]) -> str:
    """One readable line per failed expectation: column, what was expected, what was found."""
    column = kwargs.get("column")
    mostly = kwargs.get("mostly")
    allowed = f", at most {_percent((1 - mostly) * 100)} allowed" if mostly is not None and mostly < 1 else ""
    unexpected = _percent(result.get("unexpected_percent"))
    if kind == "expect_column_to_exist":
        return f"column {column!r} is missing"
    if kind == "expect_table_columns_to_match_set":
        extra = [c for c in result.get("observed_value") or [] if c not in kwargs.get("column_set", [])]
        return (
            f"columns {extra} are not in the config: expected only the declared columns; "
            "drop them or list them under dataset.passthrough_columns"
        )
    if kind == "expect_column_values_to_not_be_null":
        return f"column {column!r}: {unexpected} nulls or unparseable values{allowed}"
    if kind == "expect_column_values_to_be_in_type_list":
        found = result.get("observed_value") or "non-numeric values"
        return f"column {column!r}: expected numbers, found {found}{_examples(result, _not_a_number)}"
    if kind == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        bounds = f"[{'-inf' if low is None else f'{low:.4g}'}, {'inf' if high is None else f'{high:.4g}'}]"
        return f"column {column!r}: {unexpected} of values outside {bounds}{_examples(result)}{allowed}"
    if kind == "expect_column_values_to_be_in_set":
        return (
            f"column {column!r}: {unexpected} of values are categories unseen in training{_examples(result)}{allowed}"
        )
    if kind == "expect_column_values_to_be_unique":
        return f"column {column!r}: {result.get('unexpected_count')} rows share an id{_examples(result)}"
    shown = {k: v for k, v in kwargs.items() if k != "batch_id"}
    return f"{kind} {shown} failed: observed {result.get('observed_value', unexpected)}{_examples(result)}"


@dataclass(frozen=True)
class _Outcome:
    """One expectation's verdict, from GX on a frame or summed over the chunks of a file."""

    kind: str
    kwargs: dict[str, Any]
    success: bool
    result: dict[str, Any]
    error: str | None = None  # the first line of what GX raised, when the check could not run


def _outcomes(result: Any) -> list[_Outcome]:
    outcomes = []
    for outcome in result.results:
        info = outcome.exception_info or {}
        error = None
        if info.get("raised_exception"):
            error = " ".join(str(info.get("exception_message", "")).splitlines()[:1])
        outcomes.append(_Outcome(outcome.expectation_config.type, dict(outcome.expectation_config.kwargs),
                                 bool(outcome.success), dict(outcome.result or {}), error))  # fmt: skip
    return outcomes


def _report(outcomes: list[_Outcome]) -> ValidationReport:
    """Failures as readable lines; a missing or non-numeric column fails every other check on it: only that shows."""

    def failed_columns(kind: str) -> set[str]:
        return {o.kwargs.get("column") for o in outcomes if o.kind == kind and not o.success}

    missing = failed_columns("expect_column_to_exist")
    root_cause = {column: "expect_column_to_exist" for column in missing}
    root_cause |= {c: "expect_column_values_to_be_in_type_list"
                   for c in failed_columns("expect_column_values_to_be_in_type_list") - missing}  # fmt: skip
    failures, details = [], []
    for outcome in outcomes:
        kind, kwargs = outcome.kind, outcome.kwargs
        details.append({"expectation": kind, "kwargs": kwargs, "success": outcome.success, "result": outcome.result})
        if outcome.success:
            continue
        if kwargs.get("column") in root_cause and root_cause[kwargs.get("column")] != kind:
            continue
        if outcome.error is not None:
            failures.append(f"{kind} on {kwargs.get('column')!r} could not run: {outcome.error}")
        else:
            failures.append(_describe_failure(kind, kwargs, outcome.result))
    return ValidationReport(success=not failures, failures=failures, checked=len(outcomes), details=details)


def _validator(expectations: list[Any], suite_name: str) -> Callable[[pd.DataFrame], list[_Outcome]]:
    """A GX context and suite built once, run on each frame given."""
    gx = _gx()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    batch_definition = (
        context.data_sources.add_pandas("driftline")
        .add_dataframe_asset("batch")
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=expectations))
    return lambda frame: _outcomes(batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(suite))


def validate_frame(frame: pd.DataFrame, expectations: list[Any], suite_name: str = "driftline") -> ValidationReport:
    """Run the expectations with GX; failures become readable lines (1.x reports, it does not raise)."""
    return _report(_validator(expectations, suite_name)(frame))


# --- a file too large for memory: the same suite chunk by chunk --------------------------------------------------
ALL_CHUNKS_PASS = {"expect_column_to_exist", "expect_column_values_to_be_in_type_list",
                   "expect_table_columns_to_match_set"}  # fmt: skip
UNIQUE = "expect_column_values_to_be_unique"
PARTIAL_EXAMPLES = 20  # GX's BASIC result format keeps this many unexpected values


def _summable(expectation: Any) -> bool:
    """Per-row checks sum exactly over chunks; a check of the whole table (a mean, a row count) does not."""
    from great_expectations.expectations.expectation import ColumnMapExpectation

    return expectation.expectation_type in ALL_CHUNKS_PASS or isinstance(expectation, ColumnMapExpectation)


def _mostly_success(considered: int, unexpected: int, mostly: float | None) -> bool:
    """GX's rule for map expectations: the share of expected values reaches `mostly` (no rows: vacuously true)."""
    return considered == 0 or (considered - unexpected) / considered >= (1.0 if mostly is None else mostly)


def _summed(outcomes: list[_Outcome]) -> _Outcome:
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
    first: _Outcome, elements: int, missing: int, unexpected: int, examples: list[Any], counts_missing: bool
) -> _Outcome:
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
    return _Outcome(first.kind, first.kwargs, success, result)


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
    suite_name: str = "driftline",
) -> ValidationReport:
    """The suite on each chunk, then the counts summed into the verdict GX gives on the whole file.

    `expectations_for` builds the suite from the first chunk (its columns decide whether labels are checked);
    `column_again` re-reads one column, for the exact count of repeated ids across chunks.
    """
    per_expectation: list[list[_Outcome]] = []
    validate: Callable[[pd.DataFrame], list[_Outcome]] | None = None
    repeated: dict[str, RepeatedValues] = {}
    with tempfile.TemporaryDirectory(dir=scratch, prefix=".validation-") as folder:
        for number, chunk in enumerate(chunks):
            if validate is None:
                expectations = expectations_for(chunk)
                whole_table = sorted({e.expectation_type for e in expectations if not _summable(e)})
                validate = _validator(expectations, suite_name)
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
    return _report(outcomes)


def validate_file(
    path: Path, cfg: DriftlineConfig, profile: ReferenceProfile | None, for_training: bool
) -> tuple[DataFile, ValidationReport]:
    """Read a file chunk by chunk (`scoring.chunk_rows`) and validate it in bounded memory; nothing is kept.

    Labels are checked when training, or when the file carries them. Unreadable files raise DataRejected.
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

    scratch = cfg.workspace / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    report = validate_chunks(read_ahead(counted()), expectations_for, column_again, scratch)
    if before is not None:
        require_unchanged(path, before)
    return DataFile(path, fingerprint, int(seen["rows"]), tuple(seen["columns"])), report
