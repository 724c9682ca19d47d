"""The commands of the loop: train, score, monitor, labels, run, and the demo that runs them all."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from driftline.cli.render import console, demo_summary, describe_training, estimate_brief, estimate_lines, fmt
from driftline.config import DriftlineConfig, load_config
from driftline.errors import ConfigError, DataRejected, GateRefused

if TYPE_CHECKING:
    from driftline.flows.params import MonitoringOutcome, TrainingOutcome


def cmd_train(args: argparse.Namespace) -> None:
    from driftline.flows.params import TrainParams
    from driftline.flows.training import training

    with console.status("training: validate → train → gate → promote"):
        outcome = training(TrainParams(config=args.config, data=args.data, reason=args.reason))
    console.print(f"trained {describe_training(outcome)}; champion: v{outcome.champion_version}")
    if outcome.verdict != "promoted":
        raise GateRefused(f"gate refused v{outcome.candidate_version}: {'; '.join(outcome.reasons)}")


def cmd_score(args: argparse.Namespace) -> None:
    from driftline.flows.batch_scoring import batch_scoring
    from driftline.flows.params import ScoringParams

    with console.status(f"scoring {args.data or 'the inbox'}"):
        report = batch_scoring(ScoringParams(config=args.config, data=args.data, output=args.output))
    for outcome in report.scored:
        console.print(f"scored {outcome.rows} rows of {outcome.batch} with v{outcome.model_version} → {outcome.output}")
    if not report.scored:
        console.print("nothing to score: the inbox holds no complete file")


def _report_monitoring(monitoring: MonitoringOutcome) -> None:
    if not monitoring.rows:
        console.print(f"nothing to monitor: {monitoring.batch}")
    elif monitoring.drift_detected:
        console.print(f"[yellow]drift[/] in {monitoring.batch}: {'; '.join(monitoring.drift_reasons)}")
    else:
        console.print(f"no drift in {monitoring.batch}")
    if monitoring.estimate is not None:
        for line in estimate_lines(monitoring.estimate):
            console.print(line, soft_wrap=True)
    if monitoring.retrain_skipped:
        console.print(f"no retrain: {monitoring.retrain_skipped}")
    _report_retraining(monitoring.retraining)


def _report_retraining(retraining: TrainingOutcome | None) -> None:
    """The retrain a monitoring run started, if any; a refusal exits 4 (the champion is unchanged)."""
    if retraining is None:
        return
    console.print(f"retrained {describe_training(retraining)}")
    if retraining.verdict != "promoted":
        raise GateRefused(f"gate refused v{retraining.candidate_version}: {'; '.join(retraining.reasons)}")


def cmd_monitor(args: argparse.Namespace) -> None:
    from driftline.flows.drift_monitoring import drift_monitoring
    from driftline.flows.params import MonitorParams

    with console.status(f"monitoring {args.data or 'the prediction log'}: drift → maybe retrain"):
        outcome = drift_monitoring(MonitorParams(config=args.config, data=args.data))
    _report_monitoring(outcome)


def cmd_labels(args: argparse.Namespace) -> None:
    from driftline.flows.params import LabelParams
    from driftline.flows.performance_monitoring import performance_monitoring

    with console.status(f"labels from {args.data or 'the labels folder'}: join → measure → maybe retrain"):
        outcome = performance_monitoring(LabelParams(config=args.config, data=args.data))
    received = sum(outcome.label_files.values())
    joined = (
        f"{received} labels received, {outcome.labeled_rows} predictions labeled, "
        f"{outcome.pending_predictions} waiting, {outcome.unmatched_labels} labels without a prediction"
    )
    if outcome.degraded:
        verdict = f"[yellow]degraded[/] ({outcome.reason})"
    elif outcome.champion_value is None:
        verdict = outcome.reason
    else:
        verdict = f"{outcome.metric} {fmt(outcome.champion_value)} vs {fmt(outcome.at_promotion)} at promotion"
    console.print(f"{joined}; champion v{outcome.champion_version}: {verdict}")
    if outcome.fairness_breached or outcome.degraded_slices:
        console.print(f"slices and fairness: [yellow]breached[/] ({escape(outcome.slices_and_fairness)})")
    for line in outcome.estimate_checks:
        console.print(f"  estimate of {escape(line)}", soft_wrap=True)
    if outcome.label_drift_note:
        console.print(f"label drift: {escape(outcome.label_drift_note)}")
    for line in outcome.label_drift_checks:
        console.print(f"  label drift of {escape(line)}", soft_wrap=True)
    if outcome.estimate_trusted is not None:
        state = "trusted" if outcome.estimate_trusted else "[yellow]untrusted[/]"
        error = "" if outcome.estimate_error is None else f"; mean |error| {fmt(outcome.estimate_error)}"
        console.print(
            f"estimator of v{outcome.champion_version}: {state} ({escape(outcome.estimate_trust_reason)}){error}"
        )
    _report_retraining(outcome.retraining)


def cmd_run(args: argparse.Namespace) -> None:
    from driftline.flows.continuous_training import continuous_training
    from driftline.flows.params import BatchParams

    with console.status(f"continuous training on {args.data}: validate → score → monitor → maybe retrain"):
        summary = continuous_training(BatchParams(config=args.config, data=args.data, output=args.output))
    if summary.duplicate_of:
        console.print(f"{summary.batch}: already processed (same content as {summary.duplicate_of}); nothing to do")
        return
    console.print(
        f"scored {summary.scoring.rows} rows with v{summary.scoring.model_version} → {summary.scoring.output}"
    )
    _report_monitoring(summary.monitoring)


def reset_model(cfg: DriftlineConfig) -> None:
    """Forget this config's model: its registered versions and its registry's folder (archive, prediction log,
    labels, ledger, cache). Other models sharing the workspace, the experiment's run history, quarantine and
    reports are left alone; the model registered again gets a new identity, so nothing of the old one is read."""
    from driftline.registry import Registry

    registry = Registry(cfg)
    folders = registry.folders
    registry.delete_model()
    shutil.rmtree(folders.root, ignore_errors=True)
    shutil.rmtree(folders.archive, ignore_errors=True)


def cmd_demo(args: argparse.Namespace) -> None:
    from driftline.data.demo import write_demo_data
    from driftline.flows.continuous_training import continuous_training
    from driftline.flows.params import BatchParams, TrainParams
    from driftline.flows.training import training
    from driftline.registry import Registry

    cfg = load_config(args.config)
    if args.fresh:
        reset_model(cfg)
    elif Registry(cfg).versions():
        raise ConfigError(
            f"{args.config}: model {cfg.registry.model_name!r} already has versions; "
            "run `driftline demo --fresh` to start the demo over"
        )

    files = write_demo_data(Path(args.data_dir))
    steps = 2 + len(files.batches)
    console.rule(f"driftline demo: {cfg.name}")
    console.print(
        f"[1/{steps}] demo data in {args.data_dir}: {files.reference.name} (training) "
        f"and {len(files.batches)} weekly batches"
    )
    with console.status("training the first model"):
        first = training(TrainParams(config=args.config, data=[str(files.reference)], reason="initial training"))
    console.print(f"[2/{steps}] initial training on {files.reference.name}: {describe_training(first)}")
    outcomes = []
    for step, path in enumerate(files.batches, start=3):
        with console.status(f"{path.name}: validate → score → monitor drift → maybe retrain"):
            try:
                summary = continuous_training(BatchParams(config=args.config, data=str(path)))
            except DataRejected as rejected:
                console.print(
                    f"[{step}/{steps}] {path.name}: [red]rejected[/], quarantined to {rejected.quarantined_to}"
                )
                for reason in rejected.reasons:
                    console.print(f"        - {reason}")
                outcomes.append((path.name, "rejected", "–", "–"))
                continue
        if summary.duplicate_of:
            console.print(f"[{step}/{steps}] {path.name}: already processed as {summary.duplicate_of}")
            outcomes.append((path.name, "duplicate", "–", "–"))
            continue
        monitoring = summary.monitoring
        drift = (
            "drift: " + ", ".join(monitoring.drifted_features or ["prediction/label"])
            if (monitoring.drift_detected)
            else "no drift"
        )
        retrain = describe_training(monitoring.retraining, with_reasons=False) if monitoring.retraining else "–"
        console.print(
            f"[{step}/{steps}] {path.name}: scored {summary.scoring.rows} rows with "
            f"v{summary.scoring.model_version}; {drift}"
        )
        if monitoring.estimate is not None:
            console.print(f"        {estimate_brief(monitoring.estimate)}", soft_wrap=True)
        if monitoring.retraining:
            console.print(f"        retrained on the archive window: {describe_training(monitoring.retraining)}")
        if monitoring.retrain_skipped:
            console.print(f"        no retrain: {monitoring.retrain_skipped}")
        outcomes.append((path.name, "passed", drift, retrain))
    demo_summary(cfg, outcomes)
