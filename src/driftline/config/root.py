"""The root model `DriftlineConfig`: every section, the rules across sections, and the settings derived from them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, PrivateAttr, model_validator

from driftline.config.ab_tests import AbConfig
from driftline.config.base import (
    DEFAULT_ESTIMATORS,
    DEFAULT_METRIC,
    METRICS,
    MLFLOW_UI_ENV,
    REMOTE_TRACKING_SCHEMES,
    TRACKING_URI_ENV,
    Section,
    Task,
)
from driftline.config.data import DatasetConfig, LandingConfig, RetrainingConfig, StorageConfig, ValidationConfig
from driftline.config.estimation import EstimationConfig
from driftline.config.fleet import FleetConfig, SlaConfig
from driftline.config.governance import GovernanceConfig, ModelCardConfig, RolloutConfig
from driftline.config.monitoring import DashboardConfig, DriftConfig, LabelsConfig, MonitoringConfig
from driftline.config.operations import (
    NotificationsConfig,
    RegistryConfig,
    ReliabilityConfig,
    SchedulesConfig,
    ScoringConfig,
    ServingConfig,
)
from driftline.config.streaming import StreamingConfig
from driftline.config.training import GateConfig, ModelConfig
from driftline.config.workspace import RegistryFolders, WorkspaceFolders
from driftline.errors import ConfigError


class DriftlineConfig(Section):
    name: str = Field(min_length=1, description="Config name (shown by the demo).")
    description: str = Field("", description="Becomes the MLflow registered model's description.")
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
    sla: SlaConfig = SlaConfig()
    fleet: FleetConfig = FleetConfig()
    estimation: EstimationConfig = EstimationConfig()
    ab: AbConfig = AbConfig()
    streaming: StreamingConfig = StreamingConfig()

    _source: Path | None = PrivateAttr(None)
    _source_text: str = PrivateAttr("")
    # A config over a fleet.yaml: (that file, the merged mapping), written out as its source text only when asked
    _merged_from: tuple[Path, dict] | None = PrivateAttr(None)

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
    def _estimator_takes_its_params(self) -> DriftlineConfig:
        problems = self.model.params_problems()
        if problems:
            raise ValueError("; ".join(problems))
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
        known = list(METRICS[self.dataset.task])
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

    @model_validator(mode="after")
    def _performance_floor_is_judged_on_labels(self) -> DriftlineConfig:
        if self.sla.performance_floor is not None and not self.labels.enabled:
            raise ValueError(
                "sla.performance_floor is judged on labeled batches: set labels: {enabled: true} or remove the floor"
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
        return self.gate.metric or DEFAULT_METRIC[self.dataset.task]

    @property
    def folders(self) -> WorkspaceFolders:
        """Every folder the runs of this config's model read and write."""
        return WorkspaceFolders.of(
            self.storage,
            self.registry.model_name,
            landing=self.landing.folder,
            inbox=self.scoring.inbox,
            labels=self.labels.folder,
            dashboard=self.dashboard.workspace,
        )

    def registry_folders(self, registry_id: str) -> RegistryFolders:
        """The folders of this config's model in the registry whose identity is `registry_id` (the registry
        package resolves it: `Registry(cfg).folders`)."""
        return RegistryFolders.of(self.folders, self.storage, self.registry.model_name, registry_id)

    @property
    def declared_columns(self) -> list[str]:
        """The columns a data file may carry (training data, batch files): the dataset's roles (features, target, id,
        event time), the gate's watched columns (`gate.slices.columns`, `gate.fairness.attribute`: naming a column
        there declares it) and `dataset.passthrough_columns`. Any other column rejects the file."""
        dataset = self.dataset
        roles = [*dataset.feature_names, dataset.target, dataset.id_column, dataset.event_time_column]
        return list(dict.fromkeys(filter(None, [*roles, *self.gate.watched_columns, *dataset.passthrough_columns])))

    @property
    def label_id_column(self) -> str:
        return self.labels.id_column or self.dataset.id_column or ""

    @property
    def label_column(self) -> str:
        return self.labels.label_column or self.dataset.target

    @property
    def tracking_uri(self) -> str:
        return self._from_environment(TRACKING_URI_ENV) or self.store_uri

    def _from_environment(self, variable: str) -> str | None:
        return os.environ.get(variable) if self.registry.environment_wins else None

    @property
    def store_uri(self) -> str:
        """The MLflow store the config names, whatever the environment says: what `driftline stack up` serves."""
        return self.registry.tracking_uri or f"sqlite:///{self.folders.root}/mlflow.db"

    @property
    def tracking_is_remote(self) -> bool:
        return self.tracking_uri.startswith(REMOTE_TRACKING_SCHEMES)

    @property
    def artifact_location(self) -> str | None:
        """Local stores keep artifacts in the workspace; a tracking server decides itself (e.g. --serve-artifacts)."""
        if self.registry.artifact_location or self.tracking_is_remote:
            return self.registry.artifact_location
        return (self.folders.root / "mlartifacts").as_uri()

    @property
    def mlflow_ui_url(self) -> str | None:
        """Where people open MLflow: env DRIFTLINE_MLFLOW_UI_URL, else the tracking server itself, else none."""
        ui_url = self._from_environment(MLFLOW_UI_ENV)
        return ui_url or (self.tracking_uri.rstrip("/") if self.tracking_is_remote else None)

    @property
    def experiment_name(self) -> str:
        return self.registry.experiment or self.registry.model_name

    @property
    def audit_experiment_name(self) -> str:
        return self.governance.audit_experiment or f"{self.experiment_name}-audit"

    @property
    def backtest_experiment_name(self) -> str:
        """Where backtests are recorded: beside the model's experiment, apart from its runs and registry."""
        return f"{self.experiment_name}-backtests"

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def source_text(self) -> str:
        """The YAML as written, logged with every model version; over a fleet.yaml, the merged result, saying which
        files made it."""
        if self._merged_from is not None:
            defaults_path, merged = self._merged_from
            header = (
                f"# {self.source.name} over the fleet defaults in {defaults_path}: the config this model runs with\n"
            )
            return header + yaml.safe_dump(merged, sort_keys=False)
        return self._source_text or yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @property
    def fingerprint(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]
