"""The stack's private PostgreSQL cluster (the postgres profile): create, start and stop it with PostgreSQL's tools."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from driftline.errors import DriftlineError


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
            _as_postgres_user(
                [
                    postgres_bin("initdb"),
                    "-D",
                    str(data_dir),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={password_file}",
                    "--encoding=UTF8",
                    "--no-instructions",
                ]
            ),
            check=True,
            capture_output=True,
        )
        password_file.unlink()
    options = f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1"
    subprocess.run(
        _as_postgres_user(
            [
                postgres_bin("pg_ctl"),
                "-D",
                str(data_dir),
                "-l",
                str(folder / "postgres.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )

    def psql(sql: str) -> str:
        done = subprocess.run(
            [postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres", "-tAc", sql],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSWORD": password},
        )
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
