"""The fleet benchmark's fixture: N small binary models over one fleet.yaml, their data and champions, and the stack
they run on (a Prefect server, an MLflow server on SQLite with served artifacts, a worker) on free loopback ports,
and the night: each model's runs created from its deployments and waited for.

Each model is the same small config (four churn features, a logistic regression) under its own registered model
name; the folder's fleet.yaml shares the workspace, the MLflow server and the fleet's limits. Champions come from the
training flow (`driftline train`, a process per model, as many at once as there are cores) or, to save time at 200
models, from one model trained once and registered under every other name through driftline's registry
(`Registry.log_candidate` then `promote`: the records a training writes for a version, without the fit).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psutil
import yaml

from driftline.data.demo import START, make_frame
from driftline.stack import (
    FILE_LEASES,
    LEASE_STORAGE_ENV,
    PREFECT_DB_ENV,
    free_port,
    mlflow_server_command,
    prefect_server_command,
)
from driftline.stack.processes import Started, start_process, stop_process, wait_until_answers

PROJECT_ROOT = Path(__file__).resolve().parents[1]
WORK_POOL = "driftline"
PREFIX = "fleet-bench"
FEATURES = {
    "tenure_months": "numeric",
    "monthly_charges": "numeric",
    "support_calls": "numeric",
    "contract": "categorical",
}
COLUMNS = ["customer_id", "event_time", *FEATURES]
TRAINING_ROWS, BATCH_ROWS = 3000, 1000


@dataclass(frozen=True)
class FleetFiles:
    folder: Path  # fleet.yaml and one <model>.yaml per model
    workspace: Path
    reference: Path  # the training data every model's champion is trained on
    configs: list[Path]

    @property
    def names(self) -> list[str]:
        return [path.stem for path in self.configs]


def model_name(index: int) -> str:
    return f"{PREFIX}-{index:04d}"


def model_config(name: str) -> dict:
    """A small binary model: what one team's config looks like, its shared settings left to fleet.yaml."""
    return {
        "name": name,
        "description": "Generated for the fleet benchmark: churn from four account fields.",
        "dataset": {
            "target": "churned",
            "task": "binary",
            "id_column": "customer_id",
            "event_time_column": "event_time",
            "features": FEATURES,
        },
        "model": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}},
        "gate": {"metric": "roc_auc", "thresholds": {"roc_auc": 0.6}},
        "drift": {"retrain": False},  # the night scores and monitors; a retrain is another cost
        "registry": {"model_name": name},
        "model_card": {"owner": "bench-team", "intended_use": "benchmark", "risk_tier": "low"},
    }


def write_fleet(root: Path, models: int, tracking_uri: str, max_concurrent_runs: int) -> FleetFiles:
    """`models` configs and their fleet.yaml under root/fleet, the training data under root/data. The night's
    schedules start at 13:00 UTC, far from when anyone runs the benchmark: only the runs it creates run."""
    folder, data, workspace = root / "fleet", root / "data", root / "workspace"
    folder.mkdir(parents=True)
    data.mkdir(parents=True)
    shared = {
        "storage": {"workspace": str(workspace), "allowed_roots": [str(data)]},
        "registry": {"tracking_uri": tracking_uri},
        "labels": {"enabled": False},
        "fleet": {"max_concurrent_runs": max_concurrent_runs, "model_concurrent_runs": 2, "night_start": "13:00"},
    }
    (folder / "fleet.yaml").write_text(yaml.safe_dump(shared, sort_keys=False))
    configs = []
    for index in range(models):
        name = model_name(index)
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(model_config(name), sort_keys=False))
        configs.append(path)
    reference = data / "reference.parquet"
    make_frame(TRAINING_ROWS, seed=11, days=28)[[*COLUMNS, "churned"]].to_parquet(reference, index=False)
    return FleetFiles(folder, workspace, reference, configs)


def drop_batches(files: FleetFiles, names: list[str]) -> None:
    """One batch of new customers (no label) in each named model's scoring inbox, for the night."""
    start = START + pd.Timedelta(days=28)  # the week after the training data
    for index, name in enumerate(names):
        inbox = files.workspace / "inbox" / name
        inbox.mkdir(parents=True, exist_ok=True)
        batch = make_frame(BATCH_ROWS, seed=1000 + index, start=start, id_offset=1_000_000)[COLUMNS]
        batch.to_parquet(inbox / "batch-1.parquet", index=False)


def train_with_cli(files: FleetFiles, configs: list[Path], env: dict[str, str], parallel: int) -> list[float]:
    """`driftline train --config <model> --data <reference>` for each config, `parallel` at once: seconds of each."""

    def train(config: Path) -> float:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "driftline.cli", "train", "--config", str(config), "--data", str(files.reference)],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"driftline train --config {config} exited {done.returncode}: {done.stderr[-500:]}")
        return time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(train, configs))


def register_copies(files: FleetFiles, configs: list[Path], parallel: int) -> list[float]:
    """One model trained on the reference, registered and promoted under each config's name through driftline's
    registry, `parallel` processes at once: seconds of each registration (the fit, done once per process, apart)."""
    shards = [[str(path) for path in configs[offset::parallel]] for offset in range(parallel)]
    with ProcessPoolExecutor(max_workers=parallel) as pool:
        results = list(pool.map(_register_shard, [str(files.reference)] * parallel, shards))
    return [seconds for shard in results for seconds in shard]


def _register_shard(reference: str, configs: list[str]) -> list[float]:
    from driftline.config import load_config
    from driftline.data.loading import load_batch
    from driftline.registry import Registry
    from driftline.training.lineage import DataSource, collect_lineage
    from driftline.training.train import train_model

    if not configs:
        return []
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    first = load_config(configs[0])
    batch = load_batch(reference, first.dataset)
    trained = train_model(batch.frame, first)
    source = DataSource(batch.fingerprint, batch.rows, batch.name, Path(reference).name)
    seconds = []
    for config in configs:
        started = time.perf_counter()
        cfg = load_config(config)
        registry = Registry(cfg)
        registry.promote(registry.log_candidate(trained, collect_lineage(cfg, [source]), "fleet benchmark"))
        seconds.append(time.perf_counter() - started)
    return seconds


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


# --- the stack ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    rss_mb: float  # the sum of each process's resident size (pages shared between them counted in each)
    pss_mb: float  # shared pages divided among the processes sharing them: what the processes take together
    processes: int


@dataclass
class BenchStack:
    root: Path
    prefect_url: str
    mlflow_url: str
    processes: dict[str, Started] = field(default_factory=dict)

    @property
    def prefect_db(self) -> Path:
        return self.root / "prefect.db"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def artifacts(self) -> Path:
        return self.root / "mlartifacts"

    def client_env(self) -> dict[str, str]:
        """What a driftline command, the worker and its flow runs get: the two servers, quiet libraries."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "MLFLOW_"))}
        return env | {
            "PREFECT_API_URL": f"{self.prefect_url}/api",
            "PREFECT_HOME": str(self.root / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def start_worker(self) -> None:
        command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", WORK_POOL, "--type", "process"]
        self.processes["worker"] = start_process("worker", command, self.root, self.client_env(), PROJECT_ROOT)

    def memory(self, name: str) -> Memory:
        """Resident size of a server and every process under it."""
        parent = psutil.Process(self.processes[name].pid)
        rss = pss = count = 0
        for process in [parent, *parent.children(recursive=True)]:
            try:
                info = process.memory_full_info()
            except psutil.NoSuchProcess:
                continue
            rss, pss, count = rss + info.rss, pss + info.pss, count + 1
        return Memory(rss / 2**20, pss / 2**20, count)

    def stop(self) -> None:
        for started in reversed(list(self.processes.values())):
            stop_process(started)
        self.processes.clear()


def start_stack(root: Path) -> BenchStack:
    """Both servers on free ports, answering; stopped again if either does not come up."""
    root.mkdir(parents=True, exist_ok=True)
    prefect_port, mlflow_port = free_port(), free_port()
    stack = BenchStack(root, f"http://127.0.0.1:{prefect_port}", f"http://127.0.0.1:{mlflow_port}")
    base = stack.client_env()
    base.pop("PREFECT_API_URL")
    base.pop("MLFLOW_TRACKING_URI")
    prefect_env = base | {
        PREFECT_DB_ENV: f"sqlite+aiosqlite:///{stack.prefect_db}",
        LEASE_STORAGE_ENV: FILE_LEASES,
    }
    mlflow_env = base | {"MLFLOW_BACKEND_STORE_URI": f"sqlite:///{stack.mlflow_db}"}
    try:
        stack.processes["prefect-server"] = start_process(
            "prefect-server",
            prefect_server_command("127.0.0.1", prefect_port),
            root,
            prefect_env,
            PROJECT_ROOT,
        )
        stack.processes["mlflow-server"] = start_process(
            "mlflow-server",
            mlflow_server_command("127.0.0.1", mlflow_port, str(stack.artifacts)),
            root,
            mlflow_env,
            PROJECT_ROOT,
        )
        wait_until_answers(f"{stack.prefect_url}/api/health", stack.processes["prefect-server"], timeout=180)
        wait_until_answers(f"{stack.mlflow_url}/health", stack.processes["mlflow-server"], timeout=180)
    except BaseException:
        stack.stop()
        raise
    return stack


def table_rows(database: Path) -> dict[str, int]:
    """Rows of every table of a SQLite database (read-only, while its server runs)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: connection.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] for table in tables}


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.exists() else 0


# --- the night ------------------------------------------------------------------------------------------------------
NIGHT = ("batch-scoring", "drift-monitoring")  # each model's night, in order
NIGHT_TIMEOUT = 90 * 60


@dataclass
class Night:
    models: int  # whose night ran (all, or the sample)
    seconds: float  # from the first run created to the last finished
    runs: int
    failed: list[str]
    run_seconds: list[float]  # each run, from its start to its end (the worker's process included)

    def per_model(self) -> float:
        return self.seconds / self.models


def run_night(stack: BenchStack, names: list[str], poll: float = 2.0) -> Night:
    """Each model's night runs, in order, created from its deployments; the worker runs them under the limits."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: f"{stack.prefect_url}/api"}), get_client(sync_client=True) as client:
        deployments = {
            (flow, name): client.read_deployment_by_name(f"{flow}/{name}").id for flow in NIGHT for name in names
        }
        started = time.perf_counter()
        pending = {client.create_flow_run_from_deployment(deployments[NIGHT[0], name]).id: (name, 0) for name in names}
        failed, run_seconds, runs = [], [], len(pending)
        while pending:
            if time.perf_counter() - started > NIGHT_TIMEOUT:
                raise RuntimeError(
                    f"the night did not finish in {NIGHT_TIMEOUT / 60:.0f} min: {len(pending)} runs left"
                )
            time.sleep(poll)
            ids = list(pending)
            finished = [
                run
                for offset in range(0, len(ids), 200)
                for run in client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids[offset : offset + 200]))
                )
                if run.state is not None and run.state.is_final()
            ]
            for run in finished:
                name, step = pending.pop(run.id)
                if run.start_time and run.end_time:
                    run_seconds.append((run.end_time - run.start_time).total_seconds())
                if not run.state.is_completed():
                    failed.append(f"{NIGHT[step]}/{name}: {run.state.name} {run.state.message or ''}".strip())
                elif step + 1 < len(NIGHT):
                    following = client.create_flow_run_from_deployment(deployments[NIGHT[step + 1], name])
                    pending[following.id] = (name, step + 1)
                    runs += 1
        return Night(len(names), time.perf_counter() - started, runs, failed, run_seconds)
