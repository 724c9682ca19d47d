"""The fleet service (`driftline serve --config DIR`) at N models: its resident memory as requests walk over every
model with the LRU bound, and a hot model's latency against a single-model service (`driftline serve --config
FILE`) on the same registered version, measured in the same run.

One pipeline is trained on 6,000 demo rows (the demo's settings) and registered once; every other model of the fleet
is a registered model of its own in the same SQLite store whose champion is a version of those same files (their
checksum recorded as at registration): training and logging 200 models would take ~15 minutes here and add nothing
to what the service does per model (read its aliases, download, verify, load, compile, answer). Each model has its
own config, registry identity, prediction log and follower.

Phases: (1) walk: `--rounds` rounds of single-row requests over every model in turn (each model loads on its first
request, the least recently used unloads past the bound); the fleet process's resident size is read after each
model. (2) hot: the same single-row requests at `--rate`/s (open loop, as bench_serve) to the hot model of the fleet
and to the single-model service, in alternating blocks; target: the fleet's p99 within TARGET_RATIO x the single
service's. (3) hot during a walk: the hot model at the same rate while another caller walks the cold models (each
request a load, most an unload): what a hot model pays for the others' loads, reported, not judged.

    python -m benchmarks.bench_fleet_serve --models 20 [--rounds 2] [--rate 20] [--requests 1000] [--max-loaded-mb MB]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

from benchmarks.bench_drift import machine
from benchmarks.bench_serve import Latencies, Server, free_port, open_loop, start, wait_until_ready
from driftline.config import load_config, load_fleet
from driftline.data.demo import START, make_frame
from driftline.data.loading import load_batch
from driftline.registry import CHAMPION, Registry, registry_folders
from driftline.training.lineage import DataSource, collect_lineage
from driftline.training.train import train_model

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.5  # the fleet's hot p99 at most this many times the single-model service's
BLOCKS = 5  # alternating measurement blocks per server in the hot phase


def write_fleet(root: Path, models: int, max_loaded_mb: int | None) -> Path:
    """A fleet folder: fleet.yaml (one workspace, the serving bounds) and `models` configs of the demo's model."""
    demo = yaml.safe_load((PROJECT_ROOT / "configs" / "demo.yaml").read_text())
    folder = root / "fleet"
    folder.mkdir()
    serving = {"max_loaded_models": 8} | ({"max_loaded_mb": max_loaded_mb} if max_loaded_mb else {})
    (folder / "fleet.yaml").write_text(
        yaml.safe_dump({"storage": {"workspace": str(root / "workspace")}, "serving": serving})
    )
    for index in range(models):
        name = f"model-{index:03d}"
        data = {key: value for key, value in demo.items() if key != "storage"} | {
            "name": name,
            "registry": {"model_name": name},
        }
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def register_fleet(folder: Path, root: Path) -> list[str]:
    """The first model trained and registered; every other one a champion version of the same files."""
    configs = load_fleet(folder).configs
    first = configs[0]
    path = root / "reference.parquet"
    make_frame(6000, seed=1, days=56).to_parquet(path, index=False)
    batch = load_batch(path, first.dataset)
    registry = Registry(first)
    source = DataSource(batch.fingerprint, batch.rows, batch.name, path.name)
    ref = registry.log_candidate(train_model(batch.frame, first), collect_lineage(first, [source]), "fleet benchmark")
    registry.promote(ref)
    files = registry.client.get_model_version_download_uri(ref.name, ref.version)
    tags = registry.version_tags(ref.version)
    for cfg in configs[1:]:
        copy = Registry(cfg)
        registry_folders(cfg)  # registers the model with its own identity
        version = copy.client.create_model_version(cfg.registry.model_name, files, run_id=ref.run_id, tags=tags)
        copy.client.set_registered_model_alias(cfg.registry.model_name, CHAMPION, version.version)
    return [cfg.registry.model_name for cfg in configs]


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def serve(config: Path, root: Path, label: str) -> tuple[str, subprocess.Popen, Path]:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)  # polling only: no event subscriptions in either service
    port, log = free_port(), root / f"{label}.log"
    command = [sys.executable, "-m", "driftline.cli", "serve", "--config", str(config), "--port", str(port)]
    return f"http://127.0.0.1:{port}", start(command, env, log), log


def walk(url: str, names: list[str], body: dict, rounds: int, pid: int) -> tuple[list[float], list[float]]:
    """Single-row requests over every model in turn: (resident MB after each model, seconds of each request)."""
    resident, seconds = [], []
    with httpx.Client(timeout=120) as client:
        for _ in range(rounds):
            for name in names:
                began = time.perf_counter()
                client.post(f"{url}/models/{name}/predict", json=body).raise_for_status()
                seconds.append(time.perf_counter() - began)
                resident.append(resident_mb(pid))
    return resident, seconds


def hot_blocks(servers: list[Server], rate: float) -> dict[str, Latencies]:
    """Open-loop blocks at `rate`, alternating between the servers, joined per server."""
    size = len(servers[0].body) // BLOCKS
    joined: dict[str, list[Latencies]] = {server.name: [] for server in servers}
    for block in range(BLOCKS):
        for server in servers:
            part = Server(server.name, server.url, server.process, server.body[block * size : (block + 1) * size])
            joined[server.name].append(open_loop(part, rate))
    return {
        name: Latencies(
            np.concatenate([p.millis for p in parts]), sum(p.errors for p in parts), sum(p.seconds for p in parts)
        )
        for name, parts in joined.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=20, help="models in the fleet")
    parser.add_argument("--rounds", type=int, default=2, help="walks over every model")
    parser.add_argument("--rate", type=float, default=20, help="requests per second to the hot model (open loop)")
    parser.add_argument("--requests", type=int, default=1000, help="hot-phase requests per server")
    parser.add_argument("--max-loaded-mb", type=int, default=None, help="serving.max_loaded_mb of the fleet")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="driftline-bench-fleet-serve-"))
    print(f"machine: {machine()}; registering {args.models} models in {root} ...", flush=True)
    began = time.perf_counter()
    folder = write_fleet(root, args.models, args.max_loaded_mb)
    names = register_fleet(folder, root)
    print(f"registered in {time.perf_counter() - began:.1f} s", flush=True)
    cfg = load_config(folder / f"{names[0]}.yaml")
    rows = make_frame(args.requests, seed=3, start=START, id_offset=500_000)
    records = rows[["customer_id", *cfg.dataset.feature_names]].to_dict(orient="records")
    launched = time.perf_counter()
    fleet_url, fleet, fleet_log = serve(folder, root, "fleet-serve")
    single_url, single, single_log = serve(folder / f"{names[0]}.yaml", root, "single-serve")
    hot = names[0]
    try:
        wait_until_ready(f"{fleet_url}/health", fleet, fleet_log, timeout=1800)  # reads and checks every config
        start_seconds = time.perf_counter() - launched
        wait_until_ready(f"{single_url}/ready", single, single_log, timeout=1800)
        started_mb = resident_mb(fleet.pid)
        httpx.get(f"{fleet_url}/models", timeout=120).raise_for_status()  # the first imports MLflow's client
        listed = time.perf_counter()
        httpx.get(f"{fleet_url}/models", timeout=120).raise_for_status()
        list_seconds = time.perf_counter() - listed
        resident, seconds = walk(fleet_url, names, {"rows": records[:1]}, args.rounds, fleet.pid)
        servers = [
            Server("fleet service", f"{fleet_url}/models/{hot}/predict", fleet, [{"rows": [r]} for r in records]),
            Server("single-model service", f"{single_url}/predict", single, [{"rows": [r]} for r in records]),
        ]
        for server in servers:
            for index in range(50):  # warm-up: the hot model loaded, connections open
                httpx.post(server.url, json=server.body[index], timeout=60).raise_for_status()
        hot_figures = hot_blocks(servers, args.rate)
        stop = threading.Event()

        def walk_cold() -> None:
            while not stop.is_set():
                walk(fleet_url, names[1:], {"rows": records[:1]}, 1, fleet.pid)

        walker = threading.Thread(target=walk_cold, daemon=True)
        walker.start()
        during = open_loop(Server("fleet, others walked", servers[0].url, fleet, servers[0].body[:500]), args.rate)
        stop.set()
        walker.join()
        listing = httpx.get(f"{fleet_url}/models", timeout=120).json()
        single_mb, end_mb = resident_mb(single.pid), resident_mb(fleet.pid)
    finally:
        for process in (fleet, single):
            process.terminate()
            process.wait(timeout=60)

    loads = sum(model["loads"] for model in listing["models"])
    every = np.array(seconds)
    first_round = np.array(seconds[: len(names)])
    print(f"\n{args.models} models, serving.max_loaded_models 8, max_loaded_mb {args.max_loaded_mb}")
    print(f"fleet service up (process start, imports, {len(names)} configs read and checked): {start_seconds:.1f} s")
    print(f"GET /models (every model's champion from the registry): {list_seconds:.2f} s")
    print(
        f"walk: {args.rounds} rounds x {len(names)} models, single-row requests; each a load "
        f"(first request of a round: median {np.median(first_round) * 1000:.0f} ms, p90 "
        f"{np.percentile(every, 90) * 1000:.0f} ms); {loads} loads in all, {listing['loaded']} loaded at the end"
    )
    bound = min(8, len(names))
    first, full = resident[0], resident[bound - 1]  # after the first model (and its imports), at the bound
    print(
        f"fleet resident MB: started {started_mb:.0f}, after 1 model {first:.0f}, after {bound} models {full:.0f}, "
        f"max {max(resident):.0f}, end of walk {resident[-1]:.0f}, end of run {end_mb:.0f}; single-model service "
        f"{single_mb:.0f}"
    )
    print(
        f"resident per loaded model: {(full - first) / max(1, bound - 1):.1f} MB; past the bound: "
        f"{max(resident[bound - 1 :]) - full:+.0f} MB at most over {len(resident) - bound} more loads"
    )
    print(f"\nhot model {hot} at {args.rate:g}/s, {BLOCKS} alternating blocks per server:")
    print(f"{'server':<24}{'errors':>7}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, figures in [*hot_figures.items(), ("fleet, others walked", during)]:
        print(
            f"{name:<24}{figures.errors:>7}{figures.percentile(50):>9.2f}{figures.percentile(90):>9.2f}"
            f"{figures.percentile(99):>9.2f}{figures.millis.max():>9.2f}"
        )
    fleet_hot, single_hot = hot_figures["fleet service"], hot_figures["single-model service"]
    ratio = fleet_hot.percentile(99) / single_hot.percentile(99)
    print(f"\np50 ratio fleet/single: {fleet_hot.percentile(50) / single_hot.percentile(50):.2f}x")
    print(f"p99 ratio fleet/single: {ratio:.2f}x (target <= {TARGET_RATIO}x)")
    print(f"p99 ratio with other models walked meanwhile: {during.percentile(99) / single_hot.percentile(99):.2f}x")
    met = ratio <= TARGET_RATIO and not fleet_hot.errors and listing["loaded"] <= 8
    print(f"{'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
