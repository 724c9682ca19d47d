"""The `driftline` entry point: the parser, quiet libraries, and each error's exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from driftline.cli import ab_tests as ab_tests_cli
from driftline.cli import archive as archive_cli
from driftline.cli import backtest, fleet, governance, inventory, loop, operations
from driftline.cli import streaming as streaming_cli
from driftline.config import DriftlineConfig, load_config, load_fleet
from driftline.errors import (
    ConfigError,
    DataRejected,
    DriftlineError,
    GateRefused,
    InvariantViolated,
    NeedsAttention,
    NoChampion,
)
from driftline.registry.client import use_http_settings

EXIT_FAILED, EXIT_CONFIG, EXIT_REJECTED, EXIT_REFUSED, EXIT_NO_CHAMPION, EXIT_VIOLATION, EXIT_FLAGGED = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
)
DEMO_CONFIG = "configs/demo.yaml"
# Without PREFECT_API_URL each command starts a temporary Prefect server and waits for it. Prefect waits 20 s by
# default; three servers starting at once on a 2-core machine at load average 20 answered after 90 to 97 s.
EPHEMERAL_STARTUP_SECONDS = 300
# Warnings the libraries raise on a normal run that no driftline user can act on, by category and the module they are
# reported from (listed with `python -W default -m driftline.cli --verbose demo` and `driftline --help`). Python
# hides a library's DeprecationWarning already; these stay hidden under -W default or -X dev too. Every other warning
# is shown, and driftline's own DeprecationWarnings are.
LIBRARY_NOISE: tuple[tuple[type[Warning], str], ...] = (
    (DeprecationWarning, r"great_expectations\."),  # GX imports the modules sre_constants and sre_parse (Python 3.11)
    (DeprecationWarning, r"evidently\."),  # evidently's legacy test helpers, imported by its presets, use numpy.core
    (DeprecationWarning, r"litestar\."),  # litestar, under evidently's UI, calls its own deprecated `Dependency`
)

errors = Console(stderr=True, highlight=False)


def filter_warnings() -> None:
    """Hide the libraries' noise (LIBRARY_NOISE), show driftline's own DeprecationWarnings, leave the rest as is."""
    for category, module in LIBRARY_NOISE:
        warnings.filterwarnings("ignore", category=category, module=module)
    warnings.filterwarnings("default", category=DeprecationWarning, module=r"driftline(\.|$)")


def _library_defaults(verbose: bool) -> None:
    """Settings of the libraries a command runs, where the environment does not set them. Flow logs still reach the
    Prefect UI; the terminal shows driftline's own progress unless --verbose."""
    home = os.environ.get("PREFECT_HOME")
    if home:  # Prefect makes it on import, but not its parents (the workspace, before a first run): it warns instead
        Path(home).expanduser().mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(EPHEMERAL_STARTUP_SECONDS))
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not verbose:
        # A failed task is reported by the CLI in one line; its traceback stays in the Prefect UI.
        for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
            os.environ.setdefault(f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL", "CRITICAL")
        filter_warnings()
        # GX sends warnings to logging (logging.captureWarnings on import), to the console handler quieted above:
        # they are printed as Python prints them.
        captured = logging.getLogger("py.warnings")
        if not captured.handlers:
            captured.addHandler(logging.StreamHandler())
            captured.propagate = False
        for name in ("mlflow", "great_expectations", "alembic", "evidently"):
            logging.getLogger(name).setLevel(logging.ERROR)


def _process_settings(args: argparse.Namespace) -> None:
    """The process-wide settings a command takes from its config, before Prefect and MLflow read them: MLflow's HTTP
    retries (`reliability.registry_*`) and where its flow runs are recorded."""
    config = getattr(args, "config", None)
    if config is None:
        return
    # A folder of configs (a fleet) shares one workspace and one stack: its first model's settings stand for it.
    if Path(config).is_dir():
        args.fleet = load_fleet(config)  # loaded once: the fleet commands take it from args
        cfg = args.fleet.workspace
    else:
        cfg = load_config(config)
    use_http_settings(cfg, command=True)
    _prefect_history(args, cfg)


def _prefect_history(args: argparse.Namespace, cfg: DriftlineConfig) -> None:
    """Where the command's flow runs are recorded, settled before Prefect is imported (it reads its settings once):
    the Prefect API the environment names; else the Prefect server of the stack running on the config's workspace;
    else the workspace's Prefect database, which the temporary server Prefect starts for the command writes and the
    stack's Prefect server serves. So `make demo` then `make up` shows one history, and a server and a temporary
    server never share the database while the stack is up."""
    if args.command == "stack" or "prefect" in sys.modules or os.environ.get("PREFECT_API_URL"):
        return  # `stack` passes each process its own; a caller that imported Prefect has set it up itself
    from driftline.stack import PREFECT_DB_ENV, prefect_database_url, running_prefect_api, sqlite_folder

    running = running_prefect_api(cfg.folders.stack, os.environ.get("PREFECT_API_AUTH_STRING"))
    if running is not None:
        os.environ["PREFECT_API_URL"] = running
        return
    database = prefect_database_url(cfg.folders.root, os.environ)
    if (folder := sqlite_folder(database)) is not None:
        folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(PREFECT_DB_ENV, database)


def build_parser() -> argparse.ArgumentParser:
    """Every command and its options, in the order `driftline --help` lists them (the groups interleave there)."""
    parser = argparse.ArgumentParser(prog="driftline", description="Governed continuous training for tabular models.")
    parser.add_argument("--verbose", action="store_true", help="show Prefect and library logs")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable, help_text: str, config_default: str | None = None, group=commands):
        sub = group.add_parser(name, help=help_text)
        sub.add_argument("--config", required=config_default is None, default=config_default, help="config YAML")
        sub.set_defaults(handler=handler)
        return sub

    train = command("train", loop.cmd_train, "train a challenger and promote it if it passes the gate")
    train.add_argument("--data", nargs="+", default=[], help="CSV/Parquet files (default: the retraining window)")
    train.add_argument("--reason", default="manual", help="why this training runs (recorded)")
    score = command("score", loop.cmd_score, "score a file (or every file waiting in the inbox) with the champion")
    score.add_argument("--data", default=None, help="the file to score (default: every complete file in the inbox)")
    score.add_argument("--output", default=None, help=".parquet or .csv (default: workspace outputs/)")
    monitor = command("monitor", loop.cmd_monitor, "check a batch (or the prediction log) for drift; maybe retrain")
    monitor.add_argument("--data", default=None, help="the file to check (default: predictions logged since last run)")
    labels = command(
        "labels", loop.cmd_labels, "join delayed labels to the logged predictions; retrain if degraded or they drifted"
    )
    labels.add_argument("--data", default=None, help="a label file (default: every complete file in labels.folder)")
    kpis = command("kpis", operations.cmd_kpis, "operational KPIs: deployment frequency, MTTR, success rate, freshness")
    kpis.add_argument("--json", action="store_true")
    dashboard = command(
        "dashboard",
        operations.cmd_dashboard,
        "serve the Evidently dashboard (drift and performance trends)",
        DEMO_CONFIG,
    )
    dashboard.add_argument("--port", type=int, default=8000)
    dashboard.add_argument("--host", default="127.0.0.1")
    run = command("run", loop.cmd_run, "the continuous-training flow for one new batch")
    run.add_argument("--data", required=True)
    run.add_argument("--output", default=None, help="where predictions go (default: workspace outputs/)")
    history = command(
        "backtest",
        backtest.cmd_backtest,
        "replay a history through the loop under each policy; compare what each served",
    )
    history.add_argument(
        "--data", nargs="+", required=True, help="the history: CSV/Parquet files (any order: taken by event time)"
    )
    history.add_argument(
        "--initial", type=int, default=1, help="how many of the earliest files train the first champion (default 1)"
    )
    history.add_argument(
        "--policy",
        nargs="+",
        default=None,
        metavar="NAME",
        help="current, never, every-batch, estimated (default: the first three)",
    )
    history.add_argument(
        "--set",
        action="append",
        nargs="+",
        metavar="PATH=VALUE",
        help="a config variant to compare, e.g. --set drift.drift_share=0.5; repeat --set for another variant",
    )
    history.add_argument(
        "--output",
        default=None,
        help="folder for backtest.json/.png/.html (default: <workspace>/backtests/<name>-<time>)",
    )
    history.add_argument("--json", action="store_true", help="print the result as JSON instead of the table")
    history.add_argument(
        "--label-delay",
        type=int,
        default=0,
        metavar="K",
        help="a batch's labels reach the loop K batches after it (default 0: with the batch)",
    )
    deploy = command("deploy", operations.cmd_deploy, "deploy the flows (prefect.yaml) with this config's schedules")
    deploy.add_argument("--pool", default=None, help="work pool (default: $DRIFTLINE_WORK_POOL or 'driftline')")
    deploy.add_argument("--project-dir", default=".", help="where flow runs start (holds configs/ and prefect.yaml)")
    deploy.add_argument("--prefect-file", default="prefect.yaml")
    deploy.add_argument(
        "--pool-type",
        choices=["process", "docker", "kubernetes"],
        default="process",
        help="type of the work pool, if it has to be created (default: process)",
    )
    deploy.add_argument(
        "--job-template",
        default=None,
        help="JSON base job template of a new pool (default: infra/work-pools/TYPE.json)",
    )
    deploy.add_argument("--image", default=None, help="image of every run, for a new docker or kubernetes pool")
    watch = command(
        "watch", operations.cmd_watch, "watch the landing folder and announce each new complete file to Prefect"
    )
    watch.add_argument("--once", action="store_true", help="announce what is there now, then exit")
    watch.add_argument(
        "--retry-failed",
        action="store_true",
        help="first announce again every landed file whose run failed (or was killed)",
    )
    stack = command(
        "stack", operations.cmd_stack, "start or stop the local stack (servers, worker, watcher)", DEMO_CONFIG
    )
    stack.add_argument("action", choices=["up", "down", "env"])
    stack.add_argument(
        "--profile",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="databases of both servers: SQLite files, or a private PostgreSQL cluster",
    )
    stack.add_argument("--prefect-port", type=int, default=4200)
    stack.add_argument("--mlflow-port", type=int, default=5000)
    stack.add_argument("--postgres-port", type=int, default=5433)
    serve = command(
        "serve",
        operations.cmd_serve,
        "answer POST /predict with the champion; with a folder of configs, POST /models/<name>/predict for each model",
    )
    serve.add_argument("--host", default=None, help="address to listen on (default: serving.host)")
    serve.add_argument("--port", type=int, default=None, help="port (default: serving.port)")
    serve.add_argument("--workers", type=int, default=None, help="server processes (default: serving.workers)")
    status = command("status", governance.cmd_status, "registered versions, aliases, metrics, gate decisions, lineage")
    status.add_argument("--json", action="store_true")
    check = command("check", governance.cmd_check, "verify the registry against the audit log (exit 6 on a violation)")
    check.add_argument("--json", action="store_true")
    audit = command(
        "audit", governance.cmd_audit, "the audit log: every registry transition, who made it, why, on what evidence"
    )
    audit.add_argument("--json", action="store_true")
    audit.add_argument("--at", default=None, help="ISO time: which version was champion then (UTC if no zone)")
    rollback = command(
        "rollback", governance.cmd_rollback, "move champion back to previous (or --to) in one recorded step"
    )
    rollback.add_argument("--to", default=None, help="version to restore (default: the `previous` alias)")
    rollback.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    rollback.add_argument("--override-retired", action="store_true", help="allow a retired version back (recorded)")
    retire = command(
        "retire", governance.cmd_retire, "take a version out of service: aliases removed, tagged, recorded"
    )
    retire.add_argument("--version", required=True)
    retire.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    reproduce = command(
        "reproduce", governance.cmd_reproduce, "retrain a version from its recorded inputs; compare metrics"
    )
    reproduce.add_argument("--version", required=True)
    archive = commands.add_parser("archive", help="the archived batches: list them, take one out of retraining")
    archived = archive.add_subparsers(dest="archive_command", required=True)
    listing = command(
        "list",
        archive_cli.cmd_archive_list,
        "every archived batch: source, fingerprint, rows, labels, when and by whom",
        group=archived,
    )
    listing.add_argument("--json", action="store_true")
    remove = command(
        "remove",
        archive_cli.cmd_archive_remove,
        "take a batch out of every future retraining window (moved to quarantine, audited)",
        group=archived,
    )
    remove.add_argument("--fingerprint", required=True, help="its sha256 (or a unique prefix of 8+ characters)")
    remove.add_argument("--reason", required=True, help="why (kept beside the file and in the audit log)")
    deploy.add_argument(
        "--dry-run", action="store_true", help="print what would be created, paused or changed; change nothing"
    )
    config = commands.add_parser("config", help="the config a model runs with")
    configured = config.add_subparsers(dest="config_command", required=True)
    command(
        "show",
        fleet.cmd_config_show,
        "print a model's config as it runs: its file over its folder's fleet.yaml, with every default",
        group=configured,
    )
    fleets = commands.add_parser("fleet", help="every model of a folder of configs: inventory, report, pause, resume")
    fleet_commands = fleets.add_subparsers(dest="fleet_command", required=True)
    fleet_status = command(
        "status",
        inventory.cmd_fleet_status,
        "one row per model from the registry and its runs; flags what needs a person (exit 7)",
        group=fleet_commands,
    )
    fleet_status.add_argument("--json", action="store_true")
    fleet_report = command(
        "report",
        inventory.cmd_fleet_report,
        "one HTML page: each model's served metric and drift over the data's time",
        group=fleet_commands,
    )
    fleet_report.add_argument("--output", default=None, help="the HTML file (default: <workspace>/reports/fleet.html)")
    for action, handler, what in (
        ("pause", fleet.cmd_fleet_pause, "pause the schedules and triggers of the fleet's models (or --model ones)"),
        ("resume", fleet.cmd_fleet_resume, "resume the schedules and triggers of the fleet's models (or --model ones)"),
    ):
        bulk = command(action, handler, what, group=fleet_commands)
        bulk.add_argument("--model", nargs="+", default=None, metavar="NAME", help="only these models")
    ab_tests_cli.add_commands(commands, command)
    streaming_cli.add_commands(commands, command)
    demo = command("demo", loop.cmd_demo, "the whole loop on generated demo data", config_default=DEMO_CONFIG)
    demo.add_argument("--data-dir", default="data/demo")
    demo.add_argument(
        "--fresh", action="store_true", help="start over: delete this model's registered versions and archive"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _library_defaults(args.verbose)
    outcomes: list[tuple[type[BaseException], int]] = [
        (ConfigError, EXIT_CONFIG),
        (DataRejected, EXIT_REJECTED),
        (GateRefused, EXIT_REFUSED),
        (NoChampion, EXIT_NO_CHAMPION),
        (InvariantViolated, EXIT_VIOLATION),
        (NeedsAttention, EXIT_FLAGGED),
        (DriftlineError, EXIT_FAILED),
    ]
    try:
        _process_settings(args)
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
