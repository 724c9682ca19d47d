"""The fleet's sections: how many models' runs share the pool (`fleet:`) and what each model promises (`sla:`)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from driftline.config.base import Section


class FleetConfig(Section):
    """Settings a folder of configs shares (set them once in the folder's fleet.yaml)."""

    max_concurrent_runs: int = Field(
        4,
        ge=1,
        description="Flow runs of every model together at once: the work pool's concurrency limit.",
    )
    model_concurrent_runs: int = Field(
        2,
        ge=1,
        description="Flow runs of one model at once: its work queue's limit, so one model's slow or failing runs "
        "never take the whole pool.",
    )
    failing_runs: int = Field(
        3, ge=1, description="A model whose last this many flow runs all failed is flagged failing."
    )
    probe_seconds: int = Field(
        60,
        ge=10,
        description="How often the stack's sla-check deployment probes each model's service from outside (/ready, "
        "/metrics) and evaluates the SLAs.",
    )
    night_start: str = Field(
        "01:00",
        description="HH:MM (UTC) where a model without its own cron starts its nightly schedules: the fleet's "
        "models are spread over night_hours from here, each keeping scoring, then drift, then performance.",
    )
    night_hours: int = Field(5, ge=3, le=23, description="How long the night the schedules are spread over lasts.")

    @field_validator("night_start")
    @classmethod
    def _a_time_of_day(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"fleet.night_start needs HH:MM, e.g. 01:00, got {value!r}")
        return value

    @property
    def night_start_minute(self) -> int:
        hours, minutes = self.night_start.split(":")
        return int(hours) * 60 + int(minutes)


class SlaConfig(Section):
    """What the model promises; each bound left out is not evaluated. Compliance is the share of evaluations within."""

    performance_floor: float | None = Field(
        None,
        description="The primary metric on each labeled batch is no worse than this (at least it for a score, at "
        "most it for an error such as rmse).",
    )
    p95_latency_ms: float | None = Field(
        None, gt=0, description="95th percentile of the online service's /predict latency, in milliseconds."
    )
    availability: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Share of the stack's probes of the service's /ready that it answered ready (e.g. 0.99).",
    )
    freshness_hours: float | None = Field(
        None, gt=0, description="Most hours since the last scored batch; longer flags the model stale too."
    )
    label_delay_hours: float | None = Field(
        None, gt=0, description="Most hours since the last labels arrived; longer flags the model stale too."
    )
    window_days: int = Field(
        30, ge=1, description="The UTC days (today included) compliance and availability are measured over."
    )
    service_url: str | None = Field(
        None,
        description="Address of the service the stack's sla-check probes for this model (GET /ready for "
        "availability, /metrics for p95 latency): in a fleet, the fleet service's /models/<model name>/ready and "
        "/metrics; for a single config, its own /ready and /metrics. none: http://<serving.host>:<serving.port> (the "
        "fleet.yaml's, in a fleet).",
    )

    @field_validator("service_url")
    @classmethod
    def _an_http_address(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError(f"sla.service_url needs an http(s) address, e.g. http://127.0.0.1:8081, got {value!r}")
        return value.rstrip("/") if value else value

    @property
    def bounds(self) -> dict[str, float]:
        """The bounds set, by name."""
        names = ("performance_floor", "p95_latency_ms", "availability", "freshness_hours", "label_delay_hours")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}
