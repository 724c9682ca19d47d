"""The online fast path (`modeling.fast`) answers as the scikit-learn pipeline does, or refuses and the pipeline answers.

Every estimator the config allows by default (HistGradientBoosting: binary, multiclass, regression), plus
LogisticRegression and RandomForest for the preprocessing path, on 10,000 request rows with missing values, infinities,
huge numbers, unseen categories and whole numbers as categories: labels equal, probabilities bit-identical.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from testkit.paths import DEMO_CONFIG
from threadpoolctl import threadpool_limits

from driftline.config import DriftlineConfig, Task, load_config
from driftline.data.demo import COVARIATE_SHIFT, START, make_frame
from driftline.modeling.fast import NotReproducible, compile_pipeline, request_frame
from driftline.modeling.fast_trees import BitTables, WalkTables
from driftline.modeling.pipeline import MISSING_CATEGORY, build_pipeline, feature_frame, predict
from driftline.registry import ModelRef
from driftline.serving.follower import serve

UNSEEN = ["unknown-plan", "North", "", "__unseen__"]


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread():
    """Small fits and predictions, as the service runs them: OpenMP threads only fight over a busy machine's cores."""
    with threadpool_limits(1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def demo_cfg() -> DriftlineConfig:
    return load_config(DEMO_CONFIG)


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    """2,000 demo customers, some values missing: `__missing__` is a category the encoder learned."""
    frame = make_frame(2000, seed=7, days=56)
    rng = np.random.default_rng(3)
    frame.loc[rng.random(len(frame)) < 0.05, "monthly_charges"] = np.nan
    frame.loc[rng.random(len(frame)) < 0.05, "contract"] = np.nan
    return frame


@pytest.fixture(scope="module")
def request_rows(demo_cfg) -> list[dict]:
    """10,000 rows as the service validates them, half stable and half shifted, with the awkward values mixed in."""
    dataset = demo_cfg.dataset
    frame = pd.concat(
        [make_frame(5000, seed=123, start=START), make_frame(5000, seed=124, scenario=COVARIATE_SHIFT)],
        ignore_index=True,
    )
    rng = np.random.default_rng(123)
    rows = frame[["customer_id", *dataset.feature_names]].to_dict(orient="records")
    for row in rows:
        for name in dataset.numeric_features:
            u = rng.random()
            row[name] = (
                None
                if u < 0.08
                else float("nan")
                if u < 0.1
                else float(rng.choice([np.inf, -np.inf]))
                if u < 0.11
                else 1e12
                if u < 0.115
                else 3
                if u < 0.12
                else float(row[name])
            )
        for name in dataset.categorical_features:
            u = rng.random()
            row[name] = (
                None
                if u < 0.08
                else str(rng.choice(UNSEEN))
                if u < 0.15
                else int(rng.integers(0, 5))
                if u < 0.16
                else MISSING_CATEGORY
                if u < 0.17
                else row[name]
            )
    return rows


def fitted(cfg: DriftlineConfig, training: pd.DataFrame, task: str, estimator: str, params: dict) -> Pipeline:
    target = {
        "binary": training["churned"],
        "multiclass": pd.cut(training["tenure_months"], [0, 6, 24, 100], labels=["new", "mid", "loyal"]).astype(str),
        "regression": training["support_calls"] * 5 + training["age"] * 0.3,
    }[task]
    model = cfg.model.model_copy(update={"estimator": estimator, "params": params})
    changed = cfg.model_copy(update={"model": model, "dataset": cfg.dataset.model_copy(update={"task": Task(task)})})
    return build_pipeline(changed).fit(feature_frame(training, cfg.dataset), target)


@pytest.mark.parametrize(
    ("task", "estimator", "params", "tables"),
    [
        (
            "binary",
            "sklearn.ensemble.HistGradientBoostingClassifier",
            {"max_iter": 40, "max_leaf_nodes": 15},
            BitTables,
        ),
        ("multiclass", "sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 20}, BitTables),
        ("regression", "sklearn.ensemble.HistGradientBoostingRegressor", {"max_iter": 30}, BitTables),
        (
            "binary",
            "sklearn.ensemble.HistGradientBoostingClassifier",
            {"max_iter": 5, "max_leaf_nodes": 90},
            WalkTables,
        ),
        ("binary", "sklearn.linear_model.LogisticRegression", {"max_iter": 500}, None),
        ("multiclass", "sklearn.linear_model.LogisticRegression", {"max_iter": 500}, None),
        ("binary", "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 20, "max_depth": 8}, None),
    ],
)
def test_the_fast_path_answers_10000_rows_bit_for_bit_as_the_pipeline(
    demo_cfg, training, request_rows, task, estimator, params, tables
):
    dataset = demo_cfg.dataset.model_copy(update={"task": Task(task)})
    pipeline = fitted(demo_cfg, training, task, estimator, params)
    fast = compile_pipeline(pipeline, dataset)
    assert (fast.trees is None) == (tables is None) and (tables is None or isinstance(fast.trees.tables, tables))

    expected = predict(pipeline, request_frame(request_rows, dataset), dataset)
    answered = fast.predict(request_rows)
    assert answered.labels.tolist() == expected.labels.tolist()
    assert (answered.proba is None) == (task == "regression")
    if answered.proba is not None:
        assert np.array_equal(answered.proba, expected.proba) and answered.classes.tolist() == expected.classes.tolist()

    one_at_a_time = [fast.predict([row]) for row in request_rows[:200]]  # the service's usual request
    assert np.concatenate([one.labels for one in one_at_a_time]).tolist() == expected.labels[:200].tolist()
    if answered.proba is not None:  # a one-row matrix product may round differently in BLAS, in the pipeline too
        np.testing.assert_allclose(np.vstack([one.proba for one in one_at_a_time]), expected.proba[:200], atol=1e-12)


def test_a_number_sent_as_text_is_read_by_the_pipeline_with_the_same_answer(demo_cfg, training, request_rows):
    pipeline = fitted(demo_cfg, training, "binary", "sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 5})
    rows = [{**row, "age": "42"} for row in request_rows[:50]]
    answered = compile_pipeline(pipeline, demo_cfg.dataset).predict(rows)
    expected = predict(pipeline, request_frame(rows, demo_cfg.dataset), demo_cfg.dataset)
    assert answered.labels.tolist() == expected.labels.tolist() and np.array_equal(answered.proba, expected.proba)


def _categorical(pipeline: Pipeline) -> Pipeline:
    return pipeline[0].transformers[1][1]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda p: _categorical(p).steps.__setitem__(
                1,
                ("encode", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=50, sparse_output=False)),
            ),
            "encoder: handle_unknown='infrequent_if_exist'",
        ),
        (
            lambda p: _categorical(p).steps.__setitem__(
                1, ("encode", OneHotEncoder(handle_unknown="ignore", drop="first", sparse_output=False))
            ),
            "encoder: drop or infrequent categories",
        ),
        (
            lambda p: p[0].transformers[0][1].steps.__setitem__(0, ("impute", SimpleImputer(add_indicator=True))),
            "numeric imputer: missing_values/indicator",
        ),
        (lambda p: p.steps.insert(1, ("select", VarianceThreshold())), "not Pipeline([ColumnTransformer, estimator])"),
        (lambda p: p.set_output(transform="pandas"), "set_output"),
    ],
    ids=["infrequent categories", "drop first", "missing indicator", "an extra step", "pandas output"],
)
def test_a_pipeline_the_fast_path_cannot_reproduce_is_refused_with_the_reason(demo_cfg, training, change, reason):
    pipeline = build_pipeline(demo_cfg)
    pipeline.steps[-1] = ("model", HistGradientBoostingClassifier(max_iter=5))
    change(pipeline)
    pipeline.fit(feature_frame(training, demo_cfg.dataset), training["churned"])
    with pytest.raises(NotReproducible, match=re.escape(reason)):
        compile_pipeline(pipeline, demo_cfg.dataset)


def test_native_categorical_trees_are_left_to_the_estimator_and_still_exact(demo_cfg, training, request_rows):
    pipeline = build_pipeline(demo_cfg)
    pipeline.steps[-1] = ("model", HistGradientBoostingClassifier(max_iter=5, categorical_features=[4, 5, 6]))
    pipeline.fit(feature_frame(training, demo_cfg.dataset), training["churned"])
    fast = compile_pipeline(pipeline, demo_cfg.dataset)
    assert fast.trees is None and "native categorical" in fast.tier
    expected = predict(pipeline, request_frame(request_rows, demo_cfg.dataset), demo_cfg.dataset)
    assert np.array_equal(fast.predict(request_rows).proba, expected.proba)


def test_the_service_answers_with_the_pipeline_and_logs_why_when_the_fast_path_refuses(
    demo_cfg, training, request_rows, caplog
):
    pipeline = build_pipeline(demo_cfg)
    _categorical(pipeline).steps[1] = ("encode", OneHotEncoder(handle_unknown="error", sparse_output=False))
    pipeline.steps[-1] = ("model", HistGradientBoostingClassifier(max_iter=5))
    pipeline.fit(feature_frame(training, demo_cfg.dataset), training["churned"])
    with caplog.at_level(logging.WARNING, logger="driftline.serve"):
        served = serve(ModelRef("churn-demo", "7", run_id=""), pipeline, demo_cfg.dataset)
    assert served.fast is None
    assert (
        "churn-demo version 7 is answered by its scikit-learn pipeline: the fast path cannot reproduce it "
        "(encoder: handle_unknown='error')"
    ) in caplog.text
    known = [{**row, "contract": "one-year", "payment_method": "card", "region": "north"} for row in request_rows[:20]]
    expected = predict(pipeline, request_frame(known, demo_cfg.dataset), demo_cfg.dataset)
    assert np.array_equal(served.predict(known).proba, expected.proba)
