"""The local stack: its settings, what it started (state.json), its databases and authentication, `up` and `down`."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from driftline.errors import DriftlineError
from driftline.stack.postgres import start_postgres, stop_postgres
from driftline.stack.processes import Started, read_env_file, start_process, stop_process, wait_until_answers

PREFECT_DB_ENV = "PREFECT_SERVER_DATABASE_CONNECTION_URL"
PREFECT_DB_ENVS = (PREFECT_DB_ENV, "PREFECT_API_DATABASE_CONNECTION_URL")  # Prefect's setting and its older name
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
SERVER_ONLY_ENV = (
    PREFECT_DB_ENV,
    MLFLOW_DB_ENV,
    PREFECT_SERVER_AUTH_ENV,
    MLFLOW_ADMIN_PASSWORD_ENV,
    MLFLOW_SECRET_KEY_ENV,
)
Profile = Literal["sqlite", "postgres"]
# `driftline deploy`'s exit code for a config that does not load; for a folder, the configs that load were deployed.
EXIT_CONFIG_ERROR = 2


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


@dataclass(frozen=True)
class StackSettings:
    root: Path  # state, logs, databases and artifacts of the stack
    project_dir: Path  # where configs/ and prefect.yaml are; flow runs start here
    config: str  # the model to deploy and watch, or a folder of configs (a fleet): every model in it
    profile: Profile = "sqlite"
    host: str = "127.0.0.1"
    prefect_port: int = 4200
    mlflow_port: int = 5000
    postgres_port: int = 5433  # not 5432: a system PostgreSQL may hold it
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. scheduler loop seconds in tests
    # The MLflow store the CLI writes (the config's, by default the workspace's SQLite file) and its artifact root:
    # with the sqlite profile the stack's MLflow server serves them, so it continues from what the CLI did.
    mlflow_store: str | None = None
    mlflow_artifacts: str | None = None
    # The Prefect database the CLI's runs write (`prefect_database_url`): with the sqlite profile the stack's Prefect
    # server serves it, so the Prefect UI shows what the demo and every CLI run did (one history).
    prefect_store: str | None = None
    # A fleet's online service (`driftline serve --config DIR`) on this port, so the stack's availability probes
    # have something to probe; None (a single config): no service, `driftline serve` is started on its own.
    service_port: int | None = None


def prefect_database_url(workspace: Path, env: Mapping[str, str]) -> str:
    """The Prefect database of a workspace's flow runs: the one the environment names, else
    <workspace>/prefect/prefect.db. The temporary server Prefect starts for a CLI command writes it, and the stack's
    Prefect server (SQLite profile) serves it: one history, whichever ran the flows."""
    named = next((env[key] for key in PREFECT_DB_ENVS if env.get(key)), None)
    return named or f"sqlite+aiosqlite:///{workspace / 'prefect' / 'prefect.db'}"


def sqlite_folder(url: str) -> Path | None:
    """The folder of a SQLite database URL's file (SQLite creates the file, not its folder); None for a server."""
    scheme, _, path = url.partition(":///")
    return Path(path).parent if scheme.startswith("sqlite") and path else None


def running_prefect_api(root: Path, auth_string: str | None = None) -> str | None:
    """The API URL of the Prefect server of the stack recorded in `root` when it answers this client (with
    `auth_string`, PREFECT_API_AUTH_STRING, when the server requires one), else None: a command run while the stack
    is up reports to it rather than starting a temporary server on the same database."""
    state = StackState.load(root)
    api = state.env.get("PREFECT_API_URL") if state else None
    if state is None or api is None or not any(p.name == "prefect-server" for p in state.processes):
        return None
    token = base64.b64encode(auth_string.encode()).decode() if auth_string else None
    probe = urllib.request.Request(f"{api}/admin/version", headers={"Authorization": f"Basic {token}"} if token else {})
    try:
        with urllib.request.urlopen(probe, timeout=2) as answer:
            return api if answer.status == 200 else None
    except OSError:  # not answering, or refusing this client (401): the command starts a temporary server
        return None


def prefect_server_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)]


def mlflow_server_command(host: str, port: int, artifacts: str, *extra: str) -> list[str]:
    """The MLflow server serving its artifacts from `artifacts`; its store comes from the environment."""
    return [
        *(sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port)),
        *("--artifacts-destination", artifacts, "--serve-artifacts", *extra),
    ]


def _driftline(*args: str) -> list[str]:
    return [sys.executable, "-m", "driftline.cli", *args]


def _stored_secret(path: Path) -> str:
    """A random secret kept (owner-only) under the stack folder, so a restart finds the same one."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text()


def database_urls(settings: StackSettings, env: Mapping[str, str], state: StackState) -> tuple[str, str]:
    """(Prefect's database URL, MLflow's backend store URI), the first of:

    - `PREFECT_SERVER_DATABASE_CONNECTION_URL` and `MLFLOW_BACKEND_STORE_URI` set: that database (the production
      profile, e.g. a managed PostgreSQL); nothing is started for it;
    - `profile="postgres"`: a private PostgreSQL cluster under the stack folder, on loopback;
    - SQLite (the default: nothing to install): the databases the CLI writes, Prefect's (`prefect_store`, the
      workspace's prefect/prefect.db) and MLflow's (`mlflow_store`, the workspace's mlflow.db), else files under the
      stack folder.
    """
    if env.get(PREFECT_DB_ENV) and env.get(MLFLOW_DB_ENV):
        return env[PREFECT_DB_ENV], env[MLFLOW_DB_ENV]
    if settings.profile == "postgres":
        folder = settings.root / "postgres"
        password = _stored_secret(settings.root / "postgres-password")
        urls = start_postgres(folder, settings.postgres_port, password, ["prefect", "mlflow"])
        state.postgres_dir = str(folder)
        return f"postgresql+asyncpg://{urls['prefect']}", f"postgresql+psycopg://{urls['mlflow']}"
    mlflow_db = settings.mlflow_store or f"sqlite:///{settings.root}/mlflow.db"
    return settings.prefect_store or f"sqlite+aiosqlite:///{settings.root}/prefect.db", mlflow_db


def _authentication(settings: StackSettings, env: dict[str, str]) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """(MLflow server environment, MLflow server arguments, client credentials) for the auth the environment asks:

    - `PREFECT_SERVER_API_AUTH_STRING` (user:password): the Prefect server requires it; every client started here
      gets it as `PREFECT_API_AUTH_STRING`;
    - `MLFLOW_AUTH_ADMIN_PASSWORD`: the MLflow server runs its basic-auth app, its admin user
      (`MLFLOW_AUTH_ADMIN_USERNAME`, default admin) created with that password on first start; clients log in as
      `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`, by default that admin account.
    """
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
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
            MLFLOW_ADMIN_USER_ENV: admin,
            MLFLOW_ADMIN_PASSWORD_ENV: env[MLFLOW_ADMIN_PASSWORD_ENV],
            MLFLOW_SECRET_KEY_ENV: env.get(MLFLOW_SECRET_KEY_ENV) or _stored_secret(settings.root / "mlflow-key"),
        }
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
    # Settings come only from the environment or a .env file (12-factor).
    env = {**read_env_file(settings.project_dir / ".env"), **os.environ, **settings.extra_env}
    env |= {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_HOME": str(root / "prefect")}
    state = StackState(root=str(root))
    try:
        prefect_db, mlflow_db = database_urls(settings, env, state)
        if (folder := sqlite_folder(prefect_db)) is not None:
            folder.mkdir(parents=True, exist_ok=True)
        state.save()
        prefect_url = f"http://{settings.host}:{settings.prefect_port}"
        mlflow_url = f"http://{settings.host}:{settings.mlflow_port}"
        state.env = {"PREFECT_API_URL": f"{prefect_url}/api", "MLFLOW_TRACKING_URI": mlflow_url}
        mlflow_auth_env, mlflow_auth_args, credentials = _authentication(settings, env)
        client_env = state.env | credentials  # never saved: state.json holds no client credentials

        # Only each server gets its database URL and secrets: workers pass their environment on to every flow run.
        client_side = {key: value for key, value in env.items() if key not in SERVER_ONLY_ENV}

        def launch(name: str, command: list[str], extra: dict[str, str], url: str | None = None) -> None:
            started = start_process(name, command, root, {**client_side, **extra}, settings.project_dir)
            started.url = url
            state.processes.append(started)
            state.save()

        progress(f"Prefect server on {prefect_url} ({_shown(prefect_db, settings.prefect_store)})")
        if prefect_db == settings.prefect_store and (root / "prefect.db").exists():
            progress(f"(not served: {root / 'prefect.db'}, the separate Prefect history of stacks before this version)")
        # Concurrency leases on disk, not in the server's memory: a restarted server still knows who holds the
        # training slot, and frees it when its holder stops renewing.
        launch(
            "prefect-server",
            prefect_server_command(settings.host, settings.prefect_port),
            {PREFECT_DB_ENV: prefect_db, LEASE_STORAGE_ENV: FILE_LEASES} | _only(env, PREFECT_SERVER_AUTH_ENV),
            prefect_url,
        )
        cli_store = mlflow_db == settings.mlflow_store and settings.mlflow_artifacts is not None
        artifacts = settings.mlflow_artifacts if cli_store else str(root / "mlartifacts")
        served = _shown(mlflow_db, settings.mlflow_store if cli_store else None)
        progress(f"MLflow server on {mlflow_url} ({served}; artifacts served from {artifacts})")
        if cli_store and (root / "mlflow.db").exists():
            progress(f"(not served: {root / 'mlflow.db'}, the separate store of stacks before this version)")
        # The store URI goes in the environment MLflow reads it from (--backend-store-uri's variable): a password in
        # it stays out of the process list.
        launch(
            "mlflow-server",
            mlflow_server_command(settings.host, settings.mlflow_port, artifacts, *mlflow_auth_args),
            {MLFLOW_DB_ENV: mlflow_db} | mlflow_auth_env,
            mlflow_url,
        )
        wait_until_answers(f"{prefect_url}/api/health", state.processes[0], timeout=120)
        wait_until_answers(f"{mlflow_url}/health", state.processes[1], timeout=120)
        progress("deploying the flows (prefect.yaml)")
        deployed = subprocess.run(
            _driftline("deploy", "--config", settings.config),
            env={**client_side, **client_env},
            cwd=settings.project_dir,
            capture_output=True,
            text=True,
        )
        fleet = Path(settings.config).is_dir()
        if fleet and deployed.returncode == EXIT_CONFIG_ERROR:  # some configs do not load: the others deployed
            progress(f"the models whose configs load; not deployed: {deployed.stderr.strip().splitlines()[-1]}")
        elif deployed.returncode != 0:
            raise DriftlineError(f"driftline deploy failed: {deployed.stderr.strip() or deployed.stdout.strip()}")
        progress("Prefect worker for the process work pool")
        launch(
            "worker",
            [
                sys.executable,
                "-m",
                "prefect",
                "worker",
                "start",
                "--pool",
                env.get("DRIFTLINE_WORK_POOL", "driftline"),
                "--type",
                "process",
            ],
            client_env,
        )
        if with_watcher:
            progress("landing watcher" + (" for every model's landing folder" if settings.service_port else ""))
            launch("watcher", _driftline("watch", "--config", settings.config), client_env)
        if settings.service_port is not None:
            service_url = f"http://{settings.host}:{settings.service_port}"
            progress(f"fleet service on {service_url} (driftline serve --config {settings.config})")
            serve = [
                "serve",
                "--config",
                settings.config,
                "--host",
                settings.host,
                "--port",
                str(settings.service_port),
            ]
            launch("service", _driftline(*serve), client_env, service_url)
            wait_until_answers(f"{service_url}/health", state.processes[-1], timeout=120)
        return state
    except BaseException:
        down(root)
        raise


def _shown(url: str, cli_store: str | None) -> str:
    """A database URL as progress shows it: a SQLite file by its path, a server by its scheme (no password shown)."""
    shown = url if url.startswith("sqlite") else url.split(":", 1)[0]
    return f"the CLI's store, {shown}" if url == cli_store else shown


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
