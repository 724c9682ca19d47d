"""The local stack as processes on one machine (`driftline stack up|down`): servers, worker, landing watcher, and for a
folder of configs (a fleet) one of each for every model plus the fleet service; the fleet demo's setup.
May import: errors (the servers run as commands); cli, config, data, registry (the fleet demo: its data, and its
first champions trained as `driftline train` trains them).

`local` holds the settings, `up` and `down` and what they record in <workspace>/stack/state.json (`make up` and the
integration tests start the stack through them); `processes` starts and stops one process; `postgres` runs the
private cluster; `fleet_demo` generates each demo model's data and trains its first champion (`make fleet-demo`).
With the SQLite profile the servers serve the databases the CLI writes (`prefect_database_url`, the config's MLflow
store), and a command run while the stack is up reports to its Prefect server (`running_prefect_api`): one history.
Database profiles: docs/deployment.md (the local stack, the production profile); authentication and where each
secret goes: docs/security.md.
"""

from driftline.stack.local import (
    FILE_LEASES,
    LEASE_STORAGE_ENV,
    MLFLOW_ADMIN_PASSWORD_ENV,
    MLFLOW_PASSWORD_ENV,
    MLFLOW_USER_ENV,
    PREFECT_DB_ENV,
    PREFECT_DB_ENVS,
    PREFECT_SERVER_AUTH_ENV,
    SERVER_ONLY_ENV,
    StackSettings,
    StackState,
    database_urls,
    down,
    mlflow_server_command,
    prefect_database_url,
    prefect_server_command,
    running_prefect_api,
    sqlite_folder,
    up,
)
from driftline.stack.postgres import postgres_bin, start_postgres, stop_postgres
from driftline.stack.processes import alive, free_port

__all__ = [
    "FILE_LEASES",
    "LEASE_STORAGE_ENV",
    "MLFLOW_ADMIN_PASSWORD_ENV",
    "MLFLOW_PASSWORD_ENV",
    "MLFLOW_USER_ENV",
    "PREFECT_DB_ENV",
    "PREFECT_DB_ENVS",
    "PREFECT_SERVER_AUTH_ENV",
    "SERVER_ONLY_ENV",
    "StackSettings",
    "StackState",
    "alive",
    "database_urls",
    "down",
    "free_port",
    "postgres_bin",
    "prefect_database_url",
    "mlflow_server_command",
    "prefect_server_command",
    "running_prefect_api",
    "sqlite_folder",
    "start_postgres",
    "stop_postgres",
    "up",
]
