"""The landing-folder watcher (a long-running service, not a flow): the event source of continuous training.

Every new complete file becomes one `driftline.data.arrived` event; the continuous-training deployment's trigger in
prefect.yaml starts a run with the file as its parameter. Content handled before (processed, rejected, or in flight)
is announced with `driftline.duplicate: "true"`, which the trigger ignores; content whose last run failed is
announced as new. The event is sent (and the server's answer awaited) before the file is recorded in the ledger:
when the server is down, the file is offered again at the next poll.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from driftline.config import DriftlineConfig
from driftline.data import archive
from driftline.data.landing import LandingWatcher
from driftline.data.ledger import FAILED, RUNNING, Arrival, Ledger, Outcome
from driftline.registry import registry_folders
from driftline.tasks.events import data_arrived_event, send_now

log = logging.getLogger("driftline.watch")


def landing_watcher(cfg: DriftlineConfig) -> LandingWatcher:
    """The watcher of the config's landing folder, with the ledger of the model in its registry (asks MLflow once)."""
    folders = registry_folders(cfg)

    def archived_as(sha256: str) -> str | None:
        entry = archive.archived_entry(folders.archive, sha256)
        return f"{entry.source_name} (archived {entry.archived_at})" if entry else None

    ledger = Ledger(folders.landing_ledger)
    return LandingWatcher(cfg.folders.landing, ledger, cfg.landing.stable_seconds, processed_elsewhere=archived_as)


def ended_without_outcome(ledger: Ledger) -> list[Outcome]:
    """Runs the ledger says are running, but that Prefect says ended otherwise (killed before their hooks ran):
    recorded as failed, so they are retried like any failure."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    ended = []
    with get_client(sync_client=True) as client, ledger.locked():
        for running in ledger.latest_outcomes(RUNNING):
            try:
                state = client.read_flow_run(running.flow_run_id).state
            except ObjectNotFound:  # a run of another Prefect server (a CLI run's temporary one): cannot tell
                continue
            if state is not None and state.is_final() and not state.is_completed():
                failed = Outcome(
                    running.sha256,
                    FAILED,
                    running.data,
                    running.flow_run_id,
                    f"flow run ended {state.name} without recording an outcome",
                )
                ledger.record(failed)
                ended.append(failed)
    return ended


def watch(
    cfg: DriftlineConfig,
    config_path: str,
    once: bool = False,
    on_arrival: Callable[[Arrival], None] = print,
    retry_failed: bool = False,
    on_gone: Callable[[str], None] = print,
) -> None:
    """Poll the landing folder until stopped; `once` polls until nothing is still settling, then returns. With
    `retry_failed`, content whose last run failed is announced again first (`on_gone` names files no longer there)."""
    cfg.folders.landing.mkdir(parents=True, exist_ok=True)
    watcher = None

    def announce(arrival: Arrival) -> None:
        send_now(data_arrived_event(arrival, cfg, config_path))
        on_arrival(arrival)

    while True:
        try:
            if watcher is None:  # the ledger is the registry's: found once the registry answers
                fresh = landing_watcher(cfg)
                if retry_failed:
                    ended_without_outcome(fresh.ledger)
                    for path in fresh.retry_failed(announce)[1]:
                        on_gone(path)
                watcher = fresh
            watcher.poll(announce, time.monotonic())
        except Exception as error:  # a server is down or restarting: nothing was recorded, try again
            if once:
                raise
            log.warning("could not announce new data (%s); retrying in %.0f s", error, cfg.landing.poll_seconds)
        if once and watcher is not None and not watcher.settling:
            return
        time.sleep(cfg.landing.poll_seconds)
