"""Typed flow parameters (the Prefect UI renders them as forms) and the summaries flows return."""

from __future__ import annotations

from pydantic import BaseModel, Field

from driftline.data import DataBatch
from driftline.drift import DriftResult
from driftline.evaluation import GateDecision
from tasks.scoring import ScoredBatch

DEFAULT_CONFIG = "configs/demo.yaml"


class TrainParams(BaseModel):
    config: str = Field(DEFAULT_CONFIG, description="Path of the driftline config (YAML).")
    data: list[str] = Field(
        default_factory=list,
        description="CSV/Parquet files to train on. Leave empty to use the retraining window of the archive.",
    )
    reason: str = Field("manual", description="Why this training runs; recorded with the model version.")


class BatchParams(BaseModel):
    config: str = Field(DEFAULT_CONFIG, description="Path of the driftline config (YAML).")
    data: str = Field(description="The new data file (CSV or Parquet).")
    output: str | None = Field(None, description="Where to write predictions; default: the workspace outputs/.")


class TrainingOutcome(BaseModel):
    candidate_version: str
    verdict: str
    reasons: list[str]
    metric: str
    challenger_value: float | None
    champion_value: float | None
    champion_version: str | None = Field(description="Who holds `champion` after this run.")
    training_rows: int

    @classmethod
    def of(cls, candidate_version: str, decision: GateDecision, training_rows: int) -> TrainingOutcome:
        return cls(
            candidate_version=candidate_version,
            verdict=decision.verdict,
            reasons=decision.reasons,
            metric=decision.metric,
            challenger_value=decision.challenger_metrics.get(decision.metric),
            champion_value=(decision.champion_metrics or {}).get(decision.metric),
            champion_version=candidate_version if decision.promote else decision.champion_version,
            training_rows=training_rows,
        )


class ScoringOutcome(BaseModel):
    batch: str
    rows: int
    output: str
    model_version: str

    @classmethod
    def of(cls, batch: DataBatch, scored: ScoredBatch) -> ScoringOutcome:
        return cls(batch=batch.name, rows=scored.rows, output=str(scored.output), model_version=scored.model_version)


class MonitoringOutcome(BaseModel):
    batch: str
    fingerprint: str
    drift_detected: bool
    drift_reasons: list[str]
    drifted_features: list[str]
    retraining: TrainingOutcome | None = None

    @classmethod
    def of(cls, batch: DataBatch, drift: DriftResult, retraining: TrainingOutcome | None) -> MonitoringOutcome:
        return cls(
            batch=batch.name,
            fingerprint=batch.fingerprint,
            drift_detected=drift.detected,
            drift_reasons=drift.reasons,
            drifted_features=drift.drifted_features,
            retraining=retraining,
        )


class RunSummary(BaseModel):
    """What one new batch did in the continuous-training loop."""

    scoring: ScoringOutcome
    monitoring: MonitoringOutcome
