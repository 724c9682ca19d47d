"""Online scoring latency: `driftline serve` against `mlflow models serve` on the same registered version, one run.

Both servers run as their own processes on loopback and get the same single-row requests from an open-loop load
generator: request i is due at i / rate seconds, and its latency counts from when it was due, so a server that falls
behind is charged for the queue it builds (no coordinated omission). A closed-loop phase then measures how many
requests per second each answers with `--clients` callers. Each offered rate is run against both servers; the targets
are judged at `--target-rate`: driftline's p99 under 100 ms with no errors, and no worse than MLflow's. The rates above
it show where each server saturates on this machine (the load generator shares its cores).

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

from driftline.config import load_config
from driftline.data.demo import START, make_frame
from driftline.data.loading import load_batch
from driftline.registry import Registry
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import train_model

PROJECT_ROOT = Path(__file__).resolve().parents[1]
P99_TARGET_MS = 100.0


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="25,50,100", help="requests per second offered (open loop), in turn")
    parser.add_argument("--target-rate", type=float, default=50, help="the rate the targets are judged at")
    parser.add_argument("--requests", type=int, default=1500, help="requests per server and rate (open loop)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent callers in the closed-loop phase")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="driftline-bench-serve-"))
    print(f"training and registering the champion in {root} ...", flush=True)
    config_path = register_champion(root)
    cfg = load_config(config_path)
    features = cfg.dataset.feature_names
    rows = make_frame(args.requests, seed=3, start=START, id_offset=500_000)
    records = rows[["customer_id", *features]].to_dict(orient="records")
    env = {**os.environ, "MLFLOW_TRACKING_URI": cfg.tracking_uri, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # mlflow runs `uvicorn`
    env.pop("PREFECT_API_URL", None)

    driftline_port, mlflow_port = free_port(), free_port()
    driftline_log, mlflow_log = root / "driftline-serve.log", root / "mlflow-serve.log"
    driftline = start([sys.executable, "-m", "driftline.cli", "serve", "--config", str(config_path),
                       "--port", str(driftline_port)], env, driftline_log)  # fmt: skip
    # MLflow gates every scikit-learn load, skops included, behind this switch; only its own server gets it here.
    # driftline's service loads with skops and its reviewed types, and never needs it.
    champion_uri = f"models:/{cfg.registry.model_name}@champion"
    mlflow = start([sys.executable, "-m", "mlflow", "models", "serve", "-m", champion_uri, "--env-manager", "local",
                    "-h", "127.0.0.1", "-p", str(mlflow_port)],
                   {**env, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}, mlflow_log)  # fmt: skip
    servers = [
        Server("driftline serve", f"http://127.0.0.1:{driftline_port}/predict", driftline,
               [{"rows": [record]} for record in records]),
        Server("mlflow models serve", f"http://127.0.0.1:{mlflow_port}/invocations", mlflow,
               [{"dataframe_records": [{k: record[k] for k in features}]} for record in records]),
    ]  # fmt: skip
    try:
        wait_until_ready(f"http://127.0.0.1:{driftline_port}/ready", driftline, driftline_log)
        wait_until_ready(f"http://127.0.0.1:{mlflow_port}/health", mlflow, mlflow_log)
        rates = sorted({float(rate) for rate in args.rates.split(",")} | {args.target_rate})
        print(f"load average before: {os.getloadavg()[0]:.2f}; {args.requests} single-row requests per server at "
              f"each of {rates}/s (open loop), then {args.clients} closed-loop callers", flush=True)  # fmt: skip
        results: dict[tuple[str, float], Latencies] = {}
        throughput = {}
        for server in servers:
            for index in range(50):  # warm-up: connections, first predictions
                httpx.post(server.url, json=server.body[index], timeout=30).raise_for_status()
            for rate in rates:
                results[server.name, rate] = open_loop(server, rate)
            throughput[server.name] = closed_loop(server, args.clients, min(args.requests, 1000))
    finally:
        for server in servers:
            server.process.terminate()
            server.process.wait(timeout=30)
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    print(f"{'server':<22}{'rate/s':>7}{'errors':>7}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for (name, rate), measured in results.items():
        print(f"{name:<22}{rate:>7g}{measured.errors:>7}{measured.percentile(50):>9.2f}{measured.percentile(90):>9.2f}"
              f"{measured.percentile(99):>9.2f}{measured.millis.max():>9.2f}")  # fmt: skip
    print("\nclosed loop: " + ", ".join(f"{name} {value:.1f} req/s" for name, value in throughput.items()))
    ours, theirs = results["driftline serve", args.target_rate], results["mlflow models serve", args.target_rate]
    ratio = ours.percentile(99) / theirs.percentile(99)
    print(f"at {args.target_rate:g}/s: p99 driftline / mlflow = {ratio:.2f}x")
    met_target = ours.percentile(99) < P99_TARGET_MS and ours.errors == 0
    no_worse = ratio <= 1.0
    print(f"target p99 < {P99_TARGET_MS:g} ms with no errors: {'met' if met_target else 'MISSED'}")
    print(f"no worse than mlflow models serve (p99): {'met' if no_worse else 'MISSED'}")
    return 0 if met_target and no_worse else 1


if __name__ == "__main__":
    sys.exit(main())
