import json

import pandas as pd
import pytest

from benchmarks import electricity, flights, histories, police_stops
from benchmarks.histories import HISTORIES, Row, markdown, meets_rule
from driftline.config import load_config

LOADERS = {"flights": flights, "police-stops": police_stops, "electricity": electricity}
SLOW_LOADERS = {"flights"}  # 336,776 flights from a zipped CSV: about 10 s


@pytest.mark.parametrize(
    "history",
    [
        pytest.param(history, id=history.name, marks=[pytest.mark.slow] if history.name in SLOW_LOADERS else [])
        for history in HISTORIES
    ],
)
def test_each_history_is_written_as_monthly_files_in_time_order_with_its_configs_columns(history, tmp_path):
    written = LOADERS[history.name].write_months(tmp_path / history.name)
    dataset = load_config(history.config).dataset
    batches = [pd.read_parquet(path) for path in written]
    assert len(batches) == 12 and history.initial < len(batches) - 8  # at least nine months replayed
    wanted = {dataset.id_column, dataset.event_time_column, dataset.target, *dataset.features}
    for earlier, later in zip(batches, batches[1:], strict=False):
        assert earlier[dataset.event_time_column].max() <= later[dataset.event_time_column].min()
    for batch in batches:
        assert wanted <= set(batch.columns) and batch[list(wanted)].notna().all().all()
        assert batch[dataset.event_time_column].is_monotonic_increasing and batch[dataset.id_column].is_unique
        assert len(batch) >= 1_000
    whole = pd.concat(batches)
    assert whole[dataset.id_column].is_unique
    if dataset.task.is_classification:
        assert set(whole[dataset.target]) == {0, 1}


def test_the_rule_asks_for_the_best_served_metric_within_0_005_with_at_most_60_percent_of_every_batchs_retrains():
    rows = [
        Row("every-batch", 0.700, 10, 10, 3, 7, 100.0, 10, None),
        Row("never", 0.650, 10, 0, 0, 0, 10.0, 10, None),
        Row("calibrated", 0.696, 4, 4, 1, 3, 50.0, 10, None),  # 0.004 below the best, 40 % of the retrains
        Row("fixed", 0.700, 10, 10, 3, 7, 100.0, 10, None),  # the best, but every-batch's retrains
        Row("distances", 0.690, 2, 2, 0, 2, 30.0, 10, None),  # too far below
    ]
    assert [row.policy for row in rows if meets_rule(row, rows, greater_is_better=True)] == ["calibrated"]
    errors = [
        Row("every-batch", 0.30, 0, 10, 0, 10, 1.0, 10, None),
        Row("calibrated", 0.304, 3, 5, 0, 5, 1.0, 10, None),
    ]
    assert meets_rule(errors[1], errors, greater_is_better=False)  # rmse: lower is better


def test_the_histories_table_shows_every_policy_and_whether_it_meets_the_rule_on_every_history():
    def result(calibrated_mean: float) -> dict:
        totals = {"alarms": 0, "refused": 0, "promotions": 0, "seconds": 1.0, "estimate_error": 0.0123}
        policies = [
            ("every-batch", 0.70, 10),
            ("never", 0.60, 0),
            ("drift.thresholds=calibrated", calibrated_mean, 4),
        ]
        return {
            "metric": "roc_auc",
            "greater_is_better": True,
            "initial": ["a", "b"],
            "batches": [{}] * 10,
            "policies": [
                {"name": name, "batches": [{}] * 10, "totals": {**totals, "mean_metric": mean, "retrains": retrains}}
                for name, mean, retrains in policies
            ],
        }

    table = markdown({"one": result(0.699), "two": result(0.69)})
    assert "| calibrated | 0.699 | 0 | 4 (0) | 0 | 0.012 | 1 | yes |" in table
    assert "| calibrated | 0.690 | 0 | 4 (0) | 0 | 0.012 | 1 | no |" in table
    assert "| calibrated | yes | no | no |" in table and "| never | no | no | no |" in table


def test_a_delayed_table_takes_never_from_label_delay_0_where_it_was_replayed_once(tmp_path, monkeypatch):
    monkeypatch.setattr(histories, "RESULTS", tmp_path)

    def replay(delay: int, names: list[str]) -> None:
        totals = {"mean_metric": 0.7, "alarms": 1, "retrains": 1, "refused": 0, "promotions": 1, "seconds": 1.0}
        result = {
            "metric": "roc_auc",
            "greater_is_better": True,
            "initial": ["a"],
            "batches": [{}],
            "policies": [{"name": name, "batches": [{}], "totals": totals} for name in names],
        }
        folder = tmp_path / f"flights-k{delay}" / "-".join(names)
        folder.mkdir(parents=True)
        (folder / "backtest.json").write_text(json.dumps(result))

    replay(0, ["never", "every-batch"])
    replay(1, ["every-batch"])
    found = histories.found_results([0, 1], ["flights"])
    delayed = [policy["name"] for policy in found["flights (chooses), label delay 1"]["policies"]]
    assert delayed == ["never", "every-batch"]
