"""Steps several flows share, named so each flow still reads like its diagram."""

from __future__ import annotations

from pathlib import Path

from driftline.flows.params import ApprovalInput, BatchParams
from driftline.tasks.data import load_batch
from driftline.tasks.registry import load_champion
from driftline.tasks.validation import validate_batch, validate_file
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run

from driftline.config import DriftlineConfig, load_config
from driftline.data.chunking import DataFile
from driftline.data.loading import DataBatch
from driftline.evaluation.gate import GateDecision
from driftline.evaluation.markdown import gate_markdown
from driftline.monitoring.drift import DriftResult
from driftline.registry import Champion
from driftline.registry.audit_events import Approval


def admit(path: str | Path, cfg: DriftlineConfig, champion: Champion) -> DataBatch:
    """A new batch loaded and validated against the champion's profile, its labels (if any) against the task and the
    champion's classes; a rejected file is quarantined (raises) before anything archives or scores it."""
    batch = load_batch(path, cfg)
    classes = champion.reference.trained_classes(cfg.dataset)
    validate_batch(batch, cfg, champion.reference.profile, for_training=False, trained_classes=classes)
    return batch


def admit_file(path: str | Path, cfg: DriftlineConfig, champion: Champion) -> DataFile:
    """A file to score, read and validated chunk by chunk against the champion's profile; never held whole."""
    reference = champion.reference
    return validate_file(path, cfg, reference.profile, reference.trained_classes(cfg.dataset))


def admit_batch(params: BatchParams) -> tuple[DriftlineConfig, Champion, DataBatch]:
    """Config, champion, then the new batch admitted.

    Raises DataRejected (the file is quarantined, the flow run fails) or NoChampion before anything is written.
    """
    cfg = load_config(params.config)
    champion = load_champion(cfg)
    return cfg, champion, admit(params.data, cfg, champion)


def retraining_reason(drift: DriftResult, batch_name: str, cfg: DriftlineConfig) -> str | None:
    """Why a monitored batch starts a retrain: drift (with drift.retrain) or every batch (retraining.every_batch)."""
    if drift.detected and cfg.drift.retrain:
        return f"drift in {batch_name}"
    if cfg.retraining.every_batch:
        return f"every batch: {batch_name}"
    return None


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
