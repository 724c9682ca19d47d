"""Tests of one arm against another on a metric: a two-proportion z-test for rates, a bootstrap for any metric; each
gives the difference's 95% interval and a verdict (promote, roll back, continue)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class ArmComparison:
    """canary minus champion on one metric, with its test; `verdict` is promote | roll_back | continue."""

    metric: str
    champion: float
    canary: float
    difference: float
    low: float  # 95% interval of the difference
    high: float
    p_value: float | None
    rows: tuple[int, int]  # champion, canary
    verdict: str


def _verdict(low: float, high: float, tolerance: float, rows: tuple[int, int], min_rows: int) -> str:
    if min(rows) < min_rows:
        return "continue"
    if low > -tolerance:
        return "promote"
    if high < -tolerance:
        return "roll_back"
    return "continue"


def two_proportion_test(
    champion_hits: int,
    champion_rows: int,
    canary_hits: int,
    canary_rows: int,
    metric: str = "accuracy",
    tolerance: float = 0.0,
    min_rows: int = 100,
) -> ArmComparison:
    """Two-proportion z-test of a rate metric (accuracy, positive rate) between the arms."""
    p_champion, p_canary = champion_hits / champion_rows, canary_hits / canary_rows
    pooled = (champion_hits + canary_hits) / (champion_rows + canary_rows)
    pooled_se = np.sqrt(pooled * (1 - pooled) * (1 / champion_rows + 1 / canary_rows))
    difference = p_canary - p_champion
    p_value = float(2 * stats.norm.sf(abs(difference) / pooled_se)) if pooled_se > 0 else 1.0
    se = np.sqrt(p_champion * (1 - p_champion) / champion_rows + p_canary * (1 - p_canary) / canary_rows)
    low, high = difference - 1.96 * se, difference + 1.96 * se
    rows = (champion_rows, canary_rows)
    return ArmComparison(
        metric,
        p_champion,
        p_canary,
        difference,
        float(low),
        float(high),
        p_value,
        rows,
        _verdict(low, high, tolerance, rows, min_rows),
    )


def bootstrap_difference(
    metric: Callable[[np.ndarray, np.ndarray], float],
    name: str,
    champion: tuple[np.ndarray, np.ndarray],
    canary: tuple[np.ndarray, np.ndarray],
    greater_is_better: bool = True,
    resamples: int = 2000,
    seed: int = 0,
    tolerance: float = 0.0,
    min_rows: int = 100,
) -> ArmComparison:
    """Unpaired bootstrap of (canary − champion) on any metric of (truth, score), e.g. AUC or RMSE; a 95% interval.

    For a lower-is-better metric the difference is turned around, so a positive difference always favours the canary.
    """
    rng = np.random.default_rng(seed)
    sign = 1.0 if greater_is_better else -1.0

    def resampled(truth: np.ndarray, score: np.ndarray) -> np.ndarray:
        picks = rng.integers(0, len(truth), (resamples, len(truth)))
        return np.array([metric(truth[p], score[p]) for p in picks])

    champion_value, canary_value = metric(*champion), metric(*canary)
    differences = sign * (resampled(*canary) - resampled(*champion))
    low, high = (float(v) for v in np.nanpercentile(differences, [2.5, 97.5]))
    rows = (len(champion[0]), len(canary[0]))
    return ArmComparison(
        name,
        champion_value,
        canary_value,
        sign * (canary_value - champion_value),
        low,
        high,
        None,
        rows,
        _verdict(low, high, tolerance, rows, min_rows),
    )
