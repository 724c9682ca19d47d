"""Delayed labels without Prefect: reading label files, the join, performance per batch and version, degradation."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from testkit.configs import DEMO_FEATURES

from driftline.config import load_config
from driftline.data import prediction_log
from driftline.data.loading import DataBatch
from driftline.errors import DataRejected
from driftline.monitoring import label_store, performance

SCORED = datetime(2026, 3, 1, tzinfo=UTC)


def logged(ids: list[str], version: str, source: str, predicted: list[int], proba: list[float], hours: int = 0):
    """Prediction-log rows as batch scoring writes them (binary task)."""
    return pd.DataFrame(
        {
            "customer_id": ids,
            prediction_log.PREDICTION: predicted,
            "proba_0": [1 - p for p in proba],
            "proba_1": proba,
            prediction_log.MODEL_VERSION: version,
            prediction_log.SOURCE: source,
            prediction_log.SCORED_AT: pd.Timestamp(SCORED + timedelta(hours=hours)),
        }
    )


def labels_frame(pairs: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            label_store.ID: list(pairs),
            label_store.LABEL: list(pairs.values()),
            label_store.LABEL_FILE: "l.csv",
            label_store.RECEIVED_AT: pd.Timestamp(SCORED),
        }
    )


def test_join_counts_pending_predictions_and_labels_without_a_prediction(cfg):
    predictions = pd.concat(
        [
            logged(["C1", "C2", "C3"], "1", "a.csv", [1, 0, 0], [0.9, 0.2, 0.4]),
            logged(["C3"], "2", "b.csv", [1], [0.7], hours=1),
        ]
    )
    joined = performance.join_labels(predictions, labels_frame({"C1": 1, "C3": 1, "C9": 0}), cfg)
    # C3 was scored twice: its label measures both predictions; C2 waits; C9 has no prediction yet
    assert sorted(joined.labeled["customer_id"]) == ["C1", "C3", "C3"]
    assert joined.pending_predictions == 1
    assert (joined.unmatched_labels, joined.unmatched_examples) == (1, ["C9"])


def test_late_labeled_rows_keep_the_gates_slice_column_that_is_no_feature(config_factory, tmp_path):
    # the slice column is in the files and the log, not a feature: a challenger trained on the late-labeled rows is
    # still sliced by the gate (a replay with --label-delay 1 once stopped on "names columns ['segment']")
    features = {name: kind for name, kind in DEMO_FEATURES.items() if name != "region"}
    cfg = load_config(config_factory(dataset={"features": features}, gate={"slices": {"columns": ["segment"]}}))
    rows = logged(["C1", "C2"], "1", "a.csv", [1, 0], [0.9, 0.2]).assign(segment=["north", "south"], tenure_months=3)
    joined = performance.join_labels(rows, labels_frame({"C1": 1, "C2": 0}), cfg)
    training = performance.as_training_rows(joined.labeled, cfg)
    assert list(training.columns) == ["customer_id", "tenure_months", "segment", "churned"]
    assert training["segment"].tolist() == ["north", "south"]


def test_performance_per_version_and_per_batch_in_scoring_order(cfg):
    predictions = pd.concat(
        [
            logged(["A1", "A2", "A3", "A4"], "1", "a.csv", [1, 0, 1, 0], [0.9, 0.1, 0.8, 0.3]),
            logged(["B1", "B2", "B3", "B4"], "1", "b.csv", [1, 1, 0, 0], [0.6, 0.7, 0.4, 0.2], hours=2),
            logged(["C1", "C2"], "2", "c.csv", [1, 0], [0.9, 0.1], hours=3),
        ]
    )
    truth = {"A1": 1, "A2": 0, "A3": 1, "A4": 0, "B1": 0, "B2": 1, "B3": 1, "B4": 0, "C1": 1, "C2": 0}
    results = performance.performance(performance.join_labels(predictions, labels_frame(truth), cfg), cfg, [0, 1])
    table = {(r.model_version, r.source): (r.rows, r.metrics["accuracy"], r.metrics["roc_auc"]) for r in results}
    assert table == {
        ("1", performance.ALL_BATCHES): (8, 0.75, 0.9375),
        ("2", performance.ALL_BATCHES): (2, 1.0, 1.0),
        ("1", "a.csv"): (4, 1.0, 1.0),
        ("1", "b.csv"): (4, 0.5, 0.75),
        ("2", "c.csv"): (2, 1.0, 1.0),
    }
    assert [r.source for r in results if r.per_batch] == ["a.csv", "b.csv", "c.csv"]
    assert performance.batch_steps(predictions) == {"a.csv": 0, "b.csv": 1, "c.csv": 2}


def test_degradation_is_direction_aware_and_needs_enough_rows(config_factory):
    scores = load_config(config_factory(labels={"enabled": True, "min_rows": 10, "max_degradation": 0.05}))
    measured = performance.Performance("3", performance.ALL_BATCHES, 50, {"roc_auc": 0.70}, SCORED)
    worse = performance.judge_degradation("3", measured, {"roc_auc": 0.80}, scores)
    assert worse.degraded and worse.loss == pytest.approx(0.10)
    assert worse.reason.startswith("roc_auc 0.7000 on 50 labeled predictions vs 0.8000 at promotion")
    assert not performance.judge_degradation("3", measured, {"roc_auc": 0.74}, scores).degraded
    few = performance.Performance("3", performance.ALL_BATCHES, 9, {"roc_auc": 0.1}, SCORED)
    assert not performance.judge_degradation("3", few, {"roc_auc": 0.8}, scores).degraded

    errors = load_config(
        config_factory(
            dataset={
                "task": "regression",
                "target": "tenure_months",
                "features": {"monthly_charges": "numeric", "contract": "categorical"},
            },
            model={"estimator": "sklearn.ensemble.HistGradientBoostingRegressor"},
            gate={"metric": "rmse", "thresholds": {}},
            labels={"enabled": True, "min_rows": 10, "max_degradation": 1.0},
        )
    )
    higher_error = performance.Performance("1", performance.ALL_BATCHES, 50, {"rmse": 12.5}, SCORED)
    assert performance.judge_degradation("1", higher_error, {"rmse": 10.0}, errors).degraded
    lower_error = performance.Performance("1", performance.ALL_BATCHES, 50, {"rmse": 7.0}, SCORED)
    assert not performance.judge_degradation("1", lower_error, {"rmse": 10.0}, errors).degraded


@pytest.mark.parametrize(
    "content, reason",
    [
        ("customer_id,churned\nC1,1\nC1,0\n", "1 ids are labeled more than once (e.g. C1)"),
        ("customer_id,churned\nC1,1\n,0\n", "1 rows without an id"),
        (
            "customer_id,churned\nC1,1\nC2,\n",
            "column 'churned': 1 of 2 rows have no label; fill them in or drop those rows",
        ),
        (
            "customer_id,churned\nC1,yes\n",
            "dataset.task is binary but target 'churned' has classes ['yes']: ['yes'] not among the "
            "champion's classes ['0', '1']; fix the labels (a binary model learns exactly two classes)",
        ),
        ("customer_id,outcome\nC1,1\n", "column 'churned' is missing"),
    ],
)
def test_bad_label_files_are_rejected_with_the_reason(cfg, tmp_path, content, reason):
    path = tmp_path / "labels.csv"
    path.write_text(content)
    with pytest.raises(DataRejected, match=reason.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        label_store.load_labels(path, cfg, [0, 1])


def test_labels_are_typed_as_the_trained_classes(cfg, tmp_path):
    path = tmp_path / "labels.parquet"
    pd.DataFrame({"customer_id": [7, 8], "churned": [1.0, 0.0]}).to_parquet(path)
    labels = label_store.load_labels(path, cfg, [np.int64(0), np.int64(1)])
    assert labels.frame[label_store.ID].tolist() == ["7", "8"]
    assert labels.frame[label_store.LABEL].tolist() == [1, 0]


def test_label_store_keeps_the_newest_label_per_id(tmp_path, cfg):
    store = tmp_path / "store"
    first = DataBatch(tmp_path / "a.csv", pd.DataFrame({"id": ["C1", "C2"], "label": [0, 1]}), "f1")
    correction = DataBatch(tmp_path / "b.csv", pd.DataFrame({"id": ["C2"], "label": [0]}), "f2")
    label_store.store_labels(first, store)
    label_store.store_labels(correction, store)
    assert label_store.store_labels(first, store) is None  # the same content twice is stored once
    labels = label_store.read_labels(store).set_index("id")["label"].to_dict()
    assert labels == {"C1": 0, "C2": 0}


def test_trained_classes_are_sorted_so_the_second_is_the_positive_class(cfg):
    from types import SimpleNamespace

    from driftline.monitoring.drift_stats import CategoricalColumn
    from driftline.monitoring.reference import DriftReference

    # the reference counts keep the order the labels first appear in training: here 1 before 0
    stats = SimpleNamespace(columns={"churned": CategoricalColumn(pd.Series([40, 60], index=[1, 0]))})
    assert DriftReference.trained_classes(SimpleNamespace(stats=stats), cfg.dataset) == [0, 1]
