import pandas as pd
import pytest

from driftline.config import ExtraExpectation, ValidationConfig
from driftline.data.loading import load_batch
from driftline.errors import ConfigError
from driftline.validation.expectations import build_expectations, validate_frame
from driftline.validation.profile import ReferenceProfile, learn_profile


@pytest.fixture
def profile(cfg, demo_files):
    return learn_profile(load_batch(demo_files["reference"], cfg.dataset).frame, cfg.dataset)


def run(cfg, frame, profile, require_target=True, rules=None):
    expectations = build_expectations(cfg.dataset, rules or cfg.validation, profile, require_target)
    return validate_frame(frame, expectations)


def test_clean_batch_passes_schema_range_and_set_checks(cfg, demo_files, profile):
    report = run(cfg, load_batch(demo_files["stable"], cfg.dataset).frame, profile)
    assert report.success, report.failures
    assert report.checked >= 20


def test_faulty_batch_fails_with_one_readable_line_per_problem(cfg, demo_files, profile):
    report = run(cfg, load_batch(demo_files["faulty"], cfg.dataset).frame, profile)
    assert not report.success
    text = "\n".join(report.failures)
    assert "column 'monthly_charges': " in text and "nulls or unparseable values, at most 5.0% allowed" in text
    assert "column 'age': " in text and "of values outside [16, 110]" in text
    assert "column 'contract': " in text and "categories unseen in training (e.g. unknown-plan)" in text
    assert "column 'customer_id': 40 rows share an id" in text


def test_missing_column_is_reported_once_and_wrong_types_are_named(cfg, demo_files, profile):
    frame = load_batch(demo_files["stable"], cfg.dataset).frame.drop(columns=["age"])
    frame["tenure_months"] = frame["tenure_months"].astype(str).where(frame.index > 5, "twelve")
    report = run(cfg, frame, profile)
    assert report.failures.count("column 'age' is missing") == 1
    assert not any("'age'" in f and "missing" not in f for f in report.failures)
    assert any(
        f.startswith("column 'tenure_months': expected numbers, found non-numeric values (e.g. twelve")
        for f in report.failures
    )
    assert not any("'tenure_months': ?" in f for f in report.failures)


def test_scoring_batch_without_labels_passes_but_training_needs_them(cfg, demo_files, profile):
    frame = load_batch(demo_files["stable"], cfg.dataset).frame.drop(columns=["churned"])
    assert run(cfg, frame, profile, require_target=False).success
    assert "column 'churned' is missing" in run(cfg, frame, profile, require_target=True).failures


def test_without_a_profile_only_schema_checks_run(cfg):
    frame = pd.DataFrame(
        {c: [30.0, 40.0] for c in cfg.dataset.numeric_features}
        | {c: ["a", "b"] for c in cfg.dataset.categorical_features}
        | {"customer_id": ["1", "2"], "event_time": pd.to_datetime(["2026-01-01"] * 2, utc=True), "churned": [0, 1]}
    )
    assert run(cfg, frame, profile=None).success


def test_extra_expectations_apply_and_unknown_ones_are_config_errors(cfg, demo_files, profile):
    frame = load_batch(demo_files["stable"], cfg.dataset).frame
    strict = ValidationConfig(
        extra_expectations=[
            ExtraExpectation(type="expect_column_max_to_be_between", kwargs={"column": "support_calls", "max_value": 2})
        ]
    )
    report = run(cfg, frame, profile, rules=strict)
    assert any(f.startswith("expect_column_max_to_be_between") for f in report.failures)
    with pytest.raises(ConfigError, match="unknown expectation type 'expect_the_unexpected'"):
        run(
            cfg,
            frame,
            profile,
            rules=ValidationConfig(extra_expectations=[ExtraExpectation(type="expect_the_unexpected")]),
        )


def test_one_sided_ranges_and_constant_training_features_are_checked_sensibly(cfg, demo_files):
    frame = load_batch(demo_files["stable"], cfg.dataset).frame
    one_sided = ValidationConfig(
        extra_expectations=[
            ExtraExpectation(type="expect_column_values_to_be_between", kwargs={"column": "age", "min_value": 50})
        ]
    )
    report = run(cfg, frame, None, rules=one_sided)
    assert any(f.startswith("column 'age': ") and "outside [50, inf]" in f for f in report.failures)
    constant = ReferenceProfile(numeric_ranges={"support_calls": (1.0, 1.0)})
    frame = frame.assign(support_calls=frame["support_calls"].clip(0.6, 1.4))
    assert run(cfg, frame, constant).success  # within ±50% of the value, not of a zero-width range
