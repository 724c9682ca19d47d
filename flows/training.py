"""Flow: validate training data, train a challenger, judge it at the gate, promote it if it passes."""

from __future__ import annotations

from driftline.flows.params import TrainingOutcome, TrainParams
from driftline.flows.steps import ask_approval
from driftline.tasks.concurrency import one_training_at_a_time
from driftline.tasks.data import archive_batch, load_batch, retraining_window
from driftline.tasks.evaluation import evaluate_gate
from driftline.tasks.governance import publish_model_card, record_approval
from driftline.tasks.registry import champion_classes, hold_for_rollout, promote
from driftline.tasks.training import train_challenger
from driftline.tasks.validation import validate_batch
from prefect import flow

from driftline.config import load_config


@flow(name="training")
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
        if decision.promote and cfg.rollout.mode != "off" and decision.champion_version:
            decision = hold_for_rollout(candidate.ref, cfg, decision)  # live batches decide, shadow or canary
        if decision.promote:
            promote(candidate.ref, cfg, decision)
        publish_model_card(candidate, decision, approval, cfg)
    return TrainingOutcome.of(candidate.ref.version, decision, training_rows=sum(b.rows for b in batches))
