"""Online scoring latency: `driftline serve` against `mlflow models serve` on the same registered version, one run.

Both servers run as their own processes on loopback and get the same single-row requests from an open-loop load
generator: request i is due at i / rate seconds, and its latency counts from when it was due, so a server that falls
behind is charged for the queue it builds (no coordinated omission). A closed-loop phase then measures how many
requests per second each answers with `--clients` callers. The yardstick is the model itself: the in-process
`predict_proba` of the same pipeline on a one-row frame, timed by this script in the same run. The targets, judged at
`--target-rate`: driftline's p50 at most 2x and its p99 at most 4x that time, with no errors; closed-loop capacity at
least CAPACITY_TARGET requests/s (3x the 118/s of the service before the fast path); and ahead of `mlflow models
serve` on every figure (p50 and p99 at each rate, capacity). The load generator shares the machine's cores.

    python -m benchmarks.bench_serve [--rates 25,50,100] [--target-rate 50] [--requests 1500] [--clients 8]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import yaml
from threadpoolctl import threadpool_limits

from benchmarks.bench_drift import machine
from driftline.config import DriftlineConfig, load_config
from driftline.data.demo import START, make_frame
from driftline.data.loading import load_batch
from driftline.modeling.fast import request_frame
from driftline.modeling.pipeline import feature_frame
from driftline.registry import ModelRef, Registry
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import train_model

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CAPACITY_TARGET = 3 * 118  # requests/s: 3x the closed-loop capacity of the service before the fast path (run 6)
DRIFTLINE, MLFLOW = "driftline serve", "mlflow models serve"


@dataclass(frozen=True)
class Server:
    name: str
    url: str  # the predict endpoint
    process: subprocess.Popen
    body: list[dict]  # one JSON body per request, in order


@dataclass(frozen=True)
class Latencies:
    millis: np.ndarray
    errors: int
    seconds: float

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.millis, q)) if len(self.millis) else float("nan")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def register_champion(root: Path) -> Path:
    """A config in `root` and its first champion, trained on 6,000 demo rows (the demo's model settings)."""
    data = yaml.safe_load((PROJECT_ROOT / "configs" / "demo.yaml").read_text())
    data["storage"] = {"workspace": str(root / "workspace")}
    data["registry"] = {"model_name": "serve-bench"}
    config_path = root / "bench.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    cfg = load_config(config_path)
    path = root / "reference.parquet"
    make_frame(6000, seed=1, days=56).to_parquet(path, index=False)
    batch = load_batch(path, cfg.dataset)
    trained = train_model(batch.frame, cfg)
    registry = Registry(cfg)
    source = DataSource(batch.fingerprint, batch.rows, batch.name, path.name)
    registry.promote(registry.log_candidate(trained, collect_lineage(cfg, [source]), "serve benchmark"))
    return config_path


def wait_until_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"server exited; its log {log} ends: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit(f"{url} not ready within {timeout:.0f} s; see {log}")


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=PROJECT_ROOT)


def open_loop(server: Server, rate: float, workers: int = 64) -> Latencies:
    """Request i is sent at i / rate s (or as soon as a worker is free) and timed from that moment."""
    local = threading.local()
    errors = 0
    millis = np.full(len(server.body), np.nan)

    def send(index: int, due: float) -> None:
        nonlocal errors
        client = getattr(local, "client", None) or httpx.Client(timeout=30)
        local.client = client
        try:
            ok = client.post(server.url, json=server.body[index]).status_code == 200
        except httpx.HTTPError:
            ok = False
        millis[index] = (time.perf_counter() - due) * 1000
        if not ok:
            errors += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for index in range(len(server.body)):
            due = started + index / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            pool.submit(send, index, due)
    return Latencies(millis[~np.isnan(millis)], errors, time.perf_counter() - started)


def closed_loop(server: Server, clients: int, requests: int) -> float:
    """Requests per second with `clients` callers that each send the next request as soon as one is answered."""
    per_client = requests // clients

    def caller(offset: int) -> None:
        with httpx.Client(timeout=30) as client:
            for index in range(per_client):
                client.post(server.url, json=server.body[(offset + index) % len(server.body)])

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(caller, range(0, clients * per_client, per_client)))
    return clients * per_client / (time.perf_counter() - started)


def model_time_ms(cfg: DriftlineConfig, record: dict, calls: int = 300) -> np.ndarray:
    """Milliseconds of the champion's own `predict_proba` on a one-row frame (the model, as a user would call it),
    in this process with one OpenMP thread, as the service runs it."""
    model = Registry(cfg).load_model(ModelRef(cfg.registry.model_name, "1", run_id=""))
    frame = feature_frame(request_frame([record], cfg.dataset), cfg.dataset)
    millis = np.empty(calls)
    with threadpool_limits(1, user_api="openmp"):
        for _ in range(20):
            model.predict_proba(frame)
        for index in range(calls):
            started = time.perf_counter()
            model.predict_proba(frame)
            millis[index] = (time.perf_counter() - started) * 1000
    return millis


def start_servers(
    cfg: DriftlineConfig, config_path: Path, root: Path, records: list[dict], workers: int
) -> list[Server]:
    features = cfg.dataset.feature_names
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": cfg.tracking_uri,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }  # mlflow runs `uvicorn`
    env.pop("PREFECT_API_URL", None)
    driftline_port, mlflow_port = free_port(), free_port()
    driftline_log, mlflow_log = root / "driftline-serve.log", root / "mlflow-serve.log"
    driftline = start(
        [
            sys.executable,
            "-m",
            "driftline.cli",
            "serve",
            "--config",
            str(config_path),
            "--port",
            str(driftline_port),
            *(["--workers", str(workers)] if workers > 1 else []),
        ],
        env,
        driftline_log,
    )
    # MLflow gates every scikit-learn load, skops included, behind this switch; only its own server gets it here.
    # driftline's service loads with skops and its reviewed types, and never needs it.
    champion_uri = f"models:/{cfg.registry.model_name}@champion"
    mlflow = start(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            champion_uri,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(mlflow_port),
        ],
        {**env, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"},
        mlflow_log,
    )
    wait_until_ready(f"http://127.0.0.1:{driftline_port}/ready", driftline, driftline_log)
    wait_until_ready(f"http://127.0.0.1:{mlflow_port}/health", mlflow, mlflow_log)
    return [
        Server(
            DRIFTLINE,
            f"http://127.0.0.1:{driftline_port}/predict",
            driftline,
            [{"rows": [record]} for record in records],
        ),
        Server(
            MLFLOW,
            f"http://127.0.0.1:{mlflow_port}/invocations",
            mlflow,
            [{"dataframe_records": [{k: record[k] for k in features}]} for record in records],
        ),
    ]


def judge(
    results: dict[tuple[str, float], Latencies], throughput: dict[str, float], model_ms: float, target_rate: float
) -> list[tuple[str, float, float, bool]]:
    """(target, measured, limit, met) for every target."""
    ours = results[DRIFTLINE, target_rate]
    checks = [
        (f"p50 at {target_rate:g}/s <= 2x the model's time", ours.percentile(50), 2 * model_ms),
        (f"p99 at {target_rate:g}/s <= 4x the model's time", ours.percentile(99), 4 * model_ms),
        ("closed-loop capacity (req/s) >= 3x 118", throughput[DRIFTLINE], CAPACITY_TARGET),
    ]
    verdicts = [
        (name, value, limit, value >= limit if "capacity" in name else value <= limit and not ours.errors)
        for name, value, limit in checks
    ]
    for rate in sorted({rate for _, rate in results}):
        for q in (50, 99):
            value, theirs = results[DRIFTLINE, rate].percentile(q), results[MLFLOW, rate].percentile(q)
            verdicts.append((f"p{q} at {rate:g}/s (ms) <= mlflow's", value, theirs, value <= theirs))
    verdicts.append(
        (
            "closed loop (req/s) > mlflow's",
            throughput[DRIFTLINE],
            throughput[MLFLOW],
            throughput[DRIFTLINE] > throughput[MLFLOW],
        )
    )
    return verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="25,50,100", help="requests per second offered (open loop), in turn")
    parser.add_argument("--target-rate", type=float, default=50, help="the rate the targets are judged at")
    parser.add_argument("--requests", type=int, default=1500, help="requests per server and rate (open loop)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent callers in the closed-loop phase")
    parser.add_argument("--workers", type=int, default=1, help="driftline serve --workers")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="driftline-bench-serve-"))
    print(f"machine: {machine()}; training and registering the champion in {root} ...", flush=True)
    config_path = register_champion(root)
    cfg = load_config(config_path)
    rows = make_frame(args.requests, seed=3, start=START, id_offset=500_000)
    records = rows[["customer_id", *cfg.dataset.feature_names]].to_dict(orient="records")
    model_before = model_time_ms(cfg, records[0])
    servers = start_servers(cfg, config_path, root, records, args.workers)
    rates = sorted({float(rate) for rate in args.rates.split(",")} | {args.target_rate})
    load_before = os.getloadavg()
    print(
        f"load average before: {load_before[0]:.2f}; {args.requests} single-row requests per server at each of "
        f"{rates}/s (open loop), then {args.clients} closed-loop callers",
        flush=True,
    )
    results: dict[tuple[str, float], Latencies] = {}
    throughput = {}
    try:
        for server in servers:
            for index in range(50):  # warm-up: connections, first predictions
                httpx.post(server.url, json=server.body[index], timeout=30).raise_for_status()
            for rate in rates:
                results[server.name, rate] = open_loop(server, rate)
            throughput[server.name] = closed_loop(server, args.clients, min(args.requests, 1000) * 2)
    finally:
        for server in servers:
            server.process.terminate()
            server.process.wait(timeout=30)
    load_after = os.getloadavg()
    model_ms = np.concatenate([model_before, model_time_ms(cfg, records[0])])
    model_median = float(np.median(model_ms))
    print(f"load average after: {load_after[0]:.2f} (1, 5, 15 min: {', '.join(f'{x:.2f}' for x in load_after)})\n")
    print(
        f"the model in-process: predict_proba on a one-row frame, median {model_median:.2f} ms "
        f"(p99 {np.percentile(model_ms, 99):.2f} ms, {len(model_ms)} calls before and after the servers ran)\n"
    )
    print(
        f"{'server':<22}{'rate/s':>7}{'errors':>7}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'p50/model':>11}{'p99/model':>11}"
    )
    for (name, rate), measured in results.items():
        print(
            f"{name:<22}{rate:>7g}{measured.errors:>7}{measured.percentile(50):>9.2f}{measured.percentile(90):>9.2f}"
            f"{measured.percentile(99):>9.2f}{measured.millis.max():>9.2f}"
            f"{measured.percentile(50) / model_median:>10.2f}x{measured.percentile(99) / model_median:>10.2f}x"
        )
    print("\nclosed loop: " + ", ".join(f"{name} {value:.1f} req/s" for name, value in throughput.items()))
    verdicts = judge(results, throughput, model_median, args.target_rate)
    print()
    for name, value, limit, met in verdicts:
        print(f"{name:<48} {value:>9.2f} vs {limit:>9.2f}  {'met' if met else 'MISSED'}")
    return 0 if all(met for *_, met in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
