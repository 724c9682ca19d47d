"""Config of performance estimation before labels: the estimator fitted at training, its band and its trust."""

from __future__ import annotations

from pydantic import Field, model_validator

from driftline.config.base import Section


class EstimationConfig(Section):
    enabled: bool = Field(
        True,
        description="Fit an estimator of the primary metric on the holdout at training (CBPE for classifiers, DLE for "
        "regressors) and report the estimated metric of every monitored batch before its labels come.",
    )
    min_rows: int = Field(
        100,
        ge=10,
        description="The fewest rows a batch needs for an estimate; a smaller batch gets a note and no number. Also "
        "the smallest holdout chunk the estimator is checked on at training.",
    )
    band_sigmas: float = Field(
        3.0,
        gt=0,
        description="Half-width of the confidence band in sampling errors of the batch's size (NannyML's 3: about "
        "99.7 % of batches of a well-estimated model fall inside).",
    )
    holdout_chunks: int = Field(
        5,
        ge=2,
        description="Chunks the holdout is cut into to check the estimator at training: each chunk is estimated by an "
        "estimator fitted on the other chunks and compared with its realized metric (fewer chunks when the holdout "
        "holds fewer than this many times `min_rows`).",
    )
    trust_window: int = Field(
        3, ge=1, description="The last labeled batches looked at to decide that an estimator is no longer trusted."
    )
    untrusted_after: int = Field(
        2,
        ge=1,
        description="An estimator becomes untrusted when this many of the last `trust_window` labeled batches have "
        "their realized metric outside the band; at training, when this many holdout chunks do.",
    )
    trusted_again_after: int = Field(
        3, ge=1, description="Labeled batches in a row inside the band that make an untrusted estimator trusted again."
    )
    prior_shift_min: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="The smallest change of a class's share (estimated batch prior against the holdout's) that the "
        "label-shift check flags.",
    )

    @model_validator(mode="after")
    def _untrusted_fits_window(self) -> EstimationConfig:
        if self.untrusted_after > self.trust_window:
            raise ValueError(
                f"untrusted_after ({self.untrusted_after}) must be at most trust_window ({self.trust_window})"
            )
        return self
