"""Tasks of A/B tests: outcomes taken in, the test analysed and charted, and its end carried out in the registry."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.ab_tests import analysis, outcomes
from driftline.ab_tests.analysis import AbReport
from driftline.ab_tests.outcomes import OutcomeIntake
from driftline.config import DriftlineConfig
from driftline.fleet import sla
from driftline.registry import ModelRef, Registry
from driftline.registry.ab_tests import AbTest
from driftline.tasks.publishing import publish_markdown, publish_table
from driftline.tasks.registry import REGISTRY_RETRIES, announce_ab_test, announce_promotion, run_actor

FLOOR = "performance_floor"
BAR_WIDTH = 30


@task(name="receive-outcomes", cache_policy=NO_CACHE)
def receive_outcomes(cfg: DriftlineConfig, test: AbTest) -> OutcomeIntake:
    """The outcome files waiting in the outcomes folder: kept in the outcome store and filed away to done/; a bad
    one is quarantined with its reasons and the others still count."""
    store = outcomes.store_dir(Registry(cfg).folders)
    return outcomes.receive_outcomes(cfg, store, [*test.metrics, *test.guardrails])


@task(name="performance-floor-breach", cache_policy=NO_CACHE)
def performance_floor_breach(cfg: DriftlineConfig, test: AbTest) -> str | None:
    """The sla.performance_floor breach of the champion (arm A) evaluated since the test began, if there is one."""
    bound = cfg.sla.bounds.get(FLOOR)
    latest = sla.read_state(cfg).latest.get(FLOOR)
    if bound is None or latest is None or latest["at"] < test.started_at[:19]:
        return None
    if sla.within(cfg, FLOOR, latest["value"], bound):
        return None
    return f"performance floor breached: {latest['detail']} is {latest['value']:.4g}, floor {bound:g}"


@task(name="analyse-ab-test", cache_policy=NO_CACHE)
def analyse_ab_test(cfg: DriftlineConfig, test: AbTest) -> AbReport:
    registry = Registry(cfg)
    return analysis.analyse_test(cfg, test, registry.folders.prediction_log, outcomes.store_dir(registry.folders))


@task(name="publish-ab-report", cache_policy=NO_CACHE)
def publish_ab_report(cfg: DriftlineConfig, report: AbReport, intake: OutcomeIntake) -> None:
    """The arms per day as a table, and the verdict with a chart of both arms' means over the days as markdown."""
    rows = [
        {
            "day": day.day,
            "units A": day.units_a,
            "units B": day.units_b,
            f"mean {report.metric} A": _figure(day.mean_a),
            f"mean {report.metric} B": _figure(day.mean_b),
            "B - A": _figure(day.difference),
            "interval": f"{_figure(day.low)} to {_figure(day.high)}",
            "verdict": day.decision,
        }
        for day in report.days
    ]
    taken = f"{sum(intake.accepted.values())} outcome rows taken in from {len(intake.accepted)} files"
    publish_table(cfg, "ab-test-days", rows, f"{report.test.summary}, per day: {report.summary}. {taken}.")
    publish_markdown(cfg, "ab-test", ab_markdown(report, intake), f"{report.test.summary}: {report.decision}")


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def ab_markdown(report: AbReport, intake: OutcomeIntake) -> str:
    """The verdict, the arms and a bar chart of each arm's mean per day (text: it reads anywhere)."""
    test = report.test
    lines = [
        f"# {test.summary}",
        f"**{report.decision}**" + (f" (halted: {report.halted})" if report.halted else ""),
        "",
        *[f"- {reason}" for reason in report.reasons],
        "",
        "| arm | version | units | mean | interval |",
        "|---|---|---|---|---|",
        *[
            f"| {arm.arm} | v{test.champion_version if arm.arm == 'A' else test.version} | {arm.units} | "
            f"{_figure(arm.mean)} | {_figure(arm.low)} to {_figure(arm.high)} |"
            for arm in report.arms
        ],
    ]
    means = [value for day in report.days for value in (day.mean_a, day.mean_b) if value is not None]
    if means:
        top = max(abs(value) for value in means) or 1.0
        lines += ["", f"Mean {report.metric} per arm, units served up to each day:", "```"]
        for day in report.days:
            for arm, value in (("A", day.mean_a), ("B", day.mean_b)):
                bar = "#" * round(BAR_WIDTH * abs(value) / top) if value is not None else ""
                lines.append(f"{day.day} {arm} {bar:<{BAR_WIDTH}} {_figure(value)}")
        lines.append("```")
    left_out = {**report.skipped, **intake.skipped}
    if left_out or intake.rejected:
        lines += ["", "Left out:", *[f"- {reason}: {count}" for reason, count in left_out.items()]]
        lines += [f"- quarantined: {line}" for line in intake.rejected]
    return "\n".join(lines)


@task(name="end-ab-test", **REGISTRY_RETRIES)
def end_ab_test(
    cfg: DriftlineConfig, promote: bool, reason: str, evidence: dict, halted: bool = False
) -> ModelRef | None:
    """The test ended in the registry (arm B promoted with the test as evidence, or A kept), announced: a following
    service drops or swaps arm B at once. Returns the promoted version."""
    registry = Registry(cfg)
    ended, former = registry.ab_tests.stop(promote, reason, run_actor(), evidence, halted=halted)
    announce_ab_test(cfg, ended)
    if not promote:
        return None
    promoted = registry.version_ref(ended.version)
    announce_promotion(cfg, registry, promoted, former)
    return promoted
