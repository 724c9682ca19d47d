"""Canary and A/B routing and per-arm tests: deterministic arms with the configured share, tests that find real
differences."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from driftline.governance.arm_tests import bootstrap_difference, two_proportion_test
from driftline.governance.rollout import ARM_A, ARM_B, CANARY_ARM, AbSplit, route


def test_routing_is_deterministic_per_id_and_respects_the_share():
    ids = pd.Series([f"C{i:07d}" for i in range(20_000)])
    arms = route(ids, 0.1, salt="v4")
    assert abs((arms == CANARY_ARM).mean() - 0.1) < 0.01
    assert (route(ids.iloc[::-1], 0.1, salt="v4")[::-1] == arms).all()  # order and batch do not matter
    assert (route(ids.iloc[:50], 0.1, salt="v4") == arms[:50]).all()
    other = route(ids, 0.1, salt="v5")  # a new canary gets an independent split: about 10% of the old arm again
    assert 0.07 < (other[arms == CANARY_ARM] == CANARY_ARM).mean() < 0.13
    assert (route(ids, 0.0, "v4") != CANARY_ARM).all() and (route(ids, 1.0, "v4") == CANARY_ARM).all()
    with pytest.raises(ValueError, match="share"):
        route(ids, 1.5, "v4")


def test_two_proportion_test_promotes_a_better_canary_and_rolls_back_a_worse_one():
    better = two_proportion_test(8000, 10_000, 880, 1000)
    assert better.verdict == "promote" and better.p_value < 0.001
    worse = two_proportion_test(8000, 10_000, 700, 1000)
    assert worse.verdict == "roll_back"
    same = two_proportion_test(8000, 10_000, 801, 1000)
    assert same.verdict == "continue" and same.p_value > 0.5
    assert two_proportion_test(80, 100, 20, 20, min_rows=100).verdict == "continue"  # too few rows to decide


def test_bootstrap_finds_a_worse_auc_in_the_canary():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 3000)
    good = truth + rng.normal(0, 0.6, 3000)
    poor = truth[:1000] + rng.normal(0, 2.0, 1000)
    result = bootstrap_difference(roc_auc_score, "roc_auc", (truth, good), (truth[:1000], poor), resamples=300)
    assert result.verdict == "roll_back" and result.high < 0 and result.canary < result.champion


def test_an_ab_split_routes_each_unit_to_one_arm_whatever_its_storage_and_a_row_without_unit_to_arm_a():
    split = AbSplit("ab-1", version="2", champion_version="1", share=0.5, unit_column="customer")
    units = pd.Series(range(10_000))
    arms = split.arms(units)
    assert abs((arms == ARM_B).mean() - 0.5) < 0.02
    assert (split.arms(units.astype(float)) == arms).all()  # 3.0 is customer 3, as a CSV holds it
    assert (split.arms(units.astype(str)) == arms).all()
    assert (split.arms(pd.Series(["7", None, np.nan], dtype=object)) == [arms[7], ARM_A, ARM_A]).all()
    assert (arms == np.where(route(units.astype(str), 0.5, salt="2") == CANARY_ARM, ARM_B, ARM_A)).all()
    frame = pd.DataFrame({"customer": [1, 2, 3]})
    assert (split.arms_of(frame) == arms[1:4]).all()
    assert (split.arms_of(frame.rename(columns={"customer": "other"})) == ARM_A).all()  # no unit column: all A
