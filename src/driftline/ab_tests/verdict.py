"""The verdict of an A/B test at one look: per arm the metric and its interval, the always-valid comparison of B and A,
the checks that halt a test (SRM, guardrails, max duration), the decision with its reasons and the MDE now."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from driftline.ab_tests import checks, cuped, planning, sequential
from driftline.errors import ConfigError

Decision = Literal["running", "B wins", "A wins", "no difference"]
Halt = Literal["SRM", "guardrail", "max duration"]

# Below this many units in an arm no decision is taken: the interval leans on the spread measured in each arm, which
# a handful of units does not pin down.
MIN_UNITS_PER_ARM = 30
# Where the interval is narrowest when no planned size is given (the mixture is tuned to it, never to the data seen).
DEFAULT_TUNING_UNITS = 10_000


@dataclass(frozen=True)
class ArmSummary:
    """One arm's metric: its mean over units (CUPED-adjusted when a pre-period covariate is given) and the
    always-valid interval of that mean."""

    arm: str
    units: int
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class Verdict:
    """B compared with A at one look. `difference` is mean B - mean A; low/high its always-valid interval (the running
    intersection with earlier looks when `previous` was given); `p_value` the always-valid p-value of "no difference";
    `mde` the smallest difference the test finds with the planned power at the current sample. `halted` says why the
    test stops whatever the metric says; `decision` is never "B wins" when it is set."""

    decision: Decision
    difference: float
    low: float
    high: float
    p_value: float
    mde: float
    arms: list[ArmSummary]
    srm_p_value: float
    halted: Halt | None
    guardrails: dict[str, checks.GuardrailCheck]
    reasons: list[str]
    alpha: float
    mixing_variance: float
    cuped: cuped.CupedAdjustment | None = None

    @property
    def decided(self) -> bool:
        return self.decision != "running"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: infinite bounds (no data yet) become None."""
        return _finite_or_none(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """The verdict `as_dict` wrote, back (to pass as `previous` at the next look)."""
        values = dict(data)
        values["low"] = _bound(values["low"], -math.inf)
        values["high"] = _bound(values["high"], math.inf)
        values["mde"] = _bound(values["mde"], math.inf)
        values["arms"] = [
            ArmSummary(**{**arm, "low": _bound(arm["low"], -math.inf), "high": _bound(arm["high"], math.inf)})
            for arm in values["arms"]
        ]
        values["guardrails"] = {name: checks.GuardrailCheck(**check) for name, check in values["guardrails"].items()}
        values["cuped"] = cuped.CupedAdjustment(**values["cuped"]) if values.get("cuped") else None
        return cls(**values)


def analyse(
    outcome_a: np.ndarray,
    outcome_b: np.ndarray,
    *,
    share: float,
    alpha: float,
    days_run: float,
    mixing_variance: float | None = None,
    pre_a: np.ndarray | None = None,
    pre_b: np.ndarray | None = None,
    guardrails: Mapping[str, tuple[np.ndarray, np.ndarray, bool]] | None = None,
    max_days: float | None = None,
    effect_of_interest: float | None = None,
    lower_is_better: bool = False,
    power: float = 0.8,
    planned_units: int | None = None,
    assigned: tuple[int, int] | None = None,
    previous: Verdict | None = None,
) -> Verdict:
    """Judge the test at this look, from one outcome per unit in each arm (A: the champion, B: the version on test).

    share: the planned part of units in arm B. mixing_variance: the mSPRT's tau², fixed before the test (the plan's);
    None takes the plan's for `effect_of_interest` (0.53 effect² at alpha 0.05, power 0.8) or, without one, tunes it
    to `planned_units` (else 10,000 units) from the spread per unit. Guardrails are always tuned the latter way.
    guardrails: name -> (outcomes A, outcomes B, lower_is_better). assigned: units served per arm, for the SRM check,
    when some served units have no outcome row (default: the units with an outcome). previous: the last look's
    verdict, so the p-value only falls and the interval only narrows from look to look.
    """
    planning.check_parameters(share=share, alpha=alpha, power=power)
    if effect_of_interest is not None and not effect_of_interest > 0:
        raise ConfigError(f"effect of interest: must be > 0 (metric units), got {effect_of_interest}")
    a, b = _finite(outcome_a, "arm A"), _finite(outcome_b, "arm B")
    adjustment = None
    if (pre_a is None) != (pre_b is None):
        raise ValueError("CUPED needs the pre-period covariate of both arms, or of neither")
    if pre_a is not None and pre_b is not None:
        a, b, adjustment = cuped.adjust_arms(
            a, b, _finite(pre_a, "arm A's pre-period"), _finite(pre_b, "arm B's pre-period")
        )
    tuning_units = planned_units or DEFAULT_TUNING_UNITS
    if mixing_variance is not None:
        tau2 = mixing_variance
    elif effect_of_interest is not None:
        tau2 = planning.mixing_variance_for(effect_of_interest, alpha=alpha, power=power)
    else:
        tau2 = _tuned(a, b, share, tuning_units, alpha)
    difference, variance, p_value, low, high = _compare(a, b, tau2, alpha, previous)
    mde = planning.minimum_detectable_effect(variance, tau2, alpha=alpha, power=power)

    units_a, units_b = assigned if assigned is not None else (a.size, b.size)
    srm = checks.sample_ratio(int(units_a), int(units_b), share)
    guardrail_checks = _guardrails(guardrails or {}, share, alpha, tuning_units, previous)
    judged = _Judged(difference, low, high, p_value, mde, alpha, lower_is_better, effect_of_interest)
    decision, halted, reasons = _decide(
        judged, a.size, b.size, srm, guardrail_checks, days_run, max_days, variance, tau2, power
    )
    if adjustment is not None:
        reasons.append(
            f"CUPED: theta {adjustment.theta:.4g}, pre-period correlation {adjustment.correlation:.2f}, "
            f"variance x{adjustment.variance_factor:.2f}"
        )
    return Verdict(
        decision=decision,
        difference=difference,
        low=low,
        high=high,
        p_value=p_value,
        mde=mde,
        arms=[_arm("A", a, variance, tau2, alpha), _arm("B", b, variance, tau2, alpha)],
        srm_p_value=srm.p_value,
        halted=halted,
        guardrails=guardrail_checks,
        reasons=reasons,
        alpha=alpha,
        mixing_variance=tau2,
        cuped=adjustment,
    )


@dataclass(frozen=True)
class _Judged:
    difference: float
    low: float
    high: float
    p_value: float
    mde: float
    alpha: float
    lower_is_better: bool
    effect_of_interest: float | None

    def interval(self) -> str:
        return (
            f"B - A = {self.difference:.4g}, always-valid {1 - self.alpha:.0%} interval {self.low:.4g} to "
            f"{self.high:.4g}, p = {self.p_value:.3g}"
        )


def _decide(
    judged: _Judged,
    units_a: int,
    units_b: int,
    srm: checks.SampleRatio,
    guardrail_checks: dict[str, checks.GuardrailCheck],
    days_run: float,
    max_days: float | None,
    variance: float,
    tau2: float,
    power: float,
) -> tuple[Decision, Halt | None, list[str]]:
    """The decision, why the test halts (if it does), and the reasons a person reads, most important first."""
    checked = [srm.describe()] + [check.describe() for check in guardrail_checks.values()]
    if srm.mismatch:
        reason = f"halted: the split is broken, so no comparison of the arms is trusted ({srm.describe()})"
        return "no difference", "SRM", [reason, judged.interval()]
    worse = [name for name, check in guardrail_checks.items() if check.worse]
    if worse:
        reason = f"halted: guardrail {', '.join(worse)} significantly worse in B, so A is kept"
        return "A wins", "guardrail", [reason, judged.interval(), *checked]
    effect = judged.effect_of_interest
    if min(units_a, units_b) < MIN_UNITS_PER_ARM:
        reason = f"running: {units_a} units in A, {units_b} in B; a decision needs {MIN_UNITS_PER_ARM} in each arm"
        return "running", None, [reason, judged.interval(), *checked]
    if judged.p_value <= judged.alpha:
        b_better = (judged.difference > 0) != judged.lower_is_better
        decision: Decision = "B wins" if b_better else "A wins"
        reason = f"{decision}: the interval excludes 0 ({judged.interval()} <= {judged.alpha})"
        return decision, None, [reason, *checked]
    if effect is not None and -effect < judged.low and judged.high < effect:
        reason = f"no difference: the whole interval lies within +-{effect:.4g}, the effect of interest"
        return "no difference", None, [reason, judged.interval(), *checked]
    mde_now = f"the smallest difference detectable now is {judged.mde:.4g}"
    if checks.max_duration_reached(days_run, max_days):
        than = f" (effect of interest {effect:.4g})" if effect is not None else ""
        reason = f"no difference detectable at this size: max duration of {max_days:g} days reached; {mde_now}{than}"
        return "no difference", "max duration", [reason, judged.interval(), *checked]
    reasons = [f"running: the interval still holds 0 ({judged.interval()}); {mde_now}", *checked]
    if effect is not None and max_days is not None and days_run > 0 and variance > 0:
        at_end = planning.minimum_detectable_effect(
            variance * days_run / max_days, tau2, alpha=judged.alpha, power=power
        )
        if at_end > effect:
            reasons.append(
                f"at the current rate, by day {max_days:g} the smallest detectable difference is {at_end:.4g}, more "
                f"than the effect of interest {effect:.4g}: expect no difference detectable at this size"
            )
    return "running", None, reasons


def _compare(
    a: np.ndarray, b: np.ndarray, tau2: float, alpha: float, previous: Verdict | None
) -> tuple[float, float, float, float, float]:
    """B - A, its variance, the always-valid p-value and interval, carried over from the previous look."""
    difference = float(np.mean(b) - np.mean(a)) if a.size and b.size else 0.0
    variance = checks.difference_variance(a, b)
    if variance > 0:
        p_value = float(sequential.always_valid_p_value(difference, variance, tau2))
        width = float(sequential.half_width(variance, tau2, alpha))
        low, high = difference - width, difference + width
    else:
        p_value, low, high = 1.0, -math.inf, math.inf
    if previous is not None:
        p_value = min(p_value, previous.p_value)
        # an empty intersection would mean the earlier intervals missed: keep this look's (it happens at most alpha)
        if max(low, previous.low) <= min(high, previous.high):
            low, high = max(low, previous.low), min(high, previous.high)
    return difference, variance, p_value, low, high


def _guardrails(
    guardrails: Mapping[str, tuple[np.ndarray, np.ndarray, bool]],
    share: float,
    alpha: float,
    tuning_units: int,
    previous: Verdict | None,
) -> dict[str, checks.GuardrailCheck]:
    """Each guardrail's one-sided check, its mixture tuned like the primary metric's, its p-value carried over."""
    found = {}
    for name, (values_a, values_b, lower_is_better) in guardrails.items():
        a, b = _finite(values_a, f"guardrail {name}, arm A"), _finite(values_b, f"guardrail {name}, arm B")
        found[name] = checks.guardrail(
            name,
            a,
            b,
            lower_is_better=lower_is_better,
            alpha=alpha,
            mixing_variance=_tuned(a, b, share, tuning_units, alpha),
            previous_p_value=previous.guardrails[name].p_value if previous and name in previous.guardrails else 1.0,
        )
    return found


def _tuned(a: np.ndarray, b: np.ndarray, share: float, planned_units: int, alpha: float) -> float:
    """tau² narrowest at `planned_units` for these arms' spread per unit (1.0 while an arm has no spread yet)."""
    variance_a = float(np.var(a, ddof=1)) if a.size > 1 else 0.0
    variance_b = float(np.var(b, ddof=1)) if b.size > 1 else 0.0
    planned_variance = variance_a / (planned_units * (1.0 - share)) + variance_b / (planned_units * share)
    return sequential.tuned_mixing_variance(planned_variance, alpha) if planned_variance > 0 else 1.0


def _arm(name: str, values: np.ndarray, difference_variance: float, tau2: float, alpha: float) -> ArmSummary:
    """An arm's mean and its always-valid interval, the mixture scaled to the arm (tuned at the same sample size)."""
    if values.size < 2 or difference_variance <= 0:
        mean = float(np.mean(values)) if values.size else math.nan
        return ArmSummary(name, int(values.size), mean, -math.inf, math.inf)
    variance = float(np.var(values, ddof=1)) / values.size
    if variance == 0:
        mean = float(values[0])
        return ArmSummary(name, int(values.size), mean, mean, mean)
    width = float(sequential.half_width(variance, tau2 * variance / difference_variance, alpha))
    mean = float(np.mean(values))
    return ArmSummary(name, int(values.size), mean, mean - width, mean + width)


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what}: {int(np.sum(~np.isfinite(array)))} outcomes are missing or not finite")
    return array


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    return value


def _bound(value: float | None, missing: float) -> float:
    return missing if value is None else float(value)
