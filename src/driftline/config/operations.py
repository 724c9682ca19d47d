"""Sections about running it: the registry, batch scoring, schedules, notifications, the online service, reliability."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator

from driftline.config.base import API_KEY_ENV, TRACKING_URI_ENV, WEBHOOK_URL_ENV, NotificationEvent, Section


class RegistryConfig(Section):
    model_name: str = Field(min_length=1, description="MLflow registered model name.")
    experiment: str | None = Field(None, description="MLflow experiment. none: the model name.")
    tracking_uri: str | None = Field(
        None,
        description=f"MLflow tracking and registry; the environment variable {TRACKING_URI_ENV} wins. none: "
        "`sqlite:///<workspace>/mlflow.db`.",
    )
    environment_wins: bool = Field(
        True,
        description=f"Whether {TRACKING_URI_ENV} (and DRIFTLINE_MLFLOW_UI_URL) override `tracking_uri`. A backtest "
        "replay's config sets false, so a replay never writes to the store your environment names.",
    )
    artifact_location: str | None = Field(
        None,
        description="Artifact root, used when the experiment is created. none: `<workspace>/mlartifacts` (a tracking "
        "server decides itself).",
    )


class ScoringConfig(Section):
    inbox: Path | None = Field(
        None,
        description="Folder the scheduled batch scoring scores every complete file from (then moves it to done/). "
        "none: `<workspace>/inbox/<model_name>`.",
    )
    log_predictions: bool = Field(
        True, description="Append every scored row (inputs, outputs, model version) to the prediction log."
    )
    chunk_rows: int | None = Field(
        100_000,
        ge=1,
        description="Rows read, validated and scored at a time, so memory does not grow with the file (see "
        "docs/performance.md for how the default was chosen). none reads each file whole: needed only for "
        "extra expectations over a whole table (e.g. a column mean).",
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="Chunks predicted at once, each on its own thread with an equal share of the cores for the model. "
        "none: one per core this process may use, at most 4 (see docs/performance.md).",
    )
    engine: Literal["local", "dask"] = Field(
        "local",
        description="local scores a file in this process; dask scores its row ranges on a Dask cluster "
        "(prefect-dask), output identical to local.",
    )
    dask_address: str | None = Field(
        None,
        description="Scheduler of an existing Dask cluster (tcp://host:8786); none starts a local cluster per run. "
        "Its workers must see the input file, the workspace and the output folder at the same paths.",
    )
    dask_workers: int = Field(2, ge=1, description="Workers of the local cluster (ignored with dask_address).")
    dask_processes: bool = Field(
        True, description="Local cluster workers as processes (true) or as threads of this process (false)."
    )
    partitions: int = Field(4, ge=1, description="Row ranges a file is cut into for engine dask, scored in parallel.")


class ScheduleConfig(Section):
    cron: str = Field(
        description="When the deployment runs: 5 fields (minute hour day month weekday), or 6 with seconds last; read "
        "in timezone."
    )
    timezone: str = Field("UTC", description="IANA time zone the cron is read in, e.g. Europe/Paris.")
    active: bool = Field(
        True,
        description="false deploys the schedule paused (performance_monitoring is active only with labels.enabled).",
    )

    @model_validator(mode="after")
    def _valid(self) -> ScheduleConfig:
        # The shape only; Prefect checks each field's values when the deployment is created.
        if len(self.cron.split()) not in (5, 6):
            raise ValueError(f"cron {self.cron!r} needs 5 fields (minute hour day month weekday) or 6 (plus seconds)")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone {self.timezone!r} is not an IANA time zone such as UTC or Europe/Paris"
            ) from None
        return self


class SchedulesConfig(Section):
    batch_scoring: ScheduleConfig = Field(
        ScheduleConfig(cron="0 2 * * *"), description="Score what waits in scoring.inbox: nightly at 02:00."
    )
    drift_monitoring: ScheduleConfig = Field(
        ScheduleConfig(cron="0 3 * * *"), description="Monitor the predictions logged since the last run: 03:00."
    )
    performance_monitoring: ScheduleConfig = Field(
        ScheduleConfig(cron="0 4 * * *"), description="Join newly arrived labels, measure performance: 04:00."
    )
    ab_analysis: ScheduleConfig = Field(
        ScheduleConfig(cron="30 4 * * *"),
        description="Analyse the running A/B test on the outcomes that arrived (nothing without a test): 04:30.",
    )


class NotificationsConfig(Section):
    webhook_url_env: str = Field(
        WEBHOOK_URL_ENV, description="Environment variable holding the webhook URL (a secret: never in the config)."
    )
    events: list[NotificationEvent] = Field(
        default_factory=lambda: list(get_args(NotificationEvent)),
        description="Which events are sent to the webhook.",
    )


class ServingConfig(Section):
    """The online service (`driftline serve`): where it listens, how it follows the registry, how it routes."""

    host: str = Field("127.0.0.1", description="Address the service listens on; 0.0.0.0 in a container.")
    port: int = Field(
        8080, ge=1, le=65535, description="Port the service listens on (make dashboard, Evidently, takes 8000)."
    )
    poll_seconds: float = Field(
        10,
        gt=0,
        description="How often the service reads the registry's aliases (Prefect's model events wake it sooner).",
    )
    max_rows: int = Field(10_000, ge=1, description="Most rows one /predict request may carry.")
    max_text_chars: int = Field(
        64,
        ge=1,
        le=10_000,
        description="Longest text value (id, category, watched column) a request may carry, in characters; a longer "
        "one is refused (422 naming the field). With max_rows it bounds the largest valid request.",
    )
    max_body_bytes: int | None = Field(
        None,
        ge=1,
        description="Largest request body in bytes: a larger one is refused with 413 before it is read whole or "
        "parsed. none: the size of the largest valid request (max_rows rows, each value at its largest valid size), "
        "so a valid request is never refused.",
    )
    workers: int = Field(
        1,
        ge=1,
        description="Server processes (driftline serve --workers wins); each follows the registry and loads the "
        "models; their Prometheus figures are summed.",
    )
    shadow: bool = Field(
        False,
        description="The challenger also scores every row, off the response path; logged beside, never returned.",
    )
    canary_share: float = Field(
        0.0, ge=0, le=1, description="Share of rows the challenger answers (0 = none); the response names the model."
    )
    canary_routing: Literal["id", "random"] = Field(
        "id",
        description="How canary rows are chosen: id, by a hash of the row's id (the same id always gets the same "
        "model); random.",
    )
    log_flush_rows: int = Field(
        5_000, ge=1, description="Buffered answers become a new prediction-log file once this many rows wait..."
    )
    log_flush_seconds: float = Field(30, gt=0, description="...or once the oldest of them is this old.")
    api_key_env: str = Field(
        API_KEY_ENV, description="Environment variable holding the API key; when it is set, requests must carry it."
    )
    max_loaded_models: int = Field(
        8,
        ge=1,
        description="A fleet service (driftline serve --config DIR) keeps at most this many models loaded; the one "
        "used longest ago is unloaded first and loads again on its next request.",
    )
    max_loaded_mb: int | None = Field(
        None,
        ge=1,
        description="A fleet service's memory budget: past this resident size it unloads the model used longest "
        "ago (never the one answering). none: only max_loaded_models bounds it.",
    )

    @model_validator(mode="after")
    def _one_routing_at_a_time(self) -> ServingConfig:
        if self.shadow and self.canary_share > 0:
            raise ValueError(
                "serving.shadow and serving.canary_share > 0 are both set; shadow scores every row with the "
                "challenger already: choose one"
            )
        return self


class ReliabilityConfig(Section):
    """How long a dead run may block the next one, and how hard calls to the MLflow server are retried."""

    training_lease_seconds: float = Field(
        60,
        ge=60,
        le=86_400,
        description="Lease on the one-training-at-a-time slot, renewed while the training "
        "lives: a killed training's slot frees within this long (plus the Prefect server's lease-expiry loop). "
        "Prefect allows 60 s to a day.",
    )
    registry_http_retries: int = Field(
        3,
        ge=0,
        description="Retries of a failed or 5xx call to an MLflow server (MLFLOW_HTTP_REQUEST_MAX_RETRIES)."
        " One setting per process: the first config opened sets it; the variable, if already set, wins.",
    )
    registry_backoff_seconds: int = Field(
        1,
        ge=0,
        description="Backoff factor between those retries, whole seconds: waits 1x, 2x, 4x... this, plus up "
        "to 1 s of jitter (MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR)."
        " One setting per process: the first config opened sets it; the variable, if already set, wins.",
    )
    registry_timeout_seconds: int = Field(
        30,
        ge=1,
        description="Timeout of one call to the MLflow server, whole seconds (MLFLOW_HTTP_REQUEST_TIMEOUT)."
        " One setting per process: the first config opened sets it; the variable, if already set, wins.",
    )
