"""The drift verdict: per-feature tests on the full batch, prediction and label drift, and data quality, decided by the
config's rules."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from driftline.config import DriftConfig, DriftlineConfig, FeatureType
from driftline.modeling.threads import usable_cores
from driftline.monitoring.drift_stats import (
    DRIFTED,
    KS_DECISION_RTOL,
    STATISTICS,
    ColumnSummary,
    auto_method,
    summarize,
)
from driftline.monitoring.quality import QualityCheck, data_quality
from driftline.monitoring.reference import ReferenceStats, reference_column, reference_stats, signal_kind, target_kind

PREDICTION_COLUMN = "prediction"
# From this many batch rows the features are tested on all cores at once; below, a thread costs more than it saves.
PARALLEL_MIN_ROWS = 100_000


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    role: str  # feature | prediction | target
    method: str
    statistic: float
    threshold: float
    drifted: bool
    calibrated: bool = False  # the threshold comes from the training data's own variation (drift.thresholds)


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


def compare(
    reference: ColumnSummary,
    current: ColumnSummary,
    column: str,
    role: str,
    method: str,
    threshold: float,
    calibrated: bool = False,
) -> ColumnDrift:
    if reference.rows == 0 or current.rows == 0:
        return ColumnDrift(column, role, method, float("nan"), threshold, False, calibrated)
    statistic = STATISTICS[method](reference, current)
    if method == "ks" and math.isclose(statistic, threshold, rel_tol=KS_DECISION_RTOL):  # let scipy decide the tie
        statistic = float(stats.ks_2samp(reference.values, current.values).pvalue)
    return ColumnDrift(
        column, role, method, statistic, threshold, bool(DRIFTED[method](statistic, threshold)), calibrated
    )


def column_drift(
    reference: pd.Series, current: pd.Series, column: str, role: str, method: str, threshold: float, numeric: bool
) -> ColumnDrift:
    return compare(summarize(reference, numeric), summarize(current, numeric), column, role, method, threshold)


def summary_drift(
    reference: ReferenceStats,
    known: ColumnSummary,
    current: ColumnSummary,
    column: str,
    role: str,
    kind: FeatureType,
    spec: DriftConfig,
) -> ColumnDrift:
    """One column's test: the configured method (or `auto`'s choice for this batch) and its threshold: calibrated
    from the champion's training data when asked and stored with it, else the configured or default one."""
    method = spec.numeric_method if kind is FeatureType.numeric else spec.categorical_method
    method = auto_method(known, current) if method == "auto" else method
    calibrated = reference.calibration.threshold(role, column, method, current.rows) if reference.calibration else None
    if spec.calibrated(method) and calibrated is not None:
        return compare(known, current, column, role, method, calibrated, calibrated=True)
    return compare(known, current, column, role, method, spec.threshold(method, signal=role != "feature"))


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
    batch_columns = {name: current[name] for name in dataset.features}

    def feature(name: str, kind: FeatureType) -> tuple[ColumnSummary, ColumnDrift]:
        """A batch column summarized (its values sorted) once, for its test and its data-quality checks."""
        summary = summarize(batch_columns[name], kind is FeatureType.numeric)
        return summary, summary_drift(
            reference, reference_column(reference, name, kind), summary, name, "feature", kind, spec
        )

    workers = min(len(batch_columns), usable_cores()) if len(current) >= PARALLEL_MIN_ROWS else 1
    if workers == 1:
        tested = list(map(feature, dataset.features, dataset.features.values()))
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:  # numpy sorts and searches release the GIL
            tested = list(pool.map(feature, dataset.features, dataset.features.values()))
    batch = {name: summary for name, (summary, _) in zip(dataset.features, tested, strict=True)}
    columns = [drift for _, drift in tested]
    if reference.prediction is not None and current_predictions is not None:  # reported always, counted if enabled
        kind = signal_kind(dataset.task)
        predicted = summarize(pd.Series(current_predictions), kind is FeatureType.numeric)
        columns.append(
            summary_drift(reference, reference.prediction, predicted, PREDICTION_COLUMN, "prediction", kind, spec)
        )
    if spec.target_drift and dataset.target in current and dataset.target in reference.columns:
        kind = target_kind(dataset.task)
        labels = summarize(current[dataset.target], kind is FeatureType.numeric)
        known = reference_column(reference, dataset.target, kind)
        columns.append(summary_drift(reference, known, labels, dataset.target, "target", kind, spec))
    quality = data_quality(reference, batch, len(current), cfg)
    features = [c for c in columns if c.role == "feature"]
    share = sum(c.drifted for c in features) / len(features)
    if len(current) < spec.min_rows:
        note = f"{len(current)} rows, fewer than drift.min_rows={spec.min_rows}: no drift verdict"
        return DriftResult(columns, share, False, [], reference.rows, len(current), note, quality)
    reasons = []
    if share >= spec.drift_share:
        drifted = ", ".join(c.column for c in features if c.drifted)
        reasons.append(f"{share:.0%} of features drifted ({drifted}), threshold {spec.drift_share:.0%}")
    reasons += [
        f"{c.role} {c.column!r} drifted ({c.method} = {c.statistic:.3g})"
        for c in columns
        if c.role != "feature" and c.drifted and (c.role != "prediction" or spec.prediction_drift)
    ]
    if spec.data_quality.counts_as_drift:
        reasons += [f"data quality: {check.reason}" for check in quality if check.breached]
    return DriftResult(columns, share, bool(reasons), reasons, reference.rows, len(current), "", quality)
