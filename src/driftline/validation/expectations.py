"""The Great Expectations adapter: the suite derived from the config and profile, run by GX 1.x.

The only module that imports great_expectations."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from driftline.config import DatasetConfig, ValidationConfig
from driftline.errors import ConfigError
from driftline.validation.profile import ReferenceProfile
from driftline.validation.report import Outcome, ValidationReport, build_report

NUMERIC_DTYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "Int8", "Int16", "Int32", "Int64", "Float32", "Float64",
]  # fmt: skip


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
    """The suite for one batch: schema checks always, range/set checks once a reference profile exists. The labels
    themselves are checked by driftline.validation.labels (the same rules for every kind of file).

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
    if dataset.id_column:
        expected.append(_expectation("expect_column_values_to_not_be_null", column=dataset.id_column))
        expected.append(_expectation("expect_column_values_to_be_unique", column=dataset.id_column))
    if dataset.event_time_column:
        expected.append(_expectation("expect_column_values_to_not_be_null", column=dataset.event_time_column))
    expected += [_expectation(extra.type, **extra.kwargs) for extra in rules.extra_expectations]
    return expected


def _outcomes(result: Any) -> list[Outcome]:
    outcomes = []
    for outcome in result.results:
        info = outcome.exception_info or {}
        error = None
        if info.get("raised_exception"):
            error = " ".join(str(info.get("exception_message", "")).splitlines()[:1])
        outcomes.append(Outcome(outcome.expectation_config.type, dict(outcome.expectation_config.kwargs),
                                 bool(outcome.success), dict(outcome.result or {}), error))  # fmt: skip
    return outcomes


def validator(expectations: list[Any], suite_name: str) -> Callable[[pd.DataFrame], list[Outcome]]:
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


def validate_frame(
    frame: pd.DataFrame, expectations: list[Any], suite_name: str = "driftline", also: Iterable[Outcome] = ()
) -> ValidationReport:
    """Run the expectations with GX, beside driftline's own checks (`also`: the labels); failures become readable
    lines (1.x reports, it does not raise)."""
    return build_report([*validator(expectations, suite_name)(frame), *also])


# --- a file too large for memory: the same suite chunk by chunk --------------------------------------------------
ALL_CHUNKS_PASS = {"expect_column_to_exist", "expect_column_values_to_be_in_type_list",
                   "expect_table_columns_to_match_set"}  # fmt: skip


def summable(expectation: Any) -> bool:
    """Per-row checks sum exactly over chunks; a check of the whole table (a mean, a row count) does not."""
    from great_expectations.expectations.expectation import ColumnMapExpectation

    return expectation.expectation_type in ALL_CHUNKS_PASS or isinstance(expectation, ColumnMapExpectation)
