"""The typed config: one pydantic model tree (`DriftlineConfig`) from configs/*.yaml, its sections grouped by stage.
May import: errors (and pydantic, yaml). Every other package imports the config.

Sections are grouped by stage (data, training, monitoring, operations, governance); `root` holds the rules across
sections and the settings derived from them (`cfg.folders`, `cfg.tracking_uri`, ...); `loading` reads YAML and turns
every error into one line naming the file, the field and the fix.
"""

from driftline.config.base import (
    API_KEY_ENV,
    CALIBRATED,
    DEFAULT_DRIFT_THRESHOLDS,
    MLFLOW_UI_ENV,
    P_VALUE_DRIFT_METHODS,
    TRACKING_URI_ENV,
    WEBHOOK_URL_ENV,
    FeatureType,
    NotificationEvent,
    Task,
)
from driftline.config.data import DatasetConfig, ExtraExpectation, RetrainingConfig, StorageConfig, ValidationConfig
from driftline.config.loading import FLEET_FILE, BrokenConfig, Fleet, load_config, load_fleet, parse_config
from driftline.config.monitoring import DriftConfig
from driftline.config.root import DriftlineConfig
from driftline.config.workspace import RegistryFolders, WorkspaceFolders

__all__ = [
    "API_KEY_ENV",
    "FLEET_FILE",
    "BrokenConfig",
    "Fleet",
    "load_fleet",
    "CALIBRATED",
    "DEFAULT_DRIFT_THRESHOLDS",
    "MLFLOW_UI_ENV",
    "P_VALUE_DRIFT_METHODS",
    "TRACKING_URI_ENV",
    "WEBHOOK_URL_ENV",
    "DatasetConfig",
    "DriftConfig",
    "DriftlineConfig",
    "ExtraExpectation",
    "FeatureType",
    "NotificationEvent",
    "RegistryFolders",
    "RetrainingConfig",
    "StorageConfig",
    "Task",
    "ValidationConfig",
    "WorkspaceFolders",
    "load_config",
    "parse_config",
]
