"""Benchmark: streamed batch scoring vs raw scikit-learn predict, peak memory at 1M vs 10M rows, Dask vs one process.

Run with `make bench` or `python -m benchmarks.bench_scoring [--rows N]`. Exits 1 when a target is missed:
end-to-end throughput ≥ 0.7× raw predict, peak memory at 10× the rows ≤ 1.3×, Dask output equal to one process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from benchmarks.bench_drift import machine, timed
from driftline.config import DriftlineConfig, load_config
from driftline.data import chunking, loading
from driftline.data.demo import make_frame
from driftline.modeling import pipeline
from driftline.registry import ModelRef, Registry
from driftline.serving import batch_scoring
from driftline.serving.batch_scoring import score_file
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import train_model
from driftline.validation import chunked

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SEED = 2026
PIECE_ROWS = 1_000_000  # large files are generated and written a piece at a time
TARGET_THROUGHPUT_RATIO = 0.7
TARGET_MEMORY_RATIO = 1.3
REPEATS = 3  # throughput rounds; medians are compared


def write_config(folder: Path, dask: bool = False) -> Path:
    """The demo config with its workspace in `folder`; `dask` scores on a local cluster of 2 worker processes."""
    raw = yaml.safe_load((PROJECT_ROOT / "configs" / "demo.yaml").read_text())
    raw["storage"] = {"workspace": str(folder / "workspace")}
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
    command = [sys.executable, "-m", "benchmarks.bench_scoring", "--child", str(config), str(path), version,
               str(output)]  # fmt: skip
    finished = subprocess.run(command, check=True, capture_output=True, text=True, cwd=PROJECT_ROOT)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def child(config: str, path: str, version: str, output: str) -> None:
    """What the batch-scoring flow runs for a file: streamed validation, then streamed scoring, model from MLflow."""
    cfg = load_config(config)
    registry = Registry(cfg)
    start = time.perf_counter()
    model = registry.load_model(ModelRef(cfg.registry.model_name, version, ""))
    profile = registry.load_reference(registry.require_champion()).profile
    source, report = chunked.validate_file(Path(path), cfg, profile, for_training=False)
    validated = time.perf_counter()
    scored = batch_scoring.score_file(source, model, cfg, version, Path(output))
    done = time.perf_counter()
    peak_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("VmHWM"))  # fmt: skip
    print(json.dumps({"rows": scored.rows, "valid": report.success, "validate_s": validated - start,
                      "score_s": done - validated, "peak_mb": peak_kb / 1024}))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the throughput run; memory compares "
                        "this with 10× as many")  # fmt: skip
    parser.add_argument("--child", nargs=4, metavar=("CONFIG", "FILE", "VERSION", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    rows, large_rows = args.rows, 10 * args.rows
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as folder:
        return run(Path(folder), rows, large_rows)


def run(folder: Path, rows: int, large_rows: int) -> int:
    config = write_config(folder)
    cfg = load_config(config)
    print(f"scoring benchmark: {rows:,} rows (throughput), {rows:,} vs {large_rows:,} rows (memory); "
          f"Parquet in and out, chunk_rows={cfg.scoring.chunk_rows:,}")  # fmt: skip
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.2f}")
    generate_s, path = timed(lambda: write_batch(folder / "batch.parquet", rows))
    large_s, large_path = timed(lambda: write_batch(folder / "large.parquet", large_rows))
    print(f"data: generated and written in {generate_s:.1f} s ({rows:,} rows) and {large_s:.1f} s ({large_rows:,})")
    ref = register_champion(cfg)
    model = Registry(cfg).load_model(ref)  # skops, reviewed types: what the flows load
    source, raw, streamed, logged = throughput_runs(path, model, cfg, ref.version, folder)
    raw_s, streamed_s, logged_s = (statistics.median(times) for times in (raw, streamed, logged))
    validate_s, (_, report) = timed(lambda: chunked.validate_file(path, cfg, None, for_training=False))
    ratio, logged_ratio = raw_s / streamed_s, raw_s / logged_s
    print(f"raw sklearn predict, in memory:          {rows / raw_s:10,.0f} rows/s (median of {seconds(raw)})")
    print(f"streamed read → predict → write:         {rows / streamed_s:10,.0f} rows/s "
          f"(median of {seconds(streamed)}), ratio {ratio:.2f} (target ≥ {TARGET_THROUGHPUT_RATIO})")  # fmt: skip
    print(f"  + prediction log (the default):        {rows / logged_s:10,.0f} rows/s "
          f"(median of {seconds(logged)}), ratio {logged_ratio:.2f}")  # fmt: skip
    validated_s = validate_s + logged_s
    print(f"  + streamed validation (GX) first:      {rows / validated_s:10,.0f} rows/s "
          f"(validation {validate_s:.2f} s, passed: {report.success}), ratio {raw_s / validated_s:.2f}")  # fmt: skip

    small = score_in_child(config, path, ref.version, folder / "child-small.parquet")
    large = score_in_child(config, large_path, ref.version, folder / "child-large.parquet")
    memory_ratio = large["peak_mb"] / small["peak_mb"]
    for run_rows, measured in ((rows, small), (large_rows, large)):
        print(f"fresh process, validate + score {run_rows:>11,} rows: peak RSS {measured['peak_mb']:7.0f} MiB, "
              f"validation {measured['validate_s']:6.1f} s, scoring {measured['score_s']:6.1f} s "
              f"({run_rows / measured['score_s']:,.0f} rows/s)")  # fmt: skip
    print(f"peak memory ratio {large_rows:,} / {rows:,} rows: {memory_ratio:.2f} (target ≤ {TARGET_MEMORY_RATIO})")

    dask_cfg = load_config(write_config(folder, dask=True))
    dask_s, equal = timed(lambda: dask_equals_single_process(source, ref, dask_cfg, folder))
    print(f"Dask (local cluster, 2 worker processes, 2 partitions): {dask_s:.1f} s including cluster start; "
          f"output and log equal to one process: {equal}")  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    checks = {"throughput": ratio >= TARGET_THROUGHPUT_RATIO, "memory": memory_ratio <= TARGET_MEMORY_RATIO,
              "dask equality": equal}  # fmt: skip
    missed = [name for name, ok in checks.items() if not ok]
    if missed:
        print(f"FAILED: {', '.join(missed)}")
        return 1
    return 0


def seconds(times: list[float]) -> str:
    return "[" + ", ".join(f"{s:.2f}" for s in times) + "] s"


def throughput_runs(
    path: Path, model, cfg: DriftlineConfig, version: str, folder: Path
) -> tuple[chunking.DataFile, list[float], list[float], list[float]]:
    """Seconds of REPEATS rounds of: raw predict on the file in memory, streamed scoring with the prediction log off
    (read → predict → write), then on. Interleaved, so each kind of run sees the same spread of machine load."""
    batch = loading.load_batch(path, cfg.dataset)
    features = pipeline.feature_frame(batch.frame, cfg.dataset)
    source = chunking.DataFile(path, batch.fingerprint, batch.rows, tuple(batch.frame.columns))
    unlogged = cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"log_predictions": False})})
    raw, streamed, logged = [], [], []
    for _ in range(REPEATS):
        raw.append(timed(lambda: model.predict(features))[0])
        streamed.append(timed(lambda: score_file(source, model, unlogged, version, folder / "out.parquet"))[0])
        logged.append(timed(lambda: score_file(source, model, cfg, version, folder / "logged.parquet"))[0])
    return source, raw, streamed, logged


def dask_equals_single_process(source: chunking.DataFile, ref: ModelRef, cfg: DriftlineConfig, folder: Path) -> bool:
    """The partitioned-scoring subflow on Dask vs `score_file` in this process: same rows, same values, same order
    (each run stamps its own scoring time, so that column is left out)."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.partitioned_scoring import score_on_dask

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
