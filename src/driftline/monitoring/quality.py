"""Data-quality drift: how a batch's nulls, categories and value ranges moved from what training saw."""

from __future__ import annotations

from dataclasses import dataclass

from driftline.config import DriftlineConfig
from driftline.monitoring.drift_stats import CategoricalColumn, ColumnSummary
from driftline.monitoring.reference import ReferenceStats, reference_column


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


def data_quality(
    reference: ReferenceStats, current: dict[str, ColumnSummary], rows: int, cfg: DriftlineConfig
) -> list[QualityCheck]:
    """Per feature, from the batch's column summaries (`rows` rows): null share vs training's, share of categories
    training never saw, share of numbers outside the training min/max. Missing and ±inf count as null, as they do
    for the drift statistics."""
    rules, checks = cfg.drift.data_quality, []
    for name, kind in cfg.dataset.features.items():
        known, batch = reference_column(reference, name, kind), current[name]
        reference_nulls = 1 - known.rows / reference.rows if reference.rows else 0.0
        nulls = 1 - batch.rows / rows if rows else 0.0
        increase = rules.max_null_rate_increase
        checks.append(
            QualityCheck(
                name, NULL_RATE, reference_nulls, nulls, reference_nulls + increase, nulls - reference_nulls > increase
            )
        )
        if isinstance(known, CategoricalColumn):
            unseen = batch.counts[~batch.counts.index.isin(known.counts.index)].sum() / batch.rows if batch.rows else 0
            checks.append(
                QualityCheck(
                    name,
                    UNSEEN_CATEGORIES,
                    0.0,
                    float(unseen),
                    rules.max_unseen_category_share,
                    bool(unseen > rules.max_unseen_category_share),
                )
            )
        elif known.rows and batch.rows:
            low, high = known.values[0], known.values[-1]
            outside = batch.values.searchsorted(low, "left") + batch.rows - batch.values.searchsorted(high, "right")
            share = float(outside / batch.rows)
            checks.append(
                QualityCheck(
                    name, OUT_OF_RANGE, 0.0, share, rules.max_out_of_range_share, share > rules.max_out_of_range_share
                )
            )
    return checks
