"""Each model's SLAs (`sla:`) evaluated where the data is, recorded, and read back as compliance and breaches.

Every evaluation counts in the day tallies of state.json, which compliance reads (30 small entries, not a month of
lines); the evidence kept as JSON lines in <workspace>/sla/<model>/<YYYY-MM-DD>.jsonl (appended with O_APPEND) is each
evaluation outside its bound, and each one within after none or after one outside (a recovery): a model within its
SLAs writes a line per SLA, not one per probe. state.json also keeps each SLA's latest evaluation and what the next
evaluation starts from (the latency histogram of the last probe, the label files and labeled batches already judged).
An evaluation holds the model's lock: two checks never interleave.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from driftline import file_lock
from driftline.config import DriftlineConfig, Fleet, RegistryFolders
from driftline.config.base import METRICS
from driftline.config.operations import ServingConfig
from driftline.config.workspace import safe_name
from driftline.data import prediction_log
from driftline.data.storage import write_atomically
from driftline.errors import retry_can_help
from driftline.fleet import service_probe
from driftline.fleet.service_probe import Probe
from driftline.monitoring import label_store, performance
from driftline.registry import registry_folders
from driftline.serving.log_buffer import SOURCE as ONLINE_SOURCE

P95 = 0.95
PROBING = ("availability", "p95_latency_ms")  # measured on the service
ON_FILES = ("performance_floor", "freshness_hours", "label_delay_hours")  # measured on the model's files
# Upper bounds; the performance floor's direction is its metric's, availability is a least.
AT_MOST = {"p95_latency_ms", "freshness_hours", "label_delay_hours"}
CONCURRENT_CHECKS = 16  # models probed at once: a fleet of dead services costs ~timeout x models / this


@dataclass(frozen=True)
class Evaluation:
    """One SLA judged once: its measured value against its bound."""

    sla: str
    at: str  # ISO time, UTC
    value: float
    bound: float
    within: bool
    detail: str  # what was measured ("19 of 20 probes ready", "roc_auc on 240 labeled rows of b.csv (v3)")

    def line(self) -> str:
        judged = "within" if self.within else "breaches"
        return f"{self.sla} {_shown(self.value)} {judged} {_shown(self.bound)} ({self.detail}; at {self.at[:16]} UTC)"


@dataclass(frozen=True)
class Checked:
    """A model's evaluations of one check, and which of them are new breaches (the previous one was within)."""

    model: str
    evaluations: list[Evaluation]
    breaches: list[Evaluation]
    probe: str | None = None  # what /ready answered, when probed


@dataclass(frozen=True)
class Unchecked:
    """A model whose check met an outage (its registry unreachable): checked again at the next probe."""

    model: str
    problem: str


@dataclass
class State:
    """What state.json holds between checks."""

    days: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # day -> sla -> [evaluated, within]
    probes: dict[str, list[int]] = field(default_factory=dict)  # day -> [probes, ready]
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)  # sla -> its latest Evaluation
    latency_buckets: dict[str, float] | None = None  # the histogram at the last probe that read it
    labels_through: str | None = None  # the newest label-store file judged
    batches: dict[str, int] = field(default_factory=dict)  # "v<version> <batch>" -> labeled rows when judged


# --- where the records live -------------------------------------------------------------------------------------------
def records_dir(cfg: DriftlineConfig) -> Path:
    # the workspace root as cfg.folders has it, without resolving every other folder (the inventory reads 200 models)
    return cfg.storage.workspace.resolve() / "sla" / safe_name(cfg.registry.model_name)


def read_state(cfg: DriftlineConfig) -> State:
    path = records_dir(cfg) / "state.json"
    return State(**json.loads(path.read_text())) if path.exists() else State()


def read_records(cfg: DriftlineConfig) -> list[Evaluation]:
    """Every evaluation recorded for the model, oldest first."""
    lines = (line for path in sorted(records_dir(cfg).glob("*.jsonl")) for line in path.read_text().splitlines())
    return [Evaluation(**json.loads(line)) for line in lines if line.strip()]


@contextmanager
def _recording(cfg: DriftlineConfig) -> Iterator[State]:
    """The model's state under its lock, written back whole when the block ends."""
    folder = records_dir(cfg)
    with file_lock.held(folder / ".lock"):
        state = read_state(cfg)
        yield state
        text = json.dumps(asdict(state))
        write_atomically(folder / "state.json", lambda temp: temp.write_text(text))


def _append(cfg: DriftlineConfig, evaluations: list[Evaluation]) -> None:
    """One write per day file: O_APPEND keeps each line whole beside any other writer."""
    by_day: dict[str, str] = {}
    for evaluation in evaluations:
        by_day[evaluation.at[:10]] = by_day.get(evaluation.at[:10], "") + json.dumps(asdict(evaluation)) + "\n"
    for day, text in by_day.items():
        handle = os.open(records_dir(cfg) / f"{day}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(handle, text.encode())
        finally:
            os.close(handle)


# --- judging ----------------------------------------------------------------------------------------------------------
def within(cfg: DriftlineConfig, sla: str, value: float, bound: float) -> bool:
    if sla == "performance_floor":
        scores = METRICS[cfg.dataset.task][cfg.primary_metric]
        return value >= bound if scores else value <= bound
    return value <= bound if sla in AT_MOST else value >= bound


def _days_of(now: datetime, window_days: int) -> set[str]:
    return {(now.date() - timedelta(days=back)).isoformat() for back in range(window_days)}


def compliance(cfg: DriftlineConfig, now: datetime | None = None) -> dict[str, float | None]:
    """Per SLA set: the share of its evaluations within its bound over the last sla.window_days UTC days (today
    included); None when it was never evaluated in them."""
    state, days = read_state(cfg), _days_of(now or datetime.now(UTC), cfg.sla.window_days)
    shares: dict[str, float | None] = {}
    for sla in cfg.sla.bounds:
        evaluated = sum(state.days[day].get(sla, [0, 0])[0] for day in days if day in state.days)
        held_to = sum(state.days[day].get(sla, [0, 0])[1] for day in days if day in state.days)
        shares[sla] = held_to / evaluated if evaluated else None
    return shares


def breaching(cfg: DriftlineConfig, now: datetime | None = None) -> list[str]:
    """One line per SLA set whose latest evaluation (in the window) is outside its bound as the config sets it now."""
    state, days = read_state(cfg), _days_of(now or datetime.now(UTC), cfg.sla.window_days)
    lines = []
    for sla, bound in cfg.sla.bounds.items():
        latest = state.latest.get(sla)
        if latest is None or latest["at"][:10] not in days:
            continue
        judged = Evaluation(**{**latest, "bound": bound, "within": within(cfg, sla, latest["value"], bound)})
        if not judged.within:
            lines.append(judged.line())
    return lines


def _judge(cfg: DriftlineConfig, state: State, sla: str, value: float, detail: str, at: str) -> Evaluation:
    """An evaluation, counted in its day's tally and kept as the SLA's latest."""
    bound = cfg.sla.bounds[sla]
    evaluation = Evaluation(sla, at, float(value), bound, within(cfg, sla, value, bound), detail)
    tally = state.days.setdefault(at[:10], {}).setdefault(sla, [0, 0])
    tally[0] += 1
    tally[1] += int(evaluation.within)
    state.latest[sla] = asdict(evaluation)
    return evaluation


# --- measuring --------------------------------------------------------------------------------------------------------
def _hours_since(stamp: str, format: str, now: datetime) -> float:
    return (now - datetime.strptime(stamp, format).replace(tzinfo=UTC)).total_seconds() / 3600


def _availability(cfg: DriftlineConfig, state: State, probe: Probe, at: str) -> Evaluation:
    """This probe counted with the window's others: availability is the share of them answered ready."""
    counts = state.probes.setdefault(at[:10], [0, 0])
    counts[0] += 1
    counts[1] += int(probe.ready)
    days = _days_of(datetime.fromisoformat(at), cfg.sla.window_days)
    probes = sum(state.probes[day][0] for day in days if day in state.probes)
    ready = sum(state.probes[day][1] for day in days if day in state.probes)
    detail = f"{ready} of {probes} probes ready over {cfg.sla.window_days} d; this one: {probe.answer}"
    return _judge(cfg, state, "availability", ready / probes, detail, at)


def _latency(cfg: DriftlineConfig, state: State, probe: Probe, at: str) -> list[Evaluation]:
    """p95 of the requests answered since the previous probe (none answered: nothing to judge)."""
    if probe.latency_buckets is None:
        return []
    recent = service_probe.since(probe.latency_buckets, state.latency_buckets)
    state.latency_buckets = probe.latency_buckets
    seconds = service_probe.quantile(recent, P95)
    if seconds is None:
        return []
    detail = f"p95 of {int(recent.get('+Inf', 0))} /predict requests since the previous probe"
    return [_judge(cfg, state, "p95_latency_ms", seconds * 1000, detail, at)]


def _freshness(cfg: DriftlineConfig, state: State, folders: RegistryFolders, now: datetime, at: str) -> list:
    """Hours since the last batch was scored (the online service's own log files aside); none scored yet: not
    judged."""
    batches = [f for f in prediction_log.log_files(folders.prediction_log) if not f.stem.endswith(f"-{ONLINE_SOURCE}")]
    if not batches:
        return []
    name = batches[-1].name
    hours = _hours_since(name.split("-", 1)[0], prediction_log.STAMP_FORMAT, now)
    return [_judge(cfg, state, "freshness_hours", hours, f"last scored batch logged in {name}", at)]


def _label_delay(cfg: DriftlineConfig, state: State, folders: RegistryFolders, now: datetime, at: str) -> list:
    """Hours since labels last arrived (the newest label-store file); none arrived yet: not judged."""
    stored = sorted(path.name for path in folders.label_store.glob("*.parquet"))
    if not stored:
        return []
    hours = _hours_since(stored[-1].split("-", 1)[0], "%Y%m%dT%H%M%S%fZ", now)
    return [_judge(cfg, state, "label_delay_hours", hours, f"labels last stored in {stored[-1]}", at)]


def _performance(cfg: DriftlineConfig, state: State, folders: RegistryFolders, at: str) -> list[Evaluation]:
    """The primary metric of each labeled batch (at least labels.min_rows labeled rows), judged once per new count
    of labeled rows, in scoring order: the join runs only when new label files arrived since the last check."""
    stored = sorted(path.name for path in folders.label_store.glob("*.parquet"))
    if not stored or stored[-1] == state.labels_through:
        return []
    logged = prediction_log.read_window(prediction_log.log_files(folders.prediction_log)).frame
    labels = label_store.read_labels(folders.label_store)
    joined = performance.join_labels(logged, labels, cfg)
    state.labels_through = stored[-1]
    metric, evaluations = cfg.primary_metric, []
    for result in performance.performance(joined, cfg, logged_classes(joined)):
        key = f"v{result.model_version} {result.source}"
        value = result.metrics.get(metric)
        if not result.per_batch or result.rows < cfg.labels.min_rows or value is None:
            continue
        if state.batches.get(key) == result.rows:
            continue
        state.batches[key] = result.rows
        detail = f"{metric} on {result.rows} labeled rows of {result.source} (v{result.model_version})"
        evaluations.append(_judge(cfg, state, "performance_floor", value, detail, at))
    return evaluations


def logged_classes(joined: performance.LabelJoin) -> list | None:
    """The classes in the order the model gave their probabilities (its `proba_<class>` columns), as the values
    its labels and predictions hold; None without probabilities (regression)."""
    frame = joined.labeled
    texts = [c.removeprefix(performance.PROBA_PREFIX) for c in frame if c.startswith(performance.PROBA_PREFIX)]
    if not texts:
        return None
    values = [*frame[prediction_log.PREDICTION].unique(), *frame[label_store.LABEL].unique()]
    known = {str(value): value for value in values}
    return [known.get(text, text) for text in texts]


def evaluate(cfg: DriftlineConfig, probe: Probe | None, folders: RegistryFolders | None) -> Checked:
    """Every SLA set, judged on this probe of the service and on the model's files, recorded; the new breaches are
    those whose previous evaluation was within (or that had none)."""
    bounds = cfg.sla.bounds
    with _recording(cfg) as state:
        before = {sla: latest["within"] for sla, latest in state.latest.items()}
        now = datetime.now(UTC)
        at = now.isoformat(timespec="seconds")
        evaluations: list[Evaluation] = []
        if probe is not None and "availability" in bounds:
            evaluations.append(_availability(cfg, state, probe, at))
        if probe is not None and "p95_latency_ms" in bounds:
            evaluations += _latency(cfg, state, probe, at)
        if folders is not None and "freshness_hours" in bounds:
            evaluations += _freshness(cfg, state, folders, now, at)
        if folders is not None and "label_delay_hours" in bounds:
            evaluations += _label_delay(cfg, state, folders, now, at)
        if folders is not None and "performance_floor" in bounds and cfg.labels.enabled:
            evaluations += _performance(cfg, state, folders, at)
        _append(cfg, [e for e in evaluations if not e.within or before.get(e.sla) is not True])
    breaches = []
    for evaluation in evaluations:
        if not evaluation.within and before.get(evaluation.sla, True):
            breaches.append(evaluation)
        before[evaluation.sla] = evaluation.within
    return Checked(cfg.registry.model_name, evaluations, breaches, probe.answer if probe else None)


# --- a check --------------------------------------------------------------------------------------------------------
def check(cfg: DriftlineConfig, fleet_service: ServingConfig | None, http: httpx.Client) -> Checked:
    """Probe the model's service from outside (only for the SLAs that need it), find its files, evaluate.
    `fleet_service`: the settings of the fleet service that serves it, or None for a config served alone."""
    bounds = cfg.sla.bounds
    probe = None
    if any(sla in bounds for sla in PROBING):
        service = service_probe.service_of(cfg, fleet_service)
        probe = service_probe.probe(http, service, "availability" in bounds, "p95_latency_ms" in bounds)
    folders = registry_folders(cfg) if any(sla in bounds for sla in ON_FILES) else None
    return evaluate(cfg, probe, folders)


def check_fleet(fleet: Fleet, served_together: bool) -> list[Checked | Unchecked]:
    """Every model with an SLA checked, CONCURRENT_CHECKS at a time; `served_together`: by the fleet service (else
    each by its own). A model whose registry is unreachable (an outage) is named and the others still count; a bug
    fails at once."""

    fleet_service = fleet.workspace.serving if served_together else None  # once: it compares every config

    def one(cfg: DriftlineConfig) -> Checked | Unchecked:
        try:
            return check(cfg, fleet_service, http)
        except Exception as error:
            if not retry_can_help(error):
                raise
            return Unchecked(cfg.registry.model_name, f"{type(error).__name__}: {error}")

    with_slas = [cfg for cfg in fleet.configs if cfg.sla.bounds]
    if not with_slas:
        return []
    with service_probe.client() as http, ThreadPoolExecutor(min(CONCURRENT_CHECKS, len(with_slas))) as pool:
        return list(pool.map(one, with_slas))


def _shown(value: float) -> str:
    return f"{value:.4g}"
