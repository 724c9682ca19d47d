"""When a task runs again: outages (driftline.outages: a server down, a timeout, a locked database) are retried;
driftline's answers and bugs are not."""

from __future__ import annotations

from typing import Any

from driftline.errors import retry_can_help


def retry_if_transient(task, task_run, state) -> bool:
    """Prefect's `retry_condition_fn`: called with the failed state before each retry; False ends the run as failed
    at once, so a rejected file or a refused transition fails on its first attempt with its one-line message."""
    error = state.result(raise_on_failure=False)
    return not isinstance(error, BaseException) or retry_can_help(error)


def retried(times: int, delay_seconds: float | list[float]) -> dict[str, Any]:
    """The retry options of a task that may meet an outage: `@task(name=..., **retried(2, [2, 10]))`."""
    return {"retries": times, "retry_delay_seconds": delay_seconds, "retry_condition_fn": retry_if_transient}
