"""The stack as plain processes on one machine: PostgreSQL (optional), Prefect server, MLflow server, a Prefect
worker for the process work pool, and the landing watcher.

`driftline stack up` (`make up`) starts them, deploys the flows and records every process it started in
`<workspace>/stack/state.json`; `driftline stack down` (`make down`) stops exactly those. The integration tests start
the same stack through the same functions. Settings come only from the environment or a `.env` file (12-factor):

- `PREFECT_SERVER_DATABASE_CONNECTION_URL` and `MLFLOW_BACKEND_STORE_URI` set: both servers use that database
  (the production profile, e.g. a managed PostgreSQL); nothing else is started for it.
- else `profile="postgres"`: a private PostgreSQL cluster is created under the stack folder on loopback.
- else SQLite files under the stack folder (the default: nothing to install).

Authentication (the production profile, docs/security.md), also from the environment:

- `PREFECT_SERVER_API_AUTH_STRING` (user:password) set: the Prefect server requires it; every client started here gets
  it as `PREFECT_API_AUTH_STRING`.
- `MLFLOW_AUTH_ADMIN_PASSWORD` set: the MLflow server runs its basic-auth app; its admin user
  (`MLFLOW_AUTH_ADMIN_USERNAME`, default admin) is created with that password on first start. Clients log in as
  `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`, by default that admin account.

Server secrets reach only their server; client credentials are never written to state.json.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from driftline.errors import DriftlineError

PREFECT_DB_ENV = "PREFECT_SERVER_DATABASE_CONNECTION_URL"
LEASE_STORAGE_ENV = "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"
FILE_LEASES = "prefect.server.concurrency.lease_storage.filesystem"
MLFLOW_DB_ENV = "MLFLOW_BACKEND_STORE_URI"
PREFECT_SERVER_AUTH_ENV = "PREFECT_SERVER_API_AUTH_STRING"
PREFECT_CLIENT_AUTH_ENV = "PREFECT_API_AUTH_STRING"
MLFLOW_ADMIN_USER_ENV = "MLFLOW_AUTH_ADMIN_USERNAME"
MLFLOW_ADMIN_PASSWORD_ENV = "MLFLOW_AUTH_ADMIN_PASSWORD"
MLFLOW_SECRET_KEY_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"  # the auth app's CSRF key: the same in every server worker
MLFLOW_USER_ENV, MLFLOW_PASSWORD_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
# What only a server may see: flow runs inherit the worker's environment, and must not get these.
SERVER_ONLY_ENV = (PREFECT_DB_ENV, MLFLOW_DB_ENV, PREFECT_SERVER_AUTH_ENV, MLFLOW_ADMIN_PASSWORD_ENV,
                   MLFLOW_SECRET_KEY_ENV)  # fmt: skip
Profile = Literal["sqlite", "postgres"]


@dataclass
class Started:
    name: str
    pid: int
    log: str
    url: str | None = None


@dataclass
class StackState:
    """What `up` started and where it listens; `down` reads it back."""

    root: str
    processes: list[Started] = field(default_factory=list)
    postgres_dir: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # what a client needs: PREFECT_API_URL, MLFLOW_TRACKING_URI

    def save(self) -> None:
        path = Path(self.root) / "state.json"
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)

    @classmethod
    def load(cls, root: Path) -> StackState | None:
        path = root / "state.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(
            root=data["root"],
            processes=[Started(**p) for p in data["processes"]],
            postgres_dir=data.get("postgres_dir"),
            env=data.get("env", {}),
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file; the process environment wins over it."""
    from dotenv import dotenv_values

    values = dotenv_values(path) if path.exists() else {}
    return {key: value for key, value in values.items() if value is not None}


def alive(pid: int) -> bool:
    try:
        ended, _ = os.waitpid(pid, os.WNOHANG)  # reaps it if it is our child and has exited
        return ended == 0
    except ChildProcessError:  # not our child: ask the kernel
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def wait_until_answers(url: str, started: Started, timeout: float) -> None:
    """Until `url` answers; fails at once, with the end of its log, when the process has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(url):
            return
        if not alive(started.pid):
            break
        time.sleep(0.5)
    log = Path(started.log)
    tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:]) if log.exists() else ""
    problem = "exited" if not alive(started.pid) else f"did not answer within {timeout:.0f} s"
    raise DriftlineError(f"{started.name} {problem}; its log ({log}) ends: {tail}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except OSError:
        return False


def start_process(name: str, command: list[str], root: Path, env: dict[str, str], cwd: Path) -> Started:
    """Start in its own session (so `down` can stop its children too), output to <root>/logs/<name>.log."""
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with log.open("ab") as handle:
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
            start_new_session=True,
        )  # fmt: skip
    return Started(name=name, pid=process.pid, log=str(log))


def stop_process(started: Started, timeout: float = 20) -> None:
    """SIGTERM to the process group, then SIGKILL if it has not ended."""
    try:
        os.killpg(started.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(started.pid):
        time.sleep(0.2)
    if not alive(started.pid):
        return
    try:
        os.killpg(started.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- PostgreSQL ------------------------------------------------------------------------------------------------
def postgres_bin(tool: str) -> str:
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), reverse=True):
        return str(candidate)
    found = shutil.which(tool)
    if found:
        return found
    raise DriftlineError(
        f"PostgreSQL's {tool} not found; install it (Debian: apt-get install postgresql) or use the sqlite profile"
    )


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; as root, run its tools as the `postgres` user the package creates."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def start_postgres(folder: Path, port: int, password: str, databases: list[str]) -> dict[str, str]:
    """A private cluster on loopback, owned by the `postgres` user when run as root; one database per service,
    owned by the role `driftline`. Returns SQLAlchemy URLs by database name."""
    data_dir, socket_dir = folder / "data", folder / "socket"
    if not (data_dir / "PG_VERSION").exists():
        folder.mkdir(parents=True, exist_ok=True)
        socket_dir.mkdir(exist_ok=True)
        password_file = folder / "superuser-password"
        password_file.write_text(password)
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres")
            shutil.chown(socket_dir, "postgres")
            shutil.chown(password_file, "postgres")
        password_file.chmod(0o600)
        subprocess.run(
            _as_postgres_user([postgres_bin("initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=scram-sha-256",
                               f"--pwfile={password_file}", "--encoding=UTF8", "--no-instructions"]),
            check=True, capture_output=True,
        )  # fmt: skip
        password_file.unlink()
    options = f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1"
    subprocess.run(
        _as_postgres_user([postgres_bin("pg_ctl"), "-D", str(data_dir), "-l", str(folder / "postgres.log"),
                           "-o", options, "-w", "-t", "60", "start"]),
        check=True, capture_output=True,
    )  # fmt: skip

    def psql(sql: str) -> str:
        done = subprocess.run(
            [postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
             "-tAc", sql],
            check=True, capture_output=True, text=True, env={**os.environ, "PGPASSWORD": password},
        )  # fmt: skip
        return done.stdout.strip()

    if not psql("SELECT 1 FROM pg_roles WHERE rolname = 'driftline'"):
        psql(f"CREATE ROLE driftline LOGIN PASSWORD '{password}'")
    for name in databases:
        if not psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
            psql(f"CREATE DATABASE {name} OWNER driftline")
    return {name: f"driftline:{password}@127.0.0.1:{port}/{name}" for name in databases}


def stop_postgres(folder: Path) -> None:
    if (folder / "data" / "postmaster.pid").exists():
        subprocess.run(
            _as_postgres_user([postgres_bin("pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )


# --- the stack -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StackSettings:
    root: Path  # state, logs, databases and artifacts of the stack
    project_dir: Path  # where configs/ and prefect.yaml are; flow runs start here
    config: str  # the model to deploy and watch
    profile: Profile = "sqlite"
    host: str = "127.0.0.1"
    prefect_port: int = 4200
    mlflow_port: int = 5000
    postgres_port: int = 5433  # not 5432: a system PostgreSQL may hold it
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. scheduler loop seconds in tests


def _driftline(*args: str) -> list[str]:
    return [sys.executable, "-m", "driftline.cli", *args]


def _stored_secret(path: Path) -> str:
    """A random secret kept (owner-only) under the stack folder, so a restart finds the same one."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text()


def _database_urls(settings: StackSettings, env: dict[str, str], state: StackState) -> tuple[str, str]:
    """(Prefect's database URL, MLflow's backend store URI) by profile; see the module docstring."""
    if env.get(PREFECT_DB_ENV) and env.get(MLFLOW_DB_ENV):
        return env[PREFECT_DB_ENV], env[MLFLOW_DB_ENV]
    if settings.profile == "postgres":
        folder = settings.root / "postgres"
        password = _stored_secret(settings.root / "postgres-password")
        urls = start_postgres(folder, settings.postgres_port, password, ["prefect", "mlflow"])
        state.postgres_dir = str(folder)
        return f"postgresql+asyncpg://{urls['prefect']}", f"postgresql+psycopg://{urls['mlflow']}"
    return f"sqlite+aiosqlite:///{settings.root}/prefect.db", f"sqlite:///{settings.root}/mlflow.db"


def _authentication(settings: StackSettings, env: dict[str, str]) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """(MLflow server environment, MLflow server arguments, client credentials) for the auth the environment asks."""
    server_env: dict[str, str] = {}
    server_args: list[str] = []
    clients: dict[str, str] = {}
    if env.get(PREFECT_SERVER_AUTH_ENV):
        clients[PREFECT_CLIENT_AUTH_ENV] = env.get(PREFECT_CLIENT_AUTH_ENV) or env[PREFECT_SERVER_AUTH_ENV]
    if env.get(MLFLOW_ADMIN_PASSWORD_ENV):
        admin = env.get(MLFLOW_ADMIN_USER_ENV) or "admin"
        auth_config = settings.root / "mlflow-basic-auth.ini"
        auth_config.write_text(
            "[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
            f"database_uri = sqlite:///{settings.root}/mlflow-auth.db\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )  # no password in it: the admin's comes from the environment
        server_env = {
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_config), MLFLOW_ADMIN_USER_ENV: admin,
            MLFLOW_ADMIN_PASSWORD_ENV: env[MLFLOW_ADMIN_PASSWORD_ENV],
            MLFLOW_SECRET_KEY_ENV: env.get(MLFLOW_SECRET_KEY_ENV) or _stored_secret(settings.root / "mlflow-key"),
        }  # fmt: skip
        server_args = ["--app-name", "basic-auth"]
        clients[MLFLOW_USER_ENV] = env.get(MLFLOW_USER_ENV) or admin
        clients[MLFLOW_PASSWORD_ENV] = env.get(MLFLOW_PASSWORD_ENV) or env[MLFLOW_ADMIN_PASSWORD_ENV]
    return server_env, server_args, clients


def up(settings: StackSettings, with_watcher: bool = True, progress: Callable[[str], None] = print) -> StackState:
    """Start the stack and deploy the flows; on any failure, stop what was started and raise."""
    root = settings.root
    root.mkdir(parents=True, exist_ok=True)
    if StackState.load(root) is not None:
        raise DriftlineError(f"a stack is already recorded in {root}/state.json; run `driftline stack down` first")
    env = {**read_env_file(settings.project_dir / ".env"), **os.environ, **settings.extra_env}
    env |= {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_HOME": str(root / "prefect")}
    state = StackState(root=str(root))
    try:
        prefect_db, mlflow_db = _database_urls(settings, env, state)
        state.save()
        prefect_url = f"http://{settings.host}:{settings.prefect_port}"
        mlflow_url = f"http://{settings.host}:{settings.mlflow_port}"
        state.env = {"PREFECT_API_URL": f"{prefect_url}/api", "MLFLOW_TRACKING_URI": mlflow_url}
        mlflow_auth_env, mlflow_auth_args, credentials = _authentication(settings, env)
        client_env = state.env | credentials

        # Only each server gets its database URL and secrets: workers pass their environment on to every flow run.
        client_side = {key: value for key, value in env.items() if key not in SERVER_ONLY_ENV}

        def launch(name: str, command: list[str], extra: dict[str, str], url: str | None = None) -> None:
            started = start_process(name, command, root, {**client_side, **extra}, settings.project_dir)
            started.url = url
            state.processes.append(started)
            state.save()

        progress(f"Prefect server on {prefect_url} ({prefect_db.split(':', 1)[0]})")
        # Concurrency leases on disk, not in the server's memory: a restarted server still knows who holds the
        # training slot, and frees it when its holder stops renewing.
        launch("prefect-server", [sys.executable, "-m", "prefect", "server", "start", "--host", settings.host,
                                  "--port", str(settings.prefect_port)],
               {PREFECT_DB_ENV: prefect_db, LEASE_STORAGE_ENV: FILE_LEASES} | _only(env, PREFECT_SERVER_AUTH_ENV),
               prefect_url)  # fmt: skip
        progress(f"MLflow server on {mlflow_url} ({mlflow_db.split(':', 1)[0]}, artifacts served)")
        # The store URI goes in the environment MLflow reads it from (--backend-store-uri's variable): a password in
        # it stays out of the process list.
        launch("mlflow-server", [sys.executable, "-m", "mlflow", "server", "--host", settings.host,
                                 "--port", str(settings.mlflow_port),
                                 "--artifacts-destination", str(root / "mlartifacts"), "--serve-artifacts",
                                 *mlflow_auth_args],
               {MLFLOW_DB_ENV: mlflow_db} | mlflow_auth_env, mlflow_url)  # fmt: skip
        wait_until_answers(f"{prefect_url}/api/health", state.processes[0], timeout=120)
        wait_until_answers(f"{mlflow_url}/health", state.processes[1], timeout=120)
        progress("deploying the flows (prefect.yaml)")
        deployed = subprocess.run(_driftline("deploy", "--config", settings.config), env={**client_side, **client_env},
                                  cwd=settings.project_dir, capture_output=True, text=True)  # fmt: skip
        if deployed.returncode != 0:
            raise DriftlineError(f"driftline deploy failed: {deployed.stderr.strip() or deployed.stdout.strip()}")
        progress("Prefect worker for the process work pool")
        launch("worker", [sys.executable, "-m", "prefect", "worker", "start", "--pool", env.get(
            "DRIFTLINE_WORK_POOL", "driftline"), "--type", "process"], client_env)  # fmt: skip
        if with_watcher:
            progress("landing watcher")
            launch("watcher", _driftline("watch", "--config", settings.config), client_env)
        return state
    except BaseException:
        down(root)
        raise


def _only(env: dict[str, str], key: str) -> dict[str, str]:
    return {key: env[key]} if env.get(key) else {}


def down(root: Path, progress: Callable[[str], None] = print) -> list[str]:
    """Stop what `up` recorded, newest first, then the database; returns the names stopped."""
    state = StackState.load(root)
    if state is None:
        return []
    stopped = []
    for started in reversed(state.processes):
        progress(f"stopping {started.name} (pid {started.pid})")
        stop_process(started)
        stopped.append(started.name)
    if state.postgres_dir:
        progress("stopping PostgreSQL")
        stop_postgres(Path(state.postgres_dir))
        stopped.append("postgres")
    (root / "state.json").unlink(missing_ok=True)
    return stopped
