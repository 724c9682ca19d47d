"""The real histories replayed under every retraining policy, and the table that chooses the default from them.

Run with `make backtest-histories` or `python -m benchmarks.histories [--label-delay 0 1] [--history NAME ...]
[--policy NAME ...]`. Each history's monthly files are written by its loader (from a PyPI package, offline), then
`driftline backtest` replays them once per label delay, one policy at a time: the baselines (never, every-batch)
and the variants (fixed thresholds, calibrated, Evidently's distances, and the estimated and either triggers where
this driftline has them; `--policy` picks some). Each run goes to .driftline/histories/<history>-k<K>/<policies>/
backtest.json; a run already there is not repeated, and the table takes every policy found under <history>-k<K>.
The table of histories × policies (mean served metric, alarms, retrains, promotions, compute, and whether each
policy meets the rule below) goes to .driftline/histories/histories.md and stdout; `--table-only` builds it from
the runs already there.

The rule a default must meet on every history: it serves within 0.005 of the best policy's mean metric, with at most
60 % of the retrains of every-batch.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from driftline.backtest.policies import EVERY_BATCH, NAMED_POLICIES

RESULTS = Path(".driftline/histories")
TOLERANCE = 0.005  # served metric, absolute, against the best policy on the same history
RETRAIN_SHARE = 0.6  # of every-batch's retrains
ESTIMATED = "estimated"


@dataclass(frozen=True)
class History:
    name: str
    loader: str  # the benchmarks module whose write_months(out_dir) writes the monthly files
    config: str
    initial: int  # months that train the first champion
    role: str  # chooses the default, or is held out to check it


HISTORIES = [
    History("flights", "benchmarks.flights", "configs/flights.yaml", 3, "chooses"),
    History("police-stops", "benchmarks.police_stops", "configs/police-stops.yaml", 2, "chooses"),
    History("electricity", "benchmarks.electricity", "configs/electricity.yaml", 2, "held out"),
]

# Each policy: its short name in the table and how `driftline backtest` is told it (a named policy or a --set group).
FIXED = "fixed"
POLICIES: list[tuple[str, list[str]]] = [
    ("never", ["never"]),
    (EVERY_BATCH, [EVERY_BATCH]),
    (FIXED, ["current"]),
    ("calibrated", ["drift.thresholds=calibrated"]),
    ("distances", ["drift.numeric_method=wasserstein", "drift.categorical_method=jensenshannon"]),
    (ESTIMATED, [ESTIMATED]),
    ("either", ["drift.trigger=either"]),
    ("calibrated+either", ["drift.thresholds=calibrated", "drift.trigger=either"]),
]


def available_policies(names: list[str] | None = None) -> list[tuple[str, list[str]]]:
    """The policies to replay, in the order named (default: all): estimated and either only once this driftline has
    the estimation trigger."""
    known = dict(POLICIES)
    if ESTIMATED not in NAMED_POLICIES:
        known = {name: how for name, how in known.items() if not name.endswith(("either", ESTIMATED))}
    return [(name, known[name]) for name in (names or list(known)) if name in known]


def backtest_arguments(
    history: History, policies: list[tuple[str, list[str]]], label_delay: int, output: Path
) -> list[str]:
    """The `driftline backtest` command line of one history at one label delay: the named policies, then each
    variant as a --set group (with no named one, the command adds its defaults: current, never, every-batch)."""
    files = sorted(str(path) for path in Path("data", history.name).glob("*.parquet"))
    named = [how[0] for _, how in policies if "=" not in how[0]]
    driftline = str(Path(sys.executable).parent / "driftline")  # the venv's, whether or not it is on PATH
    arguments = [driftline, "backtest", "--config", history.config, "--data", *files]
    arguments += ["--initial", str(history.initial), *(["--policy", *named] if named else [])]
    for _, how in policies:
        if "=" in how[0]:
            arguments += ["--set", *how]
    return [*arguments, "--label-delay", str(label_delay), "--output", str(output)]


def replay(history: History, label_delay: int, policies: list[tuple[str, list[str]]]) -> None:
    """Write the history's files, then replay it under these policies, unless a replay of exactly these is there."""
    importlib.import_module(history.loader).write_months(Path("data", history.name))
    output = RESULTS / f"{history.name}-k{label_delay}" / "-".join(name.replace(" ", "-") for name, _ in policies)
    if (output / "backtest.json").exists():
        return
    started = time.perf_counter()
    subprocess.run(backtest_arguments(history, policies, label_delay, output), check=True, stdout=subprocess.DEVNULL)
    print(f"{history.name}, label delay {label_delay}: {time.perf_counter() - started:.0f} s", flush=True)


@dataclass(frozen=True)
class Row:
    """One policy's totals on one history, named as in the table."""

    policy: str
    mean: float | None
    alarms: int
    retrains: int
    refused: int
    promotions: int
    seconds: float
    batches: int
    estimate_error: float | None  # mean |estimated − realized| over the batches both have


def short_name(described: str) -> str:
    """The table's name of a replayed policy (backtest.json names a --set group by its assignments)."""
    for name, how in POLICIES:
        if described == " ".join(how) or described == how[0]:
            return FIXED if described == "current" else name
    return described


def rows_of(result: dict) -> list[Row]:
    return [
        Row(
            short_name(policy["name"]),
            policy["totals"]["mean_metric"],
            policy["totals"]["alarms"],
            policy["totals"]["retrains"],
            policy["totals"]["refused"],
            policy["totals"]["promotions"],
            policy["totals"]["seconds"],
            len(policy["batches"]),
            policy["totals"].get("estimate_error"),
        )
        for policy in result["policies"]
    ]


def meets_rule(row: Row, rows: list[Row], greater_is_better: bool) -> bool:
    """Within TOLERANCE of the best mean served metric, with at most RETRAIN_SHARE of every-batch's retrains."""
    means = [r.mean for r in rows if r.mean is not None]
    if row.mean is None or not means:
        return False
    best = max(means) if greater_is_better else min(means)
    every = next((r.retrains for r in rows if r.policy == EVERY_BATCH), None)
    close = abs(row.mean - best) <= TOLERANCE + 1e-12
    return close and (every is None or row.retrains <= RETRAIN_SHARE * every)


def history_table(result: dict, title: str) -> list[str]:
    """One history at one label delay: a Markdown table, a row per policy."""
    rows = rows_of(result)
    metric, greater = result["metric"], result["greater_is_better"]
    lines = [
        f"**{title}** ({len(result['batches'])} monthly batches after {len(result['initial'])} of training; "
        f"mean served {metric}, {'higher' if greater else 'lower'} is better)",
        "",
        f"| policy | mean served {metric} | alarms | retrains (refused) | promotions | estimate error | compute, s | "
        "meets the rule |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        mean = "-" if row.mean is None else f"{row.mean:.3f}"
        error = "-" if row.estimate_error is None else f"{row.estimate_error:.3f}"
        verdict = "yes" if meets_rule(row, rows, greater) else "no"
        lines.append(
            f"| {row.policy} | {mean} | {row.alarms} | {row.retrains} ({row.refused}) | {row.promotions} | {error} | "
            f"{row.seconds:.0f} | {verdict} |"
        )
    return [*lines, ""]


def summary_table(results: dict[str, dict]) -> list[str]:
    """Policies × histories: whether each meets the rule on each replay, and on all."""
    policies = list(dict.fromkeys(row.policy for result in results.values() for row in rows_of(result)))
    lines = [f"| policy | {' | '.join(results)} | on all |", f"|---|{'---|' * len(results)}---|"]
    for policy in policies:
        cells = []
        for result in results.values():
            rows = rows_of(result)
            row = next((r for r in rows if r.policy == policy), None)
            cells.append("-" if row is None else "yes" if meets_rule(row, rows, result["greater_is_better"]) else "no")
        lines.append(f"| {policy} | {' | '.join(cells)} | {'yes' if set(cells) == {'yes'} else 'no'} |")
    return [*lines, ""]


def markdown(results: dict[str, dict]) -> str:
    """The tables of every replay found, then the summary."""
    lines = [
        f"Rule: within {TOLERANCE} of the best mean served metric, at most {RETRAIN_SHARE:.0%} of every-batch's "
        "retrains.",
        "",
    ]
    for title, result in results.items():
        lines += history_table(result, title)
    return "\n".join([*lines, *summary_table(results)])


def position(order: list[str], name: str) -> int:
    """Where a policy goes in the table: as in POLICIES, any other variant last."""
    return order.index(name) if name in order else len(order)


def replayed(history: History, delay: int) -> list[dict]:
    """The backtest.json of every replay of a history at a label delay."""
    return [
        json.loads(path.read_text()) for path in sorted((RESULTS / f"{history.name}-k{delay}").glob("**/backtest.json"))
    ]


def found_results(label_delays: list[int], names: list[str]) -> dict[str, dict]:
    """Per history and label delay that has replays: its policies' results together, titled `<history>, label
    delay K`; `never` from label delay 0 (it retrains on nothing: a delay changes nothing, it is replayed once)."""
    results = {}
    for history in HISTORIES:
        for delay in label_delays:
            replays = replayed(history, delay) if history.name in names else []
            if not replays:
                continue
            policies = [policy for result in replays for policy in result["policies"]]
            if delay and "never" not in {short_name(policy["name"]) for policy in policies}:
                earlier = [policy for result in replayed(history, 0) for policy in result["policies"]]
                policies += [policy for policy in earlier if short_name(policy["name"]) == "never"]
            order = [name for name, _ in POLICIES]
            policies.sort(key=lambda policy: position(order, short_name(policy["name"])))
            results[f"{history.name} ({history.role}), label delay {delay}"] = {**replays[0], "policies": policies}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label-delay", type=int, nargs="+", default=[0, 1], help="label delays to replay")
    parser.add_argument("--history", nargs="+", choices=[h.name for h in HISTORIES], default=None)
    parser.add_argument("--policy", nargs="+", choices=[name for name, _ in POLICIES], default=None)
    parser.add_argument("--table-only", action="store_true", help="tabulate the results already there")
    args = parser.parse_args(argv)
    names = args.history or [history.name for history in HISTORIES]
    if not args.table_only:
        for history in HISTORIES:
            for delay in args.label_delay:
                policies = available_policies(args.policy)
                if delay > 0:  # never retrains: what it serves does not depend on when labels arrive
                    policies = [policy for policy in policies if policy[0] != "never"] or policies
                if history.name in names:
                    replay(history, delay, policies)
    table = markdown(found_results(args.label_delay, names))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "histories.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
