"""The A/B statistics against published formulas and other implementations' outputs: the mSPRT of Johari et al.
(numbers from the `msprt` 0.1.2 package), the normal-mixture boundaries of Howard et al. (numbers from `ville` 0.1.0),
Pearson's chi-square (scipy), the textbook fixed-sample size; then the verdict an A/B test gets at one look."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import chisquare, norm

from driftline.ab_tests import checks, cuped, planning, sequential, verdict
from driftline.errors import ConfigError

# msprt 0.1.2, MSPRT()._calculate_sequential_probability_ratio_for_normal_distribution(x, y, 0, sigma=1.0, tau=0.5,
# theta=0.0): the paper's two-stream statistic sqrt(2s²/(2s²+n t²)) exp(n² t² (mean x - mean y)² / (4s²(2s²+n t²))).
PAIRS_X = [1.2, 0.4, 2.0, 1.1, 0.9, 1.6, 0.3, 1.4]
PAIRS_Y = [0.2, 0.5, 0.1, 0.8, -0.3, 0.6, 0.0, 0.4]
MSPRT_PACKAGE_LAMBDAS = [
    0.9693653111461867,
    0.9127239712870556,
    1.0191357381910733,
    0.9974789624454733,
    1.1194337926336966,
    1.2483207509312126,
    1.2316593644118312,
    1.3966149413120579,
]
# ville 0.1.0, ville._boundaries.normal_mixture(v, alpha=0.05, rho=2.0[, one_sided=True]): Robbins' normal-mixture
# boundary for a sum with intrinsic time v, i.e. the half width times v for a mean of v unit-variance values.
VILLE_TWO_SIDED = {100: 31.814707264768213, 500: 76.03612679570391, 2000: 160.70544200959486}
VILLE_ONE_SIDED = {100: 29.514880378013743, 500: 71.31833245210379, 2000: 151.82970862924623}


def test_mixture_likelihood_ratio_equals_the_msprt_papers_two_stream_statistic():
    x, y = np.array(PAIRS_X), np.array(PAIRS_Y)
    for n, expected in enumerate(MSPRT_PACKAGE_LAMBDAS, start=1):
        difference = x[:n].mean() - y[:n].mean()
        # sigma 1 per stream: the difference of n pairs has variance 2/n; tau 0.5, so tau² 0.25
        ratio = math.exp(float(sequential.log_likelihood_ratio(difference, 2.0 / n, 0.25)))
        assert ratio == pytest.approx(expected, rel=1e-12)
    assert float(sequential.always_valid_p_value(x.mean() - y.mean(), 2.0 / 8, 0.25)) == pytest.approx(
        1 / MSPRT_PACKAGE_LAMBDAS[-1], rel=1e-12
    )


def test_interval_half_width_equals_the_normal_mixture_boundary_of_howard_et_al():
    for v, boundary in VILLE_TWO_SIDED.items():
        # a mean of v unit-variance values: V = 1/v; ville's mixing precision rho 2 is tau² = 1/2 on the sum's scale
        assert float(sequential.half_width(1.0 / v, 1.0 / 2.0, 0.05)) * v == pytest.approx(boundary, rel=1e-12)


def test_one_sided_p_value_is_alpha_exactly_on_the_half_normal_mixture_boundary():
    for v, boundary in VILLE_ONE_SIDED.items():
        assert float(sequential.one_sided_p_value(boundary / v, 1.0 / v, 0.5)) == pytest.approx(0.05, rel=1e-9)


def test_one_sided_p_value_is_the_inverse_of_the_half_normal_mixture_integral():
    difference, variance, tau2 = 0.21, 0.01, 0.04
    mixture, _ = integrate.quad(
        lambda theta: (
            math.exp((theta * difference - theta**2 / 2) / variance) * 2 * norm.pdf(theta, scale=math.sqrt(tau2))
        ),
        0,
        np.inf,
    )
    assert float(sequential.one_sided_p_value(difference, variance, tau2)) == pytest.approx(1 / mixture, rel=1e-7)


def test_p_value_at_or_below_alpha_exactly_when_the_interval_excludes_zero():
    rng = np.random.default_rng(3)
    differences, variances = rng.normal(0, 0.3, 2000), rng.uniform(0.001, 0.05, 2000)
    p_values = sequential.always_valid_p_value(differences, variances, 0.02)
    excluded = np.abs(differences) > sequential.half_width(variances, 0.02, 0.05)
    assert np.array_equal(p_values <= 0.05, excluded)
    assert 200 < excluded.sum() < 1800  # both sides of the boundary are exercised


def test_tuned_mixture_gives_an_interval_within_half_a_percent_of_the_narrowest():
    ratios = np.linspace(1, 40, 40_000)
    widths = sequential.half_width(1.0, ratios, 0.05)
    assert sequential.optimal_ratio(0.05) == pytest.approx(7.94, abs=0.01)
    assert float(sequential.half_width(1.0, sequential.optimal_ratio(0.05), 0.05)) <= widths.min() * 1.005


def test_sample_ratio_p_value_equals_pearsons_chi_square():
    for units_a, units_b, share in [(5100, 4900, 0.5), (650, 350, 0.3), (7000, 3050, 0.3), (12, 9, 0.5)]:
        expected = chisquare([units_a, units_b], f_exp=[(units_a + units_b) * (1 - share), (units_a + units_b) * share])
        assert checks.sample_ratio(units_a, units_b, share).p_value == pytest.approx(expected.pvalue, rel=1e-10)
    assert checks.sample_ratio(5100, 4900, 0.5).p_value == pytest.approx(0.0455, abs=1e-4)
    assert checks.sample_ratio(5300, 4700, 0.5).mismatch  # chi-square 36, p 2e-9
    assert not checks.sample_ratio(5100, 4900, 0.5).mismatch


def exactly(sd: float, size: int = 1000) -> np.ndarray:
    """Past outcomes whose sample standard deviation is exactly `sd`."""
    values = np.random.default_rng(0).normal(size=size)
    return 10 + sd * (values - values.mean()) / values.std(ddof=1)


def test_plan_fixed_horizon_size_is_the_textbook_two_sample_z_test_size():
    plan = planning.plan(exactly(1.0), 0.1, share=0.5, alpha=0.05, power=0.8, units_per_day=1000)
    # 2 (1.96 + 0.8416)² / 0.1² = 1569.8 per arm
    assert plan.fixed_horizon_units == 3140
    assert plan.sd == pytest.approx(1.0)


def test_plan_for_the_always_valid_test_needs_about_1_9_times_the_fixed_horizon_units():
    plan = planning.plan(exactly(2.0), 0.2, share=0.5, alpha=0.05, power=0.8, units_per_day=500)
    assert plan.units / plan.fixed_horizon_units == pytest.approx(1.91, abs=0.02)
    assert plan.per_arm["A"] == plan.per_arm["B"] == plan.units // 2
    assert plan.days == pytest.approx(plan.units / 500)
    assert plan.mixing_variance == planning.mixing_variance_for(0.2, alpha=0.05, power=0.8)
    assert plan.mixing_variance == pytest.approx(0.528 * 0.2**2, rel=1e-3)  # the effect alone fixes it
    variance = plan.sd**2 / plan.per_arm["A"] + plan.sd**2 / plan.per_arm["B"]
    # at the planned size the test finds the planned effect with the planned power
    assert planning.minimum_detectable_effect(variance, plan.mixing_variance, alpha=0.05, power=0.8) == pytest.approx(
        0.2, rel=1e-3
    )


def test_plan_with_an_uneven_split_puts_the_share_of_units_in_arm_b():
    plan = planning.plan(exactly(1.0), 0.1, share=0.2, alpha=0.05, power=0.8, units_per_day=1000)
    assert plan.per_arm["B"] / plan.units == pytest.approx(0.2, abs=1e-3)
    even = planning.plan(exactly(1.0), 0.1, share=0.5, alpha=0.05, power=0.8, units_per_day=1000)
    assert plan.units / even.units == pytest.approx(0.25 / (0.2 * 0.8), rel=1e-3)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"share": 1.0}, "share: the part of units in arm B must be between 0 and 1 (exclusive), got 1.0"),
        ({"share": 0.0}, "share: the part of units in arm B must be between 0 and 1 (exclusive), got 0.0"),
        ({"effect": 0.0}, "effect: the smallest difference worth finding must be > 0 (metric units), got 0.0"),
        ({"power": 1.5}, "power: must be between 0 and 1 (exclusive), got 1.5"),
        ({"units_per_day": 0.0}, "units per day: must be > 0 to say how long a test takes, got 0.0"),
        (
            {"past": np.full(50, 3.0)},
            "the metric has no spread in the past data (50 units with a value): nothing to plan from",
        ),
    ],
)
def test_plan_refuses_bad_arguments_with_one_line(arguments, message):
    given = {"past": exactly(1.0), "effect": 0.1, "share": 0.5, "alpha": 0.05, "power": 0.8, "units_per_day": 100.0}
    given.update(arguments)
    past, effect = given.pop("past"), given.pop("effect")
    with pytest.raises(ConfigError) as refused:
        planning.plan(past, effect, **given)
    assert str(refused.value) == message


def test_cuped_theta_is_the_regression_slope_and_leaves_one_minus_rho_squared_of_the_variance():
    rng = np.random.default_rng(5)
    pre = rng.normal(50, 10, 20_000)
    outcome = 3 + 0.4 * pre + rng.normal(0, 4, 20_000)  # rho = 4 / sqrt(4² + 4²) = 0.707
    adjustment = cuped.fit_adjustment(outcome, pre)
    assert adjustment.theta == pytest.approx(0.4, abs=0.01)
    assert adjustment.correlation == pytest.approx(math.sqrt(0.5), abs=0.01)
    adjusted = adjustment.apply(outcome, pre)
    assert np.var(adjusted) / np.var(outcome) == pytest.approx(adjustment.variance_factor, rel=1e-9)
    assert adjusted.mean() == pytest.approx(outcome.mean(), rel=1e-12)


def test_cuped_with_a_constant_covariate_leaves_outcomes_unchanged():
    outcome = np.arange(10.0)
    adjustment = cuped.fit_adjustment(outcome, np.ones(10))
    assert adjustment.theta == 0.0
    assert np.array_equal(adjustment.apply(outcome, np.ones(10)), outcome)


def arms(effect: float, units: int = 4000, seed: int = 1, sd: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(10, sd, units), rng.normal(10 + effect, sd, units)


def look(a, b, **overrides):
    arguments = {"share": 0.5, "alpha": 0.05, "days_run": 10.0, "planned_units": 8000}
    arguments.update(overrides)
    return verdict.analyse(a, b, **arguments)


def test_clearly_better_b_wins_with_an_interval_above_zero():
    result = look(*arms(0.2))
    assert result.decision == "B wins"
    assert 0 < result.low < result.difference < result.high
    assert result.p_value <= 0.05
    assert result.halted is None
    assert result.reasons[0].startswith("B wins: the interval excludes 0 (B - A = 0.")
    assert [arm.arm for arm in result.arms] == ["A", "B"]
    assert result.arms[1].low < result.arms[1].mean < result.arms[1].high
    assert result.arms[0].units == result.arms[1].units == 4000


def test_clearly_worse_b_makes_a_win_and_lower_is_better_turns_it_around():
    a, b = arms(-0.2)
    assert look(a, b).decision == "A wins"
    assert look(a, b, lower_is_better=True).decision == "B wins"


def test_undecided_test_keeps_running_and_says_the_mde_now():
    result = look(*arms(0.0, units=500))
    assert result.decision == "running"
    assert result.low < 0 < result.high
    assert result.mde == pytest.approx(
        planning.minimum_detectable_effect(
            checks.difference_variance(*arms(0.0, units=500)), result.mixing_variance, alpha=0.05, power=0.8
        )
    )
    assert f"the smallest difference detectable now is {result.mde:.4g}" in result.reasons[0]


def test_too_few_units_in_an_arm_takes_no_decision_however_large_the_gap():
    result = look(np.array([1.0, 1.1, 0.9] * 5), np.array([5.0, 5.1, 4.9] * 5))
    assert result.decision == "running"
    assert result.reasons[0] == "running: 15 units in A, 15 in B; a decision needs 30 in each arm"


def test_broken_split_halts_the_test_on_sample_ratio_mismatch_whatever_the_metric_says():
    a, b = arms(0.3)
    result = look(a[:3000], b)
    assert result.halted == "SRM"
    assert result.decision == "no difference"
    assert result.srm_p_value < 1e-10
    assert result.reasons[0].startswith("halted: the split is broken")
    assert "arm B holds 57.14% of 7,000 units, planned 50.00%" in result.reasons[0]


def test_sample_ratio_counts_served_units_when_given():
    a, b = arms(0.3)
    assert look(a[:3000], b, assigned=(4010, 3990)).halted is None


def test_significantly_worse_guardrail_stops_the_test_and_keeps_a():
    a, b = arms(0.2)
    latency_a, latency_b = arms(0.1, seed=2)  # B slower; lower latency is better
    result = look(a, b, guardrails={"latency_ms": (latency_a, latency_b, True)})
    assert result.halted == "guardrail"
    assert result.decision == "A wins"
    assert result.guardrails["latency_ms"].worse
    assert result.reasons[0] == "halted: guardrail latency_ms significantly worse in B, so A is kept"


def test_guardrail_better_in_b_does_not_stop_the_test():
    a, b = arms(0.2)
    latency_a, latency_b = arms(-0.1, seed=2)  # B faster
    result = look(a, b, guardrails={"latency_ms": (latency_a, latency_b, True)})
    assert result.decision == "B wins"
    assert result.guardrails["latency_ms"].p_value == 1.0


def test_max_duration_without_a_decision_ends_with_no_difference():
    result = look(*arms(0.0, units=500), days_run=30.0, max_days=30.0, effect_of_interest=0.1)
    assert result.decision == "no difference"
    assert result.halted == "max duration"
    assert result.reasons[0].startswith("no difference detectable at this size: max duration of 30 days reached; ")
    assert result.reasons[0].endswith("(effect of interest 0.1)")
    assert result.mixing_variance == planning.mixing_variance_for(0.1, alpha=0.05, power=0.8)


def test_interval_within_the_effect_of_interest_decides_no_difference_early():
    result = look(*arms(0.0, units=40_000), days_run=5.0, max_days=30.0, effect_of_interest=0.1)
    assert -0.1 < result.low < result.high < 0.1
    assert result.decision == "no difference"
    assert result.halted is None


def test_running_test_that_cannot_reach_the_effect_by_max_duration_says_so():
    result = look(*arms(0.0, units=300), days_run=1.0, max_days=5.0, effect_of_interest=0.05)
    assert result.decision == "running"
    assert "by day 5 the smallest detectable difference is" in result.reasons[-1]


def test_previous_look_keeps_the_p_value_falling_and_the_interval_narrowing():
    a, b = arms(0.2)
    first = look(a, b)
    later = look(a[:200], b[:200], previous=first)
    assert later.p_value == first.p_value
    assert later.decision == "B wins"
    assert (later.low, later.high) == (first.low, first.high)


def test_cuped_narrows_the_interval_and_is_named_in_the_reasons():
    rng = np.random.default_rng(8)
    pre_a, pre_b = rng.normal(0, 1, 3000), rng.normal(0, 1, 3000)
    a = pre_a + rng.normal(0, 1, 3000)
    b = pre_b + rng.normal(0.05, 1, 3000)
    plain, adjusted = look(a, b), look(a, b, pre_a=pre_a, pre_b=pre_b)
    assert (adjusted.high - adjusted.low) / (plain.high - plain.low) == pytest.approx(math.sqrt(0.5), abs=0.03)
    assert adjusted.cuped is not None and adjusted.reasons[-1].startswith("CUPED: theta ")


def test_verdict_round_trips_through_json_with_no_infinities():
    a, b = arms(0.0, units=1)
    result = look(a, b, guardrails={"returns": (a, b, False)})
    text = json.dumps(result.as_dict(), allow_nan=False)
    assert json.loads(text)["low"] is None
    assert verdict.Verdict.from_dict(json.loads(text)) == result
    decided = look(*arms(0.2), pre_a=np.zeros(4000), pre_b=np.zeros(4000))
    assert verdict.Verdict.from_dict(json.loads(json.dumps(decided.as_dict()))) == decided


def test_missing_outcomes_and_bad_shares_are_refused():
    with pytest.raises(ValueError, match="arm B: 1 outcomes are missing or not finite"):
        look(np.ones(40), np.array([1.0] * 39 + [np.nan]))
    with pytest.raises(ConfigError, match="share: the part of units in arm B must be between 0 and 1"):
        look(*arms(0.1), share=1.2)
    with pytest.raises(ValueError, match="CUPED needs one pre-period value per unit"):
        look(*arms(0.1), pre_a=np.zeros(10), pre_b=np.zeros(4000))
    with pytest.raises(ConfigError, match="effect of interest: must be > 0"):
        look(*arms(0.1), effect_of_interest=0.0)
    with pytest.raises(ValueError, match="CUPED needs the pre-period covariate of both arms, or of neither"):
        look(*arms(0.1), pre_a=np.zeros(4000))


def test_guardrail_with_no_outcomes_yet_does_not_stop_the_test():
    a, b = arms(0.2)
    result = look(
        a, b, guardrails={"returns": (np.array([]), np.array([]), False)}, assigned=(np.int64(4000), np.int64(4000))
    )
    assert result.decision == "B wins"
    assert result.guardrails["returns"].p_value == 1.0
    assert json.loads(json.dumps(result.as_dict(), allow_nan=False))["guardrails"]["returns"]["mean_a"] is None
