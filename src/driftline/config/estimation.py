"""Config of performance estimation before labels: the estimator fitted at training, its band and its trust."""

from __future__ import annotations

from pydantic import Field

from driftline.config.base import Section


class EstimationConfig(Section):
    enabled: bool = Field(
        True,
        description="Fit an estimator of the primary metric on the holdout at training (CBPE for classifiers, DLE for "
        "regressors) and report the estimated metric of every monitored batch before its labels come.",
    )
