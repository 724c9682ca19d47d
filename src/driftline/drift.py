"""Drift: per-column statistics with scipy/numpy on the full batch, and an Evidently HTML report on a bounded sample.

The statistics follow Evidently's definitions (same tests, binning and thresholds), so the decision here is the one
Evidently would take, computed without its per-row overhead: what a method needs from the reference (sorted values,
category counts, std) is computed once per model version (`ReferenceStats`), so a monitoring run reads only the batch.
The only module that imports evidently.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from driftline.config import DriftConfig, DriftlineConfig, FeatureType, Task
from driftline.errors import ConfigError
from driftline.validation import ReferenceProfile, learn_profile

# Methods whose statistic is a p-value: drift when it falls under the threshold (see DRIFTED). The rest are distances.
P_VALUE_METHODS = {"ks", "chisquare"}
PREDICTION_COLUMN = "prediction"


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    role: str  # feature | prediction | target
    method: str
    statistic: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class QualityCheck:
    """One data-quality figure of one feature: the batch against what training saw."""

    column: str
    check: str  # one of QUALITY_CHECKS
    reference: float  # the share in the training rows
    current: float  # the share in the batch
    threshold: float  # the largest share allowed in the batch (for null_rate: training's share + the allowed rise)
    breached: bool

    @property
    def reason(self) -> str:
        return f"{self.check} of {self.column!r} is {self.current:.1%} (training {self.reference:.1%})"


NULL_RATE, UNSEEN_CATEGORIES, OUT_OF_RANGE = "null_rate", "unseen_category_share", "out_of_range_share"
QUALITY_CHECKS = (NULL_RATE, UNSEEN_CATEGORIES, OUT_OF_RANGE)


@dataclass(frozen=True)
class DriftResult:
    columns: list[ColumnDrift]
    drifted_feature_share: float
    detected: bool
    reasons: list[str]
    reference_rows: int
    current_rows: int
    note: str = ""  # why no verdict was given, when none was
    quality: list[QualityCheck] = field(default_factory=list)

    @property
    def drifted_features(self) -> list[str]:
        return [c.column for c in self.columns if c.role == "feature" and c.drifted]

    @property
    def quality_breaches(self) -> list[str]:
        return [check.reason for check in self.quality if check.breached]

    @property
    def prediction_drift(self) -> ColumnDrift | None:
        return next((c for c in self.columns if c.role == "prediction"), None)

    def to_dict(self) -> dict:
        return {**asdict(self), "drifted_features": self.drifted_features, "quality_breaches": self.quality_breaches}

    def figures(self) -> dict[str, float]:
        """What MLflow records per run: the dataset verdict, each column's statistic, each quality share."""
        figures = {"drifted_feature_share": self.drifted_feature_share, "dataset_drift": float(self.detected)}
        figures |= {f"drift_{c.role}_{c.column}": c.statistic for c in self.columns}
        figures |= {f"quality_{q.check}_{q.column}": q.current for q in self.quality}
        return figures


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
    def distinct(self) -> int:
        return int(np.count_nonzero(self.values[1:] != self.values[:-1])) + 1 if self.rows else 0

    @cached_property
    def counts(self) -> pd.Series:
        values, counts = np.unique(self.values, return_counts=True)
        return pd.Series(counts, index=values)


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


STATS_MANIFEST = "stats.json"


def _save_column(column: ColumnSummary, folder: Path, stem: str) -> dict:
    if isinstance(column, NumericColumn):
        np.save(folder / f"{stem}.npy", column.values, allow_pickle=False)
        return {"kind": "numeric", "file": f"{stem}.npy", "std": column.std}
    counts = pd.DataFrame({"value": column.counts.index, "count": column.counts.to_numpy()})
    counts.to_parquet(folder / f"{stem}.parquet", index=False)  # parquet keeps the values' type (str, int, bool)
    return {"kind": "categorical", "file": f"{stem}.parquet"}


def _load_column(folder: Path, entry: dict) -> ColumnSummary:
    if entry["kind"] == "numeric":
        return NumericColumn(np.load(folder / entry["file"], allow_pickle=False), float(entry["std"]))
    counts = pd.read_parquet(folder / entry["file"])
    return CategoricalColumn(pd.Series(counts["count"].to_numpy(), index=counts["value"]))


@dataclass(frozen=True)
class ReferenceStats:
    """What drift needs from the reference, per column, computed once per model version and stored with it."""

    rows: int
    columns: dict[str, ColumnSummary]  # the features and the target
    prediction: ColumnSummary | None = None  # the champion's signal on its holdout

    def save(self, folder: Path) -> None:
        """`stats.json` plus one file per column: sorted float64 values (.npy) or category counts (.parquet)."""
        folder.mkdir(parents=True, exist_ok=True)
        columns = [{"name": name, **_save_column(column, folder, str(index))}
                   for index, (name, column) in enumerate(self.columns.items())]  # fmt: skip
        prediction = None if self.prediction is None else _save_column(self.prediction, folder, "prediction")
        manifest = {"rows": self.rows, "columns": columns, "prediction": prediction}
        (folder / STATS_MANIFEST).write_text(json.dumps(manifest, indent=1))

    @classmethod
    def load(cls, folder: Path) -> ReferenceStats:
        manifest = json.loads((folder / STATS_MANIFEST).read_text())
        columns = {entry["name"]: _load_column(folder, entry) for entry in manifest["columns"]}
        prediction = None if manifest["prediction"] is None else _load_column(folder, manifest["prediction"])
        return cls(rows=int(manifest["rows"]), columns=columns, prediction=prediction)


def _target_kind(task: Task) -> FeatureType:
    return FeatureType.numeric if task is Task.regression else FeatureType.categorical


def _signal_kind(task: Task) -> FeatureType:
    return FeatureType.categorical if task is Task.multiclass else FeatureType.numeric


def reference_stats(frame: pd.DataFrame, cfg: DriftlineConfig, predictions: np.ndarray | None = None) -> ReferenceStats:
    """The reference statistics of these rows (features and target, as typed by the config) and predictions."""
    dataset = cfg.dataset
    kinds = {**dataset.features, dataset.target: _target_kind(dataset.task)}
    columns = {
        name: summarize(frame[name], kind is FeatureType.numeric) for name, kind in kinds.items() if name in frame
    }
    numeric_signal = _signal_kind(dataset.task) is FeatureType.numeric
    prediction = None if predictions is None else summarize(pd.Series(predictions), numeric_signal)
    return ReferenceStats(rows=len(frame), columns=columns, prediction=prediction)


@dataclass(frozen=True)
class DriftReference:
    """What drift is measured against: statistics of the training rows, a sample of them (for the report and the
    feature check), the holdout predictions, the data profile."""

    features: pd.DataFrame
    predictions: np.ndarray
    profile: ReferenceProfile
    stats: ReferenceStats


def build_reference(train: pd.DataFrame, holdout_signal: np.ndarray, cfg: DriftlineConfig) -> DriftReference:
    """The statistics come from every training row (a sorted float64 array per numeric column, counts per
    categorical one); the stored sample is bounded by `drift.reference_sample_rows`."""
    columns = [*cfg.dataset.feature_names, cfg.dataset.target]
    rows = min(len(train), cfg.drift.reference_sample_rows)
    sample = train[columns].sample(n=rows, random_state=cfg.model.seed) if rows < len(train) else train[columns]
    return DriftReference(
        features=sample.reset_index(drop=True),
        predictions=np.asarray(holdout_signal),
        profile=learn_profile(train, cfg.dataset),
        stats=reference_stats(train[columns], cfg, holdout_signal),
    )


def _aligned_counts(reference: ColumnSummary, current: ColumnSummary) -> tuple[np.ndarray, np.ndarray]:
    """Rows per value seen in either sample, aligned: reference's values first, then those only the batch has."""
    keys = reference.counts.index.append(current.counts.index.difference(reference.counts.index, sort=False))
    return (reference.counts.reindex(keys, fill_value=0).to_numpy(dtype=float),
            current.counts.reindex(keys, fill_value=0).to_numpy(dtype=float))  # fmt: skip


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


def _ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """ks_2samp's D from sorted samples: max |F_ref - F_cur|, the same floats, evaluated once per distinct value."""
    ref_last = np.flatnonzero(np.append(reference[1:] != reference[:-1], True))  # last index of each distinct value
    cur_last = np.flatnonzero(np.append(current[1:] != current[:-1], True))
    at_ref = (ref_last + 1) / reference.size - current.searchsorted(reference[ref_last], "right") / current.size
    at_cur = reference.searchsorted(current[cur_last], "right") / reference.size - (cur_last + 1) / current.size
    return float(max(at_ref.max(), at_cur.max(), -at_ref.min(), -at_cur.min()))


def _kstwo_sf(d: float, n: float) -> float:
    """`scipy.stats.kstwo.sf(d, n)`. Where scipy sums the exact Smirnov series 2·Σ_j C(n,j) d (d + j/n)^(j-1)
    (1 - d - j/n)^(n-j) term by term (n > 140, 2.2 ≤ n·d² < 370: about 0.5 s at n = 5·10⁵, the drifted columns),
    the same series is summed here as a vector of binomial probabilities."""
    if not (140 < n <= SMIRNOV_SERIES_MAX_N and 2.2 <= n * d * d < 370.0 and d < 0.5):
        return float(stats.kstwo.sf(d, n))
    j = np.arange(np.floor(n * (1 - d)) + 1)
    shifted = d + j / n
    return float(np.clip(2 * np.sum(d / shifted * stats.binom.pmf(j, n, shifted)), 0, 1))


def _ks(reference: ColumnSummary, current: ColumnSummary) -> float:
    """The p-value of `scipy.stats.ks_2samp(reference, current)` (two-sided, method="auto")."""
    n1, n2 = reference.rows, current.rows
    if max(n1, n2) <= KS_EXACT_MAX_N:  # scipy's exact branch: small samples, so scipy itself computes it
        return float(stats.ks_2samp(reference.values, current.values).pvalue)
    larger, smaller = max(float(n1), float(n2)), min(float(n1), float(n2))
    effective_n = larger * smaller / (larger + smaller)  # scipy's asymptotic branch, term for term
    return _kstwo_sf(_ks_statistic(reference.values, current.values), float(np.round(effective_n)))


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


STATISTICS: dict[str, Callable[[ColumnSummary, ColumnSummary], float]] = {
    "ks": _ks,
    "wasserstein": _wasserstein,
    "psi": _psi,
    "jensenshannon": _jensenshannon,
    "chisquare": _chisquare,
}
# When a statistic means drift, as Evidently decides it (its KS test counts p == threshold as drift, chi-square not).
DRIFTED: dict[str, Callable[[float, float], bool]] = {
    "ks": operator.le,
    "chisquare": operator.lt,
    "wasserstein": operator.ge,
    "psi": operator.ge,
    "jensenshannon": operator.ge,
}


def _compare(reference: ColumnSummary, current: ColumnSummary, column: str, role: str, method: str,
             threshold: float) -> ColumnDrift:  # fmt: skip
    if reference.rows == 0 or current.rows == 0:
        return ColumnDrift(column, role, method, float("nan"), threshold, drifted=False)
    statistic = STATISTICS[method](reference, current)
    if method == "ks" and math.isclose(statistic, threshold, rel_tol=KS_DECISION_RTOL):  # let scipy decide the tie
        statistic = float(stats.ks_2samp(reference.values, current.values).pvalue)
    return ColumnDrift(column, role, method, statistic, threshold, bool(DRIFTED[method](statistic, threshold)))


def column_drift(
    reference: pd.Series, current: pd.Series, column: str, role: str, method: str, threshold: float, numeric: bool
) -> ColumnDrift:
    return _compare(summarize(reference, numeric), summarize(current, numeric), column, role, method, threshold)


def _method_for(kind: FeatureType, spec: DriftConfig) -> str:
    return spec.numeric_method if kind is FeatureType.numeric else spec.categorical_method


def _reference_column(reference: ReferenceStats, name: str, kind: FeatureType) -> ColumnSummary:
    column = reference.columns.get(name)
    if column is None or isinstance(column, NumericColumn) != (kind is FeatureType.numeric):
        raise ConfigError(
            f"column {name!r} ({kind.value} in the config) is not a {kind.value} column of the champion's drift "
            "reference; train a new champion on the configured features: driftline train --config <config>"
        )
    return column


def _signal_drift(reference: ColumnSummary, current: pd.Series, column: str, role: str, kind: FeatureType,
                  spec: DriftConfig) -> ColumnDrift:  # fmt: skip
    """Prediction or label drift: one test that decides alone, so a p-value test uses the stricter signal level."""
    method = _method_for(kind, spec)
    threshold = (
        min(spec.threshold(method), spec.signal_p_value) if method in P_VALUE_METHODS else spec.threshold(method)
    )
    return _compare(reference, summarize(current, kind is FeatureType.numeric), column, role, method, threshold)


def data_quality(reference: ReferenceStats, current: pd.DataFrame, cfg: DriftlineConfig) -> list[QualityCheck]:
    """Per feature: null share vs training's, share of categories training never saw, share of numbers outside
    the training min/max. Missing and ±inf count as null, as they do for the drift statistics."""
    rules, checks = cfg.drift.data_quality, []
    rows = max(len(current), 1)
    for name, kind in cfg.dataset.features.items():
        known = _reference_column(reference, name, kind)
        batch = summarize(current[name], kind is FeatureType.numeric)
        reference_nulls = 1 - known.rows / reference.rows if reference.rows else 0.0
        nulls = 1 - batch.rows / rows if len(current) else 0.0
        increase = rules.max_null_rate_increase
        checks.append(QualityCheck(name, NULL_RATE, reference_nulls, nulls, reference_nulls + increase,
                                   nulls - reference_nulls > increase))  # fmt: skip
        if isinstance(known, CategoricalColumn):
            unseen = batch.counts[~batch.counts.index.isin(known.counts.index)].sum() / batch.rows if batch.rows else 0
            checks.append(QualityCheck(name, UNSEEN_CATEGORIES, 0.0, float(unseen), rules.max_unseen_category_share,
                                       bool(unseen > rules.max_unseen_category_share)))  # fmt: skip
        elif known.rows and batch.rows:
            low, high = known.values[0], known.values[-1]
            outside = batch.values.searchsorted(low, "left") + batch.rows - batch.values.searchsorted(high, "right")
            share = float(outside / batch.rows)
            checks.append(QualityCheck(name, OUT_OF_RANGE, 0.0, share, rules.max_out_of_range_share,
                                       share > rules.max_out_of_range_share))  # fmt: skip
    return checks


def detect_drift(
    reference: pd.DataFrame | ReferenceStats,
    current: pd.DataFrame,
    cfg: DriftlineConfig,
    reference_predictions: np.ndarray | None = None,
    current_predictions: np.ndarray | None = None,
) -> DriftResult:
    """Per-feature tests on the full batch, plus prediction and label drift and data quality; dataset drift by the
    configured rules.

    `reference` is the champion's precomputed `ReferenceStats` (which hold its predictions), or reference rows
    whose statistics are computed here, with `reference_predictions`: both give the same result.
    """
    if not isinstance(reference, ReferenceStats):
        reference = reference_stats(reference, cfg, reference_predictions)
    spec, dataset = cfg.drift, cfg.dataset
    columns = []
    for name, kind in dataset.features.items():
        method = _method_for(kind, spec)
        current_column = summarize(current[name], kind is FeatureType.numeric)
        columns.append(_compare(_reference_column(reference, name, kind), current_column, name, "feature", method,
                                spec.threshold(method)))  # fmt: skip
    if reference.prediction is not None and current_predictions is not None:  # reported always, counted if enabled
        columns.append(_signal_drift(reference.prediction, pd.Series(current_predictions), PREDICTION_COLUMN,
                                     "prediction", _signal_kind(dataset.task), spec))  # fmt: skip
    if spec.target_drift and dataset.target in current and dataset.target in reference.columns:
        target_kind = _target_kind(dataset.task)
        columns.append(_signal_drift(_reference_column(reference, dataset.target, target_kind),
                                     current[dataset.target], dataset.target, "target", target_kind, spec))  # fmt: skip
    quality = data_quality(reference, current, cfg)
    features = [c for c in columns if c.role == "feature"]
    share = sum(c.drifted for c in features) / len(features)
    if len(current) < spec.min_rows:
        note = f"{len(current)} rows, fewer than drift.min_rows={spec.min_rows}: no drift verdict"
        return DriftResult(columns, share, False, [], reference.rows, len(current), note, quality)
    reasons = []
    if share >= spec.drift_share:
        drifted = ", ".join(c.column for c in features if c.drifted)
        reasons.append(f"{share:.0%} of features drifted ({drifted}), threshold {spec.drift_share:.0%}")
    reasons += [f"{c.role} {c.column!r} drifted ({c.method} = {c.statistic:.3g})" for c in columns
                if c.role != "feature" and c.drifted and (c.role != "prediction" or spec.prediction_drift)]  # fmt: skip
    if spec.data_quality.counts_as_drift:
        reasons += [f"data quality: {check.reason}" for check in quality if check.breached]
    return DriftResult(columns, share, bool(reasons), reasons, reference.rows, len(current), "", quality)


def _evidently_snapshot(
    reference: pd.DataFrame, current: pd.DataFrame, cfg: DriftlineConfig, include_tests: bool, **about: Any
):
    """Evidently's `DataDriftPreset` over the features, with driftline's methods, thresholds and drift share;
    `about` is what Evidently files the run under (name, timestamp, tags, metadata)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    spec, dataset = cfg.drift, cfg.dataset
    definition = DataDefinition(
        numerical_columns=dataset.numeric_features, categorical_columns=dataset.categorical_features
    )
    preset = DataDriftPreset(
        num_method=spec.numeric_method,
        cat_method=spec.categorical_method,
        num_threshold=spec.threshold(spec.numeric_method),
        cat_threshold=spec.threshold(spec.categorical_method),
        drift_share=spec.drift_share,
    )
    return Report([preset], include_tests=include_tests).run(
        current_data=Dataset.from_pandas(current[dataset.feature_names], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[dataset.feature_names], data_definition=definition),
        **about,
    )


def evidently_column_drift(
    reference: pd.DataFrame, current: pd.DataFrame, cfg: DriftlineConfig
) -> dict[str, tuple[float, bool]]:
    """Evidently's own statistic and verdict per feature, on all rows: what driftline's decisions are checked by."""
    snapshot = _evidently_snapshot(reference, current, cfg, include_tests=True).dict()
    statistics = {
        m["config"]["column"]: m["value"] for m in snapshot["metrics"] if m["config"]["type"].endswith("ValueDrift")
    }
    verdicts = {t["metric_config"]["params"]["column"]: t["status"] == "FAIL" for t in snapshot["tests"]
                if t["metric_config"]["params"]["type"].endswith("ValueDrift")}  # fmt: skip
    return {column: (float(value), verdicts[column]) for column, value in statistics.items()}


def _sample(frame: pd.DataFrame, cfg: DriftlineConfig) -> pd.DataFrame:
    rows = min(len(frame), cfg.drift.report_sample_rows)
    return frame.sample(n=rows, random_state=cfg.model.seed) if rows < len(frame) else frame


def write_report(
    reference: pd.DataFrame, current: pd.DataFrame, cfg: DriftlineConfig, path: Path, snapshot: Snapshot | None = None
) -> Path:
    """Evidently's data-drift report, on at most `report_sample_rows` rows of each side (it is slow on big data).

    With `snapshot`, the same Evidently run also goes to the model's dashboard project (`cfg.dashboard_dir`).
    """
    about = snapshot.about(DRIFT_TAG) if snapshot else {}
    run = _evidently_snapshot(_sample(reference, cfg), _sample(current, cfg), cfg, include_tests=False, **about)
    path.parent.mkdir(parents=True, exist_ok=True)
    run.save_html(str(path))
    if snapshot is not None and cfg.dashboard.enabled:
        _add_to_dashboard(run, cfg)
    return path


# --- the Evidently dashboard: one project per model in a local workspace, one snapshot per monitoring run -------
DRIFT_TAG, PERFORMANCE_TAG = "drift", "performance"
EVIDENTLY_METRIC = "evidently:metric_v2:"
# Evidently's own metrics of model quality, per task, as the Performance tab plots them
PERFORMANCE_METRICS = {
    Task.binary: ["RocAuc", "Accuracy", "F1Score"],
    Task.multiclass: ["Accuracy", "F1Score"],
    Task.regression: ["RMSE", "MAE"],
}


@dataclass(frozen=True)
class Snapshot:
    """What a dashboard snapshot is about: its name, its time on the dashboard's axis, the model version."""

    name: str
    timestamp: datetime
    model_version: str

    def about(self, tag: str) -> dict[str, Any]:
        """Report.run's arguments that file the run on the dashboard: the panels select it by tag."""
        metadata = {"model_version": self.model_version}
        return {"name": self.name[:200], "timestamp": self.timestamp, "tags": [tag], "metadata": metadata}


def _panel_metric(metric: str, legend: str, tag: str, **labels: str):
    from evidently.sdk.models import PanelMetric

    return PanelMetric(legend=legend, metric=f"{EVIDENTLY_METRIC}{metric}", metric_labels=labels, tags=[tag])


def _dashboard_panels(cfg: DriftlineConfig) -> list[tuple[str, object]]:
    """(tab, panel): drifted-feature share and per-feature drift over time; model performance from label runs."""
    from evidently.sdk.panels import counter_panel, line_plot_panel

    drift_statistic = f"{cfg.drift.numeric_method} / {cfg.drift.categorical_method}"
    return [
        ("Drift", counter_panel(title="Share of drifted features (last run)", size="half", values=[
            _panel_metric("DriftedColumnsCount", "share", DRIFT_TAG, value_type="share")])),
        ("Drift", line_plot_panel(title="Share of drifted features", size="half", values=[
            _panel_metric("DriftedColumnsCount", "share", DRIFT_TAG, value_type="share")])),
        ("Drift", line_plot_panel(title=f"Drift statistic per feature ({drift_statistic})", values=[
            _panel_metric("ValueDrift", name, DRIFT_TAG, column=name) for name in cfg.dataset.feature_names])),
        ("Performance", line_plot_panel(title=f"Model performance on labeled predictions ({cfg.primary_metric} "
                                        "and more), per scoring batch", values=[
            _panel_metric(name, name, PERFORMANCE_TAG) for name in PERFORMANCE_METRICS[cfg.dataset.task]])),
        ("Performance", counter_panel(title="Labeled predictions per batch", size="half", aggregation="sum", values=[
            _panel_metric("RowCount", "rows", PERFORMANCE_TAG)])),
    ]  # fmt: skip


def _dashboard_workspace(cfg: DriftlineConfig):
    from evidently.ui.workspace import Workspace

    cfg.dashboard_dir.mkdir(parents=True, exist_ok=True)
    return Workspace(str(cfg.dashboard_dir))


def dashboard_project(cfg: DriftlineConfig):
    """The model's Evidently project (named after the registered model), created with its panels the first time."""
    workspace = _dashboard_workspace(cfg)
    found = workspace.search_project(cfg.registry.model_name)
    if found:
        return workspace, found[0]
    project = workspace.create_project(cfg.registry.model_name, description=cfg.description or None)
    for tab, panel in _dashboard_panels(cfg):
        project.dashboard.add_panel(panel, tab=tab)
    return workspace, project


def _add_to_dashboard(run, cfg: DriftlineConfig) -> str:
    workspace, project = dashboard_project(cfg)
    return str(workspace.add_run(project.id, run).id)


def add_performance_snapshot(
    labeled: pd.DataFrame, cfg: DriftlineConfig, snapshot: Snapshot, prediction: str, probabilities: dict
) -> str | None:
    """Evidently's quality metrics of the model on (a bounded sample of) labeled predictions, to the dashboard.

    `labeled` holds the label under `dataset.target`, the predicted label under `prediction`, and for binary
    tasks `probabilities` maps the positive class to its probability column.
    """
    if not cfg.dashboard.enabled:
        return None
    from evidently import BinaryClassification, DataDefinition, Dataset, MulticlassClassification, Regression, Report
    from evidently import metrics as evidently_metrics

    task, target = cfg.dataset.task, cfg.dataset.target
    if task is Task.regression:
        definition = DataDefinition(regression=[Regression(target=target, prediction=prediction)])
    elif task is Task.binary:
        [(positive, column)] = probabilities.items()
        definition = DataDefinition(classification=[BinaryClassification(
            target=target, prediction_labels=prediction, prediction_probas=column, pos_label=positive)])  # fmt: skip
    else:
        definition = DataDefinition(
            classification=[MulticlassClassification(target=target, prediction_labels=prediction)]
        )
    measured = [getattr(evidently_metrics, name)() for name in [*PERFORMANCE_METRICS[task], "RowCount"]]
    current = Dataset.from_pandas(_sample(labeled, cfg), data_definition=definition)
    run = Report(measured).run(current_data=current, **snapshot.about(PERFORMANCE_TAG))
    workspace, project = dashboard_project(cfg)
    for snapshot_id in workspace.list_runs(project.id):  # labels that arrive in parts: the batch's latest figures
        earlier = workspace.get_run(project.id, snapshot_id)
        if earlier is not None and earlier.name == run.get_name() and PERFORMANCE_TAG in earlier.tags:
            workspace.delete_run(project.id, snapshot_id)
    return str(workspace.add_run(project.id, run).id)


def dashboard_snapshots(cfg: DriftlineConfig) -> list[dict]:
    """The snapshots of the model's project, oldest first: name, time, tags, metadata (what the UI lists)."""
    workspace, project = dashboard_project(cfg)
    found = [workspace.get_run(project.id, snapshot_id) for snapshot_id in workspace.list_runs(project.id)]
    described = [{"name": s.name, "timestamp": s.timestamp, "tags": list(s.tags), "metadata": dict(s.metadata)}
                 for s in found if s is not None]  # fmt: skip
    return sorted(described, key=lambda s: s["timestamp"])
