"""The fleet's nightly schedules: a model without crons of its own gets a slot of the night, kept as models come and go.

The night (`fleet.night_start`, `fleet.night_hours`, UTC) is cut in three equal parts: scoring in the first, drift in
the second, performance in the third, each at the same offset into its part. The offset comes from a hash of the model
name alone, so adding or removing another model moves no one, and a model keeps scoring -> drift -> performance with
a third of the night between them.
"""

from __future__ import annotations

import hashlib

from driftline.config import DriftlineConfig
from driftline.config.fleet import FleetConfig
from driftline.config.operations import ScheduleConfig, SchedulesConfig

MINUTES_PER_DAY = 24 * 60


def sets_own_schedules(cfg: DriftlineConfig) -> bool:
    """Whether the config (its file or its fleet.yaml) names any schedule: then every one of its crons is kept."""
    return "schedules" in cfg.model_fields_set and bool(cfg.schedules.model_fields_set)


def night_offset(model_name: str, fleet: FleetConfig) -> int:
    """Minutes into each third of the night where this model's runs start: stable, from its name only."""
    third = fleet.night_hours * 60 // 3
    digest = hashlib.sha256(model_name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % third


def daily_cron(minute_of_day: int) -> str:
    minute_of_day %= MINUTES_PER_DAY
    return f"{minute_of_day % 60} {minute_of_day // 60} * * *"


def spread_schedules(cfg: DriftlineConfig) -> SchedulesConfig:
    """The schedules a model is deployed with: its own when its config sets any, else its slot of the night (UTC),
    each schedule keeping its `active` flag."""
    if sets_own_schedules(cfg):
        return cfg.schedules
    fleet, own = cfg.fleet, cfg.schedules
    third = fleet.night_hours * 60 // 3
    start = fleet.night_start_minute + night_offset(cfg.registry.model_name, fleet)

    def at(part: int, schedule: ScheduleConfig, later: int = 0) -> ScheduleConfig:
        return ScheduleConfig(cron=daily_cron(start + part * third + later), timezone="UTC", active=schedule.active)

    return SchedulesConfig(
        batch_scoring=at(0, own.batch_scoring),
        drift_monitoring=at(1, own.drift_monitoring),
        performance_monitoring=at(2, own.performance_monitoring),
        ab_analysis=at(2, own.ab_analysis, later=third // 2),  # after the labels; outcomes come like labels
    )
