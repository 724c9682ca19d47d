"""Benchmark: one stack for a fleet of small generated models, at 20 and at 200 models; each cost per model and how it
grows.

Run with `make bench-fleet` or `python -m benchmarks.bench_fleet [--models 20 200]`. For each fleet size, on a fresh
Prefect server and MLflow server (SQLite, served artifacts) on free ports: champions for every model (the training
flow for a sample, the rest registered from one trained model through driftline's registry), `driftline deploy
--config DIR`, the servers' memory (children included) after the deploy and after the night, one night (each model's
batch-scoring run, then its drift-monitoring run, created from its deployments through the Prefect API and run by a
real process worker under the fleet's limits), `driftline fleet status --config DIR` against `driftline config show`
(the same imports, no work), and the fleet service (benchmarks/bench_fleet_serve.py). When the night at a size would
take longer than --night-budget minutes (estimated from a smaller size's night, in this run or in the earlier run
--compare names), a sample of --night-sample models' night runs inside the full deployment and the whole is
extrapolated; the output says so.

Then the per-model cost at each size and its growth (the per-model cost at the largest size over the smallest's;
flat is 1.0x), and the MLflow and Prefect database rows and artifact bytes each training and each night run adds,
counted in the SQLite stores. Exits 1 when a stage fails or a per-model cost grows past TARGET_GROWTH.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks import fleet_fixture
from benchmarks.bench_drift import machine
from benchmarks.fleet_fixture import PROJECT_ROOT, BenchStack, FleetFiles, Memory, Night, run_night, start_stack

TARGET_GROWTH = 1.5  # a per-model cost may grow this much from the smallest fleet to the largest
WARM = "trained"  # the snapshot server memory is counted from: the servers have answered a training flow
MAX_CONCURRENT_RUNS = 4  # fleet.max_concurrent_runs: the work pool's limit on this 2-core machine


@dataclass
class Size:
    """What one fleet size measured."""

    models: int
    trained: int = 0  # by the training flow
    train_wall: float = 0.0
    registered: int = 0  # copies registered through the registry
    register_wall: float = 0.0
    deploy: float = 0.0
    memory: dict[str, Memory] = field(default_factory=dict)  # "<server> <when>"
    night: Night | None = None
    status: float = 0.0
    status_exit: int = 0
    baseline: float = 0.0  # `driftline config show`: a command's imports and start
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # "<database> <when>" -> table -> rows
    artifacts: dict[str, int] = field(default_factory=dict)  # "<when>" -> bytes under mlartifacts, workspace
    serve: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, data: dict) -> Size:
        """A size as `asdict` wrote it to the figures file."""
        memory = {key: Memory(**value) for key, value in data.pop("memory").items()}
        night = data.pop("night")
        return cls(**data, memory=memory, night=night and Night(**night))

    @property
    def night_sampled(self) -> bool:
        return self.night is not None and self.night.models < self.models


def driftline(args: list[str], stack: BenchStack) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "driftline.cli", *args],
        env=stack.client_env(),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started, done


def snapshot(size: Size, stack: BenchStack, files: FleetFiles, when: str) -> None:
    size.rows[f"mlflow {when}"] = fleet_fixture.table_rows(stack.mlflow_db)
    size.rows[f"prefect {when}"] = fleet_fixture.table_rows(stack.prefect_db)
    size.artifacts[f"mlartifacts {when}"] = fleet_fixture.folder_bytes(stack.artifacts)
    size.artifacts[f"workspace {when}"] = fleet_fixture.folder_bytes(files.workspace)
    for server in ("prefect-server", "mlflow-server"):
        size.memory[f"{server} {when}"] = stack.memory(server)


def champions(size: Size, stack: BenchStack, files: FleetFiles, train_sample: int, cores: int) -> None:
    """The first `train_sample` models through the training flow, the others registered from one trained model."""
    sample, rest = files.configs[:train_sample], files.configs[train_sample:]
    started = time.perf_counter()
    fleet_fixture.train_with_cli(files, sample, stack.client_env(), cores)
    size.trained, size.train_wall = len(sample), time.perf_counter() - started
    snapshot(size, stack, files, "trained")
    if rest:
        started = time.perf_counter()
        fleet_fixture.register_copies(files, rest, cores)
        size.registered, size.register_wall = len(rest), time.perf_counter() - started
    snapshot(size, stack, files, "registered")


def fleet_serve(models: int) -> tuple[dict[str, float], str | None]:
    """benchmarks/bench_fleet_serve.py (helper "service") at this size, in its own process and store: its output
    shown as it prints it, the figures the table needs taken from it, and a problem when it missed its target."""
    command = [sys.executable, "-m", "benchmarks.bench_fleet_serve", "--models", str(models)]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_API", "MLFLOW_TRACKING"))}
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    print("\n".join(f"    {line}" for line in done.stdout.strip().splitlines()), flush=True)
    patterns = {
        "resident_max_mb": r"fleet resident MB: .*max (\d+)",
        "single_mb": r"single-model service (\d+)",
        "p99_ratio": r"p99 ratio fleet/single: ([\d.]+)x",
    }
    figures = {}
    for key, pattern in patterns.items():
        if found := re.search(pattern, done.stdout):
            figures[key] = float(found.group(1))
    problem = None if done.returncode == 0 else f"bench_fleet_serve --models {models} exited {done.returncode}: "
    if problem:
        problem += (done.stdout.strip().splitlines() or [""])[-1] + " " + done.stderr.strip()[-300:]
    return figures, problem


def say(models: int, text: str) -> None:
    print(f"[{models} models, {time.strftime('%H:%M:%S')}] {text}")


def measure(models: int, root: Path, args: argparse.Namespace, night_per_model: Callable[[], float | None]) -> Size:
    """Every cost at one fleet size, on its own stack; a stage that fails is a problem, and the next stages run."""
    size = Size(models)
    stack = start_stack(root / "stack")
    try:
        files = fleet_fixture.write_fleet(root, models, stack.mlflow_url, MAX_CONCURRENT_RUNS)
        snapshot(size, stack, files, "idle")
        say(models, f"servers up; champions: {min(args.train_sample, models)} by driftline train")
        champions(size, stack, files, min(args.train_sample, models), fleet_fixture.usable_cores())
        say(models, f"champions in {size.train_wall + size.register_wall:.0f} s; deploying")
        size.deploy, done = driftline(["deploy", "--config", str(files.folder)], stack)
        if done.returncode == 0:
            snapshot(size, stack, files, "deployed")
            attempt(size, "the night", lambda: night(size, stack, files, args, night_per_model()))
        else:
            size.problems.append(f"deploy exited {done.returncode}: {done.stderr.strip()[-400:]}")
        say(models, "fleet status")
        attempt(size, "fleet status", lambda: fleet_status(size, stack, files))
    except Exception as error:  # a broken stage: what was measured before it is still printed
        size.problems.append(f"{type(error).__name__}: {error}")
    finally:
        stack.stop()
    say(models, "stack stopped; the fleet service (benchmarks/bench_fleet_serve.py)")
    size.serve, problem = fleet_serve(models)
    size.problems += [problem] if problem else []
    return size


def attempt(size: Size, what: str, action: Callable[[], None]) -> None:
    try:
        action()
    except Exception as error:
        size.problems.append(f"{what}: {type(error).__name__}: {error}")


def night(size: Size, stack: BenchStack, files: FleetFiles, args: argparse.Namespace, per_model: float | None) -> None:
    """The whole night, or a sample of it when the whole would take longer than the budget."""
    estimate = per_model * size.models / 60 if per_model else None
    if estimate is None:  # no smaller fleet's night to estimate from: a large fleet's night is sampled
        full, why = size.models <= args.night_sample, "no smaller night measured to estimate the whole from"
    else:
        full, why = estimate <= args.night_budget, f"the whole is estimated at {estimate:.0f} min"
    names = files.names if full else files.names[: args.night_sample]
    sampled = "" if full else f" (a sample: {why})"
    say(size.models, f"deployed in {size.deploy:.1f} s; the night of {len(names)} models{sampled}")
    fleet_fixture.drop_batches(files, names)
    stack.start_worker()
    size.night = run_night(stack, names)
    size.problems += size.night.failed
    snapshot(size, stack, files, "night")
    say(size.models, f"night of {len(names)} models done in {size.night.seconds:.0f} s")


def fleet_status(size: Size, stack: BenchStack, files: FleetFiles) -> None:
    size.baseline, _ = driftline(["config", "show", "--config", str(files.configs[0])], stack)
    size.status, done = driftline(["fleet", "status", "--config", str(files.folder)], stack)
    size.status_exit = done.returncode
    if done.returncode not in (0, 7):  # 7: something is flagged, a normal answer
        size.problems.append(f"fleet status exited {done.returncode}: {done.stderr.strip()[-400:]}")
    say(size.models, f"fleet status in {size.status:.1f} s (exit {done.returncode}), config show {size.baseline:.1f} s")


@dataclass(frozen=True)
class Cost:
    name: str
    total: Callable[[Size], float | None]  # at that size (estimated when a sample ran: marked *)
    per_model: Callable[[Size], float | None]
    estimated: Callable[[Size], bool] = lambda size: False


def memory_cost(server: str, when: str) -> Cost:
    def total(size: Size) -> float | None:
        measured = size.memory.get(f"{server} {when}")
        return measured and measured.rss_mb

    def per_model(size: Size) -> float | None:
        measured, warm = size.memory.get(f"{server} {when}"), size.memory.get(f"{server} {WARM}")
        return measured and warm and (measured.rss_mb - warm.rss_mb) / size.models

    name = {"prefect-server": "Prefect", "mlflow-server": "MLflow"}[server]
    return Cost(f"{name} server RSS after {when} (MiB)", total, per_model)


def night_total(size: Size) -> float | None:
    return size.night and size.night.per_model() * size.models


COSTS = [
    Cost(
        "champions: training flow (s)",
        lambda s: s.trained and s.train_wall / s.trained * s.models,
        lambda s: s.trained and s.train_wall / s.trained,
        lambda s: s.trained < s.models,
    ),
    Cost(
        "champions: registered copies (s)",
        lambda s: s.register_wall or None,
        lambda s: s.registered and s.register_wall / s.registered,
    ),
    Cost("deploy --config DIR (s)", lambda s: s.deploy or None, lambda s: s.deploy and s.deploy / s.models),
    memory_cost("prefect-server", "deployed"),
    memory_cost("prefect-server", "night"),
    memory_cost("mlflow-server", "deployed"),
    memory_cost("mlflow-server", "night"),
    Cost(
        "one night, end to end (s)", night_total, lambda s: s.night and s.night.per_model(), lambda s: s.night_sampled
    ),
    Cost(
        "fleet status (s)",
        lambda s: s.status or None,
        lambda s: s.status and (s.status - s.baseline) / s.models,
    ),
    Cost(
        "fleet service RSS, max of a walk (MiB)",
        lambda s: s.serve.get("resident_max_mb"),
        lambda s: s.serve.get("resident_max_mb") and s.serve["resident_max_mb"] / s.models,
    ),
    Cost("fleet service: hot p99 / single's", lambda s: s.serve.get("p99_ratio"), lambda s: None),
]


def shown(value: float | None, star: bool = False) -> str:
    if value is None or value == 0:
        return "-"
    return f"{value:,.3g}{'*' if star else ''}" if abs(value) < 100 else f"{value:,.0f}{'*' if star else ''}"


def print_costs(sizes: list[Size]) -> list[str]:
    """The table of costs; returns the costs whose per-model value grew past TARGET_GROWTH."""
    small, large = sizes[0], sizes[-1]
    header = f"{'cost':<42}" + "".join(f"{f'at {s.models}':>10}" for s in sizes)
    header += "".join(f"{f'/model {s.models}':>13}" for s in sizes) + f"{'growth':>9}"
    print(header)
    grown = []
    for cost in COSTS:
        line = f"{cost.name:<42}" + "".join(f"{shown(cost.total(s), cost.estimated(s)):>10}" for s in sizes)
        line += "".join(f"{shown(cost.per_model(s)):>13}" for s in sizes)
        first, last = cost.per_model(small), cost.per_model(large)
        if first and last and len(sizes) > 1:
            ratio = last / first
            line += f"{ratio:>8.2f}x"
            if ratio > TARGET_GROWTH:
                grown.append(f"{cost.name}: {ratio:.2f}x per model")
        print(line)
    print(
        "per model: the value over the models; for server memory, over the server's size once warm (after the first "
        "models' training flows: its workers have imported what a request needs); for fleet status, over `config "
        "show` (a command's imports and start)"
    )
    if any(cost.estimated(s) for s in sizes for cost in COSTS):
        print("* estimated: the training flow ran for a sample (the rest registered from one trained model), or the")
        print("  night ran for a sample of models inside the full deployment; the whole = per model x models")
    return grown


def delta(after: dict[str, int], before: dict[str, int], per: int) -> dict[str, float]:
    return {table: (rows - before.get(table, 0)) / per for table, rows in after.items() if rows != before.get(table, 0)}


def print_records(size: Size) -> None:
    """Database rows and artifact bytes each training and each night run adds, at this size."""
    rows, stored = size.rows, size.artifacts
    print(f"\nrecords at {size.models} models (SQLite stores, counted after each stage):")
    per_run = size.night.runs if size.night else 1
    parts = [
        (
            "MLflow rows per training (the training flow)",
            delta(rows["mlflow trained"], rows["mlflow idle"], size.trained),
        ),
        (
            "MLflow rows per registered copy",
            delta(rows["mlflow registered"], rows["mlflow trained"], max(size.registered, 1)),
        ),
        ("MLflow rows per night flow run", delta(rows.get("mlflow night", {}), rows["mlflow deployed"], per_run)),
        ("Prefect rows per model deployed", delta(rows["prefect deployed"], rows["prefect registered"], size.models)),
        ("Prefect rows per night flow run", delta(rows.get("prefect night", {}), rows["prefect deployed"], per_run)),
    ]
    for title, tables in parts:
        listed = ", ".join(f"{table} {count:.1f}" for table, count in sorted(tables.items(), key=lambda kv: -kv[1]))
        print(f"  {title}: {sum(tables.values()):.1f} ({listed})")
    version_bytes = (stored["mlartifacts trained"] - stored["mlartifacts idle"]) / max(size.trained, 1)
    night_bytes = (stored.get("mlartifacts night", 0) - stored["mlartifacts deployed"]) / per_run
    workspace_bytes = (stored.get("workspace night", 0) - stored["workspace deployed"]) / per_run
    print(f"  artifacts per model version (training flow): {version_bytes / 1024:.0f} KiB")
    print(
        f"  per night flow run: MLflow artifacts {night_bytes / 1024:.0f} KiB, "
        f"workspace {workspace_bytes / 1024:.0f} KiB"
    )


def print_capacity(size: Size, fleet: int = 2000, retrains_per_year: int = 12, night_hours: int = 5) -> None:
    """A fleet of `fleet` models from this size's per-model costs, linearly: each model scores, monitors drift and
    joins labels once a night, and retrains `retrains_per_year` times."""
    if size.night is None:
        return
    rows, stored = size.rows, size.artifacts
    night_rows = sum(delta(rows["mlflow night"], rows["mlflow deployed"], size.night.models).values())
    training_rows = sum(delta(rows["mlflow trained"], rows["mlflow idle"], size.trained).values())
    version_bytes = (stored["mlartifacts trained"] - stored["mlartifacts idle"]) / size.trained
    night_bytes = (stored["mlartifacts night"] - stored["mlartifacts deployed"]) / size.night.models
    mean_run = sum(size.night.run_seconds) / max(len(size.night.run_seconds), 1)
    print(f"\ncapacity for {fleet:,} models, from the per-model costs at {size.models} (linear):")
    print(
        f"  scheduled flow runs the scheduler creates: {fleet * 3:,} a night (scoring, drift, performance), "
        f"{fleet * 3 / night_hours:,.0f} an hour over a {night_hours} h night"
    )
    print(
        f"  concurrent flow runs to finish the night in {night_hours} h at {mean_run:.0f} s a run (measured here): "
        f"{fleet * 3 * mean_run / (night_hours * 3600):.0f}"
    )
    print(
        f"  MLflow rows a year: {fleet * 365 * night_rows:,.0f} from nights ({night_rows:.0f} a model-night) + "
        f"{fleet * retrains_per_year * training_rows:,.0f} from {retrains_per_year} trainings a model "
        f"({training_rows:.0f} each)"
    )
    print(
        f"  MLflow artifacts a year: {fleet * retrains_per_year * version_bytes / 2**30:.1f} GiB of model versions "
        f"({version_bytes / 2**20:.2f} MiB each) + {fleet * 365 * night_bytes / 2**30:.1f} GiB from nights"
    )
    for server in ("prefect-server", "mlflow-server"):
        warm, night = size.memory[f"{server} {WARM}"], size.memory[f"{server} night"]
        per_model = (night.rss_mb - warm.rss_mb) / size.models
        print(
            f"  {server} memory: {warm.rss_mb + per_model * fleet:,.0f} MiB RSS ({warm.rss_mb:,.0f} warm + "
            f"{per_model:.2f} MiB a model)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, nargs="+", default=[20, 200], help="fleet sizes, each on a fresh stack")
    parser.add_argument(
        "--train-sample",
        type=int,
        default=fleet_fixture.usable_cores(),
        help="models trained by the training flow at each size; the rest are registered from one trained model",
    )
    parser.add_argument(
        "--night-sample", type=int, default=20, help="models whose night runs when the whole would take too long"
    )
    parser.add_argument("--night-budget", type=float, default=30, help="minutes: a longer night (estimated) is sampled")
    parser.add_argument("--keep", action="store_true", help="keep the fleets' folders (printed) for a look afterwards")
    parser.add_argument(
        "--compare",
        type=Path,
        default=None,
        help="the figures file of an earlier run: its sizes join this run's table (marked as from that run)",
    )
    args = parser.parse_args(argv)
    sizes_wanted = sorted(set(args.models))
    root = Path(tempfile.mkdtemp(prefix="driftline-bench-fleet-"))
    print(f"fleet benchmark: {sizes_wanted} small binary models, pool limit {MAX_CONCURRENT_RUNS} runs; in {root}")
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.2f}")
    sizes: list[Size] = []
    figures = root.with_suffix(".json")  # kept: every figure measured, for another look
    print(f"figures as measured: {figures}")

    def earlier() -> list[Size]:  # read when needed: the earlier run may still be running when this one starts
        if args.compare is None or not args.compare.exists():
            return []
        return [Size.of(data) for data in json.loads(args.compare.read_text())]

    def night_per_model() -> float | None:
        """A smaller size's whole night per model, measured in this run or the earlier one."""
        nights = [each.night.per_model() for each in [*earlier(), *sizes] if each.night and not each.night_sampled]
        return nights[-1] if nights else None

    for models in sizes_wanted:
        size = measure(models, root / f"fleet-{models}", args, night_per_model)
        sizes.append(size)
        figures.write_text(json.dumps([asdict(each) for each in sizes], indent=1))
        for problem in size.problems:
            say(models, f"PROBLEM: {problem}")
        if size.night_sampled:
            say(models, f"the night ran for a sample of {size.night.models} of {models} models; extrapolated")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}\n")
    if args.compare:
        before = [each for each in earlier() if each.models not in sizes_wanted]
        sizes = sorted([*before, *sizes], key=lambda size: size.models)
        print(f"with {[each.models for each in before]} models as measured by an earlier run ({args.compare})\n")
    grown = print_costs(sizes)
    for size in sizes:
        if size.night is not None and "mlflow night" in size.rows:
            print_records(size)
        if size.serve:
            print(
                f"\nfleet service at {size.models} models: " + ", ".join(f"{k} {v:.3g}" for k, v in size.serve.items())
            )
    try:
        print_capacity(sizes[-1])
    except KeyError as missing:  # a stage failed at that size: no figure to plan from
        print(f"no capacity plan: {missing} was not measured")
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    failed = [problem for size in sizes for problem in size.problems] + grown
    for problem in failed:
        print(f"FAILED: {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
