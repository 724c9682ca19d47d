"""What governance writes to a candidate's registered version: the approver's answer and its model card."""

from __future__ import annotations

from driftline.config import DriftlineConfig
from driftline.evaluation.gate import GateDecision
from driftline.governance.model_card import model_card
from driftline.registry import Registry
from driftline.registry.audit_events import Approval
from driftline.steps.challenger import TrainedCandidate


def record_approval(
    candidate: TrainedCandidate, decision: GateDecision, approval: Approval, cfg: DriftlineConfig
) -> GateDecision:
    """The answer goes to the version and the audit log; a rejection (or a timeout) refuses the challenger."""
    Registry(cfg).record_approval(candidate.ref, approval)
    if approval.approved:
        return decision
    return decision.overruled(f"{approval.action} by {approval.approver}: {approval.reason}")


def write_model_card(
    candidate: TrainedCandidate, decision: GateDecision, approval: Approval | None, cfg: DriftlineConfig
) -> str:
    """The card of the candidate's version, from its recorded lineage, written to the version (description +
    model_card.md); returned for the person reading the run."""
    registry = Registry(cfg)
    version = candidate.ref.version
    lineage = next(info for info in registry.versions() if info.version == version).to_dict()
    card = model_card(cfg, version, lineage, decision, approval)
    registry.log_model_card(candidate.ref, card)
    return card
