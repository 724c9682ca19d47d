"""The landing-folder watcher (a long-running service, not a flow): the event source of continuous training, for
one model or for every model of a folder of configs (`watch_fleet`: one process, each file announced for its model).

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
from functools import partial
from pathlib import Path

from driftline.config import FLEET_FILE, DriftlineConfig, load_fleet
from driftline.config.loading import model_config_files
from driftline.data import archive
from driftline.data.landing import LandingWatcher
from driftline.data.ledger import FAILED, RUNNING, Arrival, Ledger, Outcome
from driftline.errors import ConfigError
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


class ModelWatch:
    """One model's landing folder: its watcher (made once the registry answers), each arrival announced with the
    model's own config and recorded in its own ledger; polled every `landing.poll_seconds` of its config."""

    def __init__(
        self,
        cfg: DriftlineConfig,
        config_path: str,
        on_arrival: Callable[[Arrival], None],
        retry_failed: bool = False,
        on_gone: Callable[[str], None] = print,
    ):
        self.cfg = cfg
        self.config_path = config_path
        self.on_arrival = on_arrival
        self.retry_failed = retry_failed
        self.on_gone = on_gone
        self.watcher: LandingWatcher | None = None
        self.next_poll = 0.0

    @property
    def settling(self) -> bool:
        """Not watching yet (the registry has not answered), or some file has not stayed unchanged long enough."""
        return self.watcher is None or self.watcher.settling

    def announce(self, arrival: Arrival) -> None:
        send_now(data_arrived_event(arrival, self.cfg, self.config_path))
        self.on_arrival(arrival)

    def poll(self, now: float) -> None:
        self.next_poll = now + self.cfg.landing.poll_seconds
        if self.watcher is None:  # the ledger is the registry's: found once the registry answers
            self.cfg.folders.landing.mkdir(parents=True, exist_ok=True)
            fresh = landing_watcher(self.cfg)
            if self.retry_failed:
                ended_without_outcome(fresh.ledger)
                for path in fresh.retry_failed(self.announce)[1]:
                    self.on_gone(path)
            self.watcher = fresh
        self.watcher.poll(self.announce, now)


def keep_polling(models: Callable[[], list[ModelWatch]], once: bool = False, idle_seconds: float = 2.0) -> None:
    """Poll each model when it is due, until stopped; `models()` is asked before each round (a fleet re-reads its
    folder). `once` polls until nothing is still settling, then returns, and raises what a poll raised."""
    while True:
        watched = models()
        now = time.monotonic()
        for model in watched:
            if now < model.next_poll:
                continue
            try:
                model.poll(now)
            except Exception as error:  # a server is down or restarting: nothing was recorded, try again
                if once:
                    raise
                log.warning(
                    "%s: could not announce new data (%s); retrying in %.0f s",
                    model.cfg.registry.model_name,
                    error,
                    model.cfg.landing.poll_seconds,
                )
        if once and not any(model.settling for model in watched):
            return
        next_poll = min((model.next_poll for model in watched), default=now + idle_seconds)
        time.sleep(min(max(next_poll - time.monotonic(), 0.05), idle_seconds))


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
    model = ModelWatch(cfg, config_path, on_arrival, retry_failed, on_gone)
    keep_polling(lambda: [model], once, idle_seconds=cfg.landing.poll_seconds)


class FleetWatch:
    """The models of a folder of configs as the watcher sees them. The folder is re-read when a config file (or
    fleet.yaml) is added, changed or removed: a stat of each file per round, nothing more. A config that does not
    load is reported (file and line) once, and the others are watched; a model keeps its watcher while its landing
    folder, store and settling time stay the same."""

    def __init__(
        self,
        folder: Path,
        on_arrival: Callable[[str, Arrival], None],
        on_broken: Callable[[str], None],
        retry_failed: bool = False,
        on_gone: Callable[[str], None] = print,
    ):
        self.folder = folder
        self.on_arrival = on_arrival
        self.on_broken = on_broken
        self.retry_failed = retry_failed
        self.on_gone = on_gone
        self.watched: dict[str, ModelWatch] = {}  # by config file
        self._files: tuple = ()
        self._reported: set[str] = set()

    def _files_now(self) -> tuple:
        seen = []
        for path in (self.folder / FLEET_FILE, *model_config_files(self.folder)):
            try:
                stat = path.stat()
            except FileNotFoundError:  # no fleet.yaml, or removed since listed
                continue
            seen.append((path.name, stat.st_mtime_ns, stat.st_size))
        return tuple(seen)

    def models(self) -> list[ModelWatch]:
        """The models to poll now: the folder re-read first if one of its config files changed."""
        files = self._files_now()
        if files != self._files:
            self._files = files
            self._reload()
        return list(self.watched.values())

    def _reload(self) -> None:
        try:
            fleet = load_fleet(self.folder)
        except ConfigError as error:  # fleet.yaml itself: keep watching what was loaded before
            self._report(str(error))
            return
        reported = set()
        for broken in fleet.broken:
            reported.add(broken.problem)
            self._report(broken.problem)
        self._reported = reported
        watched = {}
        for cfg in fleet.configs:
            config_path = str(self.folder / cfg.source.name)
            kept = self.watched.get(config_path)
            if kept is None or _watching_key(kept.cfg) != _watching_key(cfg):
                kept = ModelWatch(
                    cfg, config_path, partial(self.on_arrival, config_path), self.retry_failed, self.on_gone
                )
            kept.cfg = cfg
            watched[config_path] = kept
        self.watched = watched

    def _report(self, problem: str) -> None:
        if problem not in self._reported:
            self._reported.add(problem)
            self.on_broken(problem)


def _watching_key(cfg: DriftlineConfig) -> tuple:
    return (cfg.registry.model_name, cfg.folders.landing, cfg.store_uri, cfg.landing.stable_seconds)


def watch_fleet(
    folder: Path,
    once: bool = False,
    on_arrival: Callable[[str, Arrival], None] = print,
    on_broken: Callable[[str], None] = print,
    retry_failed: bool = False,
    on_gone: Callable[[str], None] = print,
) -> None:
    """One watcher for every model's landing folder in a folder of configs: each file is announced for its own model
    (`on_arrival(config_path, arrival)`); `once` polls until nothing is settling, then returns."""
    fleet = FleetWatch(folder, on_arrival, on_broken, retry_failed, on_gone)
    keep_polling(fleet.models, once)
