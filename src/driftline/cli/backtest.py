"""`driftline backtest`: a history replayed under each policy, with a progress bar per batch, then the comparison."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from driftline.backtest import progress, table
from driftline.backtest.policies import DEFAULT_POLICIES, plan
from driftline.backtest.results import Backtest
from driftline.cli.render import console
from driftline.errors import ConfigError

status = Console(stderr=True, highlight=False)  # progress on stderr: stdout stays the result (and valid --json)


def backtest_table(result: Backtest) -> Table:
    """A row per batch with a cell of figures and symbols per policy (who served it, how well, the estimate, what
    happened), then the totals: narrow enough for 80 columns, the words in the HTML page."""
    late = f", {result.late_labels}" if result.label_delay else ""
    title = f"Backtest of {result.name}: served {result.metric} per batch (champion of its moment{late})"
    shown = Table(title=title, title_justify="left")
    rows = table.short_rows(result)
    for column in rows[0]:
        shown.add_column(column, overflow="fold", no_wrap=column == table.ROWS)
    for row in rows:
        shown.add_row(*row.values(), end_section=True)
    for position, row in enumerate(table.short_totals(result)):
        label, *values = row.values()
        shown.add_row(label, "", *values, style="bold" if position == 0 else None)
    return shown


def cmd_backtest(args: argparse.Namespace) -> None:
    from driftline.flows.backtest import backtest
    from driftline.flows.params import BacktestParams

    names = args.policy or DEFAULT_POLICIES
    if args.label_delay < 0:
        raise ConfigError(f"--label-delay {args.label_delay}: must be 0 or more batches")
    later = max(len(args.data) - args.initial, 0)
    arrivals = max(later - args.label_delay, 0) if args.label_delay else 0  # the late labels, each a step
    steps = len(plan(names, args.set or [])) * (later + 1 + arrivals)  # ConfigError first
    params = BacktestParams(
        config=args.config,
        data=args.data,
        initial=args.initial,
        policies=names,
        variants=args.set or [],
        output=args.output,
        label_delay=args.label_delay,
    )
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=status,
        transient=True,
    )
    with bar:
        task = bar.add_task("backtest: ordering the history", total=steps)

        def heard(step: progress.Step) -> None:
            bar.console.print(f"[{step.policy}] {step.subject}: {step.happened}", soft_wrap=True, markup=False)
            bar.update(task, advance=1, description=f"{step.policy}: {step.subject}")

        with progress.listening(heard):
            outcome = backtest(params)
    if args.json:
        print(json.dumps(outcome.backtest.to_dict(), indent=2, default=str))
        return
    console.print(backtest_table(outcome.backtest))
    for line in table.short_key(outcome.backtest):
        console.print(line, style="dim", highlight=False, markup=False)
    console.print(f"[bold]{outcome.verdict}[/]")
    console.print(f"files: {outcome.page} (chart {outcome.chart}, JSON {outcome.json_file})", soft_wrap=True)
    link = f" ({outcome.mlflow_run_url})" if outcome.mlflow_run_url else ""
    console.print(
        f"MLflow: run {outcome.mlflow_run_id} in the experiment {outcome.mlflow_experiment}{link}", soft_wrap=True
    )
