"""The fleet's commands: a model's merged config, deploying a folder of configs, pausing and resuming models."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from rich.console import Console
from rich.table import Table

from driftline.cli.render import console
from driftline.config import Fleet, load_config, load_fleet
from driftline.errors import ConfigError

if TYPE_CHECKING:
    from driftline.flows.deploy import FleetDeployed, WorkPoolSpec

errors = Console(stderr=True, highlight=False)


def fleet_of(args: argparse.Namespace) -> Fleet:
    """The fleet `--config` names: the one the command loaded at start for a folder, else (one config) loaded now."""
    return getattr(args, "fleet", None) or load_fleet(args.config)


def cmd_config_show(args: argparse.Namespace) -> None:
    """The config as the model runs with it: its file over its folder's fleet.yaml, with every default filled in."""
    cfg = load_config(args.config)
    print(f"# {cfg.source}: the config as it runs (fleet.yaml beside it, then defaults, filled in)")
    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")


def _pool(args: argparse.Namespace) -> WorkPoolSpec:
    from driftline.flows.deploy import DEFAULT_WORK_POOL, WORK_POOL_ENV, WorkPoolSpec

    return WorkPoolSpec(
        name=args.pool or os.environ.get(WORK_POOL_ENV, DEFAULT_WORK_POOL),
        type=args.pool_type,
        template_file=Path(args.job_template) if args.job_template else None,
        image=args.image,
    )


def cmd_deploy_fleet(args: argparse.Namespace) -> None:
    """Every config of a folder (or one config, with --dry-run): deployed, or what deploying would change. A config
    that does not load is reported by file and line, the others deploy, and the command then fails (exit 2)."""
    from driftline.flows.deploy import deploy_fleet

    fleet = fleet_of(args)
    for broken in fleet.broken:
        errors.print(f"driftline: not deployed: {broken.problem}", soft_wrap=True)
    project_dir = Path(args.project_dir).resolve()
    pool = _pool(args)
    if fleet.configs:
        what = "reading what the server has" if args.dry_run else f"deploying {len(fleet.configs)} models"
        with console.status(f"{what} (work pool {pool.name})"):
            done = deploy_fleet(fleet, args.config, project_dir, pool, project_dir / args.prefect_file, args.dry_run)
        console.print(changes_table(done, args.dry_run))
        console.print(done.pool_change if args.dry_run else done.pool_change.replace("create ", "created "))
        if done.sla_check:
            console.print(done.sla_check if args.dry_run else f"deployed {done.sla_check} (the fleet's SLA probe)")
        if not args.dry_run:
            console.print(f"start a worker: prefect worker start --pool {pool.name} --type {pool.type}")
    if fleet.broken:
        files = ", ".join(str(broken.path) for broken in fleet.broken)
        raise ConfigError(f"{len(fleet.broken)} config(s) not deployed, fix and deploy again: {files}")


def changes_table(done: FleetDeployed, dry_run: bool) -> Table:
    title = "What deploying would do (dry run: nothing changed)" if dry_run else "Deployed"
    table = Table(title=f"{title}, work pool {done.work_pool}", title_justify="left")
    for column in ("model", "action", "details"):
        table.add_column(column)
    for change in done.changes:
        table.add_row(change.model, change.action, "\n".join(change.details))
    return table


def _pause_or_resume(args: argparse.Namespace, paused: bool) -> None:
    """The models of the folder (or --model ones): their deployments' schedules and landing triggers."""
    from driftline.flows.deploy import DEFAULT_WORK_POOL, WORK_POOL_ENV
    from driftline.flows.prefect_deployments import pause_models

    fleet = fleet_of(args)
    names = [cfg.registry.model_name for cfg in fleet.only(args.model)]
    for line in pause_models(os.environ.get(WORK_POOL_ENV, DEFAULT_WORK_POOL), names, paused):
        console.print(line)


def cmd_fleet_pause(args: argparse.Namespace) -> None:
    _pause_or_resume(args, paused=True)


def cmd_fleet_resume(args: argparse.Namespace) -> None:
    _pause_or_resume(args, paused=False)
