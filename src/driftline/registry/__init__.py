"""MLflow tracking and registry (its only users, with skops): a thin `Registry` front over the parts.
May import: config, errors, outages, modeling, data, validation, evaluation, monitoring, training (their result types).
"""

from driftline.registry.front import Registry
from driftline.registry.identity import REGISTRY_ID, registry_folders
from driftline.registry.refs import (
    CHALLENGER,
    CHAMPION,
    GATE_ARTIFACT,
    MODEL_CARD,
    MODEL_SHA256,
    PASSED,
    PREVIOUS,
    REPORTS,
    RETIRED,
    SKOPS_FILE,
    TAG,
    Champion,
    ModelRef,
    VersionInfo,
)
from driftline.registry.runs import metric_key

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "GATE_ARTIFACT",
    "MODEL_CARD",
    "MODEL_SHA256",
    "PASSED",
    "PREVIOUS",
    "REGISTRY_ID",
    "REPORTS",
    "RETIRED",
    "SKOPS_FILE",
    "TAG",
    "Champion",
    "ModelRef",
    "Registry",
    "VersionInfo",
    "metric_key",
    "registry_folders",
]
