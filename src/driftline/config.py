"""The typed config (`DriftlineConfig`) from configs/*.yaml; every error names the file, the field and the fix."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from driftline.errors import ConfigError

# Connection settings and secrets may come from the environment (12-factor); nothing else does.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
MLFLOW_UI_ENV = "DRIFTLINE_MLFLOW_UI_URL"
WEBHOOK_URL_ENV = "DRIFTLINE_WEBHOOK_URL"
API_KEY_ENV = "DRIFTLINE_API_KEY"
REMOTE_TRACKING_SCHEMES = ("http://", "https://", "databricks")


class Task(StrEnum):
    binary = "binary"
    multiclass = "multiclass"
    regression = "regression"

    @property
    def is_classification(self) -> bool:
        return self is not Task.regression


class FeatureType(StrEnum):
    numeric = "numeric"
    categorical = "categorical"


NumericDriftMethod = Literal["ks", "wasserstein", "psi", "jensenshannon"]
CategoricalDriftMethod = Literal["chisquare", "psi", "jensenshannon"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Section):
    target: str = Field(description="Column holding the label (classification) or value (regression).")
    task: Task
    features: dict[str, FeatureType] = Field(min_length=1, description="Feature column -> numeric|categorical.")
    id_column: str | None = Field(None, description="Row identifier, copied to scoring outputs; must be unique.")
    event_time_column: str | None = Field(None, description="Event time; enables the time-based holdout.")
    csv_delimiter: str = Field(",", min_length=1, max_length=1)
    passthrough_columns: list[str] = Field(
        default_factory=list,
        description="Columns a data file may carry besides the declared ones (ignored by the model, not copied to "
        "outputs). Any other column rejects the file: an undeclared column is schema drift upstream.",
    )

    @model_validator(mode="after")
    def _roles_do_not_overlap(self) -> DatasetConfig:
        if self.target in self.features:
            raise ValueError(f"target {self.target!r} is also listed under features; remove it from features")
        for role in ("id_column", "event_time_column"):
            column = getattr(self, role)
            if column is not None and (column in self.features or column == self.target):
                raise ValueError(f"{role} {column!r} is also the target or a feature; give each column one role")
        return self

    @property
    def numeric_features(self) -> list[str]:
        return [name for name, kind in self.features.items() if kind is FeatureType.numeric]

    @property
    def categorical_features(self) -> list[str]:
        return [name for name, kind in self.features.items() if kind is FeatureType.categorical]

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)


class ExtraExpectation(_Section):
    type: str = Field(
        description="A Great Expectations expectation in snake case, e.g. expect_column_values_to_be_between"
    )
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ValidationConfig(_Section):
    max_null_fraction: float = Field(0.05, ge=0, le=1, description="Largest share of nulls allowed in a feature.")
    range_tolerance: float = Field(
        0.5, ge=0, description="Allowed overshoot of the reference min/max, as a share of the reference range."
    )
    max_out_of_range_fraction: float = Field(0.01, ge=0, le=1)
    max_unseen_category_fraction: float = Field(0.01, ge=0, le=1)
    max_abs_value: float = Field(
        1e15,
        gt=0,
        description="Largest magnitude a numeric feature may hold; beyond it (and ±inf) a file is rejected. 1e15 is "
        "under 2**53, where float64 still holds every integer; larger values are export errors (1e308 sentinels).",
    )
    extra_expectations: list[ExtraExpectation] = Field(default_factory=list)


class HoldoutConfig(_Section):
    strategy: Literal["auto", "time", "random"] = Field(
        "auto", description="auto = time-based (most recent rows) when an event-time column exists, else random."
    )
    fraction: float = Field(0.2, gt=0, lt=0.9)


class ModelConfig(_Section):
    estimator: str = Field(
        "sklearn.ensemble.HistGradientBoostingClassifier",
        description="Import path of the class; default HistGradientBoostingClassifier/-Regressor by task.",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 42
    holdout: HoldoutConfig = HoldoutConfig()
    allowed_modules: list[str] = Field(
        default_factory=lambda: ["sklearn"], description="Top-level packages an estimator may be imported from."
    )
    trusted_types: list[str] = Field(
        default_factory=list, description="Extra types skops may load, after your own review of them."
    )

    def estimator_class(self) -> type:
        module_name, _, class_name = self.estimator.rpartition(".")
        return getattr(importlib.import_module(module_name), class_name)

    @model_validator(mode="after")
    def _estimator_imports(self) -> ModelConfig:
        module_name, _, class_name = self.estimator.rpartition(".")
        if not module_name or module_name.split(".")[0] not in self.allowed_modules:
            raise ValueError(
                f"estimator {self.estimator!r} is not under an allowed module {self.allowed_modules}; "
                "use a full import path such as sklearn.linear_model.LogisticRegression, or add its top-level "
                "package to model.allowed_modules after reviewing it"
            )
        try:
            estimator_class = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(
                f"estimator {self.estimator!r} does not import: {exc}; check the module and class name, "
                "e.g. sklearn.ensemble.RandomForestClassifier"
            ) from None
        if not callable(getattr(estimator_class, "fit", None)):
            raise ValueError(f"estimator {self.estimator!r} has no fit method; it is not a scikit-learn estimator")
        return self


class SlicesConfig(_Section):
    columns: list[str] = Field(
        default_factory=list, description="Columns (features or not) whose values slice the holdout; none: no slices."
    )
    min_rows: int = Field(100, ge=1, description="Smaller slices are reported but never decide.")
    tolerance: float = Field(
        0.02, ge=0, description="How much worse than the champion the challenger may be on a slice (primary metric)."
    )


class FairnessConfig(_Section):
    attribute: str | None = Field(
        None, description="Sensitive column (binary task): positive-prediction rate per group; none: no check."
    )
    min_disparate_impact: float = Field(
        0.8, gt=0, le=1, description="Lowest allowed ratio of the smallest to the largest group positive rate."
    )
    min_rows: int = Field(100, ge=1, description="Groups with fewer holdout rows are left out of the ratio.")


class GateConfig(_Section):
    metric: str | None = Field(None, description="Primary metric; default roc_auc, f1_macro or rmse by task.")
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Worst acceptable value per metric: a floor for scores, a ceiling for errors."
    )
    min_improvement: float = Field(
        0.001,
        gt=0,
        description="How much the challenger must beat the champion on the primary metric (absolute, > 0: "
        "a challenger that only ties the champion is not promoted).",
    )
    slices: SlicesConfig = SlicesConfig()
    fairness: FairnessConfig = FairnessConfig()
    mode: Literal["auto", "manual"] = Field(
        "auto", description="manual: after the automatic checks pass, the flow pauses until a person approves."
    )
    approval_timeout_seconds: int = Field(
        86_400, ge=1, description="A manual approval not given within this time rejects the challenger."
    )


class DataQualityConfig(_Section):
    """Data-quality drift: how a batch's nulls, categories and value ranges moved from what training saw."""

    max_null_rate_increase: float = Field(
        0.02, ge=0, le=1, description="Largest rise of a feature's null share over its training null share."
    )
    max_unseen_category_share: float = Field(
        0.01, ge=0, le=1, description="Largest share of a categorical feature's values that training never saw."
    )
    max_out_of_range_share: float = Field(
        0.02, ge=0, le=1, description="Largest share of a numeric feature's values outside the training min/max."
    )
    counts_as_drift: bool = Field(
        False,
        description="A quality breach also makes dataset drift (and so a retrain). Off: retraining on a broken "
        "upstream export does not fix it; the breach is reported, logged and notified instead.",
    )


class DriftConfig(_Section):
    numeric_method: NumericDriftMethod = "ks"
    categorical_method: CategoricalDriftMethod = "chisquare"
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Per method: p-value under which ks/chisquare call drift, distance over which the others do.",
    )
    drift_share: float = Field(0.3, gt=0, le=1, description="Share of drifted features that makes dataset drift.")
    min_rows: int = Field(50, ge=1, description="Smaller batches get no drift verdict: too few rows to tell.")
    prediction_drift: bool = Field(True, description="Drift of the champion's predictions also counts as drift.")
    signal_p_value: float = Field(
        0.001,
        gt=0,
        lt=1,
        description="p-value under which prediction or label drift alone counts (one test deciding alone: stricter).",
    )
    target_drift: bool = Field(True, description="When a batch carries labels, drift of the label counts too.")
    retrain: bool = Field(True, description="Run training on the retraining window when drift is detected.")
    report_sample_rows: int = Field(50_000, ge=100, description="Rows sampled for the Evidently HTML report.")
    reference_sample_rows: int = Field(200_000, ge=100, description="Rows of training data kept as drift reference.")
    data_quality: DataQualityConfig = Field(
        DataQualityConfig(), description="Null, unseen-category and out-of-range drift against training."
    )

    @model_validator(mode="after")
    def _thresholds_name_methods(self) -> DriftConfig:
        unknown = set(self.thresholds) - set(DEFAULT_DRIFT_THRESHOLDS)
        if unknown:
            raise ValueError(
                f"thresholds has unknown methods {sorted(unknown)}; known: {sorted(DEFAULT_DRIFT_THRESHOLDS)}"
            )
        return self

    def threshold(self, method: str) -> float:
        return self.thresholds.get(method, DEFAULT_DRIFT_THRESHOLDS[method])


DEFAULT_ESTIMATORS = {
    "binary": "sklearn.ensemble.HistGradientBoostingClassifier",
    "multiclass": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}

# p-values for the tests, distances for the rest; the same defaults Evidently uses.
DEFAULT_DRIFT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chisquare": 0.05,
    "wasserstein": 0.1,
    "psi": 0.1,
    "jensenshannon": 0.1,
}


class RetrainingConfig(_Section):
    window: Literal["all", "last_batches", "last_days"] = Field(
        "all", description="Which archived batches a retrain uses."
    )
    size: int | None = Field(None, ge=1, description="N for last_batches / last_days.")

    @model_validator(mode="after")
    def _size_given_for_windows(self) -> RetrainingConfig:
        if self.window != "all" and self.size is None:
            raise ValueError(f"window {self.window!r} needs size (how many batches or days)")
        return self


class RegistryConfig(_Section):
    model_name: str = Field(min_length=1, description="MLflow registered model name.")
    experiment: str | None = Field(None, description="MLflow experiment; defaults to the model name.")
    tracking_uri: str | None = Field(
        None, description=f"Default: SQLite in the workspace. Env {TRACKING_URI_ENV} wins."
    )
    artifact_location: str | None = Field(None, description="Default: mlartifacts/ in the workspace.")


class ScoringConfig(_Section):
    inbox: Path | None = Field(
        None, description="Folder the scheduled batch scoring picks files up from; default <workspace>/inbox/<model>."
    )
    log_predictions: bool = Field(
        True, description="Append every scored row (inputs, outputs, model version) to the prediction log."
    )
    chunk_rows: int | None = Field(
        100_000,
        ge=1,
        description="Rows read, validated and scored at a time, so memory does not grow with the file (see "
        "docs/performance.md for how the default was chosen). null reads each file whole: needed only for "
        "extra expectations over a whole table (e.g. a column mean).",
    )
    engine: Literal["local", "dask"] = Field(
        "local", description="local scores a file in this process; dask scores its partitions on a Dask cluster."
    )
    dask_address: str | None = Field(
        None,
        description="Scheduler of an existing Dask cluster (tcp://host:8786); null starts a local cluster per run. "
        "Its workers must see the input file, the workspace and the output folder at the same paths.",
    )
    dask_workers: int = Field(2, ge=1, description="Workers of the local cluster (ignored with dask_address).")
    dask_processes: bool = Field(
        True, description="Local cluster workers as processes (true) or as threads of this process (false)."
    )
    partitions: int = Field(4, ge=1, description="Row ranges a file is cut into for engine dask, scored in parallel.")


class MonitoringConfig(_Section):
    settle_seconds: float = Field(
        30, ge=0, description="Prediction-log files younger than this wait for the next monitoring run."
    )


class LabelsConfig(_Section):
    """Delayed ground truth: label files joined to the prediction log by id (see docs/monitoring.md)."""

    enabled: bool = Field(False, description="Watch for label files and measure the champion's real performance.")
    folder: Path | None = Field(
        None, description="Where label files (CSV/Parquet) arrive; default <workspace>/labels/<model>."
    )
    id_column: str | None = Field(None, description="Row id in the label files; default dataset.id_column.")
    label_column: str | None = Field(None, description="Ground truth in the label files; default dataset.target.")
    max_degradation: float = Field(
        0.05,
        gt=0,
        description="How much worse than at promotion (absolute, on the primary metric) the champion may get on "
        "labeled predictions before it counts as degraded.",
    )
    min_rows: int = Field(200, ge=1, description="Fewer labeled predictions of the champion give no verdict.")
    retrain: bool = Field(True, description="Run training on the retraining window when the champion degraded.")


class LandingConfig(_Section):
    folder: Path | None = Field(
        None, description="Folder the watcher watches for new data; default <workspace>/landing/<model>."
    )
    poll_seconds: float = Field(2.0, gt=0, description="How often the watcher looks at the folder.")
    stable_seconds: float = Field(
        5.0, ge=0, description="A file counts as complete once its size and mtime stayed the same this long."
    )


class ScheduleConfig(_Section):
    cron: str = Field(description="When the deployment runs, e.g. '0 2 * * *' (02:00 daily).")
    timezone: str = Field("UTC", description="IANA time zone the cron is read in, e.g. Europe/Paris.")
    active: bool = Field(True, description="false deploys the schedule paused.")

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


class SchedulesConfig(_Section):
    batch_scoring: ScheduleConfig = Field(
        ScheduleConfig(cron="0 2 * * *"), description="Score what waits in scoring.inbox: nightly at 02:00."
    )
    drift_monitoring: ScheduleConfig = Field(
        ScheduleConfig(cron="0 3 * * *"), description="Monitor the predictions logged since the last run: 03:00."
    )
    performance_monitoring: ScheduleConfig = Field(
        ScheduleConfig(cron="0 4 * * *"), description="Join newly arrived labels, measure performance: 04:00."
    )


NotificationEvent = Literal[
    "drift_detected", "performance_degraded", "model_promoted", "gate_refused", "flow_failed", "model_rolled_back"
]


class NotificationsConfig(_Section):
    webhook_url_env: str = Field(
        WEBHOOK_URL_ENV, description="Environment variable holding the webhook URL (a secret: never in the config)."
    )
    events: list[NotificationEvent] = Field(
        default_factory=lambda: list(get_args(NotificationEvent)),
        description="What is sent to the webhook.",
    )


class DashboardConfig(_Section):
    workspace: Path | None = Field(
        None, description="Evidently workspace folder `make dashboard` serves; default <workspace>/evidently."
    )
    enabled: bool = Field(True, description="Add every monitoring run's snapshot to the Evidently workspace.")


class ExplainabilityConfig(_Section):
    sample_rows: int = Field(1000, ge=50, description="Holdout rows permutation importance is computed on.")
    repeats: int = Field(3, ge=1, description="Shuffles per feature.")
    top_features: int = Field(3, ge=1, description="How many top features are compared with the champion's.")
    min_top_overlap: float = Field(
        0.5, ge=0, le=1, description="Share of the champion's top features the challenger must share, else flagged."
    )


class AutoRollbackConfig(_Section):
    enabled: bool = Field(False, description="Roll a new champion back when its live figures degrade.")
    watch_days: float = Field(14, gt=0, description="How long after its promotion a champion is watched.")
    prediction_drift: bool = Field(
        True, description="Prediction drift against the figures at promotion (past drift.signal_p_value) degrades."
    )
    max_metric_drop: float = Field(
        0.05, gt=0, description="Live primary metric worse than at promotion by more than this degrades (labels)."
    )


class GovernanceConfig(_Section):
    audit_experiment: str | None = Field(
        None, description="MLflow experiment holding the audit log; default <experiment>-audit."
    )
    explainability: ExplainabilityConfig = ExplainabilityConfig()
    auto_rollback: AutoRollbackConfig = AutoRollbackConfig()
    reproduce_tolerance: float = Field(
        1e-6, ge=0, description="driftline reproduce: largest allowed difference per holdout metric."
    )


class RolloutConfig(_Section):
    """A challenger that passed its gate tried on live batches before it is promoted (docs/governance.md)."""

    mode: Literal["off", "shadow", "canary"] = Field(
        "off",
        description="off: a challenger that passes its gate is promoted at once. shadow: it also scores every batch "
        "row, only the champion's answers are served, and it is promoted after `shadow_batches` labeled batches "
        "without regression. canary: it answers `canary_share` of the rows (by id hash) and is promoted, held or "
        "dropped by a test of the two arms once labels arrive.",
    )
    shadow_batches: int = Field(
        3, ge=1, description="Labeled shadow batches in which the challenger is no worse than the champion, needed "
        "to promote it (one worse batch drops it)."
    )
    canary_share: float = Field(0.1, gt=0, lt=1, description="Share of rows (by id hash) the challenger answers.")
    tolerance: float = Field(
        0.0, ge=0, description="How much worse than the champion (primary metric, or accuracy for the canary test "
        "of a classifier) the challenger may be and still count as no regression."
    )
    min_rows: int = Field(
        200, ge=1, description="Labeled rows needed per shadow batch, and per canary arm, before a verdict."
    )


class ModelCardConfig(_Section):
    owner: str = Field("unassigned", description="Team or person accountable for the model (model card).")
    intended_use: str = Field("", description="What the model is for and for whom; default: the description.")
    limitations: list[str] = Field(default_factory=list, description="Known limitations, one line each.")


class ServingConfig(_Section):
    """The online service (`driftline serve`): where it listens, how it follows the registry, how it routes."""

    host: str = Field("127.0.0.1", description="Address to listen on; 0.0.0.0 in a container.")
    port: int = Field(8080, ge=1, le=65535, description="8080: `make dashboard` (Evidently) takes 8000.")
    poll_seconds: float = Field(
        10, gt=0, description="How often the service asks the registry whether champion or challenger moved."
    )
    max_rows: int = Field(10_000, ge=1, description="Most rows one /predict request may carry.")
    shadow: bool = Field(
        False, description="Also score every request with the challenger, off the response path, and log it beside."
    )
    canary_share: float = Field(
        0.0, ge=0, le=1, description="Share of rows the challenger answers (0 = none); the response names the model."
    )
    canary_routing: Literal["id", "random"] = Field(
        "id", description="id: by a hash of the row's id column (the same id always gets the same model); random."
    )
    log_flush_rows: int = Field(
        5_000, ge=1, description="The prediction log is written as a new file once this many rows are buffered..."
    )
    log_flush_seconds: float = Field(30, gt=0, description="...or once the oldest buffered row is this old.")
    api_key_env: str = Field(
        API_KEY_ENV, description="Environment variable holding the API key; when it is set, requests must carry it."
    )

    @model_validator(mode="after")
    def _one_routing_at_a_time(self) -> ServingConfig:
        if self.shadow and self.canary_share > 0:
            raise ValueError(
                "serving.shadow and serving.canary_share > 0 are both set; shadow scores every row with the "
                "challenger already: choose one"
            )
        return self


class ReliabilityConfig(_Section):
    """How long a dead run may block the next one, and how hard calls to the MLflow server are retried."""

    training_lease_seconds: float = Field(
        60, ge=60, le=86_400, description="Lease on the one-training-at-a-time slot, renewed while the training "
        "lives: a killed training's slot frees within this long (plus the Prefect server's lease-expiry loop). "
        "Prefect allows 60 s to a day.",
    )  # fmt: skip
    registry_http_retries: int = Field(
        3, ge=0, description="Retries of a failed or 5xx call to an MLflow tracking server "
        "(MLFLOW_HTTP_REQUEST_MAX_RETRIES).",
    )  # fmt: skip
    registry_backoff_seconds: int = Field(
        1, ge=0, description="Backoff factor between those retries, whole seconds: waits 1x, 2x, 4x... this, plus up "
        "to 1 s of jitter (MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR).",
    )  # fmt: skip
    registry_timeout_seconds: int = Field(
        30, ge=1, description="Timeout of one call to the MLflow server, whole seconds (MLFLOW_HTTP_REQUEST_TIMEOUT)."
    )


class StorageConfig(_Section):
    workspace: Path = Field(Path(".driftline"), description="Where archives, quarantine, outputs and MLflow live.")
    archive_dir: Path | None = None
    quarantine_dir: Path | None = None
    output_dir: Path | None = None
    allowed_roots: list[Path] = Field(
        default_factory=list,
        description="Folders data may also be read from and outputs written to, besides the workspace, the config "
        "file's folder and the folders the config names (landing, inbox, labels, outputs); relative to the "
        "current folder, like workspace. Symlinks are resolved before the check.",
    )


class DriftlineConfig(_Section):
    name: str = Field(min_length=1)
    description: str = ""
    dataset: DatasetConfig
    validation: ValidationConfig = ValidationConfig()
    model: ModelConfig = ModelConfig()
    gate: GateConfig = GateConfig()
    drift: DriftConfig = DriftConfig()
    retraining: RetrainingConfig = RetrainingConfig()
    registry: RegistryConfig
    storage: StorageConfig = StorageConfig()
    scoring: ScoringConfig = ScoringConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    labels: LabelsConfig = LabelsConfig()
    dashboard: DashboardConfig = DashboardConfig()
    landing: LandingConfig = LandingConfig()
    schedules: SchedulesConfig = SchedulesConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    governance: GovernanceConfig = GovernanceConfig()
    model_card: ModelCardConfig = ModelCardConfig()
    serving: ServingConfig = ServingConfig()
    rollout: RolloutConfig = RolloutConfig()
    reliability: ReliabilityConfig = ReliabilityConfig()

    _source: Path | None = PrivateAttr(None)
    _source_text: str = PrivateAttr("")

    @model_validator(mode="before")
    @classmethod
    def _default_estimator_for_the_task(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("dataset"), dict):
            return data
        model = data.get("model") or {}
        if isinstance(model, dict) and "estimator" not in model and data["dataset"].get("task") in DEFAULT_ESTIMATORS:
            data = {**data, "model": {**model, "estimator": DEFAULT_ESTIMATORS[data["dataset"]["task"]]}}
        return data

    @model_validator(mode="after")
    def _estimator_fits_the_task(self) -> DriftlineConfig:
        from sklearn.base import is_classifier, is_regressor

        try:
            estimator = self.model.estimator_class()()
        except TypeError:
            return self  # needs constructor arguments: fit() will tell
        wants_classifier = self.dataset.task.is_classification
        if wants_classifier and not is_classifier(estimator) or not wants_classifier and not is_regressor(estimator):
            kind = "classifier" if wants_classifier else "regressor"
            raise ValueError(
                f"model.estimator {self.model.estimator} is not a {kind}, but dataset.task is {self.dataset.task}; "
                f"use a {kind} such as {DEFAULT_ESTIMATORS[self.dataset.task]}"
            )
        return self

    @model_validator(mode="after")
    def _time_holdout_has_a_clock(self) -> DriftlineConfig:
        if self.model.holdout.strategy == "time" and not self.dataset.event_time_column:
            raise ValueError(
                "model.holdout.strategy 'time' needs dataset.event_time_column; set it or use 'auto' or 'random'"
            )
        return self

    @model_validator(mode="after")
    def _canary_by_id_has_ids(self) -> DriftlineConfig:
        serving = self.serving
        if serving.canary_share > 0 and serving.canary_routing == "id" and not self.dataset.id_column:
            raise ValueError(
                "serving.canary_routing 'id' needs dataset.id_column; set it or use canary_routing: random"
            )
        return self

    @model_validator(mode="after")
    def _rollout_is_judged_on_labels(self) -> DriftlineConfig:
        if self.rollout.mode != "off" and not (self.dataset.id_column and self.labels.enabled):
            raise ValueError(
                f"rollout.mode {self.rollout.mode!r} judges the challenger on labeled batches: it needs "
                "dataset.id_column and labels.enabled; set both or use rollout.mode: off"
            )
        return self

    @model_validator(mode="after")
    def _gate_metrics_fit_the_task(self) -> DriftlineConfig:
        from driftline.metrics import metric_names

        known = metric_names(self.dataset.task)
        for name in [self.gate.metric, *self.gate.thresholds]:
            if name is not None and name not in known:
                raise ValueError(f"gate metric {name!r} does not apply to task {self.dataset.task}; use one of {known}")
        return self

    @model_validator(mode="after")
    def _labels_join_by_id(self) -> DriftlineConfig:
        if self.labels.enabled and not self.dataset.id_column:
            raise ValueError(
                "labels.enabled needs dataset.id_column: labels are joined to the logged predictions by row id; "
                "set dataset.id_column (the id your scoring files carry)"
            )
        return self

    @model_validator(mode="after")
    def _fairness_needs_a_positive_class(self) -> DriftlineConfig:
        if self.gate.fairness.attribute is not None and self.dataset.task is not Task.binary:
            raise ValueError(
                f"gate.fairness.attribute needs dataset.task binary (a positive rate), but the task is "
                f"{self.dataset.task}; remove gate.fairness.attribute"
            )
        return self

    def require_labels(self) -> None:
        if not self.labels.enabled:
            raise ConfigError(
                f"{self.source or 'config'}: labels.enabled is false; set labels: {{enabled: true}} (and, if the "
                "label files name them differently, labels.id_column / labels.label_column) to join labels"
            )

    # Derived settings, so that no module spells a default path or a metric name again.
    @property
    def primary_metric(self) -> str:
        from driftline.metrics import default_metric

        return self.gate.metric or default_metric(self.dataset.task)

    @property
    def workspace(self) -> Path:
        return self.storage.workspace.resolve()

    @property
    def archive_dir(self) -> Path:
        """Per registered model: configs sharing a workspace must never retrain on each other's batches."""
        return (self.storage.archive_dir or self.workspace / "archive" / self.registry.model_name).resolve()

    @property
    def quarantine_dir(self) -> Path:
        return (self.storage.quarantine_dir or self.workspace / "quarantine").resolve()

    @property
    def output_dir(self) -> Path:
        return (self.storage.output_dir or self.workspace / "outputs").resolve()

    @property
    def report_dir(self) -> Path:
        return self.workspace / "reports"

    @property
    def inbox_dir(self) -> Path:
        return (self.scoring.inbox or self.workspace / "inbox" / self.registry.model_name).resolve()

    @property
    def landing_dir(self) -> Path:
        return (self.landing.folder or self.workspace / "landing" / self.registry.model_name).resolve()

    @property
    def prediction_log_dir(self) -> Path:
        return self.workspace / "predictions" / self.registry.model_name

    @property
    def labels_dir(self) -> Path:
        return (self.labels.folder or self.workspace / "labels" / self.registry.model_name).resolve()

    @property
    def label_store_dir(self) -> Path:
        """Accepted label files, as Parquet (id, label, file, received_at): every join reads them all."""
        return self.workspace / "label-store" / self.registry.model_name

    @property
    def label_id_column(self) -> str:
        return self.labels.id_column or self.dataset.id_column or ""

    @property
    def label_column(self) -> str:
        return self.labels.label_column or self.dataset.target

    @property
    def dashboard_dir(self) -> Path:
        return (self.dashboard.workspace or self.workspace / "evidently").resolve()

    @property
    def ledger_dir(self) -> Path:
        return self.workspace / "ledgers"

    @property
    def tracking_uri(self) -> str:
        return os.environ.get(TRACKING_URI_ENV) or self.registry.tracking_uri or f"sqlite:///{self.workspace}/mlflow.db"

    @property
    def tracking_is_remote(self) -> bool:
        return self.tracking_uri.startswith(REMOTE_TRACKING_SCHEMES)

    @property
    def artifact_location(self) -> str | None:
        """Local stores keep artifacts in the workspace; a tracking server decides itself (e.g. --serve-artifacts)."""
        if self.registry.artifact_location or self.tracking_is_remote:
            return self.registry.artifact_location
        return (self.workspace / "mlartifacts").as_uri()

    @property
    def mlflow_ui_url(self) -> str | None:
        """Where people open MLflow: env DRIFTLINE_MLFLOW_UI_URL, else the tracking server itself, else none."""
        return os.environ.get(MLFLOW_UI_ENV) or (self.tracking_uri.rstrip("/") if self.tracking_is_remote else None)

    @property
    def experiment_name(self) -> str:
        return self.registry.experiment or self.registry.model_name

    @property
    def audit_experiment_name(self) -> str:
        return self.governance.audit_experiment or f"{self.experiment_name}-audit"

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def source_text(self) -> str:
        """The YAML as written, logged with every model version."""
        return self._source_text or yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @property
    def fingerprint(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _describe(error: dict[str, Any]) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:
        return message  # a cross-section rule: its message names the fields
    path = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown key; remove it or check its spelling"
    if error["type"] == "missing":
        return f"{path}: required but missing"
    found = error.get("input")
    shown = f" (got {found!r})" if found is not None and not isinstance(found, dict) else ""
    return f"{path}: {message}{shown}"


def parse_config(data: Any, source: str = "<config>") -> DriftlineConfig:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping of sections (dataset:, registry:, ...), got {type(data).__name__}"
        )
    try:
        return DriftlineConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def load_config(path: str | Path) -> DriftlineConfig:
    config_path = Path(path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: config file not found; copy configs/demo.yaml to start one") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_path}: cannot read config: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path}: not valid YAML: {exc}") from None
    config = parse_config(data, str(config_path))
    config._source = config_path.resolve()
    config._source_text = text
    return config
