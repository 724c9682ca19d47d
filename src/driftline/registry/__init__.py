"""MLflow tracking and the model registry (the only package that talks to them, and the only skops user): a thin
`Registry` front over client, artifacts, transitions, audit_log, runs, history. May import: mlflow, skops, driftline's
config, errors and the types of data, training, evaluation.gate, monitoring, governance.audit, validation.profile.
"""

from driftline.registry.front import Registry
from driftline.registry.refs import (
    CHALLENGER,
    CHAMPION,
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
    "CHALLENGER", "CHAMPION", "MODEL_CARD", "MODEL_SHA256", "PASSED", "PREVIOUS", "REPORTS", "RETIRED", "SKOPS_FILE",
    "TAG", "Champion", "ModelRef", "Registry", "VersionInfo", "metric_key",
]  # fmt: skip
