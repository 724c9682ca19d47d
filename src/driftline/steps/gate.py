"""The challenger judged against the champion on its own holdout; the decision and importances recorded in MLflow."""

from __future__ import annotations

from dataclasses import dataclass

from driftline.config import DriftlineConfig
from driftline.evaluation.gate import GateDecision, judge
from driftline.registry import GATE_ARTIFACT, Registry
from driftline.registry.audit_events import Actor
from driftline.steps.challenger import TrainedCandidate


@dataclass(frozen=True)
class RecordedGate:
    """The gate's decision on a challenger, as recorded, and where MLflow shows it (None: no address known)."""

    decision: GateDecision
    run_url: str | None
    version_url: str | None
    gate_url: str | None


def judge_challenger(candidate: TrainedCandidate, cfg: DriftlineConfig, actor: Actor) -> RecordedGate:
    """Both models scored on the challenger's holdout; the decision goes to the version, the audit log and its run."""
    registry = Registry(cfg)
    champion = registry.champion()
    trained = candidate.trained
    decision = judge(
        cfg,
        trained.model,
        trained.holdout,
        trained.metrics,
        registry.load_model(champion) if champion is not None else None,
        champion.version if champion else None,
    )
    registry.record_gate(candidate.ref, decision, actor)
    registry.log_importances(candidate.ref, decision.explanation.challenger)
    version, run_id = candidate.ref.version, candidate.ref.run_id
    return RecordedGate(
        decision, registry.run_url(run_id), registry.version_url(version), registry.artifact_url(run_id, GATE_ARTIFACT)
    )
