"""Config of A/B tests: the unit a test randomizes, where business outcomes land, and the statistics' settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from driftline.config.base import Section


class AbConfig(Section):
    """A version tried against the champion on a share of the units, decided on business outcomes (docs/serving.md)."""

    unit_column: str | None = Field(
        None, description="Column naming the unit a test randomizes (a customer). none: dataset.id_column."
    )
    outcomes_folder: Path | None = Field(
        None,
        description="Where outcome files (CSV or Parquet: the unit column and metric columns) arrive. "
        "none: `<workspace>/outcomes/<model_name>`.",
    )
    aggregation: dict[str, Literal["sum", "mean"]] = Field(
        default_factory=dict,
        description="How a metric's rows of one unit are combined, per metric column (e.g. revenue: sum). A metric "
        "not named here: sum.",
    )
    lower_is_better: list[str] = Field(
        default_factory=list,
        description="Metric columns where less is better (churn, cost, latency): B wins when its mean is lower.",
    )
    alpha: float = Field(
        0.05, gt=0, lt=0.5, description="Error rate of the sequential test: a false 'wins' at most this often."
    )
    mixing_variance: float | None = Field(
        None,
        gt=0,
        description="The mSPRT's mixing variance (tau²) of the effect, in the metric's units squared. none: the "
        "statistics' default, tuned to the effect of interest.",
    )
    effect_of_interest: float | None = Field(
        None,
        gt=0,
        description="The smallest difference of means worth detecting (metric units): tunes the default mixing "
        "variance and the minimum detectable effect shown. none: derived from the data.",
    )
    pre_period_column: str | None = Field(
        None,
        description="A column of the outcome files holding each unit's value of the metric before the test "
        "(CUPED: variance reduced by this covariate). none: no CUPED.",
    )
    max_days: int = Field(
        28, ge=1, description="Default maximum duration of a test in days (`driftline ab start --max-days`)."
    )
    auto_promote: bool = Field(
        False,
        description="The scheduled ab-analysis acts on the verdict: B wins promotes B (recorded, the test as "
        "evidence), A wins ends the test keeping the champion. false: it reports, a person runs `driftline ab stop`.",
    )
