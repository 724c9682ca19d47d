"""What deploying a fleet does, as plain values: each model's wanted deployments against what the server holds.

`plan()` compares the configs of a folder with the models the Prefect server already runs from that folder and says,
per model, what deploying creates, changes, pauses or resumes; `driftline deploy --dry-run` prints it, and the deploy
itself carries it out. Nothing here talks to Prefect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from driftline.config import DriftlineConfig
from driftline.fleet.schedules import spread_schedules

# The scheduled deployments, by the flow function of their entrypoint, in the order a night runs them.
SCHEDULED = {
    "batch_scoring": "batch_scoring",
    "drift_monitoring": "drift_monitoring",
    "performance_monitoring": "performance_monitoring",
    "ab_analysis": "ab_analysis",
}

Action = Literal["create", "change", "pause", "resume", "keep"]


@dataclass(frozen=True)
class Schedule:
    cron: str
    timezone: str
    active: bool

    def __str__(self) -> str:
        return f"{self.cron!r} {self.timezone}{'' if self.active else ' (inactive)'}"


@dataclass(frozen=True)
class WantedModel:
    """One model as its config deploys it."""

    model: str
    config: str  # the path its deployments pass to each flow run
    schedules: dict[str, Schedule]  # by flow function: batch_scoring, ..., ab_analysis
    queue_limit: int  # flow runs of this model at once (its work queue's limit)
    landing: Path

    @classmethod
    def of(cls, cfg: DriftlineConfig, config: str) -> WantedModel:
        spread = spread_schedules(cfg)
        schedules = {
            flow: Schedule(s.cron, s.timezone, s.active)
            for flow, s in (
                ("batch_scoring", spread.batch_scoring),
                ("drift_monitoring", spread.drift_monitoring),
                # without labels there is nothing to join: deployed for manual runs, its schedule inactive
                ("performance_monitoring", spread.performance_monitoring),
                ("ab_analysis", spread.ab_analysis),  # a no-op without a running A/B test
            )
        }
        performance = schedules["performance_monitoring"]
        if not cfg.labels.enabled:
            schedules["performance_monitoring"] = Schedule(performance.cron, performance.timezone, False)
        return cls(cfg.registry.model_name, config, schedules, cfg.fleet.model_concurrent_runs, cfg.folders.landing)


@dataclass(frozen=True)
class ModelOnServer:
    """A model's deployments as the Prefect server holds them."""

    model: str
    config: str  # the config path its deployments pass
    deployment_ids: tuple[str, ...]
    paused: bool  # every one of its deployments is paused
    removed_config: bool  # paused by a deploy because its config had left the folder
    schedules: dict[str, Schedule]
    queue_limit: int | None


@dataclass(frozen=True)
class ModelChange:
    model: str
    action: Action
    details: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.action} {self.model}" + (f": {'; '.join(self.details)}" if self.details else "")


def _differences(wanted: WantedModel, existing: ModelOnServer) -> list[str]:
    details = []
    for flow, schedule in wanted.schedules.items():
        before = existing.schedules.get(flow)
        if before != schedule:
            details.append(f"{flow.replace('_', '-')} {before or 'no schedule'} -> {schedule}")
    if existing.queue_limit != wanted.queue_limit:
        details.append(f"concurrent runs {existing.queue_limit or 'unlimited'} -> {wanted.queue_limit}")
    if existing.config != wanted.config:
        details.append(f"config {existing.config} -> {wanted.config}")
    return details


def _created(wanted: WantedModel, deployments: int) -> list[str]:
    times = ", ".join(f"{flow.replace('_', '-')} {schedule}" for flow, schedule in wanted.schedules.items())
    return [f"{deployments} deployments", times, f"{wanted.queue_limit} concurrent runs", f"landing {wanted.landing}"]


def plan(
    wanted: list[WantedModel],
    on_server: dict[str, ModelOnServer],
    config_exists: set[str],
    deployments_per_model: int,
) -> list[ModelChange]:
    """Per model: created, changed (what), resumed (its config is back), kept, or paused (its config left the folder:
    its records stay). `config_exists` are the config paths present in the folder, loaded or not: a broken config's
    model is left as it is."""
    changes = []
    for model in wanted:
        existing = on_server.get(model.model)
        if existing is None:
            changes.append(ModelChange(model.model, "create", _created(model, deployments_per_model)))
            continue
        details = _differences(model, existing)
        if existing.paused and existing.removed_config:
            changes.append(ModelChange(model.model, "resume", ["its config is back", *details]))
        elif existing.paused:
            stays = "stays paused (driftline fleet resume starts it)"
            changes.append(ModelChange(model.model, "change" if details else "keep", [stays, *details]))
        else:
            changes.append(ModelChange(model.model, "change" if details else "keep", details))
    deployed = {model.model for model in wanted}
    for name, existing in sorted(on_server.items()):
        if name in deployed or existing.config in config_exists:
            continue
        if existing.paused:
            changes.append(ModelChange(name, "keep", [f"paused: config {existing.config} is not in the folder"]))
        else:
            note = f"config {existing.config} removed: {len(existing.deployment_ids)} deployments paused, records kept"
            changes.append(ModelChange(name, "pause", [note]))
    return changes
