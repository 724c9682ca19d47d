"""Prefect events that driftline emits. Automations turn them into runs (new data) and notifications.

The event names and resource labels here are the contract: the deployment trigger in prefect.yaml and the
notification automations match on them, and any other event source (an object-store notification forwarded by a
webhook, another pipeline) only has to send the same shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect.client.orchestration import get_client
from prefect.events import Event, emit_event

from driftline.config import DriftlineConfig, NotificationEvent
from driftline.data.landing import Arrival

DATA_ARRIVED = "driftline.data.arrived"
DRIFT_DETECTED = "driftline.drift.detected"
MODEL_PROMOTED = "driftline.model.promoted"
GATE_REFUSED = "driftline.gate.refused"
PERFORMANCE_DEGRADED = "driftline.performance.degraded"
FAIRNESS_BREACHED = "driftline.fairness.breached"
SLICE_DEGRADED = "driftline.slice.degraded"
MODEL_ROLLED_BACK = "driftline.model.rolled_back"
SLA_BREACHED = "driftline.sla.breached"

# The `notifications.events` names in the config, and the events behind them.
NOTIFIED_EVENTS: dict[NotificationEvent, str] = {
    "drift_detected": DRIFT_DETECTED,
    "performance_degraded": PERFORMANCE_DEGRADED,
    "fairness_breached": FAIRNESS_BREACHED,
    "slice_degraded": SLICE_DEGRADED,
    "model_promoted": MODEL_PROMOTED,
    "gate_refused": GATE_REFUSED,
    "flow_failed": "prefect.flow-run.Failed",
    "model_rolled_back": MODEL_ROLLED_BACK,
    "sla_breached": SLA_BREACHED,
}

MODEL_LABEL = "driftline.model"


def model_resource(cfg: DriftlineConfig) -> dict[str, str]:
    name = cfg.registry.model_name
    return {"prefect.resource.id": f"driftline.model.{name}", "prefect.resource.name": name, MODEL_LABEL: name}


def emit_model_event(event: str, cfg: DriftlineConfig, payload: dict[str, Any]) -> None:
    """Drift, degradation, fairness, promotion and refusal events about the registered model, sent in the
    background."""
    emit_event(event=event, resource=model_resource(cfg), payload=payload)


def data_arrived_event(arrival: Arrival, cfg: DriftlineConfig, config_path: str) -> Event:
    """One event per complete landed file; the labels carry what the continuous-training trigger passes on."""
    return Event(
        event=DATA_ARRIVED,
        resource={
            "prefect.resource.id": f"driftline.data.{arrival.sha256}",
            "prefect.resource.name": arrival.path.rsplit("/", 1)[-1],
            "driftline.path": arrival.path,
            "driftline.size": str(arrival.size),
            "driftline.sha256": arrival.sha256,
            "driftline.config": config_path,
            MODEL_LABEL: cfg.registry.model_name,
            # the trigger only starts runs for "false": the same content arriving again is announced, not processed
            "driftline.duplicate": str(arrival.duplicate).lower(),
        },
        related=[{**model_resource(cfg), "prefect.resource.role": "model"}],
        payload={"duplicate_of": arrival.duplicate_of, "seen_at": arrival.seen_at},
    )


def send_now(event: Event) -> None:
    """POST the event and wait for the server's answer, so the caller knows it was received (or gets the error)."""
    with get_client(sync_client=True) as client:
        client.request("POST", "/events", json=[event.model_dump(mode="json")])


async def follow_model_moves(cfg: DriftlineConfig, on_move: Callable[[], None]) -> None:
    """Call `on_move` for every `driftline.model.*` event of this model (a promotion, a rollback) the server sees."""
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    moves = EventFilter(
        event=EventNameFilter(prefix=["driftline.model."]),
        resource=EventResourceFilter(id=[model_resource(cfg)["prefect.resource.id"]]),
    )
    async with get_events_subscriber(filter=moves) as subscriber:
        async for _ in subscriber:
            on_move()
