"""How many units and days an A/B test needs to find an effect, and the smallest effect it can find at a sample size.

The test is the always-valid one of `sequential`, so the sample size is the one at which its interval excludes 0 with
the asked power: the difference's variance V* solves  effect = h(V*) + z_power sqrt(V*),  h the interval's half width
with the mixture tuned to V* (tau² = 7.94 V* at alpha 0.05). That is about 1.9 times the units of a fixed-sample z-test
planned for one look at alpha 0.05 and power 0.8: the price of being free to look every day and stop early.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from driftline.ab_tests import sequential
from driftline.errors import ConfigError


@dataclass(frozen=True)
class Plan:
    """What a test of `effect` needs: units in all (per arm, by the share of arm B) and days at the past daily rate."""

    units: int
    days: float
    per_arm: dict[str, int]
    sd: float
    mixing_variance: float
    fixed_horizon_units: int
    effect: float
    share: float
    alpha: float
    power: float


def check_parameters(*, share: float, alpha: float, power: float | None = None) -> None:
    """One-line errors for parameters a person typed (the CLI exits 2)."""
    if not 0.0 < share < 1.0:
        raise ConfigError(f"share: the part of units in arm B must be between 0 and 1 (exclusive), got {share}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha: must be between 0 and 1 (exclusive), got {alpha}")
    if power is not None and not 0.0 < power < 1.0:
        raise ConfigError(f"power: must be between 0 and 1 (exclusive), got {power}")


def _interval_factor(alpha: float) -> float:
    """h(V*) / sqrt(V*) with the mixture tuned to V*: 3.03 at alpha 0.05 (a fixed-sample test's z is 1.96)."""
    ratio = sequential.optimal_ratio(alpha)
    return math.sqrt((1.0 + ratio) / ratio * (math.log1p(ratio) - 2.0 * math.log(alpha)))


def _planned_variance(effect: float, alpha: float, power: float) -> float:
    """V* with effect = h(V*) + z_power sqrt(V*): the difference's variance at which the test finds `effect`."""
    return (effect / (_interval_factor(alpha) + float(ndtri(power)))) ** 2


def mixing_variance_for(effect: float, *, alpha: float, power: float) -> float:
    """tau² of the test planned to find `effect`: its interval is narrowest at the planned size. It depends on the
    effect alone, not on the data (0.53 effect² at alpha 0.05 and power 0.8)."""
    return sequential.tuned_mixing_variance(_planned_variance(effect, alpha, power), alpha)


def plan(
    past_outcome: np.ndarray, effect: float, *, share: float, alpha: float, power: float, units_per_day: float
) -> Plan:
    """Units and days for the always-valid test to find a difference of `effect` (in the metric's units) with
    probability `power`, from the outcome's spread per unit in past data and the units that arrive per day."""
    check_parameters(share=share, alpha=alpha, power=power)
    if not effect > 0:
        raise ConfigError(f"effect: the smallest difference worth finding must be > 0 (metric units), got {effect}")
    if not units_per_day > 0:
        raise ConfigError(f"units per day: must be > 0 to say how long a test takes, got {units_per_day}")
    values = np.asarray(past_outcome, dtype=float)
    values = values[np.isfinite(values)]
    sd = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    if sd == 0.0:
        raise ConfigError(
            f"the metric has no spread in the past data ({values.size} units with a value): nothing to plan from"
        )
    z_power = float(ndtri(power))
    allocation = share * (1.0 - share)  # V = sd² / (n share (1 - share)) for n units in all
    planned_variance = _planned_variance(effect, alpha, power)
    units_b = math.ceil(sd**2 / (planned_variance * allocation) * share)
    units_a = math.ceil(sd**2 / (planned_variance * allocation) * (1.0 - share))
    fixed_horizon = sd**2 * (float(ndtri(1.0 - alpha / 2.0)) + z_power) ** 2 / (effect**2 * allocation)
    return Plan(
        units=units_a + units_b,
        days=(units_a + units_b) / units_per_day,
        per_arm={"A": units_a, "B": units_b},
        sd=sd,
        mixing_variance=mixing_variance_for(effect, alpha=alpha, power=power),
        fixed_horizon_units=math.ceil(fixed_horizon),
        effect=effect,
        share=share,
        alpha=alpha,
        power=power,
    )


def minimum_detectable_effect(variance: float, mixing_variance: float, *, alpha: float, power: float) -> float:
    """The smallest true difference the always-valid test finds with probability `power` once the difference's
    variance is `variance`: h(V) + z_power sqrt(V). Infinite before there is a variance."""
    if not variance > 0:
        return math.inf
    return float(sequential.half_width(variance, mixing_variance, alpha)) + float(ndtri(power)) * math.sqrt(variance)
