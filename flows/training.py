"""Flow: validate training data, train a challenger, judge it at the gate, promote it if it passes."""

from __future__ import annotations

from prefect import flow
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run

from driftline.config import DriftlineConfig, load_config
from driftline.evaluation.gate import GateDecision
from driftline.evaluation.markdown import gate_markdown
from driftline.fleet.flow_runs import record_flow_run
from driftline.flows.params import ApprovalInput, TrainingOutcome, TrainParams
from driftline.registry.audit_events import Approval
from driftline.tasks.concurrency import one_training_at_a_time
from driftline.tasks.data import archive_batch, load_batch, retraining_window
from driftline.tasks.evaluation import evaluate_gate
from driftline.tasks.governance import publish_model_card, record_approval
from driftline.tasks.kpis import record_training_run
from driftline.tasks.registry import (
    champion_classes,
    hold_during_ab_test,
    hold_for_rollout,
    promote,
    running_ab_test,
)
from driftline.tasks.training import train_challenger
from driftline.tasks.validation import validate_batch


@flow(
    name="training",
    # each finished run goes to driftline's own record, so `driftline kpis` needs no Prefect server to count them
    # and to the fleet's record of every flow run, which `driftline fleet status` reads
    on_completion=[record_training_run, record_flow_run],
    on_failure=[record_training_run, record_flow_run],
    on_crashed=[record_training_run, record_flow_run],
)
def training(params: TrainParams) -> TrainingOutcome:
    cfg = load_config(params.config)
    with one_training_at_a_time(cfg):  # a second training of this model waits: the gate sees a stable champion
        known_classes = champion_classes(cfg)  # the labels new data may hold (None: no champion yet)
        if params.data:
            batches = [load_batch(path, cfg) for path in params.data]
            for batch in batches:
                validate_batch(batch, cfg, profile=None, for_training=True, trained_classes=known_classes)
            archived = [archive_batch(batch, cfg) for batch in batches]
        else:
            archived, batches = retraining_window(cfg, known_classes)
        candidate = train_challenger(batches, archived, cfg, params.reason)
        decision = evaluate_gate(candidate, cfg)
        approval = None
        if decision.promote and cfg.gate.mode == "manual":
            approval = ask_approval(candidate.ref.version, decision, cfg)  # the run pauses until a person answers
            decision = record_approval(candidate, decision, approval, cfg)
        testing = running_ab_test(cfg)
        if decision.promote and testing is not None:  # arm A of a running A/B test stays champion until it ends
            decision = hold_during_ab_test(candidate.ref, cfg, decision, testing)
        if decision.promote and cfg.rollout.mode != "off" and decision.champion_version:
            decision = hold_for_rollout(candidate.ref, cfg, decision)  # live batches decide, shadow or canary
        if decision.promote:
            promote(candidate.ref, cfg, decision)
        publish_model_card(candidate, decision, approval, cfg)
    return TrainingOutcome.of(candidate.ref.version, decision, training_rows=sum(b.rows for b in batches))


APPROVAL_POLL_SECONDS = 5
TIMEOUT_APPROVER = "timeout"


def ask_approval(candidate_version: str, decision: GateDecision, cfg: DriftlineConfig) -> Approval:
    """Pause this run until a person answers in the Prefect UI (gate.mode manual); no answer in time rejects."""
    timeout = cfg.gate.approval_timeout_seconds
    question = ApprovalInput.with_initial_data(
        description=f"Approve {cfg.registry.model_name} v{candidate_version}? The automatic checks passed.\n\n"
        + gate_markdown(decision, candidate_version),
        approve=False,
    )
    try:
        answer = pause_flow_run(wait_for_input=question, timeout=timeout, poll_interval=APPROVAL_POLL_SECONDS)
    except FlowPauseTimeout:
        return Approval(False, TIMEOUT_APPROVER, f"no answer within {timeout} s", timed_out=True)
    return Approval(answer.approve, answer.approver, answer.reason)
