import re

import numpy as np
import pandas as pd
import pytest

from driftline.config import parse_config
from driftline.data.demo import make_frame
from driftline.evaluation import gate, measure
from driftline.modeling import pipeline


def test_time_holdout_takes_the_most_recent_rows(cfg):
    frame = make_frame(1000, seed=3).sample(frac=1, random_state=0)  # arrival order shuffled
    train, holdout = pipeline.split_holdout(frame, cfg)
    assert len(holdout) == 200
    assert train["event_time"].max() <= holdout["event_time"].min()


def test_random_holdout_when_there_is_no_event_time(config_factory):
    from driftline.config import load_config

    cfg = load_config(config_factory(dataset={"event_time_column": None}))
    frame = make_frame(1000, seed=3)
    train, holdout = pipeline.split_holdout(frame, cfg)
    assert pipeline.holdout_strategy(cfg) == "random"
    assert abs(holdout["churned"].mean() - train["churned"].mean()) < 0.01  # stratified


def test_pipeline_predicts_through_missing_values_and_unseen_categories(cfg):
    model = pipeline.fit(make_frame(800, seed=1), cfg)
    odd = make_frame(5, seed=2)
    odd.loc[0, "contract"] = "brand-new-plan"
    odd.loc[1, "monthly_charges"] = np.nan
    odd.loc[2, "age"] = np.inf
    predictions = pipeline.predict(model, odd, cfg.dataset)
    assert predictions.proba.shape == (5, 2)
    assert list(predictions.classes) == [0, 1]


@pytest.mark.parametrize(
    ("task", "estimator", "metric"),
    [
        ("multiclass", "sklearn.ensemble.RandomForestClassifier", "f1_macro"),
        ("regression", "sklearn.linear_model.Ridge", "rmse"),
    ],
)
def test_other_tasks_train_and_evaluate(task, estimator, metric):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=600), "kind": rng.choice(["a", "b", "c"], 600)})
    frame["y"] = (frame["x"] + (frame["kind"] == "a")) if task == "regression" else np.digitize(frame["x"], [-0.5, 0.5])
    cfg = parse_config(
        {
            "name": "t",
            "registry": {"model_name": "t"},
            "model": {"estimator": estimator},
            "dataset": {"target": "y", "task": task, "features": {"x": "numeric", "kind": "categorical"}},
        }
    )
    train, holdout = pipeline.split_holdout(frame, cfg)
    metrics = measure.holdout_metrics(pipeline.fit(train, cfg), holdout, cfg)
    assert cfg.primary_metric == metric and metric in metrics


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
    from driftline.errors import DataRejected
    from driftline.training.train import train_model

    frame = make_frame(len(labels), seed=1).assign(churned=labels)
    with pytest.raises(DataRejected, match=re.escape(reason)):
        train_model(frame, cfg, source="small.csv")
