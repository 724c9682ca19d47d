"""Sections about governance: explainability, automatic rollback, shadow/canary rollout, the model card."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from driftline.config.base import Section


class ExplainabilityConfig(Section):
    sample_rows: int = Field(1000, ge=50, description="Holdout rows permutation importance is computed on.")
    repeats: int = Field(3, ge=1, description="Shuffles per feature.")
    top_features: int = Field(3, ge=1, description="How many top features are compared with the champion's.")
    min_top_overlap: float = Field(
        0.5, ge=0, le=1, description="Share of the champion's top features the challenger must share, else flagged."
    )


class AutoRollbackConfig(Section):
    enabled: bool = Field(False, description="Roll a new champion back when its live figures degrade.")
    watch_days: float = Field(14, gt=0, description="How long after its promotion a champion is watched.")
    prediction_drift: bool = Field(
        True, description="Prediction drift against the figures at promotion (past drift.signal_p_value) degrades."
    )
    max_metric_drop: float = Field(
        0.05, gt=0, description="Live primary metric worse than at promotion by more than this degrades (labels)."
    )


class GovernanceConfig(Section):
    audit_experiment: str | None = Field(
        None, description="MLflow experiment holding the append-only audit log. none: `<experiment>-audit`."
    )
    explainability: ExplainabilityConfig = Field(
        ExplainabilityConfig(),
        description="Permutation importance on the holdout; a change of the top features is flagged.",
    )
    auto_rollback: AutoRollbackConfig = Field(
        AutoRollbackConfig(), description="Roll a new champion back when its live figures degrade."
    )
    reproduce_tolerance: float = Field(
        1e-6, ge=0, description="driftline reproduce: largest allowed difference per holdout metric."
    )


class RolloutConfig(Section):
    """A challenger that passed its gate tried on live batches before it is promoted (docs/governance.md)."""

    mode: Literal["off", "shadow", "canary"] = Field(
        "off",
        description="off: a challenger that passes its gate is promoted at once. shadow: it also scores every batch "
        "row, only the champion's answers are served, and it is promoted after `shadow_batches` labeled batches "
        "without regression. canary: it answers `canary_share` of the rows (by id hash) and is promoted, held or "
        "dropped by a test of the two arms once labels arrive.",
    )
    shadow_batches: int = Field(
        3,
        ge=1,
        description="Labeled shadow batches in which the challenger is no worse than the champion, needed "
        "to promote it (one worse batch drops it).",
    )
    canary_share: float = Field(0.1, gt=0, lt=1, description="Share of rows (by id hash) the challenger answers.")
    tolerance: float = Field(
        0.0,
        ge=0,
        description="How much worse than the champion (primary metric, or accuracy for the canary test "
        "of a classifier) the challenger may be and still count as no regression.",
    )
    min_rows: int = Field(
        200, ge=1, description="Labeled rows needed per shadow batch, and per canary arm, before a verdict."
    )


class ModelCardConfig(Section):
    owner: str = Field("unassigned", description="Team or person accountable for the model (model card).")
    intended_use: str = Field("", description="What the model is for and for whom. Empty: the config's description.")
    limitations: list[str] = Field(default_factory=list, description="Known limitations, one line each.")
    risk_tier: Literal["low", "medium", "high"] | None = Field(
        None, description="The risk assessed for the model's use (ISO/IEC 42001 A.5). none: not assessed yet."
    )
    lifecycle_stage: Literal["development", "validation", "production", "retired"] = Field(
        "production", description="Where the model is in its life cycle (what the inventory lists)."
    )
    review_date: date | None = Field(
        None, description="When the model is next reviewed (YYYY-MM-DD); past it, the fleet inventory flags it stale."
    )
