"""The fleet inventory: `driftline fleet status` (a row of evidence per model, flags) and `fleet report` (HTML)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from driftline.cli.fleet import fleet_of
from driftline.cli.render import console
from driftline.errors import NeedsAttention

if TYPE_CHECKING:
    from driftline.fleet.inventory import Inventory


def ago(moment: datetime | None, now: datetime) -> str:
    """How long ago, in the unit a person reads at a glance (– when it never happened)."""
    if moment is None:
        return "–"
    hours = (now - moment).total_seconds() / 3600
    if hours < 1:
        return f"{max(hours * 60, 0):.0f} min ago"
    return f"{hours:.1f} h ago" if hours < 48 else f"{hours / 24:.0f} d ago"


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


WIDTH_OFF_TERMINAL = 200  # piped or in CI: wide enough for every column of a row on one or two lines


def inventory_table(inventory: Inventory) -> Table:
    """A row per model; its flags in short (the lines that explain them follow the table)."""
    now = inventory.taken_at
    table = Table(title=f"Fleet {inventory.folder}: {len(inventory.rows)} models", title_justify="left")
    columns = ("model", "owner / use", "champion", "scored / labels", "last retrain", "drift / fairness")
    columns += ("metric now (at promotion)", "rollout", "alarms", "next run (UTC)", "SLA compliance", "flags")
    for column in columns:
        table.add_column(column)
    for row in inventory.rows:
        kinds = ", ".join(dict.fromkeys(flag.split(":", 1)[0] for flag in row.flags))
        flagged = f"[red]{escape(kinds)}[/red]" if kinds else "[green]ok[/green]"
        if row.config_error is not None:
            table.add_row(escape(row.model), *[""] * (len(columns) - 2), flagged)
            continue
        review = f"\nreview {row.review_date}" if row.review_date else ""
        retrain = "–"
        if row.last_retrain is not None:
            retrain = f"v{row.last_retrain_version} {row.last_retrain_verdict or '–'}\n{ago(row.last_retrain, now)}"
        share = "" if row.drifted_feature_share is None else f" {row.drifted_feature_share:.0%}"
        slas = "\n".join(
            f"{name} {'–' if share is None else f'{share:.1%}'}" for name, share in row.sla_compliance.items()
        )
        table.add_row(
            f"[b]{escape(row.model)}[/b]\n{row.lifecycle_stage}, risk {row.risk_tier or '–'}{review}",
            f"{escape(row.owner or 'none')}\n{escape(row.intended_use[:40])}",
            "none" if row.champion is None else f"v{row.champion}\n{ago(row.champion_since, now)}",
            f"{ago(row.last_scored, now)}\n{ago(row.last_labels, now)}",
            retrain,
            f"{row.drift or '–'}{share}\n{row.fairness or '–'}",
            f"{row.metric} {_number(row.metric_now)}\n({_number(row.metric_at_promotion)})",
            escape(row.rollout or "–"),
            ", ".join(row.alarms) or "none",
            "–" if row.next_run_at is None else f"{row.next_run}\n{row.next_run_at:%m-%d %H:%M}",
            slas or "none set",
            flagged,
        )
    return table


def flag_lines(inventory: Inventory) -> list[str]:
    return [f"{row.model}: {flag}" for row in inventory.flagged for flag in row.flags]


def cmd_fleet_status(args: argparse.Namespace) -> None:
    """One row of evidence per model of the folder (and per config that does not load); exit 7 when any is flagged."""
    from driftline.fleet.inventory import take_inventory

    inventory = take_inventory(fleet_of(args))
    if args.json:
        print(json.dumps(inventory.to_dict(), indent=2))
    else:
        # rich cuts a table to the console's width: off a terminal that is 80 columns, too few for a row
        shown = console if console.is_terminal else Console(highlight=False, width=WIDTH_OFF_TERMINAL)
        shown.print(inventory_table(inventory))
        for line in flag_lines(inventory):
            console.print(f"[red]FLAGGED[/red] {escape(line)}", soft_wrap=True)
    if inventory.flagged:
        raise NeedsAttention(inventory.summary())
    if not args.json:
        console.print(f"{len(inventory.rows)} models: nothing needs a person")


def cmd_fleet_report(args: argparse.Namespace) -> None:
    """One self-contained HTML page: each model's served metric and drift over the data's time."""
    from driftline.fleet.report import write_report

    fleet = fleet_of(args)
    path = write_report(fleet, args.output)
    console.print(f"fleet report of {len(fleet.configs)} models: {path}")
