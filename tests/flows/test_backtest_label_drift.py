"""`backtest --label-delay 1` through Prefect and MLflow on SQLite: late labels reach the replay's loop through the
label path, so label drift that only the labels show starts a retrain when they arrive, as it would at delay 0."""

import numpy as np
import pytest
from testkit.paths import WEEK

from driftline.data.demo import START, make_frame
from driftline.flows.backtest import backtest
from driftline.flows.params import BacktestParams

pytestmark = pytest.mark.slow  # a replay: four trainings, three batches, two label runs


def test_under_a_label_delay_labels_that_drifted_retrain_when_they_arrive_though_the_batch_raised_no_alarm(
    config_factory, tmp_path
):
    data = tmp_path / "data"
    data.mkdir()
    make_frame(1200, seed=1, days=56).to_parquet(data / "reference.parquet")
    make_frame(300, seed=2, start=START + 9 * WEEK, id_offset=10_000).to_csv(data / "b1_stable.csv", index=False)
    relabeled = make_frame(300, seed=3, start=START + 10 * WEEK, id_offset=20_000)
    stayed = relabeled.index[relabeled["churned"] == 0]  # the same customers; 80 % of them now churn
    flipped = np.random.default_rng(3).choice(stayed, len(stayed) - 60, replace=False)
    relabeled.loc[flipped, "churned"] = 1
    relabeled.to_csv(data / "b2_relabeled.csv", index=False)
    make_frame(300, seed=4, start=START + 11 * WEEK, id_offset=30_000).to_csv(data / "b3_stable.csv", index=False)
    # a worse metric on the relabeled batch is not what this test is about: only label drift may retrain
    config = config_factory(labels={"enabled": True, "max_degradation": 0.9, "min_rows": 100})
    history = [str(data / name) for name in ("reference.parquet", "b1_stable.csv", "b2_relabeled.csv", "b3_stable.csv")]

    outcome = backtest(
        BacktestParams(
            config=str(config), data=history, policies=["current"], label_delay=1, output=str(tmp_path / "o")
        )
    )

    [replay] = outcome.backtest.replays
    b1, b2, b3 = replay.batches
    # served without its labels, the relabeled batch raised no alarm and started no retrain
    assert (b2.drift, b2.retrained, "label" in b2.signals) == (False, False, False)
    # its labels, one batch late, drifted: they alone start the retrain; the stable batch's labels did not
    assert (b1.labels.batch, b1.labels.label_drift, b1.labels.candidate_version) == ("b1_stable.csv", False, None)
    arrival = b2.labels
    assert (arrival.batch, arrival.label_drift, arrival.degraded) == ("b2_relabeled.csv", True, False)
    assert arrival.candidate_version == "2" and arrival.gate is not None
    assert b3.labels is None  # the last batch's labels never reach the loop
