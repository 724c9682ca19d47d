"""The commands that run driftline as a service: deploy, watch, stack, serve, dashboard, kpis."""

from __future__ import annotations

import argparse
import json
import os
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from driftline.cli.render import console, kpis_table
from driftline.config import load_config
from driftline.config.base import REMOTE_TRACKING_SCHEMES
from driftline.errors import DriftlineError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from driftline.config import DriftlineConfig
    from driftline.serving.app import ModelMetrics
    from driftline.stack import StackSettings

# What GET /model shows of a version's lineage (driftline status --json shows all of it).
LINEAGE_SHOWN = ("created_at", "gate_verdict", "trigger", "metrics", "training_rows", "data", "git_commit")


def cmd_deploy(args: argparse.Namespace) -> None:
    from driftline.flows.deploy import DEFAULT_WORK_POOL, WORK_POOL_ENV, WorkPoolSpec, deploy

    if Path(args.config).is_dir() or args.dry_run:
        from driftline.cli.fleet import cmd_deploy_fleet

        return cmd_deploy_fleet(args)

    cfg = load_config(args.config)
    project_dir = Path(args.project_dir).resolve()
    pool = WorkPoolSpec(
        name=args.pool or os.environ.get(WORK_POOL_ENV, DEFAULT_WORK_POOL),
        type=args.pool_type,
        template_file=Path(args.job_template) if args.job_template else None,
        image=args.image,
    )
    with console.status(f"deploying {cfg.registry.model_name} to {pool.type} work pool {pool.name}"):
        deployed = deploy(cfg, args.config, project_dir, pool, project_dir / args.prefect_file)
    console.print(f"deployed {', '.join(deployed.deployments)} to {deployed.pool_type} work pool {deployed.work_pool}")
    for name, schedule in (
        ("batch-scoring", deployed.schedules.batch_scoring),
        ("drift-monitoring", deployed.schedules.drift_monitoring),
        ("performance-monitoring", deployed.schedules.performance_monitoring),
        ("ab-analysis", deployed.schedules.ab_analysis),
    ):
        state = "active" if schedule.active else "paused"
        if name == "performance-monitoring" and not cfg.labels.enabled:
            state = "paused (labels.enabled is false)"
        console.print(f"  {name}: cron {schedule.cron!r} ({schedule.timezone}), {state}")
    console.print(f"  continuous-training: on driftline.data.arrived for files in {cfg.folders.landing}")
    console.print(f"  notifications: {deployed.notifications}")
    console.print(f"start a worker: prefect worker start --pool {deployed.work_pool} --type {deployed.pool_type}")


def cmd_watch(args: argparse.Namespace) -> None:
    from driftline.flows.watch import watch, watch_fleet

    def described(arrival) -> str:
        note = f"duplicate of {arrival.duplicate_of}: not processed again" if arrival.duplicate else "new"
        return f"{arrival.path}: {arrival.size} bytes, sha256 {arrival.sha256[:12]}, {note}"

    def show(arrival, config: str | None = None) -> None:
        console.print(f"{config}: {described(arrival)}" if config else described(arrival), highlight=False)

    def gone(path: str) -> None:
        console.print(f"{path}: its run failed, but the file is no longer there (or changed); drop it again")

    try:
        if Path(args.config).is_dir():
            if not args.once:
                console.print(f"watching the landing folder of every model in {args.config} (Ctrl-C stops)")
            watch_fleet(
                Path(args.config),
                once=args.once,
                on_arrival=lambda config, arrival: show(arrival, config),
                on_broken=lambda problem: console.print(f"[red]not watched[/red]: {problem}", highlight=False),
                retry_failed=args.retry_failed,
                on_gone=gone,
            )
            return
        cfg = load_config(args.config)
        if not args.once:
            console.print(f"watching {cfg.folders.landing} (every {cfg.landing.poll_seconds:g} s; Ctrl-C stops)")
        watch(cfg, args.config, once=args.once, on_arrival=show, retry_failed=args.retry_failed, on_gone=gone)
    except KeyboardInterrupt:
        console.print("stopped")


def _stack_settings(args: argparse.Namespace) -> StackSettings:
    from driftline.config import load_fleet
    from driftline.stack import StackSettings, prefect_database_url

    # A folder of configs (a fleet) runs on one stack: the shared workspace's, with the fleet service on the port of
    # the fleet's shared serving settings (fleet.yaml).
    fleet = Path(args.config).is_dir()
    cfg = load_fleet(args.config).workspace if fleet else load_config(args.config)
    # The stack's servers serve the stores the CLI writes: Prefect's database of the workspace's flow runs, and the
    # MLflow store (unless the config names a tracking server).
    cli_store = None if cfg.store_uri.startswith(REMOTE_TRACKING_SCHEMES) else cfg.store_uri
    return StackSettings(
        root=cfg.folders.stack,
        project_dir=Path.cwd(),
        config=args.config,
        profile=args.profile,
        prefect_port=args.prefect_port,
        mlflow_port=args.mlflow_port,
        postgres_port=args.postgres_port,
        mlflow_store=cli_store,
        mlflow_artifacts=cfg.registry.artifact_location or (cfg.folders.root / "mlartifacts").as_uri(),
        prefect_store=prefect_database_url(cfg.folders.root, os.environ),
        service_port=cfg.serving.port if fleet else None,
    )


def cmd_stack(args: argparse.Namespace) -> None:
    from driftline import stack
    from driftline.config import load_fleet

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
    urls = {p.name: p.url for p in state.processes}
    fleet = load_fleet(args.config)
    for broken in fleet.broken:
        console.print(f"[red]not running[/red]: {broken.problem}", highlight=False)
    for cfg in fleet.configs:  # the watcher makes them too, maybe after this line is read
        for folder in (cfg.folders.landing, cfg.folders.inbox):
            folder.mkdir(parents=True, exist_ok=True)
    lines = [f"\nup: Prefect UI {urls['prefect-server']}  ·  MLflow UI {urls['mlflow-server']}"]
    if "service" in urls:
        lines.append(f"  fleet service: {urls['service']}/models (POST /models/<name>/predict)")
    if not Path(args.config).is_dir():
        [cfg] = fleet.configs
        lines += [
            f"  landing folder (drop CSV/Parquet files here): {cfg.folders.landing}",
            f"  scoring inbox (scored nightly): {cfg.folders.inbox}",
        ]
    else:
        lines.append("  landing folders (drop CSV/Parquet files here) and scoring inboxes (scored nightly):")
        lines += [
            f"    {cfg.registry.model_name}: {cfg.folders.landing}  ·  {cfg.folders.inbox}" for cfg in fleet.configs
        ]
    lines += [
        f"  logs: {settings.root}/logs/",
        f'  use it from this shell: eval "$(.venv/bin/driftline stack env --config {args.config})"',
        "  stop it: make down" + ("" if args.config == "configs/demo.yaml" else f" CONFIG={args.config}"),
    ]
    console.print("\n".join(lines))


SERVE_CONFIG_ENV = "DRIFTLINE_SERVE_CONFIG"  # how `serve --workers N` tells each worker process its config


def cmd_serve(args: argparse.Namespace) -> None:
    import tempfile

    import uvicorn

    if Path(args.config).is_dir():
        cfg = _announce_fleet(args.config)
    else:
        cfg = load_config(args.config)
        guarded = (
            f"API key from ${cfg.serving.api_key_env}" if os.environ.get(cfg.serving.api_key_env) else "no API key"
        )
        console.print(
            f"serving {cfg.registry.model_name}@champion ({guarded}); POST /predict, GET /health /ready /metrics /model"
        )
    host, port = args.host or cfg.serving.host, args.port or cfg.serving.port
    workers = args.workers or cfg.serving.workers
    console.print(f"on http://{host}:{port} ({workers} process{'es' if workers > 1 else ''}); Ctrl-C stops")
    if workers == 1:
        uvicorn.run(serving_app(args.config), host=host, port=port, log_level="warning", access_log=False)
        return
    # Each worker imports the app itself, follows the registry and loads the models; their Prometheus figures are
    # kept in files in one fresh folder and summed when /metrics is read.
    with tempfile.TemporaryDirectory(prefix="driftline-metrics-") as metrics_dir:
        os.environ.update({SERVE_CONFIG_ENV: str(Path(args.config).resolve()), "PROMETHEUS_MULTIPROC_DIR": metrics_dir})
        uvicorn.run(
            "driftline.cli.operations:worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
        )


def _announce_fleet(folder: str) -> DriftlineConfig:
    """The fleet's shared config (its fleet.yaml: host, port, workers, bounds); the configs that do not load are
    reported by file and line, and the others served."""
    from driftline.config import load_fleet

    fleet = load_fleet(folder)
    for broken in fleet.broken:
        console.print(f"[red]not served[/red]: {broken.problem}", highlight=False)
    shared = fleet.workspace
    budget = f", at most {shared.serving.max_loaded_mb} MB resident" if shared.serving.max_loaded_mb else ""
    console.print(
        f"serving {len(fleet.configs)} models of {folder} ({', '.join(fleet.names)}), each loaded on its first "
        f"request, at most {shared.serving.max_loaded_models} at once{budget}; POST /models/<name>/predict, "
        "GET /models /models/<name>/ready /models/<name>/model /metrics /health"
    )
    return shared


def worker_app():
    """The app of one `serve --workers N` process (uvicorn imports and calls this in each)."""
    return serving_app(os.environ[SERVE_CONFIG_ENV])


def serving_app(config: str | Path):
    """The service of a config, or of every model of a folder of configs (the fleet service)."""
    if Path(config).is_dir():
        from driftline.config import load_fleet
        from driftline.serving.fleet_app import FleetService

        fleet = load_fleet(config)
        return FleetService(fleet, model_app, api_key=os.environ.get(fleet.workspace.serving.api_key_env) or None)
    return model_app(load_config(config))


def model_app(cfg: DriftlineConfig, metrics: ModelMetrics | None = None) -> FastAPI:
    """One model's service: its registry, lineage for GET /model, promotion events to follow, its own API key."""
    from driftline.registry import Registry
    from driftline.serving.app import create_app

    registry = Registry(cfg)

    def describe(ref) -> dict:
        info = next((v for v in registry.versions() if v.version == ref.version), None)
        return {} if info is None else {key: value for key, value in info.to_dict().items() if key in LINEAGE_SHOWN}

    model_events = None
    if os.environ.get("PREFECT_API_URL"):  # a Prefect server announces promotions: follow them, not only polls
        from driftline.tasks.events import follow_model_moves

        model_events = partial(follow_model_moves, cfg)
    api_key = os.environ.get(cfg.serving.api_key_env) or None
    return create_app(cfg, registry, api_key=api_key, describe=describe, model_events=model_events, metrics=metrics)


def cmd_dashboard(args: argparse.Namespace) -> None:
    """Evidently's own UI service on the model's workspace folder: this process becomes it (Ctrl-C stops it)."""
    from driftline.monitoring.evidently_report import open_dashboard

    cfg = load_config(args.config)
    with open_dashboard(cfg):  # the project and its panels exist before the first monitoring run
        pass
    evidently = str(Path(sys.executable).parent / "evidently")
    console.print(f"Evidently UI on http://{args.host}:{args.port} (workspace {cfg.folders.dashboard}; Ctrl-C stops)")
    sys.stdout.flush()
    os.execv(
        evidently,
        [evidently, "ui", "--workspace", str(cfg.folders.dashboard), "--host", args.host, "--port", str(args.port)],
    )


def cmd_kpis(args: argparse.Namespace) -> None:
    from driftline.tasks.kpis import gather_kpis

    cfg = load_config(args.config)
    with console.status("reading the registry, the monitoring runs and the record of training runs"):
        measured = gather_kpis(cfg)
    if args.json:
        print(json.dumps({"model": cfg.registry.model_name, **measured.to_dict()}, indent=2))
        return
    console.print(kpis_table(cfg, measured))
