"""The local stack as processes on one machine (`driftline stack up|down`): servers, worker, landing watcher.
May import: errors (the servers run as commands).

`local` holds the settings, `up` and `down` and what they record in <workspace>/stack/state.json (`make up` and the
integration tests start the stack through them); `processes` starts and stops one process; `postgres` runs the
private cluster. Database profiles: docs/deployment.md (the local stack, the production profile); authentication
and where each secret goes: docs/security.md.
"""

from driftline.stack.local import (
    FILE_LEASES,
    LEASE_STORAGE_ENV,
    MLFLOW_ADMIN_PASSWORD_ENV,
    MLFLOW_PASSWORD_ENV,
    MLFLOW_USER_ENV,
    PREFECT_SERVER_AUTH_ENV,
    SERVER_ONLY_ENV,
    StackSettings,
    StackState,
    down,
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
    "PREFECT_SERVER_AUTH_ENV",
    "SERVER_ONLY_ENV",
    "StackSettings",
    "StackState",
    "alive",
    "down",
    "free_port",
    "postgres_bin",
    "start_postgres",
    "stop_postgres",
    "up",
]
