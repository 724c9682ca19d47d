"""Data validation: expectations derived from the config and the reference profile, run by Great Expectations 1.x.

The only module that imports great_expectations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from driftline.config import DatasetConfig, ValidationConfig
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
) -> list[Any]:
    """The suite for one batch: schema checks always, range/set checks once a reference profile exists."""
    allowed_nulls = 1.0 - rules.max_null_fraction
    expected = []
    required = [*dataset.feature_names, *([dataset.target] if require_target else [])]
    required += [c for c in (dataset.id_column, dataset.event_time_column) if c]
    expected += [_expectation("expect_column_to_exist", column=c) for c in required]
    for column in dataset.numeric_features:
        expected.append(
            _expectation("expect_column_values_to_be_in_type_list", column=column, type_list=NUMERIC_DTYPES)
        )
        expected.append(_expectation("expect_column_values_to_not_be_null", column=column, mostly=allowed_nulls))
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


def _examples(result: dict[str, Any]) -> str:
    values = list(dict.fromkeys(str(v) for v in result.get("partial_unexpected_list") or []))[:3]
    return f" (e.g. {', '.join(values)})" if values else ""


def _describe_failure(kind: str, kwargs: dict[str, Any], result: dict[str, Any]) -> str:
    """One readable line per failed expectation: column, what was expected, what was found."""
    column = kwargs.get("column")
    mostly = kwargs.get("mostly")
    allowed = f", at most {_percent((1 - mostly) * 100)} allowed" if mostly is not None and mostly < 1 else ""
    unexpected = _percent(result.get("unexpected_percent"))
    if kind == "expect_column_to_exist":
        return f"column {column!r} is missing"
    if kind == "expect_column_values_to_not_be_null":
        return f"column {column!r}: {unexpected} nulls or unparseable values{allowed}"
    if kind == "expect_column_values_to_be_in_type_list":
        found = result.get("observed_value") or "non-numeric values"
        return f"column {column!r}: expected numbers, found {found}{_examples(result)}"
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


def validate_frame(frame: pd.DataFrame, expectations: list[Any], suite_name: str = "driftline") -> ValidationReport:
    """Run the expectations with GX; failures become readable lines (1.x reports, it does not raise)."""
    gx = _gx()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    batch_definition = (
        context.data_sources.add_pandas("driftline")
        .add_dataframe_asset("batch")
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=expectations))
    result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(suite)

    # A missing or non-numeric column fails every other check on it; report only that root cause.
    def failed_columns(kind: str) -> set[str]:
        return {r.expectation_config.kwargs.get("column") for r in result.results
                if r.expectation_config.type == kind and not r.success}  # fmt: skip

    missing = failed_columns("expect_column_to_exist")
    root_cause = {column: "expect_column_to_exist" for column in missing}
    root_cause |= {c: "expect_column_values_to_be_in_type_list"
                   for c in failed_columns("expect_column_values_to_be_in_type_list") - missing}  # fmt: skip
    failures, details = [], []
    for outcome in result.results:
        kind, kwargs = outcome.expectation_config.type, dict(outcome.expectation_config.kwargs)
        details.append({"expectation": kind, "kwargs": kwargs, "success": bool(outcome.success),
                        "result": outcome.result})  # fmt: skip
        if outcome.success:
            continue
        if kwargs.get("column") in root_cause and root_cause[kwargs.get("column")] != kind:
            continue
        raised = (outcome.exception_info or {}).get("raised_exception")
        if raised:
            message = str((outcome.exception_info or {}).get("exception_message", "")).splitlines()[:1]
            failures.append(f"{kind} on {kwargs.get('column')!r} could not run: {' '.join(message)}")
        else:
            failures.append(_describe_failure(kind, kwargs, outcome.result or {}))
    return ValidationReport(success=not failures, failures=failures, checked=len(result.results), details=details)
