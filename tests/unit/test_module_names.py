"""No two modules share a name for different things: a name that repeats across src/driftline, flows/ and tasks/ is one
thing seen from another layer (the `scoring` task, the `scoring` step behind it), never two unrelated things."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "src" / "driftline"

# Every name that more than one module (or a module and a library package) carries, and the one thing all of them are
# about. A new shared name fails the test until it is renamed or, when it truly is one thing, described here.
ONE_THING = {
    "ab_tests": "A/B tests: their package (statistics, outcomes, analysis), the registry's record of a test, its "
    "config section, its commands and its tasks",
    "estimation": "performance estimation before labels: config.estimation sets it, monitoring.estimation estimates, "
    "tasks.estimation runs it in the monitoring flow",
    "streaming": "streaming inference: its package, its config section and its command",
    "archive": "the archive of validated batches: data.archive keeps it, cli.archive is its commands",
    "backtest": "the backtest: its package, its flow, its tasks and its command",
    "batch_scoring": "batch scoring: the library (serving) and its flow",
    "data": "the data stage: its package, its config sections and its tasks",
    "drift": "drift: monitoring.drift measures it, tasks.drift runs the check",
    "evaluation": "the evaluation stage: its package and its task",
    "fleet": "the fleet: its package, its config sections and its commands",
    "gate": "the evaluation gate: evaluation.gate judges, steps.gate records the judgment in the registry",
    "governance": "governance: its package, config sections, commands and tasks",
    "inventory": "the fleet inventory: fleet.inventory takes it, cli.inventory is its commands",
    "kpis": "the operational KPIs: monitoring.kpis measures them, tasks.kpis publishes them",
    "loading": "reading a file into its typed form: config.loading a config, data.loading a data file",
    "monitoring": "monitoring: its package and its config sections",
    "operations": "running driftline as a service: the config sections and the commands",
    "performance": "live performance: monitoring.performance measures it, tasks.performance runs the check",
    "registry": "the MLflow registry: its package and the tasks on it",
    "report": "a stage's readable result: validation.report (a verdict), backtest.report (the backtest's files)",
    "scoring": "scoring a batch: steps.scoring behind tasks.scoring",
    "sla": "the SLAs: fleet.sla evaluates and records them, tasks.sla runs the check",
    "training": "training: its package, its config sections, its flow and its task",
    "validation": "validation: its package and its task",
    "workspace": "a workspace: config.workspace lays one out, backtest.workspace makes temporary ones per replay",
}


def names_in_use() -> dict[str, list[str]]:
    """Each module name and library package name, with where it is used."""
    used: dict[str, list[str]] = defaultdict(list)
    for folder in (LIBRARY, ROOT / "flows", ROOT / "tasks"):
        for path in folder.rglob("*.py"):
            if path.stem != "__init__":
                used[path.stem].append(str(path.relative_to(ROOT)))
    for package in LIBRARY.iterdir():
        if (package / "__init__.py").is_file():
            used[package.name].append(f"{package.relative_to(ROOT)}/")
    return used


def test_a_name_shared_by_modules_is_one_thing_seen_from_each_layer():
    shared = {name: sorted(paths) for name, paths in names_in_use().items() if len(paths) > 1}
    unexplained = {name: paths for name, paths in shared.items() if name not in ONE_THING}
    assert unexplained == {}
    assert sorted(ONE_THING) == sorted(shared)  # a name no longer shared leaves the lists


def test_the_flows_helpers_are_not_named_like_the_steps_package():
    assert not (ROOT / "flows" / "steps.py").exists()
    assert "steps" not in {name for name, paths in names_in_use().items() if len(paths) > 1}
