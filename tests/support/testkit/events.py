"""The events a Prefect server stored: what the tests of notifications read back."""

import time
from datetime import datetime


def model_events(event: str, model: str, since: datetime, timeout: float = 30) -> list[dict]:
    """The events of that name the Prefect server stored for this model since a time. They are emitted in the
    background: a bounded wait for the first. Tests share one server and the model name, so earlier tests' events
    are left out by time."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    query = EventFilter(event=EventNameFilter(name=[event]), occurred=EventOccurredFilter(since=since))
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            stored = client.request("POST", "/events/filter", json={"filter": query.model_dump(mode="json")})
        found = [e for e in stored.json()["events"] if e["resource"]["driftline.model"] == model]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)
