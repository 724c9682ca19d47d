"""The registry's shared vocabulary: references to versions (ModelRef, Champion, VersionInfo), aliases, tag keys."""

from __future__ import annotations

from dataclasses import dataclass

from sklearn.pipeline import Pipeline

from driftline.monitoring.estimation import PerformanceEstimator
from driftline.monitoring.reference import DriftReference

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"
TAG = "driftline."
SKOPS_FILE = "model.skops"  # where mlflow.sklearn puts a skops-serialized model inside the model folder
REFERENCE_ARTIFACTS = "reference"
ESTIMATOR_ARTIFACTS = "estimator"  # the version's performance estimator, beside its drift reference
ESTIMATE_HOLDOUT_WITHIN = f"{TAG}estimate.holdout_within"  # version tag: the estimator's starting trust (true|false)
ESTIMATE_UNAVAILABLE = f"{TAG}estimate.unavailable"  # version tag: why it has no estimator (it could not be fitted)
HOLDOUT = "holdout_"  # prefix of metrics measured on a version's own holdout
LOG_THROUGH = "log_through"  # tag: the prediction-log watermark of a monitoring run
REPORTS = "reports"
RUN_TYPE = f"{TAG}run_type"  # training | monitoring | performance | scoring | trends
AUDIT = f"{TAG}audit."  # tags of audit runs, and of model versions for their latest transition of each kind
RETIRED = f"{TAG}retired"
PASSED = "promoted"  # the gate verdict of a version allowed to hold `champion`
MODEL_CARD = "model_card.md"
CONFIG_ARTIFACT = "config/driftline.yaml"
GATE_ARTIFACT = "gate.json"  # the gate's decision and evidence, in the challenger's run
MAX_TAG_VALUE = 5000  # MLflow allows 8000; room for the JSON of a truncated value
MODEL_SHA256 = f"{TAG}model_sha256"  # version tag: checksum of the model artifact's files, set at registration


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    run_id: str


@dataclass(frozen=True)
class Champion:
    """The model behind `champion`, loaded, with the reference its drift is measured against and the estimator of its
    metric before labels (None: a version trained before estimation existed, or one whose estimator could not be
    fitted)."""

    ref: ModelRef
    model: Pipeline
    reference: DriftReference
    estimator: PerformanceEstimator | None = None


@dataclass(frozen=True)
class VersionInfo:
    version: str
    aliases: list[str]
    created_at: str
    run_id: str
    metrics: dict[str, float]
    tags: dict[str, str]

    @property
    def gate_verdict(self) -> str:
        return self.tags.get(f"{TAG}gate.verdict", "")

    @property
    def trained_on(self) -> list[str]:
        """The fingerprints of the batches it was trained on (its lineage)."""
        return self._listed("data_fingerprints")

    @property
    def config_fingerprint(self) -> str | None:
        return self.tags.get(f"{TAG}config_fingerprint")

    def _listed(self, key: str) -> list[str]:
        value = self.tags.get(f"{TAG}{key}", "")
        return value.split(",") if value else []

    def to_dict(self) -> dict:
        """Everything `driftline status --json` shows: aliases, metrics, the gate, and the lineage."""
        fingerprints, rows = self.trained_on, self._listed("data_rows")
        return {
            "version": self.version,
            "aliases": self.aliases,
            "created_at": self.created_at,
            "run_id": self.run_id,
            "metrics": self.metrics,
            "gate_verdict": self.gate_verdict,
            "gate_reasons": self.tags.get(f"{TAG}gate.reasons", ""),
            "retired": self.tags.get(RETIRED) == "true",
            "approval": self.tags.get(f"{TAG}approval.verdict"),
            "trigger": self.tags.get(f"{TAG}trigger", ""),
            "data_fingerprints": fingerprints,
            "data": [{"fingerprint": f, "rows": int(r)} for f, r in zip(fingerprints, rows, strict=False)],
            "training_rows": int(self.tags.get(f"{TAG}training_rows", 0)),
            "config_fingerprint": self.config_fingerprint,
            "git_commit": self.tags.get(f"{TAG}git_commit"),
            "seed": self.tags.get(f"{TAG}seed"),
            "packages": dict(item.split("=", 1) for item in self._listed("packages")),
        }
