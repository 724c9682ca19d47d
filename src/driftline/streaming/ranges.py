"""Ranges and unseen categories of one micro-batch, against the champion's training profile, measured as batch
validation measures them (`validation.expectations.build_expectations`: the range widened by
`validation.range_tolerance`, the categories seen in training)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from driftline.config import DatasetConfig, ValidationConfig
from driftline.validation.profile import ReferenceProfile


@dataclass(frozen=True)
class BatchRanges:
    """Per column: how many rows of the micro-batch fell outside the training range, or held an unseen category."""

    rows: int
    out_of_range: dict[str, int] = field(default_factory=dict)
    unseen: dict[str, int] = field(default_factory=dict)

    def over_limits(self, rules: ValidationConfig) -> list[str]:
        """The columns whose share is over what a batch file may have (what would fail its validation)."""
        if not self.rows:
            return []
        over = [c for c, n in self.out_of_range.items() if n / self.rows > rules.max_out_of_range_fraction]
        return over + [c for c, n in self.unseen.items() if n / self.rows > rules.max_unseen_category_fraction]

    def summary(self) -> str:
        parts = [f"{column} {count} out of range" for column, count in self.out_of_range.items()]
        parts += [f"{column} {count} unseen" for column, count in self.unseen.items()]
        return f"{self.rows} rows: " + (", ".join(parts) if parts else "all within the training ranges")


def measure(
    columns: Mapping[str, Sequence], profile: ReferenceProfile, dataset: DatasetConfig, rules: ValidationConfig
) -> BatchRanges:
    """The micro-batch's rows (its columns: numbers, and text or None) outside the profile's ranges (widened by the
    tolerance) and with unseen categories; missing values are counted by neither (nulls are a type check, made per
    message)."""
    out_of_range, unseen = {}, {}
    for column in dataset.numeric_features:
        if column not in profile.numeric_ranges:
            continue
        values = np.asarray(columns[column], dtype=float)
        low, high = profile.numeric_ranges[column]
        width = (high - low) or max(abs(high), 1.0)  # as build_expectations: a constant scales by its size
        margin = width * rules.range_tolerance
        count = int(np.count_nonzero((values < low - margin) | (values > high + margin)))
        if count:
            out_of_range[column] = count
    for column in dataset.categorical_features:
        if column not in profile.categories:
            continue
        seen = set(profile.categories[column])
        count = sum(1 for value in columns[column] if type(value) is str and value not in seen)
        if count:
            unseen[column] = count
    return BatchRanges(len(columns[dataset.feature_names[0]]), out_of_range, unseen)
