"""What stops an A/B test whatever the metric says: a broken split (SRM), a worse guardrail, the time limit."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import chdtrc

from driftline.ab_tests import sequential
from driftline.ab_tests.sequential import ArrayLike

# Strict on purpose: a sound split is halted by mistake once in 1,000 looks (0.9 % of tests over 30 daily looks), and a
# real mismatch (a bot hitting one arm, a crash in one model) gives p-values far below it within days.
SRM_ALPHA = 0.001


@dataclass(frozen=True)
class SampleRatio:
    """Units seen per arm against the planned share of arm B, and the chi-square test of the difference."""

    units_a: int
    units_b: int
    share: float
    p_value: float
    alpha: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < self.alpha

    @property
    def observed_share(self) -> float:
        total = self.units_a + self.units_b
        return self.units_b / total if total else float("nan")

    def describe(self) -> str:
        return (
            f"sample ratio: arm B holds {self.observed_share:.2%} of {self.units_a + self.units_b:,} units, "
            f"planned {self.share:.2%} (chi-square p = {self.p_value:.3g})"
        )


def sample_ratio(units_a: int, units_b: int, share: float, alpha: float = SRM_ALPHA) -> SampleRatio:
    """Chi-square goodness of fit of the units per arm to the planned split (one degree of freedom)."""
    p_value = float(sample_ratio_p_value(units_a, units_b, share)) if units_a + units_b else 1.0
    return SampleRatio(units_a, units_b, share, p_value, alpha)


def sample_ratio_p_value(units_a: ArrayLike, units_b: ArrayLike, share: float) -> np.ndarray:
    """Pearson's chi-square p-value of the counts against the planned split, for arrays of looks at once (the value
    of scipy.stats.chisquare, which costs 2 ms a call)."""
    total = np.asarray(units_a, dtype=float) + np.asarray(units_b, dtype=float)
    expected_b = total * share
    statistic = (np.asarray(units_b) - expected_b) ** 2 * (1.0 / expected_b + 1.0 / (total - expected_b))
    return chdtrc(1, statistic)


@dataclass(frozen=True)
class GuardrailCheck:
    """One guardrail metric: B minus A, and the always-valid one-sided evidence that B is worse."""

    name: str
    mean_a: float
    mean_b: float
    lower_is_better: bool
    p_value: float
    alpha: float

    @property
    def difference(self) -> float:
        return self.mean_b - self.mean_a

    @property
    def worse(self) -> bool:
        return self.p_value <= self.alpha

    def describe(self) -> str:
        direction = "lower" if self.lower_is_better else "higher"
        state = "significantly worse in B" if self.worse else "not worse in B"
        return (
            f"guardrail {self.name} ({direction} is better): A {self.mean_a:.4g}, B {self.mean_b:.4g}, "
            f"{state} (one-sided always-valid p = {self.p_value:.3g})"
        )


def guardrail(
    name: str,
    outcome_a: np.ndarray,
    outcome_b: np.ndarray,
    *,
    lower_is_better: bool,
    alpha: float,
    mixing_variance: float,
    previous_p_value: float = 1.0,
) -> GuardrailCheck:
    """Is B worse on this metric? One-sided mSPRT on the harm (A - B when higher is better, B - A when lower is), so a
    guardrail looked at daily stops a test wrongly at most alpha of the time. The p-value never rises between looks
    (the minimum with `previous_p_value`)."""
    mean_a, mean_b = (float(np.mean(values)) if values.size else math.nan for values in (outcome_a, outcome_b))
    harm = (mean_b - mean_a) if lower_is_better else (mean_a - mean_b)
    variance = difference_variance(outcome_a, outcome_b)
    p_value = float(sequential.one_sided_p_value(harm, variance, mixing_variance)) if variance > 0 else 1.0
    return GuardrailCheck(name, mean_a, mean_b, lower_is_better, min(p_value, previous_p_value), alpha)


def difference_variance(outcome_a: np.ndarray, outcome_b: np.ndarray) -> float:
    """Variance of the difference of the two arms' means: s_A²/n_A + s_B²/n_B (0 with fewer than 2 units in an arm)."""
    if outcome_a.size < 2 or outcome_b.size < 2:
        return 0.0
    return float(np.var(outcome_a, ddof=1) / outcome_a.size + np.var(outcome_b, ddof=1) / outcome_b.size)


def max_duration_reached(days_run: float, max_days: float | None) -> bool:
    """The time limit: a test that has not decided by max_days ends with "no difference detectable at this size"."""
    return max_days is not None and days_run >= max_days
