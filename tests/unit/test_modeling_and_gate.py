import re

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from driftline.config import load_config, parse_config
from driftline.data.demo import make_frame
from driftline.errors import DataRejected
from driftline.evaluation import gate, measure
from driftline.modeling import pipeline
from driftline.training.train import train_model


def ids(frame: pd.DataFrame) -> set[str]:
    return set(frame["customer_id"])


def test_time_holdout_takes_the_most_recent_rows(cfg):
    frame = make_frame(1000, seed=3).sample(frac=1, random_state=0)  # arrival order shuffled
    train, holdout = pipeline.split_holdout(frame, cfg)
    assert pipeline.holdout_strategy(cfg) == "time"
    assert ids(holdout) == ids(frame.nlargest(200, "event_time"))  # exactly the latest 20%, whatever the file order
    assert ids(train) == ids(frame) - ids(holdout) and len(train) == 800
    assert train["event_time"].max() <= holdout["event_time"].min()


def test_random_holdout_when_there_is_no_event_time_is_stratified_and_seeded(config_factory):
    cfg = load_config(config_factory(dataset={"event_time_column": None}))
    frame = make_frame(1000, seed=3)
    train, holdout = pipeline.split_holdout(frame, cfg)
    assert pipeline.holdout_strategy(cfg) == "random"
    assert len(holdout) == 200 and ids(train) == ids(frame) - ids(holdout) and len(train) == 800
    assert holdout["event_time"].min() < train["event_time"].max() < holdout["event_time"].max()  # not the latest rows
    assert abs(holdout["churned"].sum() - 0.2 * frame["churned"].sum()) <= 1  # stratified: the class share kept
    assert ids(pipeline.split_holdout(frame, cfg)[1]) == ids(holdout)  # the same seed, the same rows
    reseeded = cfg.model_copy(update={"model": cfg.model.model_copy(update={"seed": cfg.model.seed + 1})})
    assert ids(pipeline.split_holdout(frame, reseeded)[1]) != ids(holdout)


def test_pipeline_predicts_through_missing_values_and_unseen_categories(cfg):
    training = make_frame(800, seed=1)
    model = pipeline.fit(training, cfg)
    clean = make_frame(5, seed=2)
    odd = clean.copy()
    odd.loc[0, "contract"] = "brand-new-plan"
    odd.loc[1, "monthly_charges"] = np.nan
    odd.loc[2, "age"] = np.inf
    predictions = pipeline.predict(model, odd, cfg.dataset)
    assert list(predictions.classes) == [0, 1]  # the trained classes, in the columns' order
    assert np.allclose(predictions.proba.sum(axis=1), 1.0) and ((predictions.proba > 0) & (predictions.proba < 1)).all()
    assert list(predictions.labels) == list(predictions.classes[predictions.proba.argmax(axis=1)])
    # each odd value is answered as the pipeline says it treats it: an unseen category as a missing one, a missing
    # number as the training median, infinity as missing; the untouched rows as in the clean frame
    treated = clean.copy()
    treated.loc[0, "contract"] = np.nan
    treated.loc[1, "monthly_charges"] = training["monthly_charges"].median()
    treated.loc[2, "age"] = training["age"].median()
    np.testing.assert_array_equal(predictions.proba, pipeline.predict(model, treated, cfg.dataset).proba)
    np.testing.assert_array_equal(predictions.proba[3:], pipeline.predict(model, clean, cfg.dataset).proba[3:])
    assert not np.array_equal(predictions.proba[:3], pipeline.predict(model, clean, cfg.dataset).proba[:3])


def test_binary_holdout_metrics_are_sklearns_on_the_most_recent_rows(cfg):
    frame = make_frame(1000, seed=3)
    trained = train_model(frame, cfg)
    assert ids(trained.holdout) == ids(frame.nlargest(200, "event_time"))
    truth = trained.holdout["churned"]
    features = trained.holdout[cfg.dataset.feature_names]
    proba, labels = trained.model.predict_proba(features), trained.model.predict(features)
    assert list(trained.model.classes_) == [0, 1]
    assert trained.metrics == pytest.approx(
        {
            "roc_auc": skm.roc_auc_score(truth, proba[:, 1]),
            "accuracy": skm.accuracy_score(truth, labels),
            "f1": skm.f1_score(truth, labels),
            "precision": skm.precision_score(truth, labels),
            "recall": skm.recall_score(truth, labels),
            "log_loss": skm.log_loss(truth, proba),
        },
        rel=1e-12,
    )
    assert trained.metrics["roc_auc"] > 0.7  # the model learned the demo's churn, it is no coin toss


@pytest.mark.parametrize(
    ("task", "estimator", "metric"),
    [
        ("multiclass", "sklearn.ensemble.RandomForestClassifier", "f1_macro"),
        ("regression", "sklearn.linear_model.Ridge", "rmse"),
    ],
)
def test_other_tasks_train_and_their_holdout_metrics_are_sklearns(task, estimator, metric):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=600), "kind": rng.choice(["a", "b", "c"], 600)})
    signal = frame["x"] + rng.normal(0, 0.3, 600)  # noisy: a perfect model would make every metric its best value
    frame["y"] = (signal + (frame["kind"] == "a")) if task == "regression" else np.digitize(signal, [-0.5, 0.5])
    cfg = parse_config(
        {
            "name": "t",
            "registry": {"model_name": "t"},
            "model": {"estimator": estimator},
            "dataset": {"target": "y", "task": task, "features": {"x": "numeric", "kind": "categorical"}},
        }
    )
    train, holdout = pipeline.split_holdout(frame, cfg)
    assert len(holdout) == 120 and set(train.index).isdisjoint(holdout.index) and len(train) == 480
    model = pipeline.fit(train, cfg)
    metrics = measure.holdout_metrics(model, holdout, cfg)
    truth, labels = holdout["y"], model.predict(holdout[["x", "kind"]])
    assert cfg.primary_metric == metric
    if task == "multiclass":
        proba = model.predict_proba(holdout[["x", "kind"]])
        assert list(pipeline.predict(model, holdout, cfg.dataset).classes) == [0, 1, 2]
        assert holdout["y"].value_counts().to_dict() == pytest.approx(  # stratified: each class's share kept
            (frame["y"].value_counts() * 0.2).to_dict(), abs=1
        )
        expected = {
            "f1_macro": skm.f1_score(truth, labels, average="macro"),
            "accuracy": skm.accuracy_score(truth, labels),
            "roc_auc_ovr": skm.roc_auc_score(truth, proba, multi_class="ovr"),
            "log_loss": skm.log_loss(truth, proba),
        }
        assert 0.7 < metrics["accuracy"] < 1  # y follows x: the forest finds it
    else:
        expected = {
            "rmse": skm.root_mean_squared_error(truth, labels),
            "mae": skm.mean_absolute_error(truth, labels),
            "r2": skm.r2_score(truth, labels),
        }
        assert 0.85 < metrics["r2"] < 1  # y is linear in the features: the ridge finds it
    assert metrics == pytest.approx(expected, rel=1e-12)


def test_first_model_passes_on_thresholds_alone(cfg):
    decision = gate.decide(cfg, {"roc_auc": 0.75}, None, None)
    assert decision.promote and decision.reasons[0].startswith("first model: roc_auc 0.7500")
    refused = gate.decide(cfg, {"roc_auc": 0.65}, None, None)
    assert not refused.promote
    assert (
        "roc_auc value threshold check failed: candidate model roc_auc = 0.65, roc_auc threshold = 0.7"
        in refused.reasons[0]
    )


def test_challenger_must_beat_champion_by_the_margin(cfg):
    assert gate.decide(cfg, {"roc_auc": 0.811}, {"roc_auc": 0.80}, "1").promote
    refused = gate.decide(cfg, {"roc_auc": 0.805}, {"roc_auc": 0.80}, "1")
    assert not refused.promote and refused.champion_version == "1"
    assert "minimum absolute change check failed" in refused.reasons[0]


def test_lower_is_better_metrics_gate_the_other_way():
    cfg = parse_config(
        {
            "name": "r",
            "registry": {"model_name": "r"},
            "model": {"estimator": "sklearn.linear_model.Ridge"},
            "dataset": {"target": "y", "task": "regression", "features": {"x": "numeric"}},
            "gate": {"thresholds": {"rmse": 2.0}, "min_improvement": 0.1},
        }
    )
    assert gate.decide(cfg, {"rmse": 1.0}, {"rmse": 1.2}, "3").promote
    assert not gate.decide(cfg, {"rmse": 1.15}, {"rmse": 1.2}, "3").promote
    assert not gate.decide(cfg, {"rmse": 2.5}, None, None).promote


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ([0] * 30, "target 'churned' has one class ['0']; a classifier needs two or more"),
        ([0, 1, 2] * 10, "dataset.task is binary but target 'churned' has 3 classes ['0', '1', '2']; fix the labels"),
        ([0, 1] * 5, "only 10 rows; training needs at least 20"),
    ],
)
def test_untrainable_data_is_rejected_before_fitting(cfg, labels, reason):
    frame = make_frame(len(labels), seed=1).assign(churned=labels)
    with pytest.raises(DataRejected, match=re.escape(reason)):
        train_model(frame, cfg, source="small.csv")
