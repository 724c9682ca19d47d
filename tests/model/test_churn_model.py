"""The demo's churn model behaves as the world that generated its data (driftline.data.demo, stable scenario):
churn rises with a month-to-month contract, support calls, the bill and e-check payments, and falls with tenure and
a two-year contract; the customer's age and region play no part in it."""

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

REGIONS_ROTATED = {"north": "south", "south": "east", "east": "west", "west": "north"}


def churn_probability(model, frame: pd.DataFrame) -> np.ndarray:
    answers = model.answers(frame)
    assert list(answers.classes) == [0, 1]
    return answers.proba[:, 1]


# --- invariance ---------------------------------------------------------------------------------------------------
def test_the_id_the_event_time_and_columns_the_model_does_not_read_change_no_answer(churn_model):
    batch = churn_model.later
    relabelled = batch.assign(
        customer_id=[f"X{i:07d}" for i in range(len(batch))][::-1],
        event_time=batch["event_time"] + pd.Timedelta(days=365),
        note="called about the invoice",
    )
    np.testing.assert_array_equal(churn_probability(churn_model, relabelled), churn_probability(churn_model, batch))


def test_a_rows_answer_does_not_depend_on_the_order_or_the_other_rows_of_its_batch(churn_model):
    batch = churn_model.later
    expected = pd.Series(churn_probability(churn_model, batch), index=batch["customer_id"])
    shuffled = batch.sample(frac=1, random_state=3)
    answered = pd.Series(churn_probability(churn_model, shuffled), index=shuffled["customer_id"])
    pd.testing.assert_series_equal(answered.loc[expected.index], expected, check_exact=True)
    alone = [churn_probability(churn_model, batch.iloc[[i]])[0] for i in range(0, len(batch), 100)]
    np.testing.assert_array_equal(alone, expected.to_numpy()[::100])


UNUSED = {
    "another region": lambda f: f.assign(region=f["region"].map(REGIONS_ROTATED)),
    "ten years older": lambda f: f.assign(age=f["age"] + 10),
}


@pytest.mark.parametrize("change", UNUSED)
def test_a_feature_churn_does_not_depend_on_barely_moves_the_answers(churn_model, change):
    before = churn_probability(churn_model, churn_model.later)
    moved = churn_probability(churn_model, UNUSED[change](churn_model.later)) - before
    assert abs(moved.mean()) < 0.01, change  # no direction
    assert np.abs(moved).mean() < 0.05, change  # and little noise per customer


def test_shuffling_a_feature_churn_does_not_depend_on_costs_nothing_and_one_it_does_costs_much(churn_model):
    holdout, rng = churn_model.trained.holdout, np.random.default_rng(0)

    def auc_without(column: str) -> float:
        shuffled = holdout.assign(**{column: rng.permutation(holdout[column].to_numpy())})
        return skm.roc_auc_score(holdout["churned"], churn_probability(churn_model, shuffled))

    auc = skm.roc_auc_score(holdout["churned"], churn_probability(churn_model, holdout))
    assert {column: round(auc - auc_without(column), 3) for column in ("region", "age")} == pytest.approx(
        {"region": 0.0, "age": 0.0}, abs=0.01
    )
    assert min(auc - auc_without(column) for column in ("contract", "tenure_months")) > 0.05


# --- directional expectations -------------------------------------------------------------------------------------
Change = Callable[[pd.DataFrame], pd.DataFrame]
DIRECTIONS: list[tuple[str, Callable[[pd.DataFrame], pd.Series] | None, Change, int]] = [
    # what changes, the customers it changes (None: all), the change, +1 churn more likely, -1 less
    ("three more support calls", None, lambda f: f.assign(support_calls=f["support_calls"] + 3), +1),
    ("a bill 40 higher", None, lambda f: f.assign(monthly_charges=f["monthly_charges"] + 40), +1),
    ("two more years as a customer", None, lambda f: f.assign(tenure_months=f["tenure_months"] + 24), -1),
    (
        "a month-to-month contract",
        lambda f: f["contract"] != "month-to-month",
        lambda f: f.assign(contract="month-to-month"),
        +1,
    ),
    ("a two-year contract", lambda f: f["contract"] != "two-year", lambda f: f.assign(contract="two-year"), -1),
    ("paying by e-check", lambda f: f["payment_method"] != "e-check", lambda f: f.assign(payment_method="e-check"), +1),
]


@pytest.mark.parametrize(("change", "who", "changed", "direction"), DIRECTIONS, ids=[d[0] for d in DIRECTIONS])
def test_churn_probability_moves_the_way_the_world_says_for_most_customers(
    churn_model, change, who, changed, direction
):
    customers = churn_model.later if who is None else churn_model.later[who(churn_model.later)]
    moved = direction * (churn_probability(churn_model, changed(customers)) - churn_probability(churn_model, customers))
    assert (moved > 0).mean() > 0.75, f"{change}: {(moved > 0).mean():.0%} of customers moved the expected way"
    assert moved.mean() > 0.03, change


# --- minimum functionality ----------------------------------------------------------------------------------------
def test_it_beats_the_majority_and_base_rate_baselines_on_its_holdout(churn_model):
    holdout, metrics = churn_model.trained.holdout, churn_model.trained.metrics
    base_rate = holdout["churned"].mean()
    majority_accuracy = max(base_rate, 1 - base_rate)
    base_rate_log_loss = skm.log_loss(holdout["churned"], np.full(len(holdout), base_rate))
    assert metrics["accuracy"] > majority_accuracy + 0.1
    assert metrics["log_loss"] < base_rate_log_loss - 0.05
    assert metrics["roc_auc"] > 0.75  # a constant scores 0.5; the gate's floor is 0.70


def test_obvious_customers_are_classified_right(churn_model):
    template = churn_model.later.iloc[[0] * 4].reset_index(drop=True)
    obvious = template.assign(
        contract=["month-to-month", "month-to-month", "two-year", "two-year"],
        tenure_months=[1.0, 2.0, 72.0, 60.0],
        support_calls=[6.0, 5.0, 0.0, 0.0],
        monthly_charges=[120.0, 110.0, 30.0, 40.0],
        payment_method=["e-check", "e-check", "card", "bank-transfer"],
    )
    answers = churn_model.answers(obvious)
    assert list(answers.labels) == [1, 1, 0, 0]
    assert (answers.proba[:2, 1] > 0.8).all() and (answers.proba[2:, 1] < 0.2).all()


def test_unseen_categories_missing_values_and_odd_numbers_get_an_answer(churn_model):
    dataset = churn_model.cfg.dataset
    odd = churn_model.later.head(8).copy().astype({name: object for name in dataset.numeric_features})
    odd.loc[0, "contract"] = "lifetime"
    odd.loc[1, "payment_method"] = "crypto"
    odd.loc[2, "region"] = None
    odd.loc[3, "monthly_charges"] = np.nan
    odd.loc[4, "age"] = np.inf
    odd.loc[5, "tenure_months"] = "twelve"
    odd.loc[6, "support_calls"] = -np.inf
    odd.loc[7, dataset.feature_names] = None  # nothing known about this customer
    answers = churn_model.answers(odd)
    assert answers.proba.shape == (8, 2) and np.isfinite(answers.proba).all()
    np.testing.assert_allclose(answers.proba.sum(axis=1), 1.0)
    assert set(answers.labels) <= {0, 1}
