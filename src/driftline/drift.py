"""Drift: per-column statistics with scipy/numpy on the full batch, and an Evidently HTML report on a bounded sample.

The statistics follow Evidently's definitions (same tests, binning and thresholds), so the decision here is the one
Evidently would take, computed without its per-row overhead. The only module that imports evidently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from driftline.config import DriftConfig, DriftlineConfig, FeatureType, Task
from driftline.validation import ReferenceProfile, learn_profile

# Methods whose statistic is a p-value: drift when it falls under the threshold. The rest are distances.
P_VALUE_METHODS = {"ks", "chisquare"}
PREDICTION_COLUMN = "prediction"


@dataclass(frozen=True)
class DriftReference:
    """What drift is measured against: a sample of the training rows, the holdout predictions, the data profile."""

    features: pd.DataFrame
    predictions: np.ndarray
    profile: ReferenceProfile


def build_reference(train: pd.DataFrame, holdout_signal: np.ndarray, cfg: DriftlineConfig) -> DriftReference:
    columns = [*cfg.dataset.feature_names, cfg.dataset.target]
    rows = min(len(train), cfg.drift.reference_sample_rows)
    sample = train[columns].sample(n=rows, random_state=cfg.model.seed) if rows < len(train) else train[columns]
    return DriftReference(
        features=sample.reset_index(drop=True),
        predictions=np.asarray(holdout_signal),
        profile=learn_profile(train, cfg.dataset),
    )


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    role: str  # feature | prediction | target
    method: str
    statistic: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    columns: list[ColumnDrift]
    drifted_feature_share: float
    detected: bool
    reasons: list[str]
    reference_rows: int
    current_rows: int
    note: str = ""  # why no verdict was given, when none was

    @property
    def drifted_features(self) -> list[str]:
        return [c.column for c in self.columns if c.role == "feature" and c.drifted]

    def to_dict(self) -> dict:
        return {**asdict(self), "drifted_features": self.drifted_features}


def _clean(values: pd.Series) -> pd.Series:
    return values.replace([np.inf, -np.inf], np.nan).dropna()


def _category_shares(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of every category seen in either sample, aligned: (reference counts, current counts)."""
    keys = pd.Index(pd.concat([reference, current]).unique())
    ref_counts = reference.value_counts().reindex(keys, fill_value=0).to_numpy(dtype=float)
    cur_counts = current.value_counts().reindex(keys, fill_value=0).to_numpy(dtype=float)
    return keys.to_numpy(), ref_counts, cur_counts


def _binned_shares(reference: pd.Series, current: pd.Series, numeric: bool, fill_zeroes: bool):
    """Evidently's binning: Sturges bins over both samples for numerics with >20 values, categories otherwise."""
    if numeric and reference.nunique() > 20:
        edges = np.histogram_bin_edges(np.concatenate([reference.to_numpy(), current.to_numpy()]), bins="sturges")
        ref_shares = np.histogram(reference, edges)[0] / len(reference)
        cur_shares = np.histogram(current, edges)[0] / len(current)
    else:
        _, ref_counts, cur_counts = _category_shares(reference, current)
        ref_shares, cur_shares = ref_counts / len(reference), cur_counts / len(current)
    if fill_zeroes:
        for shares in (ref_shares, cur_shares):
            smallest = shares[shares != 0].min()
            np.place(shares, shares == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
    return ref_shares, cur_shares


def _ks(reference: pd.Series, current: pd.Series, numeric: bool) -> float:
    return float(stats.ks_2samp(reference.to_numpy(), current.to_numpy())[1])


def _wasserstein(reference: pd.Series, current: pd.Series, numeric: bool) -> float:
    norm = max(float(np.std(reference.to_numpy())), 0.001)
    return float(stats.wasserstein_distance(reference.to_numpy(), current.to_numpy()) / norm)


def _psi(reference: pd.Series, current: pd.Series, numeric: bool) -> float:
    ref_shares, cur_shares = _binned_shares(reference, current, numeric, fill_zeroes=True)
    return float(np.sum((ref_shares - cur_shares) * np.log(ref_shares / cur_shares)))


def _jensenshannon(reference: pd.Series, current: pd.Series, numeric: bool) -> float:
    ref_shares, cur_shares = _binned_shares(reference, current, numeric, fill_zeroes=False)
    return float(distance.jensenshannon(ref_shares, cur_shares))


def _chisquare(reference: pd.Series, current: pd.Series, numeric: bool) -> float:
    _, ref_counts, cur_counts = _category_shares(reference, current)
    expected = ref_counts * (len(current) / len(reference))
    if np.any((expected == 0) & (cur_counts > 0)):
        return 0.0  # a category never seen in the reference: as unlikely as it gets
    return float(stats.chisquare(cur_counts, expected)[1])


STATISTICS: dict[str, Callable[[pd.Series, pd.Series, bool], float]] = {
    "ks": _ks,
    "wasserstein": _wasserstein,
    "psi": _psi,
    "jensenshannon": _jensenshannon,
    "chisquare": _chisquare,
}


def column_drift(
    reference: pd.Series, current: pd.Series, column: str, role: str, method: str, threshold: float, numeric: bool
) -> ColumnDrift:
    reference, current = _clean(reference), _clean(current)
    if reference.empty or current.empty:
        return ColumnDrift(column, role, method, float("nan"), threshold, drifted=False)
    statistic = STATISTICS[method](reference, current, numeric)
    drifted = statistic < threshold if method in P_VALUE_METHODS else statistic >= threshold
    return ColumnDrift(column, role, method, statistic, threshold, bool(drifted))


def _method_for(kind: FeatureType, spec: DriftConfig) -> str:
    return spec.numeric_method if kind is FeatureType.numeric else spec.categorical_method


def _signal_drift(reference: pd.Series, current: pd.Series, column: str, role: str, kind: FeatureType,
                  spec: DriftConfig) -> ColumnDrift:  # fmt: skip
    """Prediction or label drift: one test that decides alone, so a p-value test uses the stricter signal level."""
    method = _method_for(kind, spec)
    threshold = (
        min(spec.threshold(method), spec.signal_p_value) if method in P_VALUE_METHODS else spec.threshold(method)
    )
    return column_drift(reference, current, column, role, method, threshold, kind is FeatureType.numeric)


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    cfg: DriftlineConfig,
    reference_predictions: np.ndarray | None = None,
    current_predictions: np.ndarray | None = None,
) -> DriftResult:
    """Per-feature tests on the full batch, plus prediction and label drift; dataset drift by the configured rules."""
    spec, dataset = cfg.drift, cfg.dataset
    columns = []
    for name, kind in dataset.features.items():
        method = _method_for(kind, spec)
        numeric = kind is FeatureType.numeric
        ref_values = pd.to_numeric(reference[name], errors="coerce") if numeric else reference[name]
        cur_values = pd.to_numeric(current[name], errors="coerce") if numeric else current[name]
        columns.append(column_drift(ref_values, cur_values, name, "feature", method, spec.threshold(method), numeric))
    signal_kind = FeatureType.categorical if dataset.task is Task.multiclass else FeatureType.numeric
    if spec.prediction_drift and reference_predictions is not None and current_predictions is not None:
        columns.append(_signal_drift(pd.Series(reference_predictions), pd.Series(current_predictions),
                                     PREDICTION_COLUMN, "prediction", signal_kind, spec))  # fmt: skip
    if spec.target_drift and dataset.target in current and dataset.target in reference:
        target_kind = FeatureType.numeric if dataset.task is Task.regression else FeatureType.categorical
        columns.append(_signal_drift(reference[dataset.target], current[dataset.target], dataset.target, "target",
                                     target_kind, spec))  # fmt: skip
    features = [c for c in columns if c.role == "feature"]
    share = sum(c.drifted for c in features) / len(features)
    if len(current) < spec.min_rows:
        note = f"{len(current)} rows, fewer than drift.min_rows={spec.min_rows}: no drift verdict"
        return DriftResult(columns, share, False, [], len(reference), len(current), note)
    reasons = []
    if share >= spec.drift_share:
        drifted = ", ".join(c.column for c in features if c.drifted)
        reasons.append(f"{share:.0%} of features drifted ({drifted}), threshold {spec.drift_share:.0%}")
    reasons += [f"{c.role} {c.column!r} drifted ({c.method} = {c.statistic:.3g})" for c in columns
                if c.role != "feature" and c.drifted]  # fmt: skip
    return DriftResult(columns, share, bool(reasons), reasons, len(reference), len(current), "")


def write_report(reference: pd.DataFrame, current: pd.DataFrame, cfg: DriftlineConfig, path: Path) -> Path:
    """Evidently's data-drift report, on at most `report_sample_rows` rows of each side (it is slow on big data)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    spec, dataset = cfg.drift, cfg.dataset
    columns = dataset.feature_names

    def sample(frame: pd.DataFrame) -> pd.DataFrame:
        rows = min(len(frame), spec.report_sample_rows)
        return frame[columns].sample(n=rows, random_state=cfg.model.seed) if rows < len(frame) else frame[columns]

    definition = DataDefinition(
        numerical_columns=dataset.numeric_features, categorical_columns=dataset.categorical_features
    )
    report = Report(
        [
            DataDriftPreset(
                num_method=spec.numeric_method,
                cat_method=spec.categorical_method,
                num_threshold=spec.threshold(spec.numeric_method),
                cat_threshold=spec.threshold(spec.categorical_method),
                drift_share=spec.drift_share,
            )
        ]
    )
    snapshot = report.run(
        current_data=Dataset.from_pandas(sample(current), data_definition=definition),
        reference_data=Dataset.from_pandas(sample(reference), data_definition=definition),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path
