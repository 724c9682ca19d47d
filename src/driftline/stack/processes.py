"""Processes of the stack: start one in its own session, wait until it answers, stop it and its children."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from driftline.errors import DriftlineError


@dataclass
class Started:
    name: str
    pid: int
    log: str
    url: str | None = None


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
            command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
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
