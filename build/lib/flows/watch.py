"""The landing-folder watcher (a long-running service, not a flow): the event source of continuous training.

Every new complete file becomes one `driftline.data.arrived` event; the continuous-training deployment's trigger in
prefect.yaml starts a run with the file as its parameter. Content seen before is announced with
`driftline.duplicate: "true"`, which the trigger ignores. The event is sent (and the server's answer awaited) before
the file is recorded in the ledger: when the server is down, the file is offered again at the next poll.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from driftline.config import DriftlineConfig
from driftline.data import archive
from driftline.data.landing import Arrival, LandingWatcher, Ledger
from tasks.events import data_arrived_event, send_now

log = logging.getLogger("driftline.watch")


def landing_watcher(cfg: DriftlineConfig) -> LandingWatcher:
    def archived_as(sha256: str) -> str | None:
        entry = archive.archived_entry(cfg.folders.archive, sha256)
        return f"{entry.source_name} (archived {entry.archived_at})" if entry else None

    ledger = Ledger(cfg.folders.ledgers / f"{cfg.registry.model_name}-landing.jsonl")
    return LandingWatcher(cfg.folders.landing, ledger, cfg.landing.stable_seconds, processed_elsewhere=archived_as)


def watch(cfg: DriftlineConfig, config_path: str, once: bool = False, on_arrival: Callable[[Arrival], None] = print):
    """Poll the landing folder until stopped; `once` polls until nothing is still settling, then returns."""
    watcher = landing_watcher(cfg)
    cfg.folders.landing.mkdir(parents=True, exist_ok=True)

    def announce(arrival: Arrival) -> None:
        send_now(data_arrived_event(arrival, cfg, config_path))
        on_arrival(arrival)

    while True:
        try:
            watcher.poll(announce, time.monotonic())
        except Exception as error:  # the server is down or restarting: nothing was recorded, try again
            if once:
                raise
            log.warning("could not announce new data (%s); retrying in %.0f s", error, cfg.landing.poll_seconds)
        if once and not watcher.settling:
            return
        time.sleep(cfg.landing.poll_seconds)
