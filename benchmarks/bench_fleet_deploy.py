"""Benchmark: deploying a fleet in the two shapes issue 22 weighs, at 20 and 200 models, each on a fresh Prefect server.

Run with `python -m benchmarks.bench_fleet_deploy --models 20 200`. For each fleet size:

- per-model: seven deployments per model (what driftline deploys), `driftline deploy --config DIR` as a user runs it
  (a process, imports included), then deployed again unchanged (the second deploy of a day);
- per-flow: one deployment per flow, each model a schedule with its own parameters on the three scheduled ones and a
  trigger of its own on continuous-training, created through the Prefect API from prefect.yaml's definitions;
- the way before this change, one `prefect deploy --all` process per model, on a sample of models (--baseline-sample)
  and extrapolated to the fleet; the output says so.

Reported for each: seconds (and per model), the Prefect server's resident memory (its process and children) idle and
after, the deployments on the server, and what the UI's filter by model returns (a POST /deployments/filter by the
model's tag) and how long it takes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.bench_drift import machine
from benchmarks.fleet_fixture import PROJECT_ROOT, write_fleet
from driftline.config import load_fleet
from driftline.stack import FILE_LEASES, LEASE_STORAGE_ENV, PREFECT_DB_ENV, free_port
from driftline.stack.processes import Started, start_process, stop_process, wait_until_answers

POOL = "bench-deploy"
DRIFTLINE = Path(sys.executable).parent / "driftline"


@dataclass
class Measured:
    shape: str
    models: int
    deployments: int
    seconds: float
    rss_idle_mb: float
    rss_after_mb: float
    filter_rows: int  # what filtering the deployments by one model's tag returns
    filter_ms: float
    note: str = ""

    def row(self) -> str:
        return (
            f"| {self.shape} | {self.models} | {self.deployments} | {self.seconds:.1f} | "
            f"{self.seconds / self.models:.2f} | {self.rss_idle_mb:.0f} | {self.rss_after_mb:.0f} | "
            f"{self.filter_rows} | {self.filter_ms:.0f} | {self.note} |"
        )


class Server:
    """A Prefect server on SQLite in its own folder, on a free port."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root, self.port = root, free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
            "PREFECT_API_URL": f"http://127.0.0.1:{self.port}/api",
            "PREFECT_HOME": str(root / "home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
        server_env = self.env | {
            PREFECT_DB_ENV: f"sqlite+aiosqlite:///{root / 'prefect.db'}",
            LEASE_STORAGE_ENV: FILE_LEASES,
        }
        command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        self.started: Started = start_process("prefect-server", command, root, server_env, PROJECT_ROOT)
        try:
            wait_until_answers(f"http://127.0.0.1:{self.port}/api/health", self.started, timeout=240)
        except BaseException:
            stop_process(self.started)
            raise

    def rss_mb(self) -> float:
        parent = psutil.Process(self.started.pid)
        total = 0
        for process in [parent, *parent.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total / 2**20

    def run(self, code: str) -> str:
        """Python in a process of its own against this server (the client reads PREFECT_API_URL at import)."""
        done = subprocess.run(
            [sys.executable, "-c", code], env=self.env, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
        return done.stdout.strip()

    def count_and_filter(self, tag: str) -> tuple[int, int, float]:
        out = self.run(
            "import time\n"
            "from prefect.client.orchestration import get_client\n"
            "from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags\n"
            "with get_client(sync_client=True) as c:\n"
            "    total, page = 0, [None]\n"
            "    while page:\n"
            "        page = c.read_deployments(limit=200, offset=total)\n"
            "        total += len(page)\n"
            "    start = time.perf_counter()\n"
            f"    tagged = DeploymentFilter(tags=DeploymentFilterTags(all_=[{tag!r}]))\n"
            "    rows = c.read_deployments(deployment_filter=tagged)\n"
            "    print(total, len(rows), (time.perf_counter() - start) * 1000)\n"
        )
        total, rows, ms = out.split()
        return int(total), int(rows), float(ms)

    def stop(self) -> None:
        stop_process(self.started)


def per_model(root: Path, models: int, again: bool) -> Iterator[Measured]:
    files = write_fleet(root / "files", models, f"sqlite:///{root / 'mlflow.db'}", max_concurrent_runs=4)
    server = Server(root / "server-per-model")
    try:
        idle = server.rss_mb()
        command = [
            str(DRIFTLINE), "deploy", "--config", str(files.folder), "--pool", POOL,
            "--project-dir", str(PROJECT_ROOT),
        ]  # fmt: skip
        for note in ("first deploy", "deployed again, unchanged")[: 2 if again else 1]:
            start = time.perf_counter()
            done = subprocess.run(command, env=server.env, cwd=PROJECT_ROOT, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                raise RuntimeError(f"driftline deploy failed: {done.stderr.strip()[-500:]}")
            total, rows, ms = server.count_and_filter(files.names[0])
            yield Measured("per-model", models, total, seconds, idle, server.rss_mb(), rows, ms, note)
        yield baseline(server, files.configs, models)
    finally:
        server.stop()


def baseline(server: Server, configs: list[Path], models: int, sample: int = 3) -> Measured:
    """One `prefect deploy --all` process per model (as flows/deploy.py did), on `sample` more models."""
    from driftline.flows.deploy import deploy_env

    fleet = load_fleet(configs[0].parent)
    seconds = []
    for cfg in fleet.configs[:sample]:
        renamed = cfg.model_copy(
            update={"registry": cfg.registry.model_copy(update={"model_name": f"old-{len(seconds)}"})}
        )
        env = server.env | deploy_env(renamed, str(cfg.source), PROJECT_ROOT, POOL)
        command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file",
                   str(PROJECT_ROOT / "prefect.yaml")]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
        seconds.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"prefect deploy failed: {done.stderr.strip()[-500:]}")
    per = sum(seconds) / len(seconds)
    total, rows, ms = server.count_and_filter("old-0")
    note = f"measured on {sample} models ({per:.1f} s each), extrapolated to {models}"
    return Measured("prefect deploy per model", models, models * 7, per * models, 0, server.rss_mb(), rows, ms, note)


PER_FLOW = """
import sys, time
from pathlib import Path
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import CronSchedule
from driftline.config import load_fleet
from driftline.fleet.schedules import spread_schedules
from driftline.flows.deploy import deploy_env, ensure_work_pool, WorkPoolSpec
from driftline.flows.prefect_deployments import PrefectFile, TRIGGERS

fleet = load_fleet(sys.argv[1])
project = Path(sys.argv[2])
source = PrefectFile(project / "prefect.yaml")
ensure_work_pool(WorkPoolSpec(name="bench-deploy"), project)
start = time.perf_counter()
with get_client(sync_client=True) as client:
    source.prepare(client)
    first = fleet.configs[0]
    specs = source.rendered(deploy_env(first, str(first.source), project, "bench-deploy"))
    for spec in specs:
        flow_id, schema, description = source._flows[spec["entrypoint"]]
        function = spec["entrypoint"].rpartition(":")[2]
        schedules = []
        if spec.get("schedules"):
            for cfg in fleet.configs:
                own = getattr(spread_schedules(cfg), function)
                schedules.append(DeploymentScheduleCreate(
                    schedule=CronSchedule(cron=own.cron, timezone=own.timezone), active=own.active,
                    parameters={"params": {"config": str(cfg.source)}}, slug=cfg.registry.model_name))
        deployment_id = client.create_deployment(
            flow_id=flow_id, name="fleet", entrypoint=spec["entrypoint"], work_pool_name="bench-deploy",
            parameters={}, parameter_openapi_schema=schema, description=description,
            tags=["driftline", "fleet"], schedules=schedules, pull_steps=source.pull_steps)
        for number, trigger_spec in enumerate(spec.get("triggers") or []):
            for cfg in fleet.configs:
                model = cfg.registry.model_name
                match = dict(trigger_spec["match"], **{"driftline.model": model})
                params = dict(trigger_spec["parameters"]["params"], config=str(cfg.source))
                trigger = TRIGGERS.validate_python(dict(trigger_spec, name=f"fleet {model}", match=match,
                                                        parameters={"params": params}))
                trigger.set_deployment_id(deployment_id)
                client.create_automation(trigger.as_automation())
print(time.perf_counter() - start)
"""


def per_flow(root: Path, models: int) -> Measured:
    files = write_fleet(root / "files-per-flow", models, f"sqlite:///{root / 'mlflow.db'}", max_concurrent_runs=4)
    server = Server(root / "server-per-flow")
    try:
        idle = server.rss_mb()
        start = time.perf_counter()
        server.run(
            PER_FLOW.replace("sys.argv[1]", repr(str(files.folder))).replace("sys.argv[2]", repr(str(PROJECT_ROOT)))
        )
        seconds = time.perf_counter() - start
        total, rows, ms = server.count_and_filter(files.names[0])
        note = "a model is a schedule (slug) and a trigger, not a deployment: no filter, queue or pause per model"
        return Measured("per-flow", models, total, seconds, idle, server.rss_mb(), rows, ms, note)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, nargs="+", default=[20])
    parser.add_argument("--shapes", nargs="+", choices=["per-model", "per-flow"], default=["per-model", "per-flow"])
    parser.add_argument("--once", action="store_true", help="per-model: the first deploy only, not deployed again")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start")
    print("| shape | models | deployments | seconds | s/model | server RSS idle MB | after MB | filter rows | "
          "filter ms | note |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for models in args.models:
        with tempfile.TemporaryDirectory(prefix=f"bench-deploy-{models}-") as folder:
            if "per-model" in args.shapes:
                for row in per_model(Path(folder), models, again=not args.once):
                    print(row.row(), flush=True)
            if "per-flow" in args.shapes:
                print(per_flow(Path(folder), models).row(), flush=True)
        print(f"({models} models done; load average {os.getloadavg()[0]:.1f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
