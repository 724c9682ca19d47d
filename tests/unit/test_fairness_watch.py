"""Slices and fairness of the champion on labeled batches, without Prefect: computed as the gate computes them, held
to the champion's own figures at promotion (its gate record)."""

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from testkit.configs import write_config
from testkit.slices import labels_flipped_in, unfair_to

from driftline.config import load_config
from driftline.data import prediction_log
from driftline.data.demo import make_frame
from driftline.evaluation.gate import decide
from driftline.evaluation.measure import metrics_of
from driftline.evaluation.slices import fairness_of, slice_metrics
from driftline.modeling.pipeline import fit, predict
from driftline.monitoring import label_store
from driftline.monitoring.fairness_watch import AtPromotion, check_batches

SCORED = datetime(2026, 3, 1, tzinfo=UTC)
WATCHED = {
    "slices": {"columns": ["region"], "min_rows": 100, "tolerance": 0.1},
    "fairness": {"attribute": "region", "min_disparate_impact": 0.6},
}


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    return load_config(write_config(tmp_path_factory.mktemp("watched"), gate=WATCHED, labels={"enabled": True}))


@pytest.fixture(scope="module")
def champion(watched):
    """The champion and its figures at promotion, read back from its gate record as the registry stores it (one
    fit for the module)."""
    training = make_frame(3000, seed=1, days=56)
    model = fit(training.iloc[:2400], watched)
    holdout = training.iloc[2400:].reset_index(drop=True)
    mine = predict(model, holdout, watched.dataset)  # what the gate's judge computes, less the importances
    decision = decide(
        watched,
        metrics_of(mine, holdout[watched.dataset.target], watched),
        None,
        None,
        slices=slice_metrics(holdout, mine, None, watched),
        fairness=fairness_of(holdout, mine, watched),
    )
    assert decision.promote, decision.reasons
    return model, AtPromotion.of_gate_record(json.loads(json.dumps(decision.to_dict(), default=str)))


def labeled_log(frame: pd.DataFrame, model, cfg, source: str, hours: int) -> pd.DataFrame:
    """The batch as the prediction log holds it once its labels arrived."""
    rows = prediction_log.records(
        frame, predict(model, frame, cfg.dataset), cfg, "1", source, source, SCORED + timedelta(hours=hours)
    )
    return rows.assign(**{label_store.LABEL: frame[cfg.dataset.target].to_numpy()})


def test_a_skewed_batch_breaches_fairness_a_flipped_region_degrades_its_slice_and_a_fair_batch_holds(watched, champion):
    model, at_promotion = champion
    assert set(at_promotion.slices) == {"region=east", "region=north", "region=south", "region=west"}
    batches = {
        "old.csv": unfair_to(make_frame(1000, seed=5)),
        "fair.csv": make_frame(1000, seed=2),
        "unfair.csv": unfair_to(make_frame(1000, seed=3)),
        "flipped.csv": labels_flipped_in(make_frame(1000, seed=4)),
    }
    log = pd.concat(
        [labeled_log(frame, model, watched, name, hours) for hours, (name, frame) in enumerate(batches.items())]
    )
    checks = check_batches(log, "1", at_promotion, watched, [0, 1], {"fair.csv", "unfair.csv", "flipped.csv"})

    assert [batch.source for batch in checks.batches] == list(batches)  # in scoring order
    by_source = {batch.source: batch for batch in checks.batches}
    fair, unfair, flipped = by_source["fair.csv"], by_source["unfair.csv"], by_source["flipped.csv"]
    assert not fair.fairness_breached and not fair.degraded_slices and fair.disparate_impact >= 0.6
    assert unfair.fairness_breached and unfair.disparate_impact < 0.2
    rates = {group.group: group.positive_rate for group in unfair.fairness.groups}
    assert rates["south"] == min(rates.values())
    assert unfair.fairness_reason == f"disparate impact on region {unfair.disparate_impact:.3f} < 0.6 in unfair.csv"
    assert [check.name for check in flipped.degraded_slices] == ["region=south"]
    south = flipped.degraded_slices[0]
    assert south.at_promotion - south.live > 0.1 and south.at_promotion == at_promotion.slices["region=south"]
    assert not flipped.fairness_breached  # the predictions are as fair as ever: only the outcomes moved

    # the earlier batch was judged in an earlier run: figures, but no verdict again
    assert [batch.source for batch in checks.fairness_breaches] == ["unfair.csv"]
    assert "flipped.csv" in [batch.source for batch in checks.slice_degradations]
    assert "old.csv" not in [batch.source for batch in checks.slice_degradations]
    assert checks.reasons[0].startswith("disparate impact on region") and checks.counted == []  # default: a notice

    figures = flipped.slice_figures()
    assert figures["roc_auc[region=south]"] == south.live
    assert figures["roc_auc[region=south] at promotion"] == south.at_promotion
    assert unfair.fairness_figures()["disparate_impact[region]"] == unfair.disparate_impact


def test_breaches_count_as_degradation_only_when_configured(config_factory, champion):
    model, at_promotion = champion
    counting = load_config(
        config_factory(gate=WATCHED, labels={"enabled": True, "fairness_counts_as_degradation": True})
    )
    log = labeled_log(unfair_to(make_frame(1000, seed=3)), model, counting, "unfair.csv", 0)
    checks = check_batches(log, "1", at_promotion, counting, [0, 1], {"unfair.csv"})
    assert checks.counted == checks.reasons and checks.counted[0].startswith("disparate impact on region")


def test_nothing_is_judged_without_configured_slices_a_logged_column_or_a_value_at_promotion(
    config_factory, watched, champion
):
    model, at_promotion = champion
    plain = load_config(config_factory(labels={"enabled": True}))
    log = labeled_log(make_frame(500, seed=2), model, plain, "a.csv", 0)
    assert check_batches(log, "1", at_promotion, plain, [0, 1], {"a.csv"}).summary == (
        "gate.slices and gate.fairness are not configured"
    )
    by_plan = load_config(config_factory(gate={"slices": {"columns": ["plan"]}}, labels={"enabled": True}))
    assert check_batches(log, "1", at_promotion, by_plan, [0, 1], {"a.csv"}).summary == (
        "the prediction log lacks ['plan']: not watched"
    )
    flipped = labeled_log(labels_flipped_in(make_frame(1000, seed=4)), model, watched, "b.csv", 0)
    [batch] = check_batches(flipped, "1", AtPromotion(), watched, [0, 1], {"b.csv"}).batches
    assert not any(check.decides for check in batch.slices)  # trained before gate.slices was set: nothing to hold to
