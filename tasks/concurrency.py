"""The limits on runs: one training at a time per model; a fleet's flow runs per model and in all.

Flow runs: the work pool's concurrency limit bounds every model's runs together (`fleet.max_concurrent_runs`), and
each model's own work queue in that pool bounds its runs (`fleet.model_concurrent_runs`), so one model's slow or
failing runs hold its own slots, never the pool's. (A tag concurrency limit would count task runs, not flow runs.)
The worker takes due runs in queue-priority order, each queue only up to its limit; the rest of the pool's slots go to
the next queues, so as long as the pool's limit is above a model's, a busy model cannot take every slot.

One training at a time per model, whoever starts it: a deployment, a retrain after drift, or the CLI.

A Prefect global concurrency limit named after the model, with one slot: a second training waits (queued, visible in
the UI under Concurrency) until the first has gated and promoted, so a gate never judges against a champion that
changes under it. The continuous-training deployment adds its own limit (prefect.yaml) for whole runs.

The slot is held under a lease the holder renews while it lives: a training killed outright (SIGKILL, a lost node)
stops renewing, and the server's repossessor frees its slot once `reliability.training_lease_seconds` pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.concurrency.sync import concurrency

from driftline.config import DriftlineConfig


def training_limit_name(cfg: DriftlineConfig) -> str:
    return f"driftline-training-{cfg.registry.model_name}"


def ensure_training_limit(cfg: DriftlineConfig, client: SyncPrefectClient | None = None) -> None:
    if client is not None:
        client.upsert_global_concurrency_limit_by_name(training_limit_name(cfg), limit=1)
        return
    with get_client(sync_client=True) as own:
        own.upsert_global_concurrency_limit_by_name(training_limit_name(cfg), limit=1)


@contextmanager
def one_training_at_a_time(cfg: DriftlineConfig) -> Iterator[None]:
    ensure_training_limit(cfg)
    lease = cfg.reliability.training_lease_seconds
    with concurrency(training_limit_name(cfg), occupy=1, strict=True, lease_duration=lease):
        yield


def ensure_pool_limit(client: SyncPrefectClient, work_pool: str, max_concurrent_runs: int) -> None:
    from prefect.client.schemas.actions import WorkPoolUpdate

    if client.read_work_pool(work_pool).concurrency_limit != max_concurrent_runs:
        client.update_work_pool(work_pool, WorkPoolUpdate(concurrency_limit=max_concurrent_runs))


def ensure_model_queue(client: SyncPrefectClient, work_pool: str, cfg: DriftlineConfig) -> None:
    """The model's own work queue in the pool, its limit `fleet.model_concurrent_runs` flow runs."""
    from prefect.exceptions import ObjectNotFound

    name, limit = model_queue_name(cfg), cfg.fleet.model_concurrent_runs
    try:
        queue = client.read_work_queue_by_name(name, work_pool_name=work_pool)
    except ObjectNotFound:
        client.create_work_queue(name, work_pool_name=work_pool, concurrency_limit=limit)
        return
    if queue.concurrency_limit != limit:
        client.update_work_queue(queue.id, concurrency_limit=limit)


def model_queue_name(cfg: DriftlineConfig) -> str:
    return cfg.registry.model_name
