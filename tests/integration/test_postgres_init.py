"""infra/postgres/init-databases.sh, the compose and Kubernetes PostgreSQL's first-start script, run against a real
PostgreSQL as the official image runs it: afterwards each server logs in to its own database with its own password."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from testkit.paths import PROJECT_ROOT

from driftline import stack

pytestmark = pytest.mark.integration
INIT_SCRIPT = PROJECT_ROOT / "infra" / "postgres" / "init-databases.sh"
SUPERUSER_PASSWORD = "superuser-pw"


@pytest.fixture(scope="module")
def empty_cluster() -> Iterator[int]:
    folder = Path(tempfile.mkdtemp(prefix="driftline-pg-init-"))
    folder.chmod(0o755)  # run as root, the cluster belongs to the `postgres` user
    port = stack.free_port()
    stack.start_postgres(folder / "pg", port, SUPERUSER_PASSWORD, databases=[])
    try:
        yield port
    finally:
        stack.stop_postgres(folder / "pg")
        assert not (folder / "pg" / "data" / "postmaster.pid").exists(), "PostgreSQL still running"
        shutil.rmtree(folder)


def psql(port: int, user: str, password: str, database: str, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [stack.postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", database, "-tAc", sql],
        capture_output=True,
        text=True,
        env={**os.environ, "PGPASSWORD": password},
    )


def test_the_init_script_gives_each_server_its_own_database_and_login(empty_cluster: int):
    env = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(empty_cluster),
        "PGPASSWORD": SUPERUSER_PASSWORD,
        "POSTGRES_USER": "postgres",
        "PREFECT_DB_PASSWORD": "prefect-pw",
        "MLFLOW_DB_PASSWORD": "mlflow pw'quoted",
    }
    done = subprocess.run(["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for role, password in (("prefect", "prefect-pw"), ("mlflow", "mlflow pw'quoted")):
        owner = psql(
            empty_cluster,
            role,
            password,
            role,
            f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{role}'",
        )
        assert owner.returncode == 0, owner.stderr
        assert owner.stdout.strip() == role
    refused = psql(empty_cluster, "prefect", "wrong", "prefect", "SELECT 1")
    assert refused.returncode != 0 and "password authentication failed" in refused.stderr


def test_the_init_script_refuses_to_run_without_the_passwords():
    env = {key: value for key, value in os.environ.items() if not key.endswith("_DB_PASSWORD")}
    done = subprocess.run(["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "PREFECT_DB_PASSWORD is required" in done.stderr
