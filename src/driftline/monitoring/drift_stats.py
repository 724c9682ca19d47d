"""Drift statistics per column with scipy/numpy, following Evidently's definitions (same tests, binning, thresholds).

A column is first reduced to what the methods read (sorted finite values, category counts), so the reference side is
computed once per model version and a monitoring run reads only the batch. No Evidently import here."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance


def _clean(values: pd.Series) -> pd.Series:
    return values.replace([np.inf, -np.inf], np.nan).dropna()


@dataclass(frozen=True, eq=False)
class NumericColumn:
    """A numeric column as drift needs it: its finite values sorted (float64, never rounded) and their std."""

    values: np.ndarray
    std: float  # np.std in row order, Evidently's Wasserstein norm (sorting first could change the last bits)

    @property
    def rows(self) -> int:
        return len(self.values)

    @cached_property
    def _last_of_value(self) -> np.ndarray:
        """Index of the last row of each distinct value (the values are sorted)."""
        if not self.rows:
            return np.empty(0, dtype=np.intp)
        return np.flatnonzero(np.append(self.values[1:] != self.values[:-1], True))

    @property
    def distinct(self) -> int:
        return len(self._last_of_value)

    @cached_property
    def counts(self) -> pd.Series:
        """`np.unique(values, return_counts=True)` as a Series, read off the sorted values without sorting again."""
        last = self._last_of_value
        return pd.Series(np.diff(last, prepend=-1), index=self.values[last])


@dataclass(frozen=True, eq=False)
class CategoricalColumn:
    """A categorical column as drift needs it: rows per category, missing values left out."""

    counts: pd.Series

    @property
    def rows(self) -> int:
        return int(self.counts.sum())


ColumnSummary = NumericColumn | CategoricalColumn


def summarize(values: pd.Series, numeric: bool) -> ColumnSummary:
    """One column of the reference or of a batch, NaN and ±inf dropped, reduced to what the drift methods read."""
    if not numeric:
        values = values.astype(object) if isinstance(values.dtype, pd.CategoricalDtype) else values
        return CategoricalColumn(_clean(values).value_counts(sort=False))
    array = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(array)
    array = array if finite.all() else array[finite]
    return NumericColumn(np.sort(array), float(np.std(array)) if len(array) else float("nan"))


def _union_values(reference: ColumnSummary, current: ColumnSummary) -> pd.Index:
    """The values seen in either sample: reference's first, then those only the batch has (pandas equality)."""
    return reference.counts.index.append(current.counts.index.difference(reference.counts.index, sort=False))


def _aligned_counts(reference: ColumnSummary, current: ColumnSummary) -> tuple[np.ndarray, np.ndarray]:
    """Rows per value seen in either sample, aligned: reference's values first, then those only the batch has."""
    keys = _union_values(reference, current)
    return (
        reference.counts.reindex(keys, fill_value=0).to_numpy(dtype=float),
        current.counts.reindex(keys, fill_value=0).to_numpy(dtype=float),
    )


def _sturges_edges(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """`np.histogram_bin_edges(both samples, bins="sturges")` from the sorted samples' ends and sizes alone."""
    first, last = min(reference[0], current[0]), max(reference[-1], current[-1])
    width = (last - first) / (np.log2(reference.size + current.size) + 1.0)
    bins = int(np.ceil((last - first) / width)) if width else 1
    return np.linspace(first, last, bins + 1, endpoint=True, dtype=np.float64)


def _histogram(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """`np.histogram(values, edges)[0]` (last bin closed) by binary search in the sorted values: the same counts."""
    below = np.concatenate(
        [sorted_values.searchsorted(edges[:-1], "left"), sorted_values.searchsorted(edges[-1:], "right")]
    )
    return np.diff(below)


def _binned_shares(reference: ColumnSummary, current: ColumnSummary, fill_zeroes: bool):
    """Evidently's binning: Sturges bins over both samples for numerics with >20 values, categories otherwise."""
    if isinstance(reference, NumericColumn) and isinstance(current, NumericColumn) and reference.distinct > 20:
        edges = _sturges_edges(reference.values, current.values)
        ref_shares = _histogram(reference.values, edges) / reference.rows
        cur_shares = _histogram(current.values, edges) / current.rows
    else:
        ref_counts, cur_counts = _aligned_counts(reference, current)
        ref_shares, cur_shares = ref_counts / reference.rows, cur_counts / current.rows
    if fill_zeroes:
        for shares in (ref_shares, cur_shares):
            smallest = shares[shares != 0].min()
            np.place(shares, shares == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
    return ref_shares, cur_shares


KS_EXACT_MAX_N = 10_000  # scipy's ks_2samp(method="auto") computes an exact p-value when both samples are this small


SMIRNOV_SERIES_MAX_N = 1_000_000  # scipy.special.smirnov sums its exact series up to this n, an asymptotic one above


# A p-value summed here agrees with scipy's to ~1e-13 (relative); this close to the threshold, scipy's own decides.
KS_DECISION_RTOL = 1e-9


def ks_statistic(reference: NumericColumn, current: NumericColumn) -> float:
    """ks_2samp's D, max |F_ref - F_cur| over both samples' values, with the same floats, from the sorted samples.

    Only the values of the sample with fewer distinct values are visited: at each such value v, and just below it
    (there F_other is its count below v, which is its value at its last point under v, where scipy evaluates it).
    Between two visited values the visited sample's F is constant and the other's only rises, so these are the
    extremes. A batch much smaller than the reference costs binary searches of the batch's values only."""
    few, many = (current, reference) if current.distinct <= reference.distinct else (reference, current)
    last = few._last_of_value  # noqa: SLF001 - the same class
    values = few.values[last]
    up_to = many.values.searchsorted(values, "right")
    below = up_to.copy()  # the other sample's count under v differs only where it holds v itself: search those
    held = np.flatnonzero(many.values[np.maximum(up_to - 1, 0)] == values)
    below[held] = many.values.searchsorted(values[held], "left")
    at_values = up_to / many.rows - (last + 1) / few.rows
    under_values = below / many.rows - np.append(0, last[:-1] + 1) / few.rows
    return float(max(at_values.max(), under_values.max(), -at_values.min(), -under_values.min()))


def _kstwo_sf(d: float, n: float) -> float:
    """`scipy.stats.kstwo.sf(d, n)`. Where scipy sums the exact Smirnov series 2·Σ_j C(n,j) d (d + j/n)^(j-1)
    (1 - d - j/n)^(n-j) term by term (n > 140, 2.2 ≤ n·d² < 370: about 0.5 s at n = 5·10⁵, the drifted columns),
    the same series is summed here as a vector of binomial probabilities."""
    if not (140 < n <= SMIRNOV_SERIES_MAX_N and 2.2 <= n * d * d < 370.0 and d < 0.5):
        return float(stats.kstwo.sf(d, n))
    j = np.arange(np.floor(n * (1 - d)) + 1)
    shifted = d + j / n
    return float(np.clip(2 * np.sum(d / shifted * stats.binom.pmf(j, n, shifted)), 0, 1))


def ks_asymptotic_p_value(d: float, n1: int, n2: int) -> float:
    """ks_2samp's p-value of D for samples of n1 and n2 rows, when either has more than KS_EXACT_MAX_N."""
    larger, smaller = max(float(n1), float(n2)), min(float(n1), float(n2))
    effective_n = larger * smaller / (larger + smaller)  # scipy's asymptotic branch, term for term
    return _kstwo_sf(d, float(np.round(effective_n)))


def _ks(reference: ColumnSummary, current: ColumnSummary) -> float:
    """The p-value of `scipy.stats.ks_2samp(reference, current)` (two-sided, method="auto")."""
    if max(reference.rows, current.rows) <= KS_EXACT_MAX_N:  # scipy's exact branch: small samples, scipy computes it
        return float(stats.ks_2samp(reference.values, current.values).pvalue)
    return ks_asymptotic_p_value(ks_statistic(reference, current), reference.rows, current.rows)


def _wasserstein(reference: ColumnSummary, current: ColumnSummary) -> float:
    """`scipy.stats.wasserstein_distance` (its merged grid and dot product) ÷ max(std(reference), 0.001)."""
    merged = np.concatenate((reference.values, current.values))
    merged.sort(kind="mergesort")  # two sorted runs: a linear merge
    ref_cdf = reference.values.searchsorted(merged[:-1], "right") / reference.rows
    cur_cdf = current.values.searchsorted(merged[:-1], "right") / current.rows
    return float(np.vecdot(np.abs(ref_cdf - cur_cdf), np.diff(merged)) / max(reference.std, 0.001))


def _psi(reference: ColumnSummary, current: ColumnSummary) -> float:
    ref_shares, cur_shares = _binned_shares(reference, current, fill_zeroes=True)
    return float(np.sum((ref_shares - cur_shares) * np.log(ref_shares / cur_shares)))


def _jensenshannon(reference: ColumnSummary, current: ColumnSummary) -> float:
    ref_shares, cur_shares = _binned_shares(reference, current, fill_zeroes=False)
    return float(distance.jensenshannon(ref_shares, cur_shares))


def _chisquare(reference: ColumnSummary, current: ColumnSummary) -> float:
    ref_counts, cur_counts = _aligned_counts(reference, current)
    expected = ref_counts * (current.rows / reference.rows)
    if np.any((expected == 0) & (cur_counts > 0)):
        return 0.0  # a category never seen in the reference: as unlikely as it gets
    return float(stats.chisquare(cur_counts, expected)[1])


def _z(reference: ColumnSummary, current: ColumnSummary) -> float:
    """Evidently's two-proportion z-test (two-sided) on the share of rows that are not the smallest value seen.
    Its arithmetic, in its order: `2 * (1 - norm.cdf(|z|))`, not `norm.sf` (they differ in the last bits)."""
    ref_counts, cur_counts = reference.counts, current.counts
    if len(ref_counts) == 1 and len(cur_counts) == 1 and ref_counts.index[0] == cur_counts.index[0]:
        return 1.0
    smallest = min(_union_values(reference, current))
    n1, n2 = reference.rows, current.rows
    p1 = float(n1 - ref_counts.get(smallest, 0)) / n1
    p2 = float(n2 - cur_counts.get(smallest, 0)) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


STATISTICS: dict[str, Callable[[ColumnSummary, ColumnSummary], float]] = {
    "ks": _ks,
    "wasserstein": _wasserstein,
    "psi": _psi,
    "jensenshannon": _jensenshannon,
    "chisquare": _chisquare,
    "z": _z,
}


# When a statistic means drift, as Evidently decides it (its KS test counts p == threshold as drift, chi-square not).
DRIFTED: dict[str, Callable[[float, float], bool]] = {
    "ks": operator.le,
    "chisquare": operator.lt,
    "z": operator.lt,
    "wasserstein": operator.ge,
    "psi": operator.ge,
    "jensenshannon": operator.ge,
}


# Evidently's automatic choice (DataDriftPreset with no method): a reference of at most this many non-null rows is
# small (p-value tests), a larger one gets distances, which do not flag ever smaller shifts as the data grows.
AUTO_SMALL_REFERENCE_ROWS = 1000
AUTO_FEW_VALUES = 5  # a numeric column with at most this many distinct values is tested as categories


def _values_up_to(reference: ColumnSummary, current: ColumnSummary, cap: int) -> int:
    """Distinct values of both samples together, counted up to `cap` (the rule only asks "more than 2? than 5?")."""
    if isinstance(reference, NumericColumn) and max(reference.distinct, current.distinct) >= cap:
        return cap
    return min(len(_union_values(reference, current)), cap)


def auto_method(reference: ColumnSummary, current: ColumnSummary) -> str:
    """The method Evidently 0.7's `_get_default_stattest` picks for this column and batch: by the reference's
    non-null rows and the distinct values of both samples, the column's type as configured."""
    values = _values_up_to(reference, current, AUTO_FEW_VALUES + 1)
    many_values = isinstance(reference, NumericColumn) and values > AUTO_FEW_VALUES
    if reference.rows <= AUTO_SMALL_REFERENCE_ROWS:
        return "ks" if many_values else "chisquare" if values > 2 else "z"
    return "wasserstein" if many_values else "jensenshannon"


def auto_methods(reference: ColumnSummary) -> list[str]:
    """Every method `auto_method` can pick for this reference column, whatever the batch: a batch adds values."""
    values = reference.distinct if isinstance(reference, NumericColumn) else len(reference.counts)
    numeric = isinstance(reference, NumericColumn)
    if reference.rows <= AUTO_SMALL_REFERENCE_ROWS:
        few = (["z"] if values <= 2 else []) + (["chisquare"] if not numeric or values <= AUTO_FEW_VALUES else [])
        return few + (["ks"] if numeric else [])
    few = ["jensenshannon"] if not numeric or values <= AUTO_FEW_VALUES else []
    return few + (["wasserstein"] if numeric else [])
