"""Slices and fairness: the primary metric per value of a column, positive rates per group."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from driftline.config import DriftlineConfig
from driftline.errors import ConfigError
from driftline.evaluation.measure import primary_metric_of, subset
from driftline.modeling.pipeline import Predictions


@dataclass(frozen=True)
class SliceResult:
    """The primary metric of both models on the holdout rows where `column == value`."""

    column: str
    value: str
    rows: int
    challenger: float | None
    champion: float | None
    decides: bool  # enough rows (gate.slices.min_rows) and both values defined

    @property
    def name(self) -> str:
        return f"{self.column}={self.value}"


@dataclass(frozen=True)
class GroupRate:
    group: str
    rows: int
    positive_rate: float


@dataclass(frozen=True)
class FairnessResult:
    """Positive-prediction rate of the challenger per group; disparate impact = smallest rate / largest rate."""

    attribute: str
    groups: list[GroupRate]
    disparate_impact: float | None  # None: fewer than two groups with enough rows, or no positive predictions
    minimum: float


def require_columns(holdout: pd.DataFrame, columns: list[str], field_name: str, cfg: DriftlineConfig) -> None:
    missing = [column for column in columns if column not in holdout.columns]
    if missing:
        raise ConfigError(
            f"{cfg.source or 'config'}: {field_name} names columns {missing} that the training data lacks; "
            "fix the names or add the columns to the data"
        )


def slice_metrics(
    holdout: pd.DataFrame, challenger: Predictions, champion: Predictions | None, cfg: DriftlineConfig
) -> list[SliceResult]:
    """The primary metric per value of each gate.slices column, for both models, on the same holdout rows."""
    settings = cfg.gate.slices
    require_columns(holdout, settings.columns, "gate.slices.columns", cfg)
    truth = holdout[cfg.dataset.target].reset_index(drop=True)
    results = []
    for column in settings.columns:
        values = holdout[column].astype("string").fillna("(missing)").to_numpy()
        for value in sorted(set(values)):
            mask = values == value
            mine = primary_metric_of(subset(challenger, mask), truth[mask], cfg)
            theirs = primary_metric_of(subset(champion, mask), truth[mask], cfg) if champion is not None else None
            decides = int(mask.sum()) >= settings.min_rows and mine is not None and theirs is not None
            results.append(SliceResult(column, str(value), int(mask.sum()), mine, theirs, decides))
    return results


def fairness_of(holdout: pd.DataFrame, challenger: Predictions, cfg: DriftlineConfig) -> FairnessResult | None:
    """Positive-prediction rate per group of gate.fairness.attribute (binary task: positive = the second class)."""
    settings = cfg.gate.fairness
    if settings.attribute is None:
        return None
    require_columns(holdout, [settings.attribute], "gate.fairness.attribute", cfg)
    groups = holdout[settings.attribute].astype("string").fillna("(missing)").to_numpy()
    positive = challenger.labels == challenger.classes[1]
    rates = [
        GroupRate(str(group), int((groups == group).sum()), float(positive[groups == group].mean()))
        for group in sorted(set(groups))
    ]
    counted = [rate.positive_rate for rate in rates if rate.rows >= settings.min_rows]
    ratio = min(counted) / max(counted) if len(counted) >= 2 and max(counted) > 0 else None
    return FairnessResult(settings.attribute, rates, ratio, settings.min_disparate_impact)
