"""Benchmark: driftline's drift decision vs Evidently's DataDriftPreset(KS) on 1M rows × 10 numeric columns.

Run with `make bench` or `python -m benchmarks.bench_drift [--rows N]`. Exits 1 when a per-column decision differs
from Evidently's or the speed-up is under the 50× target (both measured in this run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from driftline.config import DriftlineConfig, parse_config
from driftline.monitoring.drift import detect_drift
from driftline.monitoring.evidently_report import evidently_column_drift
from driftline.monitoring.reference import ReferenceStats, reference_stats

COLUMNS = 10
SEED = 2024
TARGET_SPEEDUP = 50.0
# per column: how the batch differs from the reference (0 = same distribution)
SHIFTS = [0.02, 0.01, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def config() -> DriftlineConfig:
    return parse_config(
        {
            "name": "bench",
            "registry": {"model_name": "bench"},
            "dataset": {"target": "y", "task": "binary", "features": {f"x{i}": "numeric" for i in range(COLUMNS)}},
            "drift": {"numeric_method": "ks"},
        }
    )


def frames(rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded: continuous, rounded (ties) and integer (heavy ties) columns; 1% missing in x1; x0–x2 shifted."""
    rng = np.random.default_rng(SEED)

    def make(shifts: list[float]) -> pd.DataFrame:
        columns = {}
        for i, shift in enumerate(shifts):
            kind = i % 3
            if kind == 0:
                columns[f"x{i}"] = rng.normal(shift, 1, rows)
            elif kind == 1:
                columns[f"x{i}"] = np.round(rng.exponential(1 + shift, rows), 2)
            else:
                columns[f"x{i}"] = rng.poisson(4 + 10 * shift, rows).astype(float)
        frame = pd.DataFrame(columns)
        frame.loc[rng.choice(rows, rows // 100, replace=False), "x1"] = np.nan
        return frame

    return make([0.0] * COLUMNS), make(SHIFTS)


def timed(action: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def timed_cpu(action: Callable[[], object]) -> tuple[float, float, object]:
    """Wall and CPU seconds (all threads): the decision runs a thread per core on large batches."""
    cpu = time.process_time()
    seconds, result = timed(action)
    return seconds, time.process_time() - cpu, result


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    memory_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return f"{os.cpu_count()} cores ({cpu}), {memory_kb / 2**20:.1f} GiB RAM"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the reference and in the batch")
    rows = parser.parse_args(argv).rows
    cfg = config()
    print(f"drift benchmark: {rows:,} reference rows vs {rows:,} batch rows × {COLUMNS} numeric columns, KS p < 0.05")
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.2f}")
    reference, current = frames(rows)

    build_s, built = timed(lambda: reference_stats(reference, cfg))
    with tempfile.TemporaryDirectory() as folder:
        save_s, _ = timed(lambda: built.save(Path(folder)))
        load_s, loaded = timed(lambda: ReferenceStats.load(Path(folder)))
    decision_runs = [timed_cpu(lambda: detect_drift(loaded, current, cfg)) for _ in range(3)]
    decision_s = statistics.median(seconds for seconds, _, _ in decision_runs)
    decision_cpu_s = statistics.median(cpu for _, cpu, _ in decision_runs)
    ours = {c.column: c for c in decision_runs[0][2].columns}
    scipy_s, _ = timed(lambda: [stats.ks_2samp(reference[c].dropna(), current[c].dropna()) for c in reference])
    evidently_s, theirs = timed(lambda: evidently_column_drift(reference, current, cfg))

    print(f"reference stats, built once per model version: {build_s:.2f} s (save {save_s:.2f} s, load {load_s:.2f} s)")
    runs = [round(seconds, 3) for seconds, _, _ in decision_runs]
    print(
        f"driftline decision, full batch:   {decision_s:.3f} s (median of {runs}; "
        f"CPU {decision_cpu_s:.3f} s on {os.cpu_count()} cores)"
    )
    print(f"scipy ks_2samp per column:        {scipy_s:.3f} s")
    print(f"Evidently DataDriftPreset (ks):   {evidently_s:.3f} s")
    ratio = evidently_s / decision_s
    print(
        f"speed-up vs Evidently: {ratio:.1f}× (target ≥ {TARGET_SPEEDUP:.0f}×); vs scipy: {scipy_s / decision_s:.1f}×"
    )
    print(f"{'column':8} {'driftline p':>12} {'Evidently p':>12} {'drifted':>8} {'same':>5}")
    differ = []
    for column, (p_value, drifted, _) in theirs.items():
        same = ours[column].drifted == drifted
        differ += [] if same else [column]
        print(f"{column:8} {ours[column].statistic:12.4g} {p_value:12.4g} {str(drifted):>8} {str(same):>5}")
    largest = max(abs(ours[c].statistic - p) / p if p else abs(ours[c].statistic) for c, (p, _, _) in theirs.items())
    print(
        f"decisions identical: {not differ} ({len(theirs) - len(differ)}/{len(theirs)}); "
        f"largest relative |Δp| = {largest:.1e}; load average after: {os.getloadavg()[0]:.2f}"
    )
    if differ or ratio < TARGET_SPEEDUP:
        print(f"FAILED: decisions differ on {differ}" if differ else f"FAILED: {ratio:.1f}× < {TARGET_SPEEDUP:.0f}×")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
