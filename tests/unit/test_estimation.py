"""Performance estimation before labels: CBPE for the churn demo, DLE for the demand demo, the faults.

NANNYML holds NannyML 0.13.1's figures on the same rows as these tests, computed in a separate virtualenv (NannyML is
not a driftline dependency): the holdout as its reference, each batch as one chunk, CBPE and DLE with their defaults.
CBPE is the same arithmetic here, so its figures agree to 1e-4; DLE's loss model is scikit-learn's
HistGradientBoostingRegressor instead of LightGBM, so its figures agree to 2 %. The bands are wider than NannyML's on
purpose: they add the holdout's own sampling error (the estimator was learned from it), and roc_auc's error is
DeLong's whole variance where NannyML keeps half of it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from testkit.configs import TASK_KINDS, write_config

from driftline.config import load_config
from driftline.config.estimation import EstimationConfig
from driftline.data.demo import CONCEPT_DRIFT, COVARIATE_SHIFT, START, make_demand_frame, make_frame
from driftline.modeling.metrics import compute_metrics
from driftline.modeling.pipeline import Predictions, feature_frame, fit, predict, split_holdout
from driftline.monitoring.estimation import Estimate, EstimatorUnavailable, PerformanceEstimator, fit_estimator

NANNYML = {  # (value, lower, upper) per metric
    "stable": {
        "roc_auc": (0.769762, 0.73502, 0.804504),
        "accuracy": (0.706868, 0.663325, 0.750411),
        "f1": (0.709494, 0.634422, 0.784567),
        "precision": (0.729031, 0.669142, 0.78892),
        "recall": (0.690978, 0.630327, 0.751629),
    },
    "covariate_shift": {"roc_auc": (0.725297, 0.690555, 0.760039)},
    "multiclass_stable": {"f1_macro": (0.333155, 0.304126, 0.362185), "accuracy": (0.493212, 0.44579, 0.540633)},
    "bigger_stores": {"rmse": (14.393741, 13.443327, 15.344154), "mae": (11.011357, 10.252497, 11.770217)},
}
DEMAND_FEATURES = {
    "price": "numeric",
    "discount": "numeric",
    "temperature": "numeric",
    "store_size": "numeric",
    "weekday": "categorical",
    "region": "categorical",
}
DEMAND = {
    "dataset": {"target": "units_sold", "task": "regression", "features": DEMAND_FEATURES},
    "gate": {"metric": "rmse", "thresholds": {}},
    "model": {"estimator": "sklearn.ensemble.HistGradientBoostingRegressor", "params": {"max_iter": 60}},
    "validation": {"extra_expectations": []},
    "drift": {"target_drift": False},
    "labels": {"enabled": False},
}
SETTINGS = EstimationConfig()


class Trained:
    """A demo model trained as driftline trains it, and the estimator fitted on its holdout."""

    def __init__(self, folder: Path, reference: pd.DataFrame, **sections: dict):
        self.cfg = load_config(write_config(folder, **sections))
        self.dataset = self.cfg.dataset
        train, self.holdout = split_holdout(reference, self.cfg)
        self.model = fit(train, self.cfg)
        self.holdout_predictions = predict(self.model, self.holdout, self.dataset)
        self.estimator = self.fit(self.holdout, self.holdout_predictions)

    def fit(self, holdout: pd.DataFrame, predictions: Predictions, metric: str | None = None, **settings):
        return fit_estimator(
            feature_frame(holdout, self.dataset),
            holdout[self.dataset.target],
            predictions,
            self.dataset.task,
            metric or self.cfg.gate.metric,
            EstimationConfig(**settings),
        )

    def estimate(self, batch: pd.DataFrame, estimator: PerformanceEstimator | None = None) -> tuple[Estimate, dict]:
        predictions = predict(self.model, batch, self.dataset)
        estimate = (estimator or self.estimator).estimate(feature_frame(batch, self.dataset), predictions)
        realized = compute_metrics(
            self.dataset.task, batch[self.dataset.target], predictions.labels, predictions.proba, predictions.classes
        )
        return estimate, realized


@pytest.fixture(scope="module")
def churn(tmp_path_factory) -> Trained:
    return Trained(tmp_path_factory.mktemp("churn"), make_frame(3000, seed=1, days=56))


@pytest.fixture(scope="module")
def demand(tmp_path_factory) -> Trained:
    return Trained(tmp_path_factory.mktemp("demand"), make_demand_frame(3000, seed=1, days=56), **DEMAND)


def assert_matches(estimate: Estimate, expected: tuple[float, float, float], tolerance: float, holdout: int) -> None:
    """NannyML's value; its band widened by the holdout's sampling error (an error scales as 1/sqrt(rows))."""
    assert estimate.value == pytest.approx(expected[0], rel=tolerance, abs=1e-4)
    nannyml_half = (expected[2] - expected[1]) / 2
    half = (estimate.upper - estimate.lower) / 2
    assert half == pytest.approx(nannyml_half * np.sqrt(1 + estimate.rows / holdout), rel=max(tolerance, 1e-3))


def assert_value_and_wider_band(estimate: Estimate, expected: tuple[float, float, float]) -> None:
    """roc_auc: NannyML's value, and a band that holds NannyML's (DeLong's variance, plus the holdout's error)."""
    assert estimate.value == pytest.approx(expected[0], abs=1e-4)
    assert estimate.lower < expected[1] and estimate.upper > expected[2]


def test_covariate_shift_batch_roc_auc_lies_within_its_estimated_band_as_nannyml_estimates_it(churn):
    estimate, realized = churn.estimate(make_frame(1000, seed=3, start=START, scenario=COVARIATE_SHIFT))
    assert estimate.metric == "roc_auc" and estimate.rows == 1000 and estimate.note is None
    assert_value_and_wider_band(estimate, NANNYML["covariate_shift"]["roc_auc"])
    assert realized["roc_auc"] == pytest.approx(0.7535, abs=1e-4)
    assert estimate.within(realized["roc_auc"])


def test_stable_batch_confusion_matrix_metrics_are_nannyml_s(churn):
    estimate, realized = churn.estimate(make_frame(1000, seed=3, start=START))
    assert estimate.within(realized["roc_auc"])
    assert_value_and_wider_band(estimate, NANNYML["stable"]["roc_auc"])
    for name in ("accuracy", "f1", "precision", "recall"):
        assert estimate.others[name] == pytest.approx(NANNYML["stable"][name][0], abs=1e-4), name
        assert abs(estimate.others[name] - realized[name]) < 0.03, name


def test_concept_drift_batch_falls_below_the_band_as_cbpe_cannot_see_a_changed_relation(churn):
    estimate, realized = churn.estimate(make_frame(1000, seed=3, start=START, scenario=CONCEPT_DRIFT))
    assert realized["roc_auc"] < estimate.lower - 0.05
    assert not estimate.within(realized["roc_auc"])


def test_demo_estimator_starts_trusted_from_its_holdout_chunks(churn):
    check = churn.estimator.holdout_check
    assert len(check.chunks) == 5 and all(chunk.rows == 120 for chunk in check.chunks)
    assert check.within
    assert sum(not chunk.inside for chunk in check.chunks) < SETTINGS.untrusted_after
    assert check.mean_absolute_error < 0.1


def test_batch_smaller_than_min_rows_gets_a_note_and_no_number(churn):
    estimate, _ = churn.estimate(make_frame(60, seed=3, start=START))
    assert (estimate.value, estimate.lower, estimate.upper, estimate.rows) == (None, None, None, 60)
    assert estimate.note == "60 rows; an estimate needs at least 100"
    assert not estimate.within(0.8)


def test_constant_holdout_gives_estimator_unavailable_with_the_reason(churn, demand):
    stayed = churn.holdout[churn.holdout["churned"] == 0]
    unavailable = churn.fit(stayed, predict(churn.model, stayed, churn.dataset))
    assert unavailable == EstimatorUnavailable(
        "the holdout's target has one class (0): nothing to calibrate the estimate on"
    )
    flat = demand.holdout.assign(units_sold=40.0)
    assert isinstance(demand.fit(flat, demand.holdout_predictions), EstimatorUnavailable)
    tiny = churn.holdout.head(50)
    assert churn.fit(tiny, predict(churn.model, tiny, churn.dataset)) == EstimatorUnavailable(
        "the holdout has 50 rows; an estimator needs at least estimation.min_rows (100)"
    )


def test_saved_estimators_load_and_estimate_the_same_without_pickle(churn, demand, tmp_path):
    for name, trained, batch in [
        ("cbpe", churn, make_frame(500, seed=3, start=START, scenario=COVARIATE_SHIFT)),
        ("dle", demand, make_demand_frame(500, seed=3, start=START, shift=0.15)),
    ]:
        trained.estimator.save(tmp_path / name)
        loaded = PerformanceEstimator.load(tmp_path / name)
        assert {path.suffix for path in (tmp_path / name).iterdir()} <= {".json", ".npz"}
        assert trained.estimate(batch, loaded)[0] == trained.estimate(batch)[0]
        assert loaded.holdout_check == trained.estimator.holdout_check


def bigger_stores(rows: int = 1000) -> pd.DataFrame:
    """Covariate shift inside the training range: big stores, whose sales are noisier, three times as common."""
    frame = make_demand_frame(4 * rows, seed=3, start=START)
    return frame.sample(rows, weights=frame["store_size"].map({1.0: 0.2, 2.0: 1.0, 3.0: 3.0}), random_state=0)


def test_regression_rmse_lies_within_its_estimated_band_on_a_shifted_batch(demand):
    estimate, realized = demand.estimate(bigger_stores())
    assert estimate.metric == "rmse" and estimate.note is None
    assert estimate.within(realized["rmse"])
    assert_matches(estimate, NANNYML["bigger_stores"]["rmse"], tolerance=0.02, holdout=len(demand.holdout))
    assert estimate.others["mae"] == pytest.approx(NANNYML["bigger_stores"]["mae"][0], rel=0.02)
    assert demand.estimator.holdout_within


def test_r2_is_not_estimated_but_the_errors_are(demand):
    estimator = demand.fit(demand.holdout, demand.holdout_predictions, metric="r2")
    estimate = estimator.estimate(
        feature_frame(bigger_stores(), demand.dataset), predict(demand.model, bigger_stores(), demand.dataset)
    )
    assert estimate.value is None
    assert estimate.note == "r2 needs the variance of the batch's target, which only its labels give"
    assert set(estimate.others) == {"mae", "rmse"}
    assert not estimator.holdout_within


def test_predictions_of_other_classes_get_a_note(churn):
    batch = make_frame(200, seed=3, start=START)
    predictions = predict(churn.model, batch, churn.dataset)
    renamed = Predictions(labels=predictions.labels, proba=predictions.proba, classes=np.array(["stay", "churn"]))
    estimate = churn.estimator.estimate(feature_frame(batch, churn.dataset), renamed)
    assert estimate.value is None
    assert estimate.note == "the model's classes ['stay', 'churn'] are not the holdout's ['0', '1']"


def test_multiclass_macro_f1_and_accuracy_are_nannyml_s(tmp_path):
    reference = make_frame(3000, seed=1, days=56).drop(columns=["churned"])
    trained = Trained(tmp_path, reference, **TASK_KINDS["multiclass"])
    estimate, realized = trained.estimate(make_frame(1000, seed=3, start=START).drop(columns=["churned"]))
    assert_matches(estimate, NANNYML["multiclass_stable"]["f1_macro"], tolerance=0, holdout=len(trained.holdout))
    assert estimate.others["accuracy"] == pytest.approx(NANNYML["multiclass_stable"]["accuracy"][0], abs=1e-4)
    assert estimate.within(realized["f1_macro"])


def test_bands_cover_the_realized_roc_auc_of_stable_batches_across_trainings():
    """The band's promise: a well-estimated model's batches fall inside. Three trainings of 3,000 rows (holdouts of
    600), ten stable batches each of 500 or 2,000 rows; at 3 errors nearly all must fall inside (NannyML's band,
    half-variance and no holdout term, covered 68 % of such batches of 2,000 rows)."""
    cfg = load_config(write_config(Path(tempfile.mkdtemp())))
    inside = []
    for training in range(3):
        train, holdout = split_holdout(make_frame(3000, seed=100 + training, days=56), cfg)
        model = fit(train, cfg)
        estimator = fit_estimator(
            feature_frame(holdout, cfg.dataset),
            holdout["churned"],
            predict(model, holdout, cfg.dataset),
            cfg.dataset.task,
            "roc_auc",
            SETTINGS,
        )
        for number in range(10):
            batch = make_frame((500, 2000)[number % 2], seed=1000 + 10 * training + number, start=START)
            predictions = predict(model, batch, cfg.dataset)
            estimate = estimator.estimate(feature_frame(batch, cfg.dataset), predictions)
            realized = compute_metrics(
                cfg.dataset.task, batch["churned"], predictions.labels, predictions.proba, predictions.classes
            )
            inside.append(estimate.within(realized["roc_auc"]))
    assert sum(inside) >= 28, f"{sum(inside)} of {len(inside)} inside"
