"""A validation's verdict: one readable line per failed expectation, root causes only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ValidationReport:
    success: bool
    failures: list[str]
    checked: int
    details: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)  # what passed but a person should know (a new class accepted)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    if "problem" in result:  # driftline's own checks (the label rules) word their failure themselves
        return result["problem"]
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
class Outcome:
    """One expectation's verdict, from GX on a frame or summed over the chunks of a file."""

    kind: str
    kwargs: dict[str, Any]
    success: bool
    result: dict[str, Any]
    error: str | None = None  # the first line of what GX raised, when the check could not run


def build_report(outcomes: list[Outcome]) -> ValidationReport:
    """Failures as readable lines; a missing or non-numeric column fails every other check on it: only that shows."""

    def failed_columns(kind: str) -> set[str]:
        return {o.kwargs.get("column") for o in outcomes if o.kind == kind and not o.success}

    missing = failed_columns("expect_column_to_exist")
    root_cause = {column: "expect_column_to_exist" for column in missing}
    root_cause |= {
        c: "expect_column_values_to_be_in_type_list"
        for c in failed_columns("expect_column_values_to_be_in_type_list") - missing
    }
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
    notes = [o.result["note"] for o in outcomes if o.success and "note" in o.result]
    return ValidationReport(not failures, failures, len(outcomes), details, notes)
