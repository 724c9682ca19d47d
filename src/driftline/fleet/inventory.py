"""The fleet inventory: one row of evidence per model (its card, the registry, its runs, its files, its SLAs) and the
flags that say a person must look: stale, orphaned, failing, breaching; a config that does not load is a row too."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from cronsim import CronSim

from driftline.config import DriftlineConfig, Fleet, RegistryFolders
from driftline.data import prediction_log
from driftline.fleet import sla
from driftline.fleet.flow_runs import RunSummary, read_summary
from driftline.fleet.schedules import spread_schedules
from driftline.registry.inventory_queries import FleetQueries, ModelFacts
from driftline.serving.log_buffer import SOURCE as ONLINE_SOURCE

NO_OWNER = "unassigned"
SCORING_FLOWS = ("batch-scoring", "continuous-training")
LABEL_FLOW = "performance-monitoring"


@dataclass(frozen=True)
class ModelRow:
    """What the inventory shows of one model; `flags` say why a person must look (none: nothing to do)."""

    model: str
    config: str
    owner: str | None = None
    intended_use: str = ""
    risk_tier: str | None = None
    lifecycle_stage: str | None = None
    review_date: date | None = None
    champion: str | None = None
    champion_since: datetime | None = None
    last_scored: datetime | None = None
    last_retrain: datetime | None = None
    last_retrain_verdict: str | None = None
    last_retrain_version: str | None = None
    last_labels: datetime | None = None
    drift: str | None = None  # drift | none; None: never monitored
    drifted_feature_share: float | None = None
    metric: str | None = None
    metric_now: float | None = None  # on the champion's labeled batches
    metric_at_promotion: float | None = None
    fairness: str | None = None  # ok | breached; None: not judged on labels yet
    rollout: str | None = None  # off | shadow v4 | canary v4 (10%) | shadow: none held
    alarms: list[str] = field(default_factory=list)
    next_run: str | None = None  # flow name
    next_run_at: datetime | None = None
    sla_compliance: dict[str, float | None] = field(default_factory=dict)
    config_error: str | None = None  # the config does not load: the one line saying where and why
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            key: value.isoformat() if isinstance(value, date | datetime) else value
            for key, value in asdict(self).items()
        }


@dataclass(frozen=True)
class Inventory:
    folder: Path
    taken_at: datetime
    rows: list[ModelRow]

    @property
    def flagged(self) -> list[ModelRow]:
        return [row for row in self.rows if row.flags]

    def summary(self) -> str:
        """One line: how many rows need a person, and which, by kind of flag."""
        kinds: dict[str, list[str]] = {}
        for row in self.flagged:
            for flag in row.flags:
                names = kinds.setdefault(flag.split(":", 1)[0], [])
                if row.model not in names:
                    names.append(row.model)
        listed = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in kinds.items())
        return f"{len(self.flagged)} of {len(self.rows)} models need a person ({listed}); see driftline fleet status"

    def to_dict(self) -> dict:
        return {
            "fleet": str(self.folder),
            "taken_at": self.taken_at.isoformat(),
            "flagged": len(self.flagged),
            "models": [row.to_dict() for row in self.rows],
        }


def take_inventory(fleet: Fleet, now: datetime | None = None) -> Inventory:
    """Every model of the fleet with its evidence and flags, and each config that does not load; the registry read
    in a few batched calls per MLflow store, each model's run record and newest files read from the workspace."""
    now = now or datetime.now(UTC)
    by_store: dict[str, list[DriftlineConfig]] = {}
    for cfg in fleet.configs:
        by_store.setdefault(cfg.tracking_uri, []).append(cfg)
    registered: dict[str, ModelFacts] = {}
    for configs in by_store.values():
        names = [cfg.registry.model_name for cfg in configs]
        registered |= FleetQueries(configs[0]).models(names, {cfg.experiment_name for cfg in configs})
    rows = [model_row(cfg, registered.get(cfg.registry.model_name), now) for cfg in fleet.configs]
    rows += [
        ModelRow(
            model=broken.path.stem,
            config=str(broken.path),
            config_error=broken.problem,
            flags=[f"broken config: {broken.problem}"],
        )
        for broken in fleet.broken
    ]
    return Inventory(fleet.folder, now, sorted(rows, key=lambda row: row.model))


LABEL_STAMP = "%Y%m%dT%H%M%S%fZ"  # a label-store file's name starts with when it was stored


def _stamped(name: str, format: str) -> datetime:
    return datetime.strptime(name.split("-", 1)[0], format).replace(tzinfo=UTC)


def last_scored(log_dir: Path) -> datetime | None:
    """When the newest scored batch was logged (the online service's own log files aside), reading the newest day's
    folder of the prediction log that has one, not the whole log."""
    days = sorted(log_dir.glob("date=*"), reverse=True) if log_dir.is_dir() else []
    for day in days:
        batches = [path.name for path in day.glob("*.parquet") if not path.stem.endswith(f"-{ONLINE_SOURCE}")]
        if batches:
            return _stamped(max(batches), prediction_log.STAMP_FORMAT)
    return None


def last_labels(store_dir: Path) -> datetime | None:
    """When labels were last stored (the newest label-store file)."""
    stored = [path.name for path in store_dir.glob("*.parquet")] if store_dir.is_dir() else []
    return _stamped(max(stored), LABEL_STAMP) if stored else None


def next_run(cfg: DriftlineConfig, now: datetime) -> tuple[str, datetime] | None:
    """The next scheduled run of the model's deployments, from the crons it is deployed with (its own, else its slot
    of the fleet's night; no server asked): the flow and when."""
    schedules = spread_schedules(cfg)
    active = [
        ("batch-scoring", schedules.batch_scoring),
        ("drift-monitoring", schedules.drift_monitoring),
        ("performance-monitoring", schedules.performance_monitoring),
    ]
    found = []
    for flow, schedule in active:
        if not schedule.active or (flow == LABEL_FLOW and not cfg.labels.enabled):
            continue
        fields = schedule.cron.split()
        if len(fields) == 6:  # Prefect's sixth field is seconds, last; cronsim takes them first
            fields = [fields[-1], *fields[:-1]]
        local = now.astimezone(ZoneInfo(schedule.timezone))
        found.append((flow, next(CronSim(" ".join(fields), local)).astimezone(UTC)))
    return min(found, key=lambda pair: pair[1], default=None)


def _rollout(cfg: DriftlineConfig, facts: ModelFacts | None) -> str:
    mode = cfg.rollout.mode
    if mode == "off":
        return "off"
    challenger = facts.challenger if facts else None
    champion = facts.champion if facts else None
    if challenger is None or not challenger.serves_live or (champion and champion.version == challenger.version):
        return f"{mode}: none held"
    share = f" ({cfg.rollout.canary_share:.0%})" if mode == "canary" else ""
    return f"{mode} v{challenger.version}{share}"


def model_row(cfg: DriftlineConfig, facts: ModelFacts | None, now: datetime) -> ModelRow:
    card, name, workspace = cfg.model_card, cfg.registry.model_name, cfg.folders  # the folders resolved once
    runs = read_summary(workspace.root, name)
    champion = facts.champion if facts else None
    newest = facts.newest if facts else None
    folders = None
    if facts and facts.registry_id:
        folders = RegistryFolders.of(workspace, cfg.storage, name, facts.registry_id)
    metric = cfg.primary_metric
    labeled = runs.newest(LABEL_FLOW)
    judged = labeled.facts if labeled and champion and labeled.facts.get("champion_version") == champion.version else {}
    drift = facts.drift if facts else {}
    alarms = ["drift"] * (drift.get("dataset_drift") == 1) + ["degraded"] * bool(judged.get("degraded"))
    alarms += ["fairness"] * bool(judged.get("fairness_breached")) + ["slices"] * bool(judged.get("degraded_slices"))
    scheduled = next_run(cfg, now)
    row = ModelRow(
        model=name,
        config=str(cfg.source),
        owner=None if card.owner.strip() in ("", NO_OWNER) else card.owner,
        intended_use=card.intended_use or cfg.description,
        risk_tier=card.risk_tier,
        lifecycle_stage=card.lifecycle_stage,
        review_date=card.review_date,
        champion=champion.version if champion else None,
        champion_since=champion.became_champion_at if champion else None,
        last_scored=last_scored(folders.prediction_log) if folders else None,
        last_retrain=(newest.decided_at or newest.created_at) if newest else None,
        last_retrain_verdict=newest.gate_verdict if newest else None,
        last_retrain_version=newest.version if newest else None,
        last_labels=last_labels(folders.label_store) if folders else None,
        drift=None if "dataset_drift" not in drift else ("drift" if drift["dataset_drift"] == 1 else "none"),
        drifted_feature_share=drift.get("drifted_feature_share"),
        metric=metric,
        metric_now=judged.get("champion_value"),
        metric_at_promotion=judged.get("at_promotion") or (facts.champion_holdout.get(metric) if facts else None),
        fairness=None if not judged else ("breached" if judged.get("fairness_breached") else "ok"),
        rollout=_rollout(cfg, facts),
        alarms=alarms,
        next_run=scheduled[0] if scheduled else None,
        next_run_at=scheduled[1] if scheduled else None,
        sla_compliance=sla.compliance(cfg, now) if cfg.sla.bounds else {},
    )
    return replace(row, flags=flags(cfg, row, runs, now))


def _hours(since: datetime, now: datetime) -> float:
    return (now - since).total_seconds() / 3600


def flags(cfg: DriftlineConfig, row: ModelRow, runs: RunSummary, now: datetime) -> list[str]:
    """Why a person must look at this model: stale (review date passed; no batch or no labels for longer than its
    SLA allows), orphaned (no owner), failing (its last fleet.failing_runs runs failed), breaching (an SLA)."""
    found = []
    if row.review_date is not None and row.review_date < now.date():
        found.append(f"stale: review date {row.review_date} passed {(now.date() - row.review_date).days} days ago")
    promised = cfg.sla
    if row.lifecycle_stage != "retired":
        for what, allowed, last, setting in [
            ("batch scored", promised.freshness_hours, row.last_scored, "sla.freshness_hours"),
            ("labels received", promised.label_delay_hours, row.last_labels, "sla.label_delay_hours"),
        ]:
            if allowed is None:
                continue
            if last is None:
                found.append(f"stale: no {what} yet ({setting} {allowed:g})")
            elif _hours(last, now) > allowed:
                found.append(f"stale: last {what} {_hours(last, now):.1f} h ago ({setting} {allowed:g})")
    if row.owner is None:
        found.append(f"orphaned: no owner (model_card.owner is {cfg.model_card.owner!r})")
    failures = runs.last_failures(cfg.fleet.failing_runs)
    if failures:
        last = failures[-1]
        found.append(f"failing: its last {len(failures)} flow runs failed (last: {last.flow}: {last.error})")
    if promised.bounds:
        found += [f"breaching: {line}" for line in sla.breaching(cfg, now)]
    return found
