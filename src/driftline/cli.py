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
from driftline.errors import ConfigError, DataRejected, DriftlineError, GateRefused, NoChampion

if TYPE_CHECKING:
    from driftline.stack import StackSettings

EXIT_FAILED, EXIT_CONFIG, EXIT_REJECTED, EXIT_REFUSED, EXIT_NO_CHAMPION = 1, 2, 3, 4, 5
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
        table.add_row(
            f"v{info.version}", ", ".join(info.aliases) or "–", _fmt(info.metrics.get(metric)),
            info.gate_verdict or "–", sources, described["trigger"], (described["git_commit"] or "")[:12],
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
    if monitoring.retraining is not None:
        console.print(f"retrained {_describe_training(monitoring.retraining)}")
        if monitoring.retraining.verdict != "promoted":
            raise GateRefused(
                f"gate refused v{monitoring.retraining.candidate_version}: {'; '.join(monitoring.retraining.reasons)}"
            )


def cmd_monitor(args: argparse.Namespace) -> None:
    from flows.drift_monitoring import drift_monitoring
    from flows.params import MonitorParams

    with console.status(f"monitoring {args.data or 'the prediction log'}: drift → maybe retrain"):
        outcome = drift_monitoring(MonitorParams(config=args.config, data=args.data))
    _report_monitoring(outcome)


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


def reset_model(cfg: DriftlineConfig) -> None:
    """Forget this config's model: its registered versions and its archive. Other models sharing the workspace,
    the experiment's run history, quarantine and reports are left alone."""
    from driftline.registry import Registry

    Registry(cfg).delete_model()
    shutil.rmtree(cfg.archive_dir, ignore_errors=True)


def cmd_demo(args: argparse.Namespace) -> None:
    from driftline.demo_data import write_demo_data
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
        f"  Quarantine:  {cfg.quarantine_dir}\n"
        f"  Reports:     {cfg.report_dir}"
    )


def cmd_deploy(args: argparse.Namespace) -> None:
    from flows.deploy import DEFAULT_WORK_POOL, WORK_POOL_ENV, deploy

    cfg = load_config(args.config)
    project_dir = Path(args.project_dir).resolve()
    work_pool = args.pool or os.environ.get(WORK_POOL_ENV, DEFAULT_WORK_POOL)
    with console.status(f"deploying {cfg.registry.model_name} to work pool {work_pool}"):
        deployed = deploy(cfg, args.config, project_dir, work_pool, project_dir / args.prefect_file)
    console.print(f"deployed {', '.join(deployed.deployments)} to work pool {deployed.work_pool}")
    for name, schedule in (("batch-scoring", cfg.schedules.batch_scoring),
                           ("drift-monitoring", cfg.schedules.drift_monitoring)):  # fmt: skip
        state = "active" if schedule.active else "paused"
        console.print(f"  {name}: cron {schedule.cron!r} ({schedule.timezone}), {state}")
    console.print(f"  continuous-training: on driftline.data.arrived for files in {cfg.landing_dir}")
    console.print(f"  notifications: {deployed.notifications}")
    console.print(f"start a worker: prefect worker start --pool {deployed.work_pool}")


def cmd_watch(args: argparse.Namespace) -> None:
    from flows.watch import watch

    cfg = load_config(args.config)

    def show(arrival) -> None:
        note = f"duplicate of {arrival.duplicate_of}: not processed again" if arrival.duplicate else "new"
        console.print(f"{arrival.path}: {arrival.size} bytes, sha256 {arrival.sha256[:12]}, {note}")

    if not args.once:
        console.print(f"watching {cfg.landing_dir} (every {cfg.landing.poll_seconds:g} s; Ctrl-C stops)")
    try:
        watch(cfg, args.config, once=args.once, on_arrival=show)
    except KeyboardInterrupt:
        console.print("stopped")


def _stack_settings(args: argparse.Namespace) -> StackSettings:
    from driftline.stack import StackSettings

    cfg = load_config(args.config)
    return StackSettings(
        root=cfg.workspace / "stack", project_dir=Path.cwd(), config=args.config, profile=args.profile,
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
        f"  landing folder (drop CSV/Parquet files here): {cfg.landing_dir}\n"
        f"  scoring inbox (scored nightly): {cfg.inbox_dir}\n"
        f"  logs: {settings.root}/logs/\n"
        f'  use it from this shell: eval "$(.venv/bin/driftline stack env --config {args.config})"\n'
        "  stop it: make down"
    )


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from driftline.registry import Registry
    from driftline.service import create_app

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
    run = command("run", cmd_run, "the continuous-training flow for one new batch")
    run.add_argument("--data", required=True)
    run.add_argument("--output", default=None, help="where predictions go (default: workspace outputs/)")
    deploy = command("deploy", cmd_deploy, "deploy the flows (prefect.yaml) with this config's schedules")
    deploy.add_argument("--pool", default=None, help="work pool (default: $DRIFTLINE_WORK_POOL or 'driftline')")
    deploy.add_argument("--project-dir", default=".", help="where flow runs start (holds configs/ and prefect.yaml)")
    deploy.add_argument("--prefect-file", default="prefect.yaml")
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
        (NoChampion, EXIT_NO_CHAMPION), (DriftlineError, EXIT_FAILED),
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
