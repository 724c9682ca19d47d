"""The Great Expectations adapter: the suite derived from the config and profile, run by GX 1.x.

The only module that imports great_expectations."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from driftline.config import DatasetConfig, ValidationConfig
from driftline.errors import ConfigError
from driftline.validation.profile import ReferenceProfile
from driftline.validation.report import Outcome, ValidationReport, build_report

NUMERIC_DTYPES = [
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "Float32",
    "Float64",
]


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
    declared: Collection[str] | None = None,
) -> list[Any]:
    """The suite for one batch: schema checks always, range/set checks once a reference profile exists. The labels
    themselves are checked by driftline.validation.labels (the same rules for every kind of file).

    Given the file's `columns`, a column outside `declared` fails the batch. Callers pass `cfg.declared_columns`
    (the dataset's roles, the gate's watched columns and `dataset.passthrough_columns`); without it, only the
    dataset section's columns are declared.
    """
    allowed_nulls = 1.0 - rules.max_null_fraction
    expected = []
    required = [*dataset.feature_names, *([dataset.target] if require_target else [])]
    required += [c for c in (dataset.id_column, dataset.event_time_column) if c]
    expected += [_expectation("expect_column_to_exist", column=c) for c in required]
    if columns is not None:
        if declared is None:
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
    if dataset.id_column:
        expected.append(_expectation("expect_column_values_to_not_be_null", column=dataset.id_column))
        expected.append(_expectation("expect_column_values_to_be_unique", column=dataset.id_column))
    if dataset.event_time_column:
        expected.append(_expectation("expect_column_values_to_not_be_null", column=dataset.event_time_column))
    expected += [_expectation(extra.type, **extra.kwargs) for extra in rules.extra_expectations]
    return expected


def _outcome(result: Any) -> Outcome:
    info = result.exception_info or {}
    error = " ".join(str(info.get("exception_message", "")).splitlines()[:1]) if info.get("raised_exception") else None
    kwargs = {k: v for k, v in result.expectation_config.kwargs.items() if k != "batch_id"}
    return Outcome(result.expectation_config.type, kwargs, bool(result.success), dict(result.result or {}), error)


def _metric_failed(result: Any) -> bool:
    """A metric GX could not compute (a missing column, values it cannot compare): GX lists these results first."""
    failures = (result.exception_info or {}).values()
    return any(isinstance(info, dict) and info.get("raised_exception") for info in failures)


def _suite_runner(expectations: list[Any], suite_name: str) -> Callable[[pd.DataFrame], list[Any]]:
    gx = _gx()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    batch_definition = (
        context.data_sources.add_pandas("driftline")
        .add_dataframe_asset("batch")
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=expectations))
    return lambda frame: batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(suite).results


def validator(expectations: list[Any], suite_name: str) -> Callable[[pd.DataFrame], list[Outcome]]:
    """A GX context and suite built once, run on each frame given."""
    run = _suite_runner(expectations, suite_name)
    return lambda frame: [_outcome(result) for result in run(frame)]


def chunk_checks(expectations: list[Any], suite_name: str) -> list[Check]:
    """The suite as checks over the chunks of a file; GX runs an expectation itself only where a check needs it."""
    runners: dict[int, Callable[[pd.DataFrame], list[Any]]] = {}

    def through_gx(expectation: Any, frame: pd.DataFrame) -> tuple[Outcome, bool]:
        if id(expectation) not in runners:
            runners[id(expectation)] = _suite_runner([copy.copy(expectation)], f"{suite_name}-{len(runners)}")
        [result] = runners[id(expectation)](frame)
        return _outcome(result), _metric_failed(result)

    checks = [Check(expectation, through_gx) for expectation in expectations]
    # In GX's order: grouped by column, columns in order of first mention, checks of the whole table last.
    first_mention = {column: index for index, column in reversed(list(enumerate(c.column for c in checks)))}
    return sorted(checks, key=lambda check: (check.column is None, first_mention[check.column]))


def validate_frame(
    frame: pd.DataFrame, expectations: list[Any], suite_name: str = "driftline", also: Iterable[Outcome] = ()
) -> ValidationReport:
    """Run the expectations with GX, beside driftline's own checks (`also`: the labels); failures become readable
    lines (1.x reports, it does not raise)."""
    return build_report([*validator(expectations, suite_name)(frame), *also])


# --- a file read in chunks: GX's expectations judge counts taken in one pass over each chunk --------------------
ALL_CHUNKS_PASS = {
    "expect_column_to_exist",
    "expect_column_values_to_be_in_type_list",
    "expect_table_columns_to_match_set",
}
PARTIAL_EXAMPLES = 20  # GX's SUMMARY format keeps this many unexpected values and their rows
SUMMARY = {"result_format": "SUMMARY"}  # the result format GX validates a batch in
# Map metrics whose condition looks at one row at a time and needs no other metric: counted chunk by chunk with
# GX's own condition function. Any other map expectation runs through GX on each chunk.
ROW_LOCAL_METRICS = {
    "column_values.nonnull",
    "column_values.null",
    "column_values.between",
    "column_values.in_set",
    "column_values.not_in_set",
    "column_values.in_type_list",
    "column_values.match_regex",
    "column_values.not_match_regex",
    "column_values.value_length_between",
    "column_values.value_length_equals",
}
ACROSS_FILE_METRICS = {"column_values.unique"}  # repeats across chunks: counted by the caller over the whole file


def summable(expectation: Any) -> bool:
    """Per-row checks sum exactly over chunks; a check of the whole table (a mean, a row count) does not."""
    from great_expectations.expectations.expectation import ColumnMapExpectation

    return expectation.expectation_type in ALL_CHUNKS_PASS or isinstance(expectation, ColumnMapExpectation)


@dataclass
class Counts:
    """A map expectation's metrics over the rows seen so far, in the file's row order: what GX judges."""

    rows: int = 0
    nulls: int = 0
    unexpected: int = 0
    values: list[Any] = field(default_factory=list)  # the first PARTIAL_EXAMPLES unexpected values
    positions: list[int] = field(default_factory=list)  # and their rows in the file

    def add(self, rows: int, nulls: int, unexpected: int, values: list[Any], positions: Iterable[int]) -> None:
        self.rows, self.nulls, self.unexpected = self.rows + rows, self.nulls + nulls, self.unexpected + unexpected
        room = PARTIAL_EXAMPLES - len(self.values)
        self.values += values[:room]
        self.positions += [int(p) for p in positions][:room]


@cache
def _engine():
    from great_expectations.execution_engine import PandasExecutionEngine

    return PandasExecutionEngine()


def _table_metrics(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "table.columns": list(frame.columns),
        "table.row_count": len(frame),
        "table.column_types": [{"name": n, "type": t} for n, t in zip(frame.columns, frame.dtypes, strict=True)],
    }


class Check:
    """One expectation of the suite over the chunks of a file, judged by GX's own code without its per-batch cost.

    A map expectation counts, on each chunk, the rows its own GX condition function rejects; its `_validate` then
    judges the whole file's counts once, as GX judges a whole file in memory. The schema checks are judged on every
    chunk (each must pass). Other expectations, and a chunk a condition cannot run on, go through GX itself.
    """

    def __init__(self, expectation: Any, through_gx: Callable[[Any, pd.DataFrame], tuple[Outcome, bool]]):
        from great_expectations.expectations.registry import _registered_metrics, get_metric_kwargs

        self.expectation, self.kind = expectation, expectation.expectation_type
        self.kwargs = {k: v for k, v in expectation.configuration.kwargs.items() if k != "batch_id"}
        self.column: str | None = self.kwargs.get("column")
        self.map_metric: str | None = getattr(expectation, "map_metric", None)
        self.across_file = self.map_metric in ACROSS_FILE_METRICS
        if self.kind in ALL_CHUNKS_PASS:
            self.mode = "each chunk"
        elif self.map_metric in ROW_LOCAL_METRICS or self.across_file:
            self.mode = "counted"
        else:
            self.mode = "summed by GX" if self.map_metric else "whole table"
        if self.map_metric is not None:
            entry = _registered_metrics[f"{self.map_metric}.condition"]
            self._provider, condition = entry["providers"]["PandasExecutionEngine"]
            self._condition = inspect.unwrap(condition)
            metric_kwargs = get_metric_kwargs(f"{self.map_metric}.condition", expectation.configuration, SUMMARY)
            self._value_kwargs = metric_kwargs["metric_value_kwargs"]
            self._domain_kwargs = metric_kwargs["metric_domain_kwargs"]
        self._through_gx = through_gx
        self.counts = Counts()
        self.first: Outcome | None = None  # each chunk: the first failure, else the first chunk's verdict
        self.failed: Outcome | None = None  # a chunk GX judged failed without counts: the file fails with it
        self.metric_failed = False  # GX could not compute a metric of the last chunk it judged
        self._verdicts: dict[tuple, Outcome] = {}

    def add(self, frame: pd.DataFrame, offset: int, nulls: dict[str, np.ndarray]) -> None:
        """Take one chunk, whose first row is row `offset` of the file; `nulls` are its null masks, shared by the
        checks of one chunk."""
        if self.failed is not None:
            return
        if self.mode == "each chunk":
            self._judge_chunk(frame, offset, nulls)
        elif self.mode == "whole table":
            self.first = self._gx(frame)
        else:
            self._count(frame, offset, nulls)

    def _count(self, frame: pd.DataFrame, offset: int, nulls: dict[str, np.ndarray]) -> None:
        if self.mode == "counted":
            try:
                self.counts.add(*self._counted(frame, offset, nulls))
                return
            except Exception:  # a missing column, values the condition cannot compare: GX says what that means
                pass
        outcome = self._gx(frame)
        if "element_count" not in outcome.result:
            self.failed = outcome
            return
        result, labels = outcome.result, outcome.result.get("partial_unexpected_index_list") or []
        self.counts.add(
            result["element_count"],
            result.get("missing_count") or 0,
            result["unexpected_count"] or 0,
            result.get("partial_unexpected_list") or [],
            offset + frame.index.get_indexer(labels),
        )

    def _counted(
        self, frame: pd.DataFrame, offset: int, nulls: dict[str, np.ndarray]
    ) -> tuple[int, int, int, list[Any], np.ndarray]:
        """Rows, nulls, rejected rows and the first of them (values, rows in the file), by GX's condition function."""
        rows, column = frame, frame[self.column]
        if self._domain_kwargs.get("row_condition"):
            rows = _engine()._apply_row_condition_filter(
                frame, self._domain_kwargs["row_condition"], self._domain_kwargs
            )
            column, nulls = rows[self.column], {}
        null = nulls.get(self.column)
        if null is None:
            null = nulls[self.column] = column.isnull().to_numpy()
        if self.across_file:
            return len(rows), int(null.sum()), 0, [], np.empty(0, dtype=int)
        if self.map_metric == "column_values.nonnull":  # its GX condition is ~isnull(): the mask is at hand
            unexpected = column[null]
        else:
            values = column[~null] if getattr(self._provider, "filter_column_isnull", True) else column
            meets = self._condition(self._provider, values, **self._value_kwargs, _metrics={})
            unexpected = values[~np.asarray(meets, dtype=bool)]
        head = unexpected.iloc[:PARTIAL_EXAMPLES]
        return len(rows), int(null.sum()), len(unexpected), head.tolist(), offset + frame.index.get_indexer(head.index)

    def _judge_chunk(self, frame: pd.DataFrame, offset: int, nulls: dict[str, np.ndarray]) -> None:
        dtype = frame[self.column].dtype if self.column in frame else None
        # A schema check's verdict depends on the columns and the column's type alone, unless GX looks at each
        # value of a text column.
        text = dtype is not None and pd.api.types.is_object_dtype(dtype)
        key = (tuple(frame.columns), str(dtype))
        outcome = None if text else self._verdicts.get(key)
        if outcome is None:
            try:
                metrics = _table_metrics(frame)
                if self.map_metric is not None and text:
                    counts = Counts()
                    counts.add(*self._counted(frame, offset, nulls))
                    metrics |= self._map_metrics(counts)
                outcome = self._judged(metrics)
            except Exception:
                outcome = self._gx(frame)
            self._verdicts[key] = outcome
        if self.first is None or (self.first.success and not outcome.success):
            self.first = outcome

    def _gx(self, frame: pd.DataFrame) -> Outcome:
        outcome, self.metric_failed = self._through_gx(self.expectation, frame)
        return outcome

    def _map_metrics(self, counts: Counts) -> dict[str, Any]:
        metric = self.map_metric
        return {
            "table.row_count": counts.rows,
            "column_values.nonnull.unexpected_count": counts.nulls,
            f"{metric}.unexpected_count": counts.unexpected,
            f"{metric}.unexpected_values": counts.values,
            f"{metric}.unexpected_index_list": counts.positions,
        }

    def _judged(self, metrics: dict[str, Any]) -> Outcome:
        verdict = self.expectation._validate(metrics, SUMMARY, _engine())
        return Outcome(self.kind, self.kwargs, bool(verdict["success"]), dict(verdict.get("result") or {}))

    @property
    def doomed(self) -> bool:
        """Failed whatever the rest of the file holds: a schema check failed, or a value broke a rule with no slack."""
        if self.failed is not None or (self.first is not None and not self.first.success):
            return True
        no_slack = self.mode == "counted" and not self.across_file and self.expectation.mostly >= 1
        return no_slack and self.counts.unexpected > 0

    def outcome(self, across: Counts | None = None) -> Outcome:
        """The file's verdict; `across` holds the rows counted over the whole file (its repeated values)."""
        if self.failed is not None:
            return self.failed
        if self.mode in ("each chunk", "whole table"):
            return self.first
        counts = self.counts
        if across is not None:
            counts = Counts(counts.rows, counts.nulls, across.unexpected, across.values, across.positions)
        return self._judged(self._map_metrics(counts))
