"""One training at a time per model, whoever starts it: a deployment, a retrain after drift, or the CLI.

A Prefect global concurrency limit named after the model, with one slot: a second training waits (queued, visible in
the UI under Concurrency) until the first has gated and promoted, so a gate never judges against a champion that
changes under it. The continuous-training deployment adds its own limit (prefect.yaml) for whole runs.

The slot is held under a lease the holder renews while it lives: a training killed outright (SIGKILL, a lost node)
stops renewing, and the server's repossessor frees its slot once `reliability.training_lease_seconds` pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency

from driftline.config import DriftlineConfig


def training_limit_name(cfg: DriftlineConfig) -> str:
    return f"driftline-training-{cfg.registry.model_name}"


def ensure_training_limit(cfg: DriftlineConfig) -> None:
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(training_limit_name(cfg), limit=1)


@contextmanager
def one_training_at_a_time(cfg: DriftlineConfig) -> Iterator[None]:
    ensure_training_limit(cfg)
    lease = cfg.reliability.training_lease_seconds
    with concurrency(training_limit_name(cfg), occupy=1, strict=True, lease_duration=lease):
        yield
