"""Label drift on late labels without Prefect: each newly labeled batch of the champion tested as the drift check tests
a batch that carries its target, the notes when there is no verdict, when it starts a retrain, and the backtest's
symbol for it."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from testkit.churn import churn_resampled

from driftline.backtest import table
from driftline.backtest.results import SCORED as SCORED_STATUS
from driftline.backtest.results import LabelArrival, ReplayedBatch
from driftline.config import load_config
from driftline.data import prediction_log
from driftline.data.demo import START, make_frame
from driftline.monitoring import label_store
from driftline.monitoring.drift import detect_drift
from driftline.monitoring.label_drift import check_label_drift
from driftline.monitoring.reference import ReferenceStats, calibrate, reference_stats

SCORED = datetime(2026, 3, 1, tzinfo=UTC)
WEEK = pd.Timedelta(days=7)


def labeled_rows(frame: pd.DataFrame, source: str, version: str = "1", hours: int = 0) -> pd.DataFrame:
    """The label join's output for a scored batch: the logged rows with their label."""
    return frame.assign(
        **{
            label_store.LABEL: frame["churned"],
            prediction_log.MODEL_VERSION: version,
            prediction_log.SOURCE: source,
            prediction_log.SCORED_AT: pd.Timestamp(SCORED + timedelta(hours=hours)),
        }
    )


@pytest.fixture(scope="module")
def training_rows() -> pd.DataFrame:
    return make_frame(3000, seed=1, days=56)


@pytest.fixture(scope="module")
def batches() -> dict[str, pd.DataFrame]:
    stable = make_frame(600, seed=2, start=START + 9 * WEEK, id_offset=10_000)
    moved = churn_resampled(make_frame(1500, seed=3, start=START + 10 * WEEK, id_offset=20_000), 600, 0.8, seed=3)
    return {"stable.csv": stable, "churn80.csv": moved}


def reference_of(training_rows: pd.DataFrame, cfg) -> ReferenceStats:
    columns = [*cfg.dataset.feature_names, cfg.dataset.target]
    stats = reference_stats(training_rows[columns], cfg)
    if not cfg.drift.any_calibrated:
        return stats
    calibration = calibrate(stats, training_rows, training_rows.head(0), [], cfg)
    return ReferenceStats(stats.rows, stats.columns, calibration=calibration)


@pytest.mark.parametrize("thresholds", [{}, {"chisquare": "calibrated"}], ids=["fixed", "calibrated"])
def test_late_labels_are_tested_with_the_statistic_method_and_threshold_of_the_drift_check(
    config_factory, training_rows, batches, thresholds
):
    calibration = {"batch_rows": 600}  # the batches' size: one size to calibrate for
    cfg = load_config(config_factory(drift={"thresholds": thresholds, "calibration": calibration}))
    reference = reference_of(training_rows, cfg)
    labeled = pd.concat(
        [
            labeled_rows(batches["stable.csv"], "stable.csv"),
            labeled_rows(batches["churn80.csv"], "churn80.csv", hours=1),
        ]
    )

    checked = check_label_drift(labeled, "1", reference, cfg, {"stable.csv", "churn80.csv"})

    assert [(b.source, b.rows, b.drifted) for b in checked.batches] == [
        ("stable.csv", 600, False),
        ("churn80.csv", 600, True),
    ]
    for batch in checked.batches:  # what detect_drift says of the same rows carrying their target (label delay 0)
        [on_time] = [c for c in detect_drift(reference, batches[batch.source], cfg).columns if c.role == "target"]
        assert batch.test == on_time
        assert batch.test.calibrated == bool(thresholds)
    moved = checked.batches[1].test
    assert checked.reasons == [
        f"label drift in churn80.csv: target 'churned' drifted (chisquare = {moved.statistic:.3g})"
    ]
    assert checked.batches[1].figures() == {"batch_label_drift_chisquare": moved.statistic, "batch_label_drifted": 1.0}
    assert checked.batches[0].line().startswith("stable.csv: no drift on 600 labeled rows (chisquare = ")


def test_only_the_champions_newly_labeled_batches_are_judged_on_all_their_labeled_rows(cfg, training_rows, batches):
    reference = reference_of(training_rows, cfg)
    moved = batches["churn80.csv"]
    labeled = pd.concat(
        [
            labeled_rows(batches["stable.csv"], "stable.csv"),  # labeled in an earlier run
            labeled_rows(moved.head(300), "churn80.csv", hours=1),  # the first part, earlier
            labeled_rows(moved.tail(300), "churn80.csv", hours=1),  # the rest, in this run
            labeled_rows(moved, "challenger.csv", version="2", hours=2),  # not the champion's
        ]
    )

    checked = check_label_drift(labeled, "1", reference, cfg, {"churn80.csv", "challenger.csv"})

    assert [(b.source, b.rows, b.drifted) for b in checked.batches] == [("churn80.csv", 600, True)]


def test_too_few_labeled_rows_give_a_note_and_no_verdict(config_factory, training_rows, batches):
    cfg = load_config(config_factory(drift={"min_rows": 50}))
    few = labeled_rows(batches["churn80.csv"].head(49), "churn80.csv")

    checked = check_label_drift(few, "1", reference_of(training_rows, cfg), cfg, {"churn80.csv"})

    [batch] = checked.batches
    assert (batch.test, batch.drifted, checked.reasons) == (None, False, [])
    assert batch.line() == "churn80.csv: 49 labeled rows, fewer than drift.min_rows=50: no label drift verdict"
    assert batch.figures() == {}


def test_with_target_drift_off_labels_are_not_tested(config_factory, training_rows, batches):
    cfg = load_config(config_factory(drift={"target_drift": False}))
    labeled = labeled_rows(batches["churn80.csv"], "churn80.csv")

    checked = check_label_drift(labeled, "1", reference_of(training_rows, cfg), cfg, {"churn80.csv"})

    assert (checked.batches, checked.reasons) == ([], [])
    assert checked.summary == "drift.target_drift is off: labels are not tested for drift"


@pytest.mark.parametrize(
    ("drift", "estimate_trusted", "retrains"),
    [
        ({}, True, True),
        ({"trigger": "either"}, False, True),  # the estimator is not trusted: the drift alarm decides
        ({"trigger": "either"}, True, False),  # a trusted estimator decides, as at label delay 0
        ({"trigger": "estimated"}, False, False),  # drift alarms report only: label drift too
        ({"retrain": False}, False, False),
    ],
)
def test_label_drift_starts_a_retrain_as_a_drift_alarm_would(
    config_factory, training_rows, batches, drift, estimate_trusted, retrains
):
    cfg = load_config(config_factory(drift=drift))
    labeled = labeled_rows(batches["churn80.csv"], "churn80.csv")
    checked = check_label_drift(labeled, "1", reference_of(training_rows, cfg), cfg, {"churn80.csv"})

    assert checked.retraining_reasons(cfg.drift, estimate_trusted) == (checked.reasons if retrains else [])
    assert len(checked.reasons) == 1 and np.isfinite(checked.drifted[0].test.statistic)


def test_a_backtest_row_shows_late_labels_that_drifted_and_the_retrain_they_started():
    arrival = LabelArrival("b2.csv", 300, 0.8, candidate_version="2", gate="promoted", label_drift=True)
    batch = ReplayedBatch("b2.csv", 300, SCORED_STATUS, "1", {"roc_auc": 0.8}, labels=arrival)

    assert table.arrival(arrival) == "300 rows, champion 0.800, label drift → v2 promoted"
    assert table.short_cell(batch, "roc_auc", estimates=False) == "v1 0.800\n▲y →v2✓"
    assert "▲y late labels drifted" in table.KEY
