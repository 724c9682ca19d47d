"""`driftline ab plan|start|status|analyse|stop`: A/B tests of a version against the champion, on business outcomes."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable

from rich.table import Table

from driftline.cli.render import console
from driftline.config import DriftlineConfig, load_config
from driftline.errors import ConfigError

POWER = 0.8


def add_commands(commands: argparse._SubParsersAction, command: Callable[..., argparse.ArgumentParser]) -> None:
    """The `ab` group of the parser."""
    ab = commands.add_parser("ab", help="A/B tests: a version against the champion, decided on business outcomes")
    group = ab.add_subparsers(dest="ab_command", required=True)
    plan = command(
        "plan", cmd_ab_plan, "units and days a test needs to find an effect, from past outcomes", group=group
    )
    plan.add_argument("--metric", required=True, help="the outcome column the test is decided on")
    plan.add_argument("--effect", type=float, required=True, help="the smallest difference worth finding (its units)")
    plan.add_argument("--share", type=float, default=0.5, help="share of units in arm B (default 0.5)")
    start = command("start", cmd_ab_start, "start an A/B test of a version against the champion", group=group)
    start.add_argument("--version", required=True, help="arm B: a version that passed the gate")
    start.add_argument("--share", type=float, default=0.5, help="share of units arm B answers, in (0, 1)")
    start.add_argument("--metric", required=True, action="append", help="outcome column deciding the test")
    start.add_argument(
        "--guardrail", nargs="+", default=[], metavar="COLUMN", help="outcome columns B must not make worse"
    )
    start.add_argument("--max-days", type=int, default=None, help="end without a decision after N days (ab.max_days)")
    start.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    status = command("status", cmd_ab_status, "the running test: arms, verdict, interval, MDE", group=group)
    status.add_argument("--json", action="store_true")
    command(
        "analyse",
        cmd_ab_analyse,
        "the ab-analysis flow now: take the waiting outcome files in, halt or (ab.auto_promote) decide",
        group=group,
    )
    stop = command("stop", cmd_ab_stop, "end the test: promote arm B, or keep the champion", group=group)
    decided = stop.add_mutually_exclusive_group(required=True)
    decided.add_argument("--promote", action="store_true", help="promote arm B (the test is the evidence)")
    decided.add_argument("--keep", action="store_true", help="keep the champion; arm B stops answering")
    stop.add_argument("--reason", required=True, help="why (recorded in the audit log)")


def cmd_ab_plan(args: argparse.Namespace) -> None:
    from driftline.ab_tests.analysis import units_per_day
    from driftline.ab_tests.outcomes import past_outcomes, store_dir, unit_column
    from driftline.ab_tests.planning import plan
    from driftline.registry import Registry

    cfg = load_config(args.config)
    registry = Registry(cfg)
    past = past_outcomes(cfg, store_dir(registry.folders), args.metric)
    if past.size < 2:
        raise ConfigError(
            f"no past outcomes of {args.metric!r} to measure its spread on ({past.size} units): drop outcome files "
            f"(`{unit_column(cfg)}, {args.metric}`) in the outcomes folder first"
        )
    daily = units_per_day(registry.folders.prediction_log, unit_column(cfg))
    if daily == 0:
        raise ConfigError(
            f"no units in the prediction log of {cfg.registry.model_name} yet: score some data first (the plan's days "
            "come from the units served per day)"
        )
    found = plan(past, args.effect, share=args.share, alpha=cfg.ab.alpha, power=POWER, units_per_day=daily)
    per_arm = ", ".join(f"{units} in {arm}" for arm, units in found.per_arm.items())
    console.print(
        f"to find a difference of {args.effect:g} in {args.metric} (sd {found.sd:.4g} per unit over {past.size} "
        f"past units) with {POWER:.0%} power at alpha {cfg.ab.alpha:g}, share {args.share:g} in B:\n"
        f"  {found.units} units ({per_arm}); at {daily:.0f} units a day, about {found.days:.1f} days\n"
        f"  (a fixed-horizon test would need {found.fixed_horizon_units}: the sequential test may be looked at daily)"
        f"\nstart it: driftline ab start --config {args.config} --version V --share {args.share:g} "
        f"--metric {args.metric} --max-days {max(1, round(found.days * 2))} --reason '...'",
        soft_wrap=True,
    )


def cmd_ab_start(args: argparse.Namespace) -> None:
    from driftline.ab_tests.outcomes import outcomes_folder, unit_column
    from driftline.registry import Registry
    from driftline.registry.audit_events import Actor

    cfg = load_config(args.config)
    unit = unit_column(cfg)
    if not unit:
        raise ConfigError("an A/B test routes units by ab.unit_column (or dataset.id_column): set one of them")
    test = Registry(cfg).ab_tests.start(
        args.version,
        args.share,
        args.metric,
        args.guardrail,
        args.max_days or cfg.ab.max_days,
        unit,
        args.reason,
        Actor.os_user(),
    )
    console.print(
        f"started {test.summary}; units by {test.unit_column}, decided on {', '.join(test.metrics)}"
        + (f", guardrails {', '.join(test.guardrails)}" if test.guardrails else "")
        + f", at most {test.max_days} days",
        soft_wrap=True,
    )
    _announce(cfg, test)
    console.print(f"drop outcome files ({unit}, {', '.join(test.metrics)}) in {outcomes_folder(cfg)}", soft_wrap=True)


def cmd_ab_status(args: argparse.Namespace) -> None:
    from driftline.ab_tests.analysis import analyse_test
    from driftline.ab_tests.outcomes import outcomes_folder, store_dir, waiting_files
    from driftline.registry import Registry

    cfg = load_config(args.config)
    registry = Registry(cfg)
    test = registry.ab_test()
    if test is None:
        if args.json:
            print(json.dumps({"model": cfg.registry.model_name, "test": None}, indent=2))
            return
        console.print(f"no A/B test has run on {cfg.registry.model_name}; plan one: driftline ab plan --config C ...")
        return
    report = analyse_test(cfg, test, registry.folders.prediction_log, store_dir(registry.folders))
    waiting = waiting_files(cfg)
    if args.json:
        answer = {
            "model": cfg.registry.model_name,
            "test": test.to_dict(),
            "report": report.to_dict(),
            "outcome_files_waiting": [str(path) for path in waiting],
        }
        print(json.dumps(answer, indent=2, default=str))
        return
    state = f"running, day {test.days_run():.1f} of {test.max_days}"
    if not test.running:
        state = f"{test.outcome} at {test.ended_at} by {test.ended_by}: {test.end_reason}"
    console.print(f"{test.summary}: {state}", soft_wrap=True)
    console.print(_arms_table(report))
    console.print(f"verdict: [bold]{report.decision}[/bold]" + (f" (halted: {report.halted})" if report.halted else ""))
    for reason in report.reasons:
        console.print(f"  {reason}", soft_wrap=True)
    if report.mde is not None:
        console.print(f"  minimum detectable effect now: {report.mde:.4g} {report.metric}")
    for reason, count in report.skipped.items():
        console.print(f"  left out: {count} {reason}", soft_wrap=True)
    if waiting:
        console.print(
            f"{len(waiting)} outcome files waiting in {outcomes_folder(cfg)}: the next ab-analysis takes them in",
            soft_wrap=True,
        )
    if test.running:
        console.print(f"end it: driftline ab stop --config {args.config} --promote|--keep --reason '...'")


def cmd_ab_analyse(args: argparse.Namespace) -> None:
    from driftline.flows.ab_analysis import AbAnalysisParams, ab_analysis

    outcome = ab_analysis(AbAnalysisParams(config=args.config))
    if outcome.test is None:
        console.print(outcome.summary)
        return
    taken = ", ".join(f"{name} ({rows} rows)" for name, rows in outcome.outcome_files.items()) or "none"
    console.print(f"{outcome.test}: {outcome.decision}; outcome files taken in: {taken}", soft_wrap=True)
    for rejected in outcome.rejected:
        console.print(f"  {rejected}", soft_wrap=True)
    acted = {"promote": "promoted", "keep": "ended, champion kept", "halt": "halted"}.get(outcome.action)
    console.print(f"{acted}: {outcome.summary}" if acted else f"running: {outcome.summary}", soft_wrap=True)


def _arms_table(report) -> Table:
    test = report.test
    table = Table(title=f"{report.metric} per unit" + (" (lower is better)" if report.lower_is_better else ""))
    for column in ("arm", "version", "units", "mean", "interval"):
        table.add_column(column)
    for arm in report.arms:
        version = test.champion_version if arm.arm == "A" else test.version
        table.add_row(arm.arm, f"v{version}", str(arm.units), _figure(arm.mean), _interval(arm.low, arm.high))
    if report.difference is not None:
        table.add_row("B - A", "", "", _figure(report.difference), _interval(report.low, report.high))
    return table


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _interval(low: float | None, high: float | None) -> str:
    return f"{_figure(low)} to {_figure(high)}"


def cmd_ab_stop(args: argparse.Namespace) -> None:
    from driftline.ab_tests.analysis import analyse_test
    from driftline.ab_tests.outcomes import store_dir
    from driftline.registry import Registry
    from driftline.registry.audit_events import Actor

    cfg = load_config(args.config)
    registry = Registry(cfg)
    test = registry.running_ab_test()
    if test is None:
        raise ConfigError(f"model {cfg.registry.model_name!r} has no A/B test running; see driftline ab status")
    report = analyse_test(cfg, test, registry.folders.prediction_log, store_dir(registry.folders))
    ended, _ = registry.ab_tests.stop(args.promote, args.reason, Actor.os_user(), report.evidence())
    if args.promote:
        console.print(f"promoted v{ended.version}: champion (was v{ended.champion_version}); {report.summary}")
    else:
        console.print(f"kept v{ended.champion_version} as champion; v{ended.version} no longer answers")
    _announce(cfg, ended)


def _announce(cfg: DriftlineConfig, test) -> None:
    """Tell a Prefect server's subscribers (each service's follower) at once; without one they poll."""
    if not os.environ.get("PREFECT_API_URL"):
        console.print(
            f"services following the registry pick this up at their next poll ({cfg.serving.poll_seconds:g} s)"
        )
        return
    from driftline.tasks.registry import send_ab_test_event

    event = send_ab_test_event(cfg, test)
    console.print(f"announced: {event} (services following the registry load or drop v{test.version} now)")
