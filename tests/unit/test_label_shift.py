"""The class prior of an unlabeled batch, and the flag when a prior change rather than covariate shift moved it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from testkit.configs import write_config

from driftline.config import load_config
from driftline.config.estimation import EstimationConfig
from driftline.data.demo import COVARIATE_SHIFT, START, make_frame
from driftline.modeling.pipeline import feature_frame, fit, predict, split_holdout
from driftline.monitoring.estimation import fit_estimator
from driftline.monitoring.label_shift import PriorShift, confusion_prior, em_prior, em_standard_errors


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    cfg = load_config(write_config(tmp_path_factory.mktemp("churn")))
    train, holdout = split_holdout(make_frame(3000, seed=1, days=56), cfg)
    model = fit(train, cfg)
    predictions = predict(model, holdout, cfg.dataset)
    features = feature_frame(holdout, cfg.dataset)
    estimator = fit_estimator(
        features, holdout["churned"], predictions, cfg.dataset.task, "roc_auc", EstimationConfig()
    )

    def prior_shift(batch: pd.DataFrame) -> PriorShift:
        return estimator.prior_shift(feature_frame(batch, cfg.dataset), predict(model, batch, cfg.dataset))

    return prior_shift


def with_churn_share(share: float, rows: int = 1000) -> pd.DataFrame:
    """The demo's stable customers resampled so that `share` of them churn: the labels moved, not the customers."""
    frame = make_frame(4 * rows, seed=5, start=START)
    churned, stayed = frame[frame["churned"] == 1], frame[frame["churned"] == 0]
    count = int(rows * share)
    return pd.concat([churned.sample(count, random_state=0), stayed.sample(rows - count, random_state=0)])


@pytest.mark.parametrize("share", [0.2, 0.8])
def test_batch_resampled_to_another_churn_rate_is_flagged_as_label_shift(churn, share):
    shift = churn(with_churn_share(share))
    churners = next(c for c in shift.classes if c.label == "1")
    assert shift.flagged
    assert shift.reason.startswith("label shift: the class prior moved")
    assert churners.estimated == pytest.approx(share, abs=0.06)
    assert churners.confusion == pytest.approx(share, abs=0.1)
    assert abs(churners.estimated - churners.holdout) > 0.2
    assert shift.unexplained == {}


def test_covariate_shift_batch_is_not_flagged_as_label_shift(churn):
    shift = churn(make_frame(1000, seed=3, start=START, scenario=COVARIATE_SHIFT))
    assert not shift.flagged
    assert shift.reason.endswith("covariate shift")
    assert "monthly_charges" in shift.unexplained and "tenure_months" in shift.unexplained
    churners = next(c for c in shift.classes if c.label == "1")
    assert churners.calibrated == pytest.approx(0.66, abs=0.05)  # what CBPE assumes; the batch's is 0.659


def test_stable_batch_keeps_its_prior(churn):
    shift = churn(make_frame(1000, seed=3, start=START))
    assert not shift.flagged
    assert shift.reason.startswith("the class prior held within 0.05")
    assert shift.rows == 1000


def mixture(prior: list[float], rows: int, seed: int) -> np.ndarray:
    """Calibrated probabilities of a classifier under label shift: classes drawn with `prior`, each row's score from
    its class, posteriors computed under the holdout prior (0.5, 0.5)."""
    rng = np.random.default_rng(seed)
    truth = rng.random(rows) < prior[1]
    score = rng.normal(np.where(truth, 1.0, -1.0), 1.0)
    positive = 1 / (1 + np.exp(-2 * score))  # the exact posterior of two unit normals at +-1 with equal priors
    return np.column_stack([1 - positive, positive])


def test_em_recovers_the_prior_of_a_known_mixture():
    calibrated = mixture([0.3, 0.7], rows=20_000, seed=0)
    estimated = em_prior(calibrated, np.array([0.5, 0.5]))
    errors = em_standard_errors(calibrated, np.array([0.5, 0.5]), estimated)
    assert estimated[1] == pytest.approx(0.7, abs=3 * errors[1])
    assert errors[1] == pytest.approx(errors[0]) and 0.002 < errors[1] < 0.01


def test_black_box_shift_estimation_inverts_the_confusion_matrix():
    confusion = np.array([[0.4, 0.1], [0.1, 0.4]])  # holdout prior 0.5/0.5, 80 % right in each class
    prior = confusion_prior(confusion, predicted_share=np.array([0.38, 0.62]), holdout_prior=np.array([0.5, 0.5]))
    np.testing.assert_allclose(prior, [0.3, 0.7])


def test_a_classifier_that_tells_nothing_cannot_tell_the_prior():
    calibrated = np.full((1000, 2), 0.5)
    errors = em_standard_errors(calibrated, np.array([0.5, 0.5]), np.array([0.5, 0.5]))
    assert np.isinf(errors).all()
