"""Benchmark: one-pass batch scoring vs raw scikit-learn predict, validation options, peak memory at 1M vs 10M rows,
Dask vs one process.

Run with `make bench` or `python -m benchmarks.bench_scoring [--rows N] [--profile]`. Exits 1 when a target is
missed, each measured against raw predict on the same in-memory frame in the same run: read → predict → write
≥ 0.7×, with the prediction log (the default) ≥ 0.85×, validated, scored and logged in one pass (the flow's path)
≥ 0.6×; peak memory at 10× the rows ≤ 1.3×; Dask output equal to one process.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from benchmarks import validation_options
from benchmarks.bench_drift import machine, timed
from driftline.config import DriftlineConfig, load_config
from driftline.data import chunking, loading
from driftline.data.demo import make_frame
from driftline.modeling import pipeline
from driftline.registry import Champion, ModelRef, Registry
from driftline.serving import batch_scoring
from driftline.serving.batch_scoring import score_file
from driftline.steps.scoring import validate_and_score_file
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import train_model

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SEED = 2026
PIECE_ROWS = 1_000_000  # large files are generated and written a piece at a time
TARGETS = {
    "read → predict → write": 0.7,
    "+ prediction log (the default)": 0.85,
    "validated, scored, logged in one pass": 0.6,
}
TARGET_MEMORY_RATIO = 1.3
REPEATS = 3  # throughput rounds; medians are compared


def write_config(folder: Path, dask: bool = False) -> Path:
    """The demo config with its workspace in `folder`; `dask` scores on a local cluster of 2 worker processes."""
    raw = yaml.safe_load((PROJECT_ROOT / "configs" / "demo.yaml").read_text())
    raw["storage"] = {"workspace": str(folder / "workspace"), "allowed_roots": [str(folder)]}
    if dask:
        raw["scoring"] = {"engine": "dask", "dask_workers": 2, "partitions": 2}
    path = folder / ("dask.yaml" if dask else "driftline.yaml")
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def write_batch(path: Path, rows: int) -> Path:
    """Seeded demo customers, written a piece at a time so the generator's memory does not grow with `rows`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for start in range(0, rows, PIECE_ROWS):
        piece = make_frame(min(PIECE_ROWS, rows - start), seed=SEED + start // PIECE_ROWS, id_offset=start)
        table = pa.Table.from_pandas(piece, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()
    return path


def register_champion(cfg: DriftlineConfig) -> ModelRef:
    """Train on 20k rows and register the model in the run's own MLflow store (SQLite), as `driftline train` does."""
    frame = make_frame(20_000, seed=1)
    trained = train_model(frame, cfg)
    registry = Registry(cfg)
    lineage = collect_lineage(cfg, [DataSource("bench", len(frame), "bench", "-")])
    ref = registry.log_candidate(trained, lineage, "bench")
    registry.promote(ref)
    return ref


def score_in_child(config: Path, path: Path, version: str, output: Path) -> dict:
    """Validate and score one file in a fresh Python, which reports its own peak resident memory (VmHWM)."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_scoring",
        "--child",
        str(config),
        str(path),
        version,
        str(output),
    ]
    finished = subprocess.run(command, check=True, capture_output=True, text=True, cwd=PROJECT_ROOT)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def child(config: str, path: str, version: str, output: str) -> None:
    """What the batch-scoring flow runs for a file: the champion from MLflow, then one pass (read, validate, score,
    write, log) and the scoring run recorded."""
    cfg = load_config(config)
    start = time.perf_counter()
    champion = Registry(cfg).load_champion()
    source, scored = validate_and_score_file(path, champion, cfg, output)
    done = time.perf_counter()
    peak_kb = next(
        int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM")
    )
    print(json.dumps({"rows": scored.rows, "version": version, "seconds": done - start, "peak_mb": peak_kb / 1024}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows of the throughput run; memory compares this with 10× as many"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print the functions a one-pass run spends the most time in (cProfile, this thread)",
    )
    parser.add_argument("--child", nargs=4, metavar=("CONFIG", "FILE", "VERSION", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as folder:
        return run(Path(folder), args.rows, 10 * args.rows, args.profile)


def run(folder: Path, rows: int, large_rows: int, profile: bool) -> int:
    config = write_config(folder)
    cfg = load_config(config)
    print(
        f"scoring benchmark: {rows:,} rows (throughput), {rows:,} vs {large_rows:,} rows (memory); "
        f"Parquet in and out, chunk_rows={cfg.scoring.chunk_rows:,}"
    )
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.2f}")
    generate_s, path = timed(lambda: write_batch(folder / "batch.parquet", rows))
    large_s, large_path = timed(lambda: write_batch(folder / "large.parquet", large_rows))
    print(f"data: generated and written in {generate_s:.1f} s ({rows:,} rows) and {large_s:.1f} s ({large_rows:,})")
    ref = register_champion(cfg)
    champion = Registry(cfg).load_champion()  # skops, reviewed types: what the flows load
    source, times = throughput_runs(path, champion, cfg, folder)
    raw = times.pop("raw")
    raw_s = statistics.median(raw)
    print(f"raw sklearn predict, in memory:           {rows / raw_s:10,.0f} rows/s (median of {seconds(raw)})")
    ratios = {}
    for name, runs in times.items():
        ratios[name] = raw_s / statistics.median(runs)
        print(
            f"{name + ':':42s}{rows / statistics.median(runs):10,.0f} rows/s (median of {seconds(runs)}), "
            f"ratio {ratios[name]:.2f} (target ≥ {TARGETS[name]})"
        )
    report_validation_options(path, cfg, champion)
    report_stages(path, cfg, champion)
    if profile:
        profile_one_pass(path, cfg, champion, folder)

    small = score_in_child(config, path, ref.version, folder / "child-small.parquet")
    large = score_in_child(config, large_path, ref.version, folder / "child-large.parquet")
    memory_ratio = large["peak_mb"] / small["peak_mb"]
    for run_rows, measured in ((rows, small), (large_rows, large)):
        print(
            f"fresh process, one pass over {run_rows:>11,} rows: peak RSS {measured['peak_mb']:7.0f} MiB, "
            f"{measured['seconds']:6.1f} s ({run_rows / measured['seconds']:,.0f} rows/s)"
        )
    print(f"peak memory ratio {large_rows:,} / {rows:,} rows: {memory_ratio:.2f} (target ≤ {TARGET_MEMORY_RATIO})")

    dask_cfg = load_config(write_config(folder, dask=True))
    dask_s, equal = timed(lambda: dask_equals_single_process(source, ref, dask_cfg, folder))
    print(
        f"Dask (local cluster, 2 worker processes, 2 partitions): {dask_s:.1f} s including cluster start; "
        f"output and log equal to one process: {equal}"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    checks = {name: ratios[name] >= target for name, target in TARGETS.items()}
    checks |= {"memory": memory_ratio <= TARGET_MEMORY_RATIO, "dask equality": equal}
    missed = [name for name, ok in checks.items() if not ok]
    if missed:
        print(f"FAILED: {', '.join(missed)}")
        return 1
    return 0


def report_validation_options(path: Path, cfg: DriftlineConfig, champion: Champion) -> None:
    """Each way to validate the same rows (read left out), alone and overlapped with scoring them."""
    measured = validation_options.measure(path, cfg, champion.reference.profile, champion.model, champion.ref.version)
    print(
        f"validation options, {measured['rows']:,} rows in memory (scoring the same chunks alone: "
        f"{measured['score_s']:.2f} s):"
    )
    for name, seconds_taken in measured["seconds"].items():
        overlap = measured["overlapped"].get(name)
        beside = f"; on a thread beside scoring: {overlap:.2f} s in all" if overlap is not None else ""
        print(f"  {name + ':':55s}{seconds_taken:7.2f} s ({measured['rows'] / seconds_taken:11,.0f} rows/s){beside}")
    print(f"  verdicts, counts and examples equal to GX on the whole file: {measured['equal']}")


def report_stages(path: Path, cfg: DriftlineConfig, champion: Champion) -> None:
    stages = validation_options.stage_seconds(
        path, cfg, champion.reference.profile, champion.model, champion.ref.version
    )
    total = sum(stages.values())
    print(f"where a one-pass run spends its time, each stage alone ({total:.2f} s in all, before overlap):")
    for name, seconds_taken in stages.items():
        print(f"  {name + ':':50s}{seconds_taken:6.2f} s ({seconds_taken / total:4.0%})")


def profile_one_pass(path: Path, cfg: DriftlineConfig, champion: Champion, folder: Path) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(validate_and_score_file, path, champion, cfg, str(folder / "profiled.parquet"))
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def seconds(times: list[float]) -> str:
    return "[" + ", ".join(f"{s:.2f}" for s in times) + "] s"


def throughput_runs(
    path: Path, champion: Champion, cfg: DriftlineConfig, folder: Path
) -> tuple[chunking.DataFile, dict[str, list[float]]]:
    """Seconds of REPEATS rounds of: raw predict on the file in memory, streamed scoring with the prediction log off
    (read → predict → write) and on, then the flow's one pass (read, validate, score, write, log, the scoring run
    recorded). Interleaved, so each kind of run sees the same spread of machine load."""
    batch = loading.load_batch(path, cfg.dataset)
    features = pipeline.feature_frame(batch.frame, cfg.dataset)
    source = chunking.DataFile(path, batch.fingerprint, batch.rows, tuple(batch.frame.columns))
    unlogged = cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"log_predictions": False})})
    model, version = champion.model, champion.ref.version
    validate_and_score_file(path, champion, cfg, str(folder / "warm.parquet"))  # imports and GX's registry, once
    runs: dict[str, list[float]] = {"raw": [], **{name: [] for name in TARGETS}}
    for _ in range(REPEATS):
        runs["raw"].append(timed(lambda: model.predict(features))[0])
        runs["read → predict → write"].append(
            timed(lambda: score_file(source, model, unlogged, version, folder / "out.parquet"))[0]
        )
        runs["+ prediction log (the default)"].append(
            timed(lambda: score_file(source, model, cfg, version, folder / "logged.parquet"))[0]
        )
        runs["validated, scored, logged in one pass"].append(
            timed(lambda: validate_and_score_file(path, champion, cfg, str(folder / "one-pass.parquet")))[0]
        )
    return source, runs


def dask_equals_single_process(source: chunking.DataFile, ref: ModelRef, cfg: DriftlineConfig, folder: Path) -> bool:
    """The partitioned-scoring subflow on Dask vs `score_file` in this process: same rows, same values, same order
    (each run stamps its own scoring time, so that column is left out)."""
    from prefect.testing.utilities import prefect_test_harness

    from driftline.flows.partitioned_scoring import score_on_dask

    with prefect_test_harness(server_startup_timeout=120):  # a throwaway Prefect server and database
        scored = score_on_dask(source, ref, cfg, str(folder / "dask.parquet"))
    single = pd.read_parquet(folder / "out.parquet").drop(columns=batch_scoring.SCORED_AT)
    try:
        pd.testing.assert_frame_equal(pd.read_parquet(scored.output).drop(columns=batch_scoring.SCORED_AT), single)
    except AssertionError as difference:
        print(f"Dask output differs: {str(difference).splitlines()[0]}")
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
