"""Files validated chunk by chunk, in one pass: the verdicts and counts are GX's own, for every expectation type
driftline builds, on data with every kind of fault."""

import numpy as np
import pandas as pd
import pytest

from driftline.config import ExtraExpectation
from driftline.data.demo import make_frame
from driftline.validation.chunked import StreamedValidation
from driftline.validation.expectations import build_expectations, validator
from driftline.validation.profile import learn_profile

ROWS = 1200
# Extra expectations a config may add: a row-local check, one under a row condition, and one GX counts itself.
EXTRAS = [
    ExtraExpectation(type="expect_column_values_to_match_regex", kwargs={"column": "customer_id", "regex": r"^C\d+$"}),
    ExtraExpectation(
        type="expect_column_values_to_be_between",
        kwargs={
            "column": "tenure_months",
            "max_value": 60,
            "row_condition": 'contract=="monthly"',
            "condition_parser": "pandas",
            "mostly": 0.5,
        },
    ),
    ExtraExpectation(
        type="expect_column_value_lengths_to_be_between", kwargs={"column": "region", "min_value": 4, "max_value": 5}
    ),
]


def faulty() -> pd.DataFrame:
    """Every fault the suite looks for, spread over the rows so each 400-row chunk holds some of them."""
    frame = make_frame(ROWS, seed=11, id_offset=90_000)
    rng = np.random.default_rng(11)
    frame.loc[rng.random(ROWS) < 0.08, "monthly_charges"] = np.nan  # nulls above the threshold
    frame.loc[[3, 500, 1100], "age"] = [np.inf, -np.inf, 1e308]  # infinities and sentinel-sized values
    frame.loc[rng.random(ROWS) < 0.03, "age"] = 999.0  # out of the training range and of the extra bounds
    frame.loc[rng.random(ROWS) < 0.02, "contract"] = "lifetime"  # unseen categories
    frame.loc[[10, 11, 900], "region"] = None  # missing categories
    frame.loc[[399, 400, 1199], "customer_id"] = frame.loc[[0, 399, 5], "customer_id"].to_numpy()  # repeated ids
    frame.loc[[7, 401], "customer_id"] = None  # missing ids
    frame.loc[[20, 820], "churned"] = np.nan  # missing labels
    frame.loc[[30], "event_time"] = pd.NaT  # a missing event time
    frame.loc[[40, 41], "customer_id"] = ["X1", "X2"]  # ids the extra regex refuses
    return frame


def with_wrong_schema(frame: pd.DataFrame) -> pd.DataFrame:
    """A column missing, one of text where numbers belong, one the config does not declare."""
    broken = frame.drop(columns=["support_calls"]).assign(note="x")
    broken["tenure_months"] = broken["tenure_months"].astype(object)
    broken.loc[[2, 600], "tenure_months"] = "twelve"
    return broken


def comparable(value):
    """NaN equals NaN, as a person reading the report sees it."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return "NaN" if isinstance(value, float) and np.isnan(value) else value


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    from testkit.paths import DEMO_CONFIG

    from driftline.config import load_config

    cfg = load_config(DEMO_CONFIG)
    cfg = cfg.model_copy(
        update={
            "validation": cfg.validation.model_copy(
                update={"extra_expectations": [*cfg.validation.extra_expectations, *EXTRAS]}
            )
        }
    )
    profile = learn_profile(make_frame(3000, seed=1), cfg.dataset)
    return cfg, profile, tmp_path_factory.mktemp("scratch")


def verdicts(suite, frame: pd.DataFrame, chunk_rows: int):
    """GX on the whole frame, and the streamed validation of the same rows in chunks of `chunk_rows`."""
    cfg, profile, scratch = suite
    expectations = build_expectations(cfg.dataset, cfg.validation, profile, True, columns=frame.columns)
    whole = validator(expectations, "whole")(frame)
    streamed = StreamedValidation(lambda first: expectations, scratch, "streamed")
    chunks = [frame.iloc[start : start + chunk_rows] for start in range(0, len(frame), chunk_rows)]
    for chunk in chunks:
        streamed.check(chunk)
    report = streamed.report(lambda column: (chunk[column] for chunk in chunks))
    streamed.close()
    return whole, report


@pytest.mark.parametrize("schema", ["declared", "wrong"])
def test_one_chunk_gives_gx_own_verdict_and_result_for_every_expectation(suite, schema):
    frame = faulty() if schema == "declared" else with_wrong_schema(faulty())
    whole, report = verdicts(suite, frame, ROWS)

    assert {o.kind.removeprefix("expect_") for o in whole} == KINDS
    assert [(d["expectation"], d["kwargs"], d["success"], comparable(d["result"])) for d in report.details] == [
        (o.kind, o.kwargs, o.success, comparable(o.result)) for o in whole
    ]
    assert not report.success


KINDS = {  # every type driftline builds, and the extras above
    "column_to_exist",
    "table_columns_to_match_set",
    "column_values_to_be_in_type_list",
    "column_values_to_not_be_null",
    "column_values_to_be_between",
    "column_values_to_be_in_set",
    "column_values_to_be_unique",
    "column_values_to_match_regex",
    "column_value_lengths_to_be_between",
}
COUNTS = [
    "element_count",
    "unexpected_count",
    "unexpected_percent",
    "missing_count",
    "partial_unexpected_list",
    "partial_unexpected_index_list",
    "observed_value",
]


@pytest.mark.parametrize("chunk_rows", [400, 333])
def test_chunks_give_the_verdict_and_counts_gx_gives_on_the_whole_file(suite, chunk_rows):
    whole, report = verdicts(suite, faulty(), chunk_rows)

    assert report.failures == [line for line in report.failures if line]  # readable lines, no blanks
    for expected, got in zip(whole, report.details, strict=True):
        assert (got["expectation"], got["kwargs"], got["success"]) == (expected.kind, expected.kwargs, expected.success)
        assert comparable({k: got["result"].get(k) for k in COUNTS}) == comparable(
            {k: expected.result.get(k) for k in COUNTS}
        ), expected.kind
