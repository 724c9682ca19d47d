"""Calibrated drift thresholds: each column's threshold from its own statistic on batch-sized chunks of the training
rows, so that it sits above the variation the training data already shows at that size (docs/drift.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from driftline.config import P_VALUE_DRIFT_METHODS, DriftConfig
from driftline.monitoring.drift_stats import (
    KS_EXACT_MAX_N,
    STATISTICS,
    CategoricalColumn,
    ColumnSummary,
    NumericColumn,
    auto_methods,
    ks_asymptotic_p_value,
    ks_statistic,
    summarize,
)

# Windows per column: evenly spaced over the rows in time order, so the history's own movement (seasons, trends) is
# in the spread; they overlap when the rows hold fewer than 100 batches. 0.99 then sits between the two largest.
CHUNKS = 100
# Without a declared batch size, thresholds for every batch size from drift.min_rows up, each this many times the
# last: a batch is judged at its own size, between the two nearest (a threshold moves smoothly with log rows). 4 costs
# about 1.5 times one size and lands within 30 % (in log p) of a declared size's thresholds (test_drift_calibration).
LADDER_STEP = 4
# Below this p-value the log scale has nothing left to interpolate (float64's smallest normal numbers are ~1e-308).
SMALLEST_P_VALUE = 1e-300


@dataclass(frozen=True)
class Calibration:
    """Calibrated thresholds of one model version, per column and method, for one or more batch sizes, stored with
    its reference statistics. A batch is judged by the thresholds for its own size (interpolated between the two
    nearest; the smallest or largest beyond them)."""

    batch_rows: int | None  # the size when a batch's is not given (batch_rows()); None: the largest calibrated
    quantile: float
    columns: dict[str, dict[str, dict[int, float]]]  # features and target: method -> {batch rows: threshold}
    prediction: dict[str, dict[int, float]]  # the champion's signal: method -> {batch rows: threshold}

    def threshold(self, role: str, column: str, method: str, rows: int | None = None) -> float | None:
        """The threshold for a batch of `rows` (None: for `batch_rows`)."""
        found = self.prediction if role == "prediction" else self.columns.get(column, {})
        by_size = found.get(method)
        if not by_size:
            return None
        return at_size(by_size, rows or self.batch_rows or max(by_size), method in P_VALUE_DRIFT_METHODS)

    def to_dict(self) -> dict:
        """JSON-ready: the sizes become strings (JSON keys)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        """Also reads a version calibrated before thresholds had sizes: one threshold per method, for `batch_rows`."""
        rows = data["batch_rows"]

        def sized(thresholds: dict) -> dict[str, dict[int, float]]:
            return {
                method: {int(size): float(t) for size, t in found.items()}
                if isinstance(found, dict)
                else {int(rows): float(found)}
                for method, found in thresholds.items()
            }

        columns = {name: sized(thresholds) for name, thresholds in data["columns"].items()}
        return cls(None if rows is None else int(rows), float(data["quantile"]), columns, sized(data["prediction"]))


def at_size(by_size: dict[int, float], rows: int, p_value: bool) -> float:
    """The threshold at `rows`, linear in log rows between the two nearest calibrated sizes (for a p-value, its log
    too: the p-values of a fixed shift fall exponentially with the rows); the nearest end beyond them."""
    sizes = sorted(by_size)
    above = int(np.searchsorted(sizes, rows))
    if above < len(sizes) and sizes[above] == rows or above == 0:
        return by_size[sizes[above]]
    if above == len(sizes):
        return by_size[sizes[-1]]
    low, high = by_size[sizes[above - 1]], by_size[sizes[above]]
    if low == high:
        return low
    weight = np.log(rows / sizes[above - 1]) / np.log(sizes[above] / sizes[above - 1])
    if p_value:
        ends = np.log(np.maximum([low, high], SMALLEST_P_VALUE))
        return float(np.clip(np.exp(ends[0] + weight * (ends[1] - ends[0])), min(low, high), max(low, high)))
    return float(low + weight * (high - low))


def batch_rows(spec: DriftConfig, file_rows: list[int]) -> int | None:
    """The size a threshold is for when the batch's own is not given: the declared one, else the median rows of the
    files trained on (on a retrain, the batches that arrived); None from a single file (the largest calibrated)."""
    if spec.calibration.batch_rows:
        return spec.calibration.batch_rows
    return int(np.median(file_rows)) if len(file_rows) >= 2 else None


def ladder(rows: int, spec: DriftConfig) -> list[int]:
    """The batch sizes a column of `rows` training rows is calibrated for: the declared one, else drift.min_rows,
    LADDER_STEP times that, ... up to half the rows (a window is at most half of what it is compared with)."""
    largest = rows // 2
    declared = spec.calibration.batch_rows
    if declared:
        return [min(declared, largest)] if min(declared, largest) >= spec.min_rows else []
    sizes = []
    size = spec.min_rows
    while size < largest:
        sizes.append(size)
        size *= LADDER_STEP
    return [*sizes, largest] if largest >= spec.min_rows else sizes


def chunks(rows: int, size: int) -> list[slice]:
    """CHUNKS windows of `size` rows, evenly spaced from the first row to the last (fewer when rows are few)."""
    starts = np.unique(np.linspace(0, rows - size, CHUNKS).round().astype(int))
    return [slice(start, start + size) for start in starts]


def methods_to_calibrate(spec: DriftConfig, reference: ColumnSummary, role: str) -> dict[str, float]:
    """The calibrated methods this column can be tested with (all that `auto` may pick), each with its floor: the
    configured or default threshold, so a calibrated threshold is never more sensitive than it."""
    configured = spec.numeric_method if isinstance(reference, NumericColumn) else spec.categorical_method
    methods = auto_methods(reference) if configured == "auto" else [configured]
    return {method: spec.threshold(method, signal=role != "feature") for method in methods if spec.calibrated(method)}


def without(reference: ColumnSummary, part: ColumnSummary) -> ColumnSummary:
    """The reference with a part of its own rows taken out: what a chunk is compared with, so that the chunk is,
    like a future batch, not part of what it is compared with."""
    if isinstance(reference, NumericColumn):
        values = part.values  # sorted: the k-th copy of a value removes the k-th copy in the reference
        copy = np.arange(values.size) - values.searchsorted(values, "left")
        keep = np.ones(reference.rows, dtype=bool)
        keep[reference.values.searchsorted(values, "left") + copy] = False
        rest = reference.values[keep]
        return NumericColumn(rest, float(np.std(rest)) if rest.size else float("nan"))
    counts = reference.counts - part.counts.reindex(reference.counts.index, fill_value=0)
    return CategoricalColumn(counts[counts > 0])


class RestStatistics:
    """A numeric reference prepared so that a window's KS and Wasserstein statistics against the reference without
    the window cost O(m log n), the rest never built: its CDF is (n·F_ref − m·F_window)/(n − m), so its distance to
    the window's CDF is n/(n − m) times the reference's, in the supremum (KS) as in the area (Wasserstein)."""

    def __init__(self, reference: NumericColumn) -> None:
        self.reference, self.mean = reference, float(np.mean(reference.values))
        centered = reference.values - self.mean  # sums of centered values: no cancellation between large sums
        self.prefix = np.concatenate(([0.0], np.cumsum(centered)))
        self.squares = float(np.dot(centered, centered))

    def _below(self, t: np.ndarray) -> np.ndarray:
        """∫ F_ref from -∞ to t."""
        counts = self.reference.values.searchsorted(t, "right")
        return (counts * (t - self.mean) - self.prefix[counts]) / self.reference.rows

    def _area(self, window: NumericColumn) -> float:
        """∫ |F_ref − F_window|: between window values w_i and w_i+1 the window's CDF is the level (i + 1)/m, which
        the reference's CDF reaches at its value number ceil(level·n); the area is split there."""
        values, n, m = self.reference.values, self.reference.rows, window.rows
        w = window.values
        start, end, level = w[:-1], w[1:], np.arange(1, m) / m
        crossing = np.clip(values[(np.arange(1, m) * n + m - 1) // m - 1], start, end)
        below_start, below_crossing, below_end = self._below(start), self._below(crossing), self._below(end)
        middle = (
            level * (crossing - start)
            - (below_crossing - below_start)
            + (below_end - below_crossing)
            - level * (end - crossing)
        )
        last = w[-1:]
        above_last = (self.prefix[-1] - self.prefix[values.searchsorted(last, "right")]) / n - (
            (n - values.searchsorted(last, "right")) * (last - self.mean) / n
        )
        return float(self._below(w[:1])[0] + middle.sum() + above_last[0])

    def _std(self, window: NumericColumn) -> float:
        n, m, centered = self.reference.rows, window.rows, window.values - self.mean
        rest_mean = (self.prefix[-1] - centered.sum()) / (n - m)
        return float(np.sqrt(max((self.squares - np.dot(centered, centered)) / (n - m) - rest_mean**2, 0.0)))

    def statistic(self, method: str, window: NumericColumn) -> float | None:
        """KS's p-value or the normed Wasserstein distance of the window against the rest; None for other methods
        and for KS on samples small enough for scipy's exact p-value."""
        n, m = self.reference.rows, window.rows
        if method == "wasserstein":
            return n / (n - m) * self._area(window) / max(self._std(window), 0.001)
        if method == "ks" and max(n - m, m) > KS_EXACT_MAX_N:
            return ks_asymptotic_p_value(n / (n - m) * ks_statistic(self.reference, window), n - m, m)
        return None


def window_statistic(
    method: str, reference: ColumnSummary, window: ColumnSummary, rest: RestStatistics | None
) -> float:
    """`STATISTICS[method]` of the window against the reference without it (`rest`: numeric columns' shortcut)."""
    found = rest.statistic(method, window) if rest is not None else None
    return found if found is not None else STATISTICS[method](without(reference, window), window)


def threshold_from_spread(statistics: list[float], method: str, floor: float, quantile: float) -> float | None:
    """The `quantile` of the chunks' statistics in the direction of drift (for a p-value, its 1 - quantile), held to
    the floor; None when no chunk had values to compare."""
    spread = np.asarray(statistics, dtype=float)
    spread = spread[~np.isnan(spread)]
    if not spread.size:
        return None
    if method in P_VALUE_DRIFT_METHODS:
        return float(min(np.quantile(spread, 1 - quantile), floor))
    return float(max(np.quantile(spread, quantile), floor))


def column_thresholds(
    values: pd.Series, reference: ColumnSummary, floors: dict[str, float], spec: DriftConfig
) -> dict[str, dict[int, float]]:
    """One column's calibrated thresholds for each batch size of its ladder: `values` (its rows in time order, which
    `reference` summarizes) in windows of that size, each compared with the rest by every method in `floors`."""
    if not floors:
        return {}
    numeric = isinstance(reference, NumericColumn)
    rest = RestStatistics(reference) if numeric and reference.rows else None
    found: dict[str, dict[int, float]] = {method: {} for method in floors}
    for size in ladder(len(values), spec):  # sizes under drift.min_rows get no verdict: their chunks tell nothing
        spread: dict[str, list[float]] = {method: [] for method in floors}
        for rows in chunks(len(values), size):
            window = summarize(values.iloc[rows], numeric)
            if window.rows and reference.rows > window.rows:
                for method, statistics in spread.items():
                    statistics.append(window_statistic(method, reference, window, rest))
        for method, floor in floors.items():
            threshold = threshold_from_spread(spread[method], method, floor, spec.calibration.quantile)
            if threshold is not None:
                found[method][size] = threshold
    return {method: by_size for method, by_size in found.items() if by_size}
