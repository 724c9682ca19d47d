"""The demo data's other kinds of task (testkit.configs.TASK_KINDS): the contract (multiclass) and the monthly charges
(regression). The generator draws both independently of every other column: nothing explains them, so there is no
direction to expect and no baseline to beat. What a model must still do: answer every row, the same whatever the id
or the order, with an answer of the kind it was trained for, and stay at the base rate instead of inventing rules
from noise."""

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from testkit.configs import TRAINED_CLASSES


def answer_table(model, frame: pd.DataFrame) -> pd.DataFrame:
    """Each row's answer (a class's probability per column, or the predicted number), indexed by customer."""
    answers = model.answers(frame)
    values = answers.labels[:, None] if answers.proba is None else answers.proba
    return pd.DataFrame(values, index=frame["customer_id"].to_numpy())


def test_the_id_the_order_and_the_other_rows_of_a_batch_change_no_answer(other_kind_model):
    batch = other_kind_model.later
    expected = answer_table(other_kind_model, batch)
    relabelled = batch.assign(
        customer_id=[f"R{i:07d}" for i in range(len(batch))][::-1], event_time=batch["event_time"].min()
    )
    np.testing.assert_array_equal(answer_table(other_kind_model, relabelled).to_numpy(), expected.to_numpy())
    shuffled = answer_table(other_kind_model, batch.sample(frac=1, random_state=5))
    pd.testing.assert_frame_equal(shuffled.loc[expected.index], expected, check_exact=True)
    alone = pd.concat([answer_table(other_kind_model, batch.iloc[[i]]) for i in range(0, len(batch), 100)])
    pd.testing.assert_frame_equal(alone, expected.iloc[::100], check_exact=True)


def test_unseen_categories_and_missing_values_get_an_answer_of_the_trained_kind(other_kind_model):
    dataset = other_kind_model.cfg.dataset
    odd = other_kind_model.later.head(6).copy()
    odd.loc[0, dataset.categorical_features[0]] = "never-seen"
    odd.loc[1, dataset.categorical_features] = None
    odd.loc[2, dataset.numeric_features[0]] = np.nan
    odd.loc[3, dataset.numeric_features] = np.inf
    odd.loc[4, dataset.feature_names] = None
    answers = other_kind_model.answers(odd)
    if other_kind_model.kind == "multiclass":
        assert list(answers.classes) == TRAINED_CLASSES["multiclass"]
        assert set(answers.labels) <= set(TRAINED_CLASSES["multiclass"])
        assert answers.proba.shape == (6, 3) and np.isfinite(answers.proba).all()
        np.testing.assert_allclose(answers.proba.sum(axis=1), 1.0)
    else:
        charges = other_kind_model.data[dataset.target]
        assert answers.proba is None and np.isfinite(answers.labels).all()
        assert charges.min() <= answers.labels.min() and answers.labels.max() <= charges.max()  # within what it saw


def test_a_target_no_feature_explains_is_answered_near_its_base_rate(other_kind_model):
    target = other_kind_model.cfg.dataset.target
    holdout, metrics = other_kind_model.trained.holdout, other_kind_model.trained.metrics
    answers = other_kind_model.answers(other_kind_model.later)
    if other_kind_model.kind == "multiclass":
        shares = other_kind_model.data[target].value_counts(normalize=True)[answers.classes].to_numpy()
        np.testing.assert_allclose(answers.proba.mean(axis=0), shares, atol=0.05)  # on average, the class shares
        assert abs(metrics["roc_auc_ovr"] - 0.5) < 0.05  # ranks no better than chance: nothing learned from noise
    else:
        mean = other_kind_model.data[target].mean()
        mean_rmse = skm.root_mean_squared_error(holdout[target], np.full(len(holdout), mean))
        assert metrics["rmse"] < 1.05 * mean_rmse  # no worse than answering the mean by more than noise costs
        assert abs(answers.labels.mean() - mean) < 2.0
        assert answers.labels.std() < other_kind_model.data[target].std() / 3  # no spread as if it knew each row
