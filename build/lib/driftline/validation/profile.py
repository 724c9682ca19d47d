"""What the training data looked like (numeric ranges, known categories): the reference for range and set checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from driftline.config import DatasetConfig


@dataclass(frozen=True)
class ReferenceProfile:
    """What the training data looked like: numeric ranges and known categories, for range and set checks."""

    numeric_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
        return cls(
            numeric_ranges={k: (float(lo), float(hi)) for k, (lo, hi) in data.get("numeric_ranges", {}).items()},
            categories={k: list(v) for k, v in data.get("categories", {}).items()},
        )


def learn_profile(frame: pd.DataFrame, dataset: DatasetConfig) -> ReferenceProfile:
    ranges = {}
    for column in dataset.numeric_features:
        values = pd.to_numeric(frame[column], errors="coerce")
        values = values[np.isfinite(values)]
        if len(values):
            ranges[column] = (float(values.min()), float(values.max()))
    categories = {
        column: sorted(str(v) for v in frame[column].dropna().unique()) for column in dataset.categorical_features
    }
    return ReferenceProfile(numeric_ranges=ranges, categories=categories)
