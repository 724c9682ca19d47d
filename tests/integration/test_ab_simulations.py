"""Simulated A/B tests of known truth, many at once with numpy: B better by a known effect is found at the planned size;
with no difference, daily looks for 30 days rarely declare a winner; a broken split is caught by SRM; a worse guardrail
stops the test; CUPED narrows the interval by sqrt(1 - rho²). Each test is a row, each day a column of cumulative sums
per arm, judged with the same functions `verdict.analyse` calls (checked against analyse itself on some rows)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from driftline.ab_tests import checks, planning, sequential, verdict

pytestmark = pytest.mark.integration

ALPHA = 0.05


@dataclass
class Experiments:
    """`tests` experiments of `days` days, `units_per_day` units a day each, arm B with probability `share`."""

    outcomes: np.ndarray  # (tests, days, units_per_day)
    in_b: np.ndarray  # same shape, True for arm B

    @classmethod
    def simulate(
        cls,
        seed: int,
        tests: int,
        days: int,
        units_per_day: int,
        *,
        effect: float = 0.0,
        share: float = 0.5,
        served_share: float | None = None,
        outcome: str = "normal",
    ) -> Experiments:
        rng = np.random.default_rng(seed)
        shape = (tests, days, units_per_day)
        if outcome == "normal":
            values = rng.normal(10.0, 2.0, shape)
        else:  # revenue-like: 90 % of units buy nothing, the rest spend a log-normal amount
            values = np.where(rng.random(shape) < 0.1, rng.lognormal(3.0, 1.0, shape), 0.0)
        in_b = rng.random(shape) < (share if served_share is None else served_share)
        return cls(values + effect * in_b, in_b)

    def cumulative(self) -> dict[str, np.ndarray]:
        """Units, mean and variance per arm after each day: (tests, days) arrays."""

        def per_day(values: np.ndarray) -> np.ndarray:
            return np.cumsum(values.sum(axis=2), axis=1)

        stats = {}
        for arm, mask in (("a", ~self.in_b), ("b", self.in_b)):
            units = per_day(mask.astype(float))
            total = per_day(np.where(mask, self.outcomes, 0.0))
            squares = per_day(np.where(mask, self.outcomes**2, 0.0))
            mean = total / units
            stats[f"units_{arm}"] = units
            stats[f"mean_{arm}"] = mean
            stats[f"var_{arm}"] = (squares - units * mean**2) / (units - 1)
        return stats

    def arms_until(self, test: int, day: int) -> tuple[np.ndarray, np.ndarray]:
        """The outcomes of one test's arms A and B over days 1..day, as `analyse` gets them."""
        values, in_b = self.outcomes[test, :day].ravel(), self.in_b[test, :day].ravel()
        return values[~in_b], values[in_b]


def daily_p_values(stats: dict[str, np.ndarray], mixing_variance: float) -> np.ndarray:
    variance = stats["var_a"] / stats["units_a"] + stats["var_b"] / stats["units_b"]
    return sequential.always_valid_p_value(stats["mean_b"] - stats["mean_a"], variance, mixing_variance)


def decided(stats: dict[str, np.ndarray], p_values: np.ndarray) -> np.ndarray:
    """Looks at which `analyse` declares a winner: enough units in each arm and p at or below alpha."""
    enough = np.minimum(stats["units_a"], stats["units_b"]) >= verdict.MIN_UNITS_PER_ARM
    return enough & (p_values <= ALPHA)


def planned_mixing_variance(outcome: str, units: int) -> float:
    """tau² tuned to `units`, from past outcomes of the same kind (as `ab start` fixes it from the plan)."""
    past = Experiments.simulate(999, 1, 1, 20_000, outcome=outcome).outcomes.ravel()
    return sequential.tuned_mixing_variance(4 * np.var(past, ddof=1) / units, ALPHA)


def test_better_b_is_found_at_the_planned_size_in_at_least_80_percent_of_1000_seeds():
    past = Experiments.simulate(7, 1, 1, 20_000).outcomes.ravel()
    plan = planning.plan(past, 0.2, share=0.5, alpha=ALPHA, power=0.8, units_per_day=500)
    days = math.ceil(plan.units / 500)  # looked at daily until the planned size is reached
    found, found_at_last_look = [], []
    for chunk in range(4):
        stats = Experiments.simulate(5000 + chunk, 250, days, 500, effect=0.2).cumulative()
        wins = decided(stats, daily_p_values(stats, plan.mixing_variance)) & (stats["mean_b"] > stats["mean_a"])
        found.append(wins.any(axis=1))
        found_at_last_look.append(wins[:, -1])
    rate, at_last_look = np.concatenate(found).mean(), np.concatenate(found_at_last_look).mean()
    print(
        f"plan {plan.units} units ({days} days); B found in {rate:.1%} of 1000 seeds, {at_last_look:.1%} at day {days}"
    )
    assert rate >= 0.80
    # the plan is calibrated, not padded: at the planned size alone the power is 80 % within three standard errors
    assert abs(at_last_look - 0.80) <= 3 * math.sqrt(0.8 * 0.2 / 1000)


@pytest.mark.parametrize("outcome", ["normal", "revenue"])
def test_no_difference_looked_at_daily_for_30_days_keeps_false_winners_within_alpha(outcome):
    experiments = Experiments.simulate(11, 200, 30, 200, outcome=outcome)
    stats = experiments.cumulative()
    tau2 = planned_mixing_variance(outcome, 6000)
    p_values = daily_p_values(stats, tau2)
    false_positive_rate = decided(stats, p_values).any(axis=1).mean()
    naive = (
        (
            np.abs(stats["mean_b"] - stats["mean_a"])
            > 1.96 * np.sqrt(stats["var_a"] / stats["units_a"] + stats["var_b"] / stats["units_b"])
        ).any(axis=1)
    ).mean()
    print(
        f"{outcome}: a winner declared in {false_positive_rate:.1%} of 200 tests; a daily z-test would in {naive:.1%}"
    )
    assert false_positive_rate <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / 200)
    for test in range(3):  # the vectorized looks are analyse's own numbers
        for day in (1, 10, 30):
            a, b = experiments.arms_until(test, day)
            look = verdict.analyse(a, b, share=0.5, alpha=ALPHA, mixing_variance=tau2, days_run=day)
            assert look.p_value == pytest.approx(p_values[test, day - 1], rel=1e-6)
            assert (look.decision in ("A wins", "B wins")) == decided(stats, p_values)[test, day - 1]


def served_per_day(seed: int, tests: int, served_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Units served to A and to B after each of 30 days of 500 units, B getting each unit with `served_share`."""
    served_b = np.cumsum(np.random.default_rng(seed).binomial(500, served_share, (tests, 30)), axis=1)
    return 500 * np.arange(1, 31) - served_b, served_b


def test_a_broken_split_is_caught_by_srm_and_a_sound_one_rarely_halts():
    broken_p = checks.sample_ratio_p_value(*served_per_day(21, 200, 0.47), 0.5)
    caught_by = np.argmax(broken_p < checks.SRM_ALPHA, axis=1) + 1
    assert (broken_p < checks.SRM_ALPHA).any(axis=1).all()
    sound_p = checks.sample_ratio_p_value(*served_per_day(22, 1000, 0.5), 0.5)
    false_halts = (sound_p < checks.SRM_ALPHA).any(axis=1)
    print(
        f"SRM: a 47/53 split caught in all 200 tests, median day {np.median(caught_by):g}; "
        f"a sound split halted in {false_halts.mean():.1%} of 1000 tests over 30 daily looks"
    )
    assert false_halts.mean() <= 30 * checks.SRM_ALPHA  # the union bound over 30 looks at 0.001
    experiments = Experiments.simulate(23, 1, 10, 500, served_share=0.45, effect=0.5)
    look = verdict.analyse(*experiments.arms_until(0, 10), share=0.5, alpha=ALPHA, days_run=10)
    assert (look.halted, look.decision) == ("SRM", "no difference")


def test_a_worse_guardrail_stops_the_test_and_a_neutral_one_rarely_does():
    tau2 = planned_mixing_variance("normal", 6000)

    def stopped(effect: float, seed: int) -> np.ndarray:
        stats = Experiments.simulate(seed, 200, 30, 200, effect=effect).cumulative()
        variance = stats["var_a"] / stats["units_a"] + stats["var_b"] / stats["units_b"]
        # lower is better (a latency): B worse is B higher, the harm is B - A
        harm_p = sequential.one_sided_p_value(stats["mean_b"] - stats["mean_a"], variance, tau2)
        return (harm_p <= ALPHA).any(axis=1)

    worse, neutral, better = stopped(0.3, 31).mean(), stopped(0.0, 32).mean(), stopped(-0.3, 33).mean()
    print(f"guardrail 0.15 sd worse stops {worse:.1%} of tests in 30 days; neutral {neutral:.1%}; better {better:.1%}")
    assert worse >= 0.95
    assert neutral <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / 200)
    assert better == 0.0
    experiments = Experiments.simulate(34, 1, 20, 200, effect=0.3)
    a, b = experiments.arms_until(0, 20)
    # the primary metric does not differ; the guardrail (a latency, lower is better) is 0.3 higher in B
    look = verdict.analyse(
        a, b - 0.3, share=0.5, alpha=ALPHA, days_run=20, guardrails={"latency_ms": (a, b, True)}, planned_units=6000
    )
    assert (look.halted, look.decision) == ("guardrail", "A wins")


def test_cuped_shrinks_the_interval_by_sqrt_one_minus_rho_squared():
    rho, units = 0.7, 2000
    rng = np.random.default_rng(41)
    ratios, differences = [], []
    for _ in range(100):
        pre = rng.normal(0, 1, (2, units))
        outcome = 10 + rho * pre + math.sqrt(1 - rho**2) * rng.normal(0, 1, (2, units))
        outcome[1] += 0.05
        plain = verdict.analyse(outcome[0], outcome[1], share=0.5, alpha=ALPHA, days_run=5, planned_units=2 * units)
        adjusted = verdict.analyse(
            outcome[0],
            outcome[1],
            share=0.5,
            alpha=ALPHA,
            days_run=5,
            planned_units=2 * units,
            pre_a=pre[0],
            pre_b=pre[1],
        )
        ratios.append((adjusted.high - adjusted.low) / (plain.high - plain.low))
        differences.append(adjusted.difference)
    print(f"CUPED at rho {rho}: interval width x{np.mean(ratios):.3f} (expected {math.sqrt(1 - rho**2):.3f})")
    assert np.mean(ratios) == pytest.approx(math.sqrt(1 - rho**2), abs=0.01)
    assert np.mean(differences) == pytest.approx(0.05, abs=0.01)  # the adjusted estimate stays unbiased
