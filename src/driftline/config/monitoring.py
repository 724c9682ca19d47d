"""Sections about monitoring: drift methods and thresholds, data quality, delayed labels, the Evidently dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from driftline.config.base import (
    CALIBRATED,
    DEFAULT_DRIFT_THRESHOLDS,
    P_VALUE_DRIFT_METHODS,
    CategoricalDriftMethod,
    NumericDriftMethod,
    Section,
)


class DataQualityConfig(Section):
    """Data-quality drift: how a batch's nulls, categories and value ranges moved from what training saw."""

    max_null_rate_increase: float = Field(
        0.02, ge=0, le=1, description="Largest rise of a feature's null share over its training null share."
    )
    max_unseen_category_share: float = Field(
        0.01, ge=0, le=1, description="Largest share of a categorical feature's values that training never saw."
    )
    max_out_of_range_share: float = Field(
        0.02, ge=0, le=1, description="Largest share of a numeric feature's values outside the training min/max."
    )
    counts_as_drift: bool = Field(
        False,
        description="A quality breach also makes dataset drift (and so a retrain). Off: retraining on a broken "
        "upstream export does not fix it; the breach is reported, logged and notified instead.",
    )


class CalibrationConfig(Section):
    """Calibrated thresholds: each feature's threshold from its statistic on chunks of the training rows."""

    batch_rows: int | None = Field(
        None,
        ge=1,
        description="Rows per chunk: the one batch size the thresholds are for. none: thresholds for every size from "
        "drift.min_rows to half the training rows (each twice the last), and each batch judged at its own size.",
    )
    quantile: float = Field(
        0.99,
        ge=0.5,
        le=1,
        description="Where in the chunks' spread the threshold sits: 0.99 lets about 1 chunk in 100 cross it. A "
        "calibrated threshold is never more sensitive than the method's fixed one.",
    )


class DriftConfig(Section):
    numeric_method: NumericDriftMethod = Field(
        "ks", description="Test for numeric features; `auto` chooses per column by size, as Evidently does."
    )
    categorical_method: CategoricalDriftMethod = Field(
        "chisquare", description="Test for categorical features; `auto` chooses per column by size."
    )
    thresholds: Literal["calibrated"] | dict[str, float | Literal["calibrated"]] = Field(
        default_factory=dict,
        description="Per-method override: p-value under which ks/chisquare/z call drift, distance over which the "
        "others do, or calibrated (each feature's threshold derived from the training data); or calibrated for "
        "every method. Defaults are Evidently's: p-value 0.05 for ks/chisquare/z, distance 0.1 for the others.",
    )
    calibration: CalibrationConfig = Field(
        CalibrationConfig(), description="How calibrated thresholds are derived from the training rows."
    )
    drift_share: float = Field(0.3, gt=0, le=1, description="Share of drifted features that makes dataset drift.")
    min_rows: int = Field(50, ge=1, description="Smaller batches get no drift verdict: too few rows to tell.")
    prediction_drift: bool = Field(True, description="Drift of the champion's predictions also counts as drift.")
    signal_p_value: float = Field(
        0.001,
        gt=0,
        lt=1,
        description="p-value under which prediction or label drift alone counts (one test deciding alone: stricter).",
    )
    target_drift: bool = Field(True, description="When a batch carries labels, drift of the label counts too.")
    retrain: bool = Field(True, description="On drift, train on the retraining window and let the gate decide.")
    trigger: Literal["drift", "estimated", "either"] = Field(
        "drift",
        description="What starts a retrain before labels: the drift alarm; the estimated metric (when even its band's "
        "upper edge is more than labels.max_degradation below the champion's value at promotion, with a trusted "
        "estimator); or either (the estimate when trusted, the drift alarm otherwise).",
    )
    report_sample_rows: int = Field(50_000, ge=100, description="Rows per side sampled for the Evidently HTML report.")
    reference_sample_rows: int = Field(
        200_000, ge=100, description="Training rows kept with each model version as the drift reference."
    )
    data_quality: DataQualityConfig = Field(
        DataQualityConfig(), description="Null, unseen-category and out-of-range drift against training."
    )

    @field_validator("thresholds", mode="before")
    @classmethod
    def _thresholds_shape(cls, value: object) -> object:
        """One readable error for a wrong shape, instead of one per member of the union."""
        if value == CALIBRATED:
            return value
        if not isinstance(value, dict):
            raise ValueError(f"must be {CALIBRATED!r} or a mapping of method to threshold (a number or {CALIBRATED!r})")
        parsed = {}
        for method, threshold in value.items():
            try:
                parsed[method] = threshold if threshold == CALIBRATED else float(threshold)
            except (TypeError, ValueError):
                raise ValueError(f"{method}: must be a number or {CALIBRATED!r}, got {threshold!r}") from None
        return parsed

    @model_validator(mode="after")
    def _thresholds_name_methods(self) -> DriftConfig:
        unknown = set(self._per_method) - set(DEFAULT_DRIFT_THRESHOLDS)
        if unknown:
            raise ValueError(
                f"thresholds has unknown methods {sorted(unknown)}; known: {sorted(DEFAULT_DRIFT_THRESHOLDS)}"
            )
        return self

    @property
    def _per_method(self) -> dict[str, float | str]:
        return dict.fromkeys(DEFAULT_DRIFT_THRESHOLDS, CALIBRATED) if self.thresholds == CALIBRATED else self.thresholds

    def calibrated(self, method: str) -> bool:
        """Whether this method's threshold is derived per feature from the training data."""
        return self._per_method.get(method) == CALIBRATED

    @property
    def any_calibrated(self) -> bool:
        return CALIBRATED in self._per_method.values()

    def threshold(self, method: str, signal: bool = False) -> float:
        """The configured threshold, else the method's default (also the floor of a calibrated one). Prediction and
        label drift (`signal`): one test that decides alone, so a p-value test uses the stricter signal level."""
        configured = self._per_method.get(method, CALIBRATED)
        threshold = DEFAULT_DRIFT_THRESHOLDS[method] if configured == CALIBRATED else float(configured)
        return min(threshold, self.signal_p_value) if signal and method in P_VALUE_DRIFT_METHODS else threshold


class MonitoringConfig(Section):
    settle_seconds: float = Field(
        30, ge=0, description="Prediction-log files younger than this wait for the next monitoring run."
    )


class LabelsConfig(Section):
    """Delayed ground truth: label files joined to the prediction log by id (see docs/monitoring.md)."""

    enabled: bool = Field(
        False,
        description="Join label files to the logged predictions and measure the champion's real performance; needs "
        "dataset.id_column.",
    )
    folder: Path | None = Field(
        None, description="Where label files (CSV or Parquet) arrive. none: `<workspace>/labels/<model_name>`."
    )
    id_column: str | None = Field(None, description="Row id in the label files. none: dataset.id_column.")
    label_column: str | None = Field(None, description="Ground truth in the label files. none: dataset.target.")
    max_degradation: float = Field(
        0.05,
        gt=0,
        description="How much worse than at promotion (absolute, on the primary metric) the champion may get on "
        "labeled predictions before it counts as degraded.",
    )
    min_rows: int = Field(200, ge=1, description="Fewer labeled predictions of the champion give no verdict.")
    retrain: bool = Field(True, description="Run training on the retraining window when the champion degraded.")
    fairness_counts_as_degradation: bool = Field(
        False,
        description="A slice of gate.slices worse than at promotion by more than its tolerance, or a disparate "
        "impact under gate.fairness.min_disparate_impact, on a newly labeled batch also counts as degradation "
        "(retrain, automatic rollback). Off: it is logged and notified only.",
    )


class DashboardConfig(Section):
    workspace: Path | None = Field(
        None,
        description="The Evidently workspace every monitoring run adds its snapshot to, which make dashboard serves. "
        "none: `<workspace>/evidently`.",
    )
    enabled: bool = Field(True, description="Add every monitoring run's snapshot to the Evidently workspace.")
