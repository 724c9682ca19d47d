"""Benchmark: `driftline fleet status` over a fleet of N models with evidence, on an MLflow SQLite store.

Run with `make bench` or `python -m benchmarks.bench_fleet_status [--models 200]`. The fleet is built once in a
temporary folder: per model a config, a registered model with its identity, three versions (training runs with
holdout metrics; v2 promoted and `champion`, v3 `challenger` refused or held), a trend run of drift figures, monitoring,
performance and scoring runs (--runs per model), its record of flow runs, a prediction-log file and a label file. The
records are what the flows write, written here through MLflow's client and driftline's own writers rather than by
training 200 models. Then `fleet status --json` runs in fresh processes, each timed from after its imports (what the
command itself costs: config loading, the registry's batched queries, the files, the rendering). Exits 1 when the
median is over the 2 s budget.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import yaml

from driftline.config import load_config
from driftline.data import prediction_log
from driftline.fleet.flow_runs import FlowRun, record
from driftline.fleet.inventory import LABEL_STAMP
from driftline.registry import TAG, registry_folders
from driftline.registry.inventory_queries import trend_run_name
from driftline.registry.refs import AUDIT, RUN_TYPE

BUDGET_SECONDS = 2.0
REPEATS = 3
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"

TIMED = """
import contextlib, io, sys, time
from driftline.cli.main import main
from driftline.config import load_fleet
import driftline.fleet.inventory, driftline.registry.inventory_queries, mlflow.store.tracking.sqlalchemy_store
import mlflow.store.model_registry.sqlalchemy_store
started, cpu = time.perf_counter(), time.process_time()
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()):
    code = main(["fleet", "status", "--config", sys.argv[1], "--json"])
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
rows = out.getvalue().count('"model":')
started = time.perf_counter()
load_fleet(sys.argv[1])
print(seconds, code, rows, time.perf_counter() - started, cpu)
"""


def write_configs(root: Path, models: int) -> tuple[Path, list[Path]]:
    folder = root / "fleet"
    folder.mkdir(parents=True)
    shared = {"storage": {"workspace": str(root / "workspace")}, "sla": {"freshness_hours": 48}}
    (folder / "fleet.yaml").write_text(yaml.safe_dump(shared))
    base = yaml.safe_load(DEMO_CONFIG.read_text())
    del base["storage"]
    paths = []
    for index in range(models):
        name = f"fleet-status-{index:04d}"
        config = base | {"name": name, "registry": {"model_name": name}}
        config["model_card"] = {"owner": f"team-{index % 7}", "risk_tier": "low"} if index % 10 else {}
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        paths.append(path)
    return folder, paths


def build_model(index: int, cfg, client, runs_per_model: int, now: datetime) -> None:
    """One model's registry records and files, as its flows would have left them."""
    from mlflow.entities import Metric

    name = cfg.registry.model_name
    folders = registry_folders(cfg)  # registers the model with its identity
    experiment = client.create_experiment(cfg.experiment_name)
    stamp = int(now.timestamp() * 1000)
    for number, verdict in ((1, "promoted"), (2, "promoted"), (3, "refused" if index % 2 else "promoted")):
        run = client.create_run(experiment, tags={RUN_TYPE: "training"}, run_name=f"train-{name}")
        client.log_batch(run.info.run_id, metrics=[Metric("holdout_roc_auc", 0.7 + number / 100, stamp, 0)])
        decided = (now - timedelta(days=10 - number)).isoformat()
        tags = {f"{TAG}gate.verdict": verdict, f"{TAG}gate.decided_at": decided, f"{AUDIT}promoted.at": decided}
        client.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id, tags=tags)
    client.set_registered_model_alias(name, "champion", "2")
    client.set_registered_model_alias(name, "challenger", "3")
    trends = client.create_run(experiment, tags={RUN_TYPE: "trends"}, run_name=trend_run_name(cfg))
    points = [Metric("drifted_feature_share", (step % 5) / 10, stamp - step * 3_600_000, step) for step in range(10)]
    points += [Metric("dataset_drift", float(step % 5 == 4), stamp - step * 3_600_000, step) for step in range(10)]
    client.log_batch(trends.info.run_id, metrics=points)
    for run_index in range(runs_per_model):
        kind = ("monitoring", "performance", "scoring")[run_index % 3]
        run = client.create_run(experiment, tags={RUN_TYPE: kind, f"{TAG}champion_version": "2"})
        client.log_batch(run.info.run_id, metrics=[Metric("rows", 1000.0, stamp, 0)])
    for run_index, flow in enumerate(["batch-scoring", "drift-monitoring", "performance-monitoring"] * 3):
        ended = now - timedelta(hours=9 - run_index)
        failed = flow == "drift-monitoring" and index % 5 == 0
        facts = {"champion_version": "2", "metric": "roc_auc", "champion_value": 0.71, "at_promotion": 0.72}
        record(
            cfg,
            FlowRun(
                name,
                flow,
                f"{name}-{run_index}",
                "FAILED" if failed else "COMPLETED",
                ended - timedelta(minutes=2),
                ended,
                "RuntimeError: boom" if failed else "",
                facts if flow == "performance-monitoring" and not failed else {},
            ),
        )
    rows = pd.DataFrame({"customer_id": ["c1"], "prediction": [1]})
    prediction_log.append(rows, folders.prediction_log, "batch.csv", now=now - timedelta(hours=3))
    folders.label_store.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(folders.label_store / f"{now - timedelta(hours=5):{LABEL_STAMP}}-fingerprint.parquet", index=False)


def build(root: Path, models: int, runs_per_model: int) -> Path:
    from mlflow import MlflowClient

    folder, paths = write_configs(root, models)
    first = load_config(paths[0])
    client = MlflowClient(tracking_uri=first.tracking_uri, registry_uri=first.tracking_uri)
    now = datetime.now(UTC)
    started = time.perf_counter()
    for index, path in enumerate(paths, 1):
        build_model(index, load_config(path), client, runs_per_model, now)
        if index % 25 == 0:
            print(f"  built {index} models in {time.perf_counter() - started:.0f} s", flush=True)
    return folder


def timed_status(folder: Path) -> tuple[float, int, int, float, float]:
    """Seconds of `fleet status --json` after the imports, its exit code, its rows, the seconds of loading the
    folder's configs once (the command loads them twice: once for its process settings, once for the inventory),
    and the command's CPU seconds (what it costs when other work shares the cores)."""
    done = subprocess.run(
        [sys.executable, "-c", TIMED, str(folder)], capture_output=True, text=True, check=True, timeout=600
    )
    seconds, code, rows, loading, cpu = done.stdout.split()
    return float(seconds), int(code), int(rows), float(loading), float(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--runs", type=int, default=20, help="monitoring, performance and scoring runs per model")
    parser.add_argument("--keep", type=Path, default=None, help="build the fleet here and keep it (reused if built)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-status-") as scratch:
        root = args.keep or Path(scratch)
        folder = root / "fleet"
        if not folder.exists():
            print(f"building a fleet of {args.models} models ({args.runs} monitoring/performance/scoring runs each)")
            build(root, args.models, args.runs)
        measured = [timed_status(folder) for _ in range(REPEATS)]
        seconds = statistics.median(run[0] for run in measured)
        loading = statistics.median(run[3] for run in measured)
        cpu = statistics.median(run[4] for run in measured)
        _, code, rows, _, _ = measured[0]
        print(
            json.dumps(
                {
                    "models": args.models,
                    "rows_shown": rows,
                    "exit_code": code,
                    "seconds_beyond_imports": [round(run[0], 3) for run in measured],
                    "median_seconds": round(seconds, 3),
                    "median_cpu_seconds": round(cpu, 3),
                    "config_loading_seconds_once": round(loading, 3),
                    "ms_per_model": round(seconds / args.models * 1000, 2),
                    "budget_seconds": BUDGET_SECONDS,
                }
            )
        )
        if rows != args.models:
            print(f"FAIL: {rows} rows shown for {args.models} models")
            return 1
        if seconds > BUDGET_SECONDS:
            print(f"FAIL: fleet status took {seconds:.2f} s beyond imports, over the {BUDGET_SECONDS} s budget")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
