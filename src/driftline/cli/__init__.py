"""The `driftline` command: runs the flows and shows their outcomes.

The one module of the library that sits above flows/: it imports them inside commands, so `import driftline`
stays free of Prefect.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from driftline.config import DriftlineConfig, load_config
from driftline.errors import ConfigError, DataRejected, DriftlineError, GateRefused, InvariantViolated, NoChampion

if TYPE_CHECKING:
    from driftline.stack import StackSettings

EXIT_FAILED, EXIT_CONFIG, EXIT_REJECTED, EXIT_REFUSED, EXIT_NO_CHAMPION, EXIT_VIOLATION = 1, 2, 3, 4, 5, 6
DEMO_CONFIG = "configs/demo.yaml"
# What GET /model shows of a version's lineage (driftline status --json shows all of it).
LINEAGE_SHOWN = ("created_at", "gate_verdict", "trigger", "metrics", "training_rows", "data", "git_commit")

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def _quiet_libraries(verbose: bool) -> None:
    """Flow logs still reach the Prefect UI; the terminal shows driftline's own progress unless --verbose."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not verbose:
        # A failed task is reported by the CLI in one line; its traceback stays in the Prefect UI.
        for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
            os.environ.setdefault(f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL", "CRITICAL")
        warnings.filterwarnings("ignore")
        for name in ("mlflow", "great_expectations", "alembic", "evidently"):
            logging.getLogger(name).setLevel(logging.ERROR)


# --- rendering -------------------------------------------------------------------------------------------------
def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def versions_table(cfg: DriftlineConfig) -> Table:
    from driftline.registry import Registry

    metric = cfg.primary_metric
    table = Table(title=f"Model versions of {cfg.registry.model_name}", title_justify="left")
    for column in ("version", "aliases", metric, "gate", "training data (fingerprint: rows)", "trigger", "commit"):
        table.add_column(column)
    for info in Registry(cfg).versions():
        described = info.to_dict()
        sources = ", ".join(f"{source['fingerprint'][:10]}: {source['rows']}" for source in described["data"])
        gate = ("retired, " if described["retired"] else "") + (info.gate_verdict or "–")
        table.add_row(
            f"v{info.version}", ", ".join(info.aliases) or "–", _fmt(info.metrics.get(metric)),
            gate, sources, described["trigger"], (described["git_commit"] or "")[:12],
        )  # fmt: skip
    return table


def _describe_training(outcome, with_reasons: bool = True) -> str:
    vs = f" vs champion {_fmt(outcome.champion_value)}" if outcome.champion_value is not None else ""
    line = f"v{outcome.candidate_version} {outcome.verdict} ({outcome.metric} {_fmt(outcome.challenger_value)}{vs})"
    return f"{line}: {'; '.join(outcome.reasons)}" if with_reasons and outcome.verdict != "promoted" else line


# --- commands --------------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> None:
    from flows.params import TrainParams
    from flows.training import training

    with console.status("training: validate → train → gate → promote"):
        outcome = training(TrainParams(config=args.config, data=args.data, reason=args.reason))
    console.print(f"trained {_describe_training(outcome)}; champion: v{outcome.champion_version}")
    if outcome.verdict != "promoted":
        raise GateRefused(f"gate refused v{outcome.candidate_version}: {'; '.join(outcome.reasons)}")


def cmd_score(args: argparse.Namespace) -> None:
    from flows.batch_scoring import batch_scoring
    from flows.params import ScoringParams

    with console.status(f"scoring {args.data or 'the inbox'}"):
        report = batch_scoring(ScoringParams(config=args.config, data=args.data, output=args.output))
    for outcome in report.scored:
        console.print(f"scored {outcome.rows} rows of {outcome.batch} with v{outcome.model_version} → {outcome.output}")
    if not report.scored:
        console.print("nothing to score: the inbox holds no complete file")


def _report_monitoring(monitoring) -> None:
    if not monitoring.rows:
        console.print(f"nothing to monitor: {monitoring.batch}")
    elif monitoring.drift_detected:
        console.print(f"[yellow]drift[/] in {monitoring.batch}: {'; '.join(monitoring.drift_reasons)}")
    else:
        console.print(f"no drift in {monitoring.batch}")
    _report_retraining(monitoring.retraining)


def _report_retraining(retraining) -> None:
    """The retrain a monitoring run started, if any; a refusal exits 4 (the champion is unchanged)."""
    if retraining is None:
        return
    console.print(f"retrained {_describe_training(retraining)}")
    if retraining.verdict != "promoted":
        raise GateRefused(f"gate refused v{retraining.candidate_version}: {'; '.join(retraining.reasons)}")


def cmd_monitor(args: argparse.Namespace) -> None:
    from flows.drift_monitoring import drift_monitoring
    from flows.params import MonitorParams

    with console.status(f"monitoring {args.data or 'the prediction log'}: drift → maybe retrain"):
        outcome = drift_monitoring(MonitorParams(config=args.config, data=args.data))
    _report_monitoring(outcome)


def cmd_labels(args: argparse.Namespace) -> None:
    from flows.params import LabelParams
    from flows.performance_monitoring import performance_monitoring

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
        verdict = f"{outcome.metric} {_fmt(outcome.champion_value)} vs {_fmt(outcome.at_promotion)} at promotion"
    console.print(f"{joined}; champion v{outcome.champion_version}: {verdict}")
    _report_retraining(outcome.retraining)


def cmd_kpis(args: argparse.Namespace) -> None:
    from tasks.kpis import gather_kpis

    cfg = load_config(args.config)
    with console.status("reading the registry, the monitoring runs and the Prefect run history"):
        measured = gather_kpis(cfg)
    if args.json:
        print(json.dumps({"model": cfg.registry.model_name, **measured.to_dict()}, indent=2))
        return
    table = Table(title=f"Operational KPIs of {cfg.registry.model_name}", title_justify="left")
    for column in ("KPI", "value", "measured as"):
        table.add_column(column)
    for row in measured.rows():
        table.add_row(*row)
    console.print(table)


def cmd_dashboard(args: argparse.Namespace) -> None:
    """Evidently's own UI service on the model's workspace folder: this process becomes it (Ctrl-C stops it)."""
    from driftline.monitoring.evidently_report import dashboard_project

    cfg = load_config(args.config)
    dashboard_project(cfg)  # the project and its panels exist before the first monitoring run
    evidently = str(Path(sys.executable).parent / "evidently")
    console.print(f"Evidently UI on http://{args.host}:{args.port} (workspace {cfg.folders.dashboard}; Ctrl-C stops)")
    sys.stdout.flush()
    os.execv(evidently, [evidently, "ui", "--workspace", str(cfg.folders.dashboard), "--host", args.host,
                         "--port", str(args.port)])  # fmt: skip


def cmd_run(args: argparse.Namespace) -> None:
    from flows.continuous_training import continuous_training
    from flows.params import BatchParams

    with console.status(f"continuous training on {args.data}: validate → score → monitor → maybe retrain"):
        summary = continuous_training(BatchParams(config=args.config, data=args.data, output=args.output))
    if summary.duplicate_of:
        console.print(f"{summary.batch}: already processed (same content as {summary.duplicate_of}); nothing to do")
        return
    console.print(
        f"scored {summary.scoring.rows} rows with v{summary.scoring.model_version} → {summary.scoring.output}"
    )
    _report_monitoring(summary.monitoring)


def cmd_status(args: argparse.Namespace) -> None:
    from driftline.registry import Registry

    cfg = load_config(args.config)
    registry = Registry(cfg)
    if args.json:
        champion = registry.champion()
        print(json.dumps({
            "model": cfg.registry.model_name, "tracking_uri": cfg.tracking_uri,
            "champion": champion.version if champion else None,
            "versions": [info.to_dict() for info in registry.versions()],
        }, indent=2))  # fmt: skip
        return
    console.print(versions_table(cfg))
    console.print(f"tracking: {cfg.tracking_uri}  (full lineage per version: driftline status --json)")


def cmd_check(args: argparse.Namespace) -> None:
    from driftline.governance.invariants import check_registry
    from driftline.registry import Registry

    cfg = load_config(args.config)
    violations = check_registry(Registry(cfg))
    if args.json:
        print(json.dumps({"model": cfg.registry.model_name, "ok": not violations,
                          "violations": [v.to_dict() for v in violations]}, indent=2))  # fmt: skip
    else:
        for violation in violations:
            console.print(f"VIOLATED {violation}")
    if violations:
        raise InvariantViolated(f"{len(violations)} registry invariant(s) violated for {cfg.registry.model_name}: "
                                f"{violations[0]}")  # fmt: skip
    if not args.json:
        console.print(f"registry of {cfg.registry.model_name} consistent with its audit log: every invariant holds")


def cmd_audit(args: argparse.Namespace) -> None:
    from driftline.governance.audit import champion_at, parse_time
    from driftline.registry import Registry

    cfg = load_config(args.config)
    events = Registry(cfg).audit_log()
    try:
        moment = parse_time(args.at) if args.at else None
    except ValueError:
        raise DriftlineError(f"--at {args.at!r} is not an ISO time such as 2026-03-01T12:00:00+00:00") from None
    serving = champion_at(events, moment) if moment else None
    if args.json:
        answer = {"model": cfg.registry.model_name, "events": [event.to_dict() for event in events]}
        if moment:
            answer |= {"at": moment.isoformat(), "champion": serving.after.champion if serving else None,
                       "since": serving.to_dict() if serving else None}  # fmt: skip
        print(json.dumps(answer, indent=2, default=str))
        return
    if moment:
        if serving is None or serving.after.champion is None:
            console.print(f"no champion at {moment.isoformat()}")
        else:
            console.print(f"champion at {moment.isoformat()}: v{serving.after.champion} "
                          f"(since {serving.at}: {serving.action} v{serving.version} by {serving.actor})")  # fmt: skip
        return
    table = Table(title=f"Audit log of {cfg.registry.model_name} ({cfg.audit_experiment_name})", title_justify="left")
    for column in ("at (UTC)", "action", "version", "actor", "reason", "champion", "previous"):
        table.add_column(column)
    for event in events:
        table.add_row(
            event.at, str(event.action), f"v{event.version}", str(event.actor), event.reason[:120],
            _moved(event.before.champion, event.after.champion), _moved(event.before.previous, event.after.previous),
        )  # fmt: skip
    console.print(table)


def _moved(before: str | None, after: str | None) -> str:
    shown = [f"v{before}" if before else "–", f"v{after}" if after else "–"]
    return shown[1] if before == after else " → ".join(shown)


def cmd_rollback(args: argparse.Namespace) -> None:
    from flows.params import RollbackParams
    from flows.rollback import rollback

    outcome = rollback(RollbackParams(config=args.config, reason=args.reason, to_version=args.to,
                                      override_retired=args.override_retired))  # fmt: skip
    if outcome.changed:
        console.print(f"rolled back: champion v{outcome.champion_version} (was v{outcome.rolled_back_from})")
    else:
        console.print(f"nothing to do: {outcome.note}")


def cmd_retire(args: argparse.Namespace) -> None:
    from driftline.governance.audit import Actor
    from driftline.registry import Registry

    cfg = load_config(args.config)
    if Registry(cfg).retire(args.version, args.reason, Actor.os_user()):
        console.print(f"retired v{args.version}: no alias points to it; promoting it again needs --override-retired")
    else:
        console.print(f"nothing to do: v{args.version} was retired already")


def cmd_reproduce(args: argparse.Namespace) -> None:
    from driftline.governance.reproduce import reproduce

    cfg = load_config(args.config)
    with console.status(f"reproducing v{args.version} from its archived data and recorded config"):
        found = reproduce(cfg, args.version)
    if found.missing:
        raise DriftlineError(f"cannot reproduce v{args.version}: missing {'; '.join(found.missing)}")
    table = Table(title=f"Reproduction of v{args.version} (tolerance {found.tolerance:g})", title_justify="left")
    for column in ("metric", "recorded", "reproduced", "difference"):
        table.add_column(column)
    for match in found.metrics:
        difference = "–" if match.difference is None else f"{match.difference:.2e}"
        table.add_row(match.name, _fmt(match.recorded), _fmt(match.reproduced), difference)
    console.print(table)
    for note in found.notes:
        console.print(f"  environment: {note}")
    if not found.matches:
        raise DriftlineError(f"v{args.version} did not reproduce within {found.tolerance:g}: see the table above")
    console.print(f"v{args.version} reproduced: every holdout metric within {found.tolerance:g}")


def reset_model(cfg: DriftlineConfig) -> None:
    """Forget this config's model: its registered versions and its archive. Other models sharing the workspace,
    the experiment's run history, quarantine and reports are left alone."""
    from driftline.registry import Registry

    Registry(cfg).delete_model()
    shutil.rmtree(cfg.folders.archive, ignore_errors=True)


def cmd_demo(args: argparse.Namespace) -> None:
    from driftline.data.demo import write_demo_data
    from driftline.registry import Registry
    from flows.continuous_training import continuous_training
    from flows.params import BatchParams, TrainParams
    from flows.training import training

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
    console.print(f"[1/{steps}] demo data in {args.data_dir}: {files.reference.name} (training) "
                  f"and {len(files.batches)} weekly batches")  # fmt: skip
    with console.status("training the first model"):
        first = training(TrainParams(config=args.config, data=[str(files.reference)], reason="initial training"))
    console.print(f"[2/{steps}] initial training on {files.reference.name}: {_describe_training(first)}")
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
        drift = "drift: " + ", ".join(monitoring.drifted_features or ["prediction/label"]) if (
            monitoring.drift_detected) else "no drift"  # fmt: skip
        retrain = _describe_training(monitoring.retraining, with_reasons=False) if monitoring.retraining else "–"
        console.print(f"[{step}/{steps}] {path.name}: scored {summary.scoring.rows} rows with "
                      f"v{summary.scoring.model_version}; {drift}")  # fmt: skip
        if monitoring.retraining:
            console.print(f"        retrained on the archive window: {_describe_training(monitoring.retraining)}")
        outcomes.append((path.name, "passed", drift, retrain))
    _demo_summary(cfg, outcomes)


def _demo_summary(cfg: DriftlineConfig, outcomes: list[tuple[str, str, str, str]]) -> None:
    console.rule("summary")
    batches = Table(title="Batches", title_justify="left")
    for column in ("batch", "validation", "drift", "retraining"):
        batches.add_column(column)
    for row in outcomes:
        batches.add_row(*row)
    console.print(batches)
    console.print(versions_table(cfg))
    prefect_home = os.environ.get("PREFECT_HOME", "~/.prefect")
    console.print(
        "\nLook at what just ran:\n"
        f"  MLflow UI:   .venv/bin/mlflow ui --backend-store-uri {cfg.tracking_uri}   (or: make ui-mlflow)\n"
        f"  Prefect UI:  PREFECT_HOME={prefect_home} .venv/bin/prefect server start   (or: make ui-prefect)\n"
        f"  Registry:    .venv/bin/driftline status --config {cfg.source}\n"
        f"  Quarantine:  {cfg.folders.quarantine}\n"
        f"  Reports:     {cfg.folders.reports}"
    )


def cmd_deploy(args: argparse.Namespace) -> None:
    from flows.deploy import DEFAULT_WORK_POOL, WORK_POOL_ENV, WorkPoolSpec, deploy

    cfg = load_config(args.config)
    project_dir = Path(args.project_dir).resolve()
    pool = WorkPoolSpec(
        name=args.pool or os.environ.get(WORK_POOL_ENV, DEFAULT_WORK_POOL), type=args.pool_type,
        template_file=Path(args.job_template) if args.job_template else None, image=args.image,
    )  # fmt: skip
    with console.status(f"deploying {cfg.registry.model_name} to {pool.type} work pool {pool.name}"):
        deployed = deploy(cfg, args.config, project_dir, pool, project_dir / args.prefect_file)
    console.print(f"deployed {', '.join(deployed.deployments)} to {deployed.pool_type} work pool {deployed.work_pool}")
    for name, schedule in (("batch-scoring", cfg.schedules.batch_scoring),
                           ("drift-monitoring", cfg.schedules.drift_monitoring),
                           ("performance-monitoring", cfg.schedules.performance_monitoring)):  # fmt: skip
        state = "active" if schedule.active else "paused"
        if name == "performance-monitoring" and not cfg.labels.enabled:
            state = "paused (labels.enabled is false)"
        console.print(f"  {name}: cron {schedule.cron!r} ({schedule.timezone}), {state}")
    console.print(f"  continuous-training: on driftline.data.arrived for files in {cfg.folders.landing}")
    console.print(f"  notifications: {deployed.notifications}")
    console.print(f"start a worker: prefect worker start --pool {deployed.work_pool} --type {deployed.pool_type}")


def cmd_watch(args: argparse.Namespace) -> None:
    from flows.watch import watch

    cfg = load_config(args.config)

    def show(arrival) -> None:
        note = f"duplicate of {arrival.duplicate_of}: not processed again" if arrival.duplicate else "new"
        console.print(f"{arrival.path}: {arrival.size} bytes, sha256 {arrival.sha256[:12]}, {note}")

    if not args.once:
        console.print(f"watching {cfg.folders.landing} (every {cfg.landing.poll_seconds:g} s; Ctrl-C stops)")
    try:
        watch(cfg, args.config, once=args.once, on_arrival=show)
    except KeyboardInterrupt:
        console.print("stopped")


def _stack_settings(args: argparse.Namespace) -> StackSettings:
    from driftline.stack import StackSettings

    cfg = load_config(args.config)
    return StackSettings(
        root=cfg.folders.stack, project_dir=Path.cwd(), config=args.config, profile=args.profile,
        prefect_port=args.prefect_port, mlflow_port=args.mlflow_port, postgres_port=args.postgres_port,
    )  # fmt: skip


def cmd_stack(args: argparse.Namespace) -> None:
    from driftline import stack

    settings = _stack_settings(args)
    if args.action == "down":
        stopped = stack.down(settings.root, progress=console.print)
        console.print(f"stopped: {', '.join(stopped)}" if stopped else "no stack recorded: nothing to stop")
        return
    if args.action == "env":
        state = stack.StackState.load(settings.root)
        if state is None:
            raise DriftlineError(f"no stack recorded in {settings.root}; run `driftline stack up` (make up)")
        print("\n".join(f"export {key}={value}" for key, value in state.env.items()))
        return
    state = stack.up(settings, progress=lambda line: console.print(f"starting {line}"))
    prefect_ui = next(p.url for p in state.processes if p.name == "prefect-server")
    mlflow_ui = next(p.url for p in state.processes if p.name == "mlflow-server")
    cfg = load_config(args.config)
    console.print(
        f"\nup: Prefect UI {prefect_ui}  ·  MLflow UI {mlflow_ui}\n"
        f"  landing folder (drop CSV/Parquet files here): {cfg.folders.landing}\n"
        f"  scoring inbox (scored nightly): {cfg.folders.inbox}\n"
        f"  logs: {settings.root}/logs/\n"
        f'  use it from this shell: eval "$(.venv/bin/driftline stack env --config {args.config})"\n'
        "  stop it: make down"
    )


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from driftline.registry import Registry
    from driftline.serving.app import create_app

    cfg = load_config(args.config)
    registry = Registry(cfg)

    def describe(ref) -> dict:
        info = next((v for v in registry.versions() if v.version == ref.version), None)
        return {} if info is None else {key: value for key, value in info.to_dict().items() if key in LINEAGE_SHOWN}

    model_events = None
    if os.environ.get("PREFECT_API_URL"):  # a Prefect server announces promotions: follow them, not only polls
        from tasks.events import follow_model_moves

        model_events = partial(follow_model_moves, cfg)
    api_key = os.environ.get(cfg.serving.api_key_env) or None
    app = create_app(cfg, registry, api_key=api_key, describe=describe, model_events=model_events)
    host, port = args.host or cfg.serving.host, args.port or cfg.serving.port
    guarded = f"API key from ${cfg.serving.api_key_env}" if api_key else "no API key"
    console.print(f"serving {cfg.registry.model_name}@champion on http://{host}:{port} ({guarded}); "
                  f"POST /predict, GET /health /ready /metrics /model; Ctrl-C stops")  # fmt: skip
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


# --- entry point -----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="driftline", description="Governed continuous training for tabular models.")
    parser.add_argument("--verbose", action="store_true", help="show Prefect and library logs")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable, help_text: str, config_default: str | None = None):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--config", required=config_default is None, default=config_default, help="config YAML")
        sub.set_defaults(handler=handler)
        return sub

    train = command("train", cmd_train, "train a challenger and promote it if it passes the gate")
    train.add_argument("--data", nargs="+", default=[], help="CSV/Parquet files (default: the retraining window)")
    train.add_argument("--reason", default="manual", help="why this training runs (recorded)")
    score = command("score", cmd_score, "score a file (or every file waiting in the inbox) with the champion")
    score.add_argument("--data", default=None, help="the file to score (default: every complete file in the inbox)")
    score.add_argument("--output", default=None, help=".parquet or .csv (default: workspace outputs/)")
    monitor = command("monitor", cmd_monitor, "check a batch (or the prediction log) for drift; maybe retrain")
    monitor.add_argument("--data", default=None, help="the file to check (default: predictions logged since last run)")
    labels = command("labels", cmd_labels, "join delayed labels to the logged predictions; retrain if degraded")
    labels.add_argument("--data", default=None, help="a label file (default: every complete file in labels.folder)")
    kpis = command("kpis", cmd_kpis, "operational KPIs: deployment frequency, MTTR, success rate, freshness")
    kpis.add_argument("--json", action="store_true")
    dashboard = command("dashboard", cmd_dashboard, "serve the Evidently dashboard (drift and performance trends)",
                        DEMO_CONFIG)  # fmt: skip
    dashboard.add_argument("--port", type=int, default=8000)
    dashboard.add_argument("--host", default="127.0.0.1")
    run = command("run", cmd_run, "the continuous-training flow for one new batch")
    run.add_argument("--data", required=True)
    run.add_argument("--output", default=None, help="where predictions go (default: workspace outputs/)")
    deploy = command("deploy", cmd_deploy, "deploy the flows (prefect.yaml) with this config's schedules")
    deploy.add_argument("--pool", default=None, help="work pool (default: $DRIFTLINE_WORK_POOL or 'driftline')")
    deploy.add_argument("--project-dir", default=".", help="where flow runs start (holds configs/ and prefect.yaml)")
    deploy.add_argument("--prefect-file", default="prefect.yaml")
    deploy.add_argument("--pool-type", choices=["process", "docker", "kubernetes"], default="process",
                        help="type of the work pool, if it has to be created (default: process)")  # fmt: skip
    deploy.add_argument("--job-template", default=None,
                        help="JSON base job template of a new pool (default: infra/work-pools/TYPE.json)")  # fmt: skip
    deploy.add_argument("--image", default=None, help="image of every run, for a new docker or kubernetes pool")
    watch = command("watch", cmd_watch, "watch the landing folder and announce each new complete file to Prefect")
    watch.add_argument("--once", action="store_true", help="announce what is there now, then exit")
    stack = command("stack", cmd_stack, "start or stop the local stack (servers, worker, watcher)", DEMO_CONFIG)
    stack.add_argument("action", choices=["up", "down", "env"])
    stack.add_argument("--profile", choices=["sqlite", "postgres"], default="sqlite",
                       help="databases of both servers: SQLite files, or a private PostgreSQL cluster")  # fmt: skip
    stack.add_argument("--prefect-port", type=int, default=4200)
    stack.add_argument("--mlflow-port", type=int, default=5000)
    stack.add_argument("--postgres-port", type=int, default=5433)
    serve = command("serve", cmd_serve, "answer POST /predict with the champion (online scoring service)")
    serve.add_argument("--host", default=None, help="address to listen on (default: serving.host)")
    serve.add_argument("--port", type=int, default=None, help="port (default: serving.port)")
    status = command("status", cmd_status, "registered versions, aliases, metrics, gate decisions, lineage")
    status.add_argument("--json", action="store_true")
    check = command("check", cmd_check, "verify the registry against the audit log (exit 6 on a violation)")
    check.add_argument("--json", action="store_true")
    audit = command("audit", cmd_audit, "the audit log: every registry transition, who made it, why, on what evidence")
    audit.add_argument("--json", action="store_true")
    audit.add_argument("--at", default=None, help="ISO time: which version was champion then (UTC if no zone)")
    rollback = command("rollback", cmd_rollback, "move champion back to previous (or --to) in one recorded step")
    rollback.add_argument("--to", default=None, help="version to restore (default: the `previous` alias)")
    rollback.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    rollback.add_argument("--override-retired", action="store_true", help="allow a retired version back (recorded)")
    retire = command("retire", cmd_retire, "take a version out of service: aliases removed, tagged, recorded")
    retire.add_argument("--version", required=True)
    retire.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    reproduce = command("reproduce", cmd_reproduce, "retrain a version from its recorded inputs; compare metrics")
    reproduce.add_argument("--version", required=True)
    demo = command("demo", cmd_demo, "the whole loop on generated demo data", config_default=DEMO_CONFIG)
    demo.add_argument("--data-dir", default="data/demo")
    demo.add_argument(
        "--fresh", action="store_true", help="start over: delete this model's registered versions and archive"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries(args.verbose)
    outcomes: list[tuple[type[BaseException], int]] = [
        (ConfigError, EXIT_CONFIG), (DataRejected, EXIT_REJECTED), (GateRefused, EXIT_REFUSED),
        (NoChampion, EXIT_NO_CHAMPION), (InvariantViolated, EXIT_VIOLATION), (DriftlineError, EXIT_FAILED),
    ]  # fmt: skip
    try:
        args.handler(args)
    except tuple(kind for kind, _ in outcomes) as error:
        errors.print(f"driftline: {error}", soft_wrap=True)
        return next(code for kind, code in outcomes if isinstance(error, kind))
    except Exception as error:  # a bug or an outside failure: still one line; the flow run keeps the traceback
        if args.verbose:
            raise
        first_line = (str(error).strip().splitlines() or [""])[0]
        errors.print(
            f"driftline: unexpected {type(error).__name__}: {first_line} (rerun with --verbose)", soft_wrap=True
        )
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
