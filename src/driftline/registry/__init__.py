"""MLflow: tracking runs, the model registry with aliases, and safe (skops) model storage.

The only module that talks to MLflow tracking and the registry.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from driftline.config import TRACKING_URI_ENV, DriftlineConfig
from driftline.data.loading import fingerprint_file
from driftline.errors import (
    ConfigError,
    DriftlineError,
    ModelTampered,
    NoChampion,
    RegistryUnavailable,
    TransitionRefused,
)
from driftline.evaluation.gate import GateDecision
from driftline.governance.audit import Action, Actor, AliasHolders, Approval, AuditEvent, Rollback, now
from driftline.monitoring.kpis import Detection, PipelineRun, ScoringRun, Transition
from driftline.monitoring.performance import Degradation, Performance
from driftline.monitoring.reference import DriftReference, ReferenceStats, reference_stats
from driftline.training.lineage import Lineage
from driftline.training.train import TrainedModel
from driftline.validation.profile import ReferenceProfile

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"
TAG = "driftline."
MODEL_ARTIFACT = "model"
SKOPS_FILE = "model.skops"  # where mlflow.sklearn puts a skops-serialized model inside the model folder
REFERENCE_ARTIFACTS = "reference"
REFERENCE_STATS = "stats"  # reference/stats/: drift statistics of every training row (`ReferenceStats`)
HOLDOUT = "holdout_"  # prefix of metrics measured on a version's own holdout
LOG_THROUGH = "log_through"  # tag: the prediction-log watermark of a monitoring run
REPORTS = "reports"
RUN_TYPE = f"{TAG}run_type"  # training | monitoring | performance | scoring | trends
# The per-model run whose metrics, appended step by step, are MLflow's trend charts of the monitoring runs.
TRENDS_RUN_TYPE = "trends"
AUDIT = f"{TAG}audit."  # tags of audit runs, and of model versions for their latest transition of each kind
RETIRED = f"{TAG}retired"
PENDING_PROMOTION = f"{TAG}promotion.pending"  # registered-model tag: a promotion begun and not yet finished
PASSED = "promoted"  # the gate verdict of a version allowed to hold `champion`
MODEL_CARD = "model_card.md"
CONFIG_ARTIFACT = "config/driftline.yaml"
LINEAGE_TAGS = ("data_fingerprints", "data_rows", "training_rows", "config_fingerprint", "packages", "seed")
RUN_ARTIFACTS = (REFERENCE_ARTIFACTS, "lineage.json", CONFIG_ARTIFACT.split("/")[0])
MAX_TAG_VALUE = 5000  # MLflow allows 8000; room for the JSON of a truncated value
MAX_VERSION_DESCRIPTION = 5000  # the registry's column width
MODEL_SHA256 = f"{TAG}model_sha256"  # version tag: checksum of the model artifact's files, set at registration
# Written by MLflow into a folder it downloads from a models:/ URI; not part of what was logged.
DOWNLOAD_ONLY_FILES = {"registered_model_meta"}

# Types skops does not trust by default that we reviewed: plain data holders of scikit-learn models, no code.
REVIEWED_SKOPS_TYPES = [
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
]

logging.getLogger("mlflow").setLevel(logging.WARNING)
log = logging.getLogger("driftline.registry")


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    run_id: str


@dataclass(frozen=True)
class Champion:
    """The model behind `champion`, loaded, with the reference its drift is measured against."""

    ref: ModelRef
    model: Pipeline
    reference: DriftReference


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

    def _listed(self, key: str) -> list[str]:
        value = self.tags.get(f"{TAG}{key}", "")
        return value.split(",") if value else []

    def to_dict(self) -> dict:
        """Everything `driftline status --json` shows: aliases, metrics, the gate, and the lineage."""
        fingerprints, rows = self._listed("data_fingerprints"), self._listed("data_rows")
        return {
            "version": self.version, "aliases": self.aliases, "created_at": self.created_at, "run_id": self.run_id,
            "metrics": self.metrics, "gate_verdict": self.gate_verdict,
            "gate_reasons": self.tags.get(f"{TAG}gate.reasons", ""),
            "retired": self.tags.get(RETIRED) == "true",
            "approval": self.tags.get(f"{TAG}approval.verdict"),
            "trigger": self.tags.get(f"{TAG}trigger", ""),
            "data_fingerprints": fingerprints,
            "data": [{"fingerprint": f, "rows": int(r)} for f, r in zip(fingerprints, rows, strict=False)],
            "training_rows": int(self.tags.get(f"{TAG}training_rows", 0)),
            "config_fingerprint": self.tags.get(f"{TAG}config_fingerprint"),
            "git_commit": self.tags.get(f"{TAG}git_commit"),
            "seed": self.tags.get(f"{TAG}seed"),
            "packages": dict(item.split("=", 1) for item in self._listed("packages")),
        }  # fmt: skip


def _started(run) -> datetime:
    return datetime.fromtimestamp(run.info.start_time / 1000, UTC)


def _audit_event(run) -> AuditEvent:
    tags = run.data.tags

    def tag(name: str) -> str | None:
        return tags.get(f"{AUDIT}{name}") or None

    return AuditEvent(
        at=tags[f"{AUDIT}at"], action=Action(tags[f"{AUDIT}action"]), version=tags[f"{AUDIT}version"],
        actor=Actor(tags[f"{AUDIT}actor_kind"], tags[f"{AUDIT}actor"], tag("actor_id")),
        reason=tags.get(f"{AUDIT}reason", ""),
        before=AliasHolders(tag("champion_before"), tag("previous_before")),
        after=AliasHolders(tag("champion_after"), tag("previous_after")),
        evidence=json.loads(tags.get(f"{AUDIT}evidence") or "{}"), run_id=run.info.run_id,
    )  # fmt: skip


def metric_key(name: str) -> str:
    """MLflow keys allow letters, digits and `_-. /`; column names may hold anything else."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)


def model_sha256(folder: Path) -> str:
    """One sha256 over a model folder: a line of relative path and file sha256 per file, in sorted path order."""
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    lines = [f"{name}\0{fingerprint_file(files[name])}\n" for name in sorted(set(files) - DOWNLOAD_ONLY_FILES)]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def trusted_types_for(model: Pipeline, cfg: DriftlineConfig) -> list[str]:
    """The non-default types skops needs for this model; every one must be reviewed, or we refuse to store it."""
    import skops.io

    needed = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    reviewed = set(REVIEWED_SKOPS_TYPES) | set(cfg.model.trusted_types)
    unreviewed = sorted(set(needed) - reviewed)
    if unreviewed:
        raise DriftlineError(
            f"model.estimator {cfg.model.estimator}: skops needs types nobody reviewed: {unreviewed}; "
            "review them and list them under model.trusted_types"
        )
    return sorted(needed)


HTTP_SETTINGS = {  # MLflow's own retry settings for calls to a tracking server, from reliability.*
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "registry_http_retries",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "registry_backoff_seconds",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "registry_timeout_seconds",
}
_OUTAGE_SIGNS = ("Max retries exceeded", "error responses", "Connection refused", "Read timed out",
                 "Failed to establish", "RemoteDisconnected", "Connection aborted")  # fmt: skip


def unavailable(error: Exception, tracking_uri: str, retries: int) -> RegistryUnavailable | None:
    """The one line naming an MLflow server outage (what was called, the status or the refusal), or None if the
    error is something else (a missing version, a bad request) that no retry would change."""
    text = str(error)
    if not any(sign in text for sign in _OUTAGE_SIGNS):
        return None
    status = re.search(r"too many (\d{3}) error responses", text)
    cause = f"HTTP {status.group(1)}" if status else _first_cause(text)
    url = re.search(r"url: (\S+)", text)
    called = f" ({url.group(1)})" if url else ""
    return RegistryUnavailable(
        f"MLflow tracking server {tracking_uri} unavailable{called}: {cause} after {retries} retries; "
        "check the server, or raise reliability.registry_http_retries"
    )


def _first_cause(text: str) -> str:
    found = re.search(r"(Connection refused|Read timed out|RemoteDisconnected|Connection aborted)", text)
    return found.group(1) if found else text.strip().splitlines()[0][:200]


class _OutageNamed:
    """The MLflow client whose calls fail with `RegistryUnavailable` (one line) once MLflow's retries are spent."""

    def __init__(self, client, tracking_uri: str, retries: int):
        self._client, self._uri, self._retries = client, tracking_uri, retries

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            with outage_named(self._uri, self._retries):
                return attribute(*args, **kwargs)

        return call


@contextmanager
def outage_named(tracking_uri: str, retries: int) -> Iterator[None]:
    try:
        yield
    except RegistryUnavailable:
        raise
    except Exception as error:
        named = unavailable(error, tracking_uri, retries)
        if named is None:
            raise
        raise named from error


def apply_http_settings(cfg: DriftlineConfig) -> None:
    """MLflow reads its HTTP retry settings from the environment at each call: set them from this config."""
    for variable, field_name in HTTP_SETTINGS.items():
        os.environ[variable] = str(getattr(cfg.reliability, field_name))


class Registry:
    """One registered model and its experiment, as driftline uses them."""

    def __init__(self, cfg: DriftlineConfig):
        import mlflow
        from mlflow import MlflowClient

        self.cfg = cfg
        self.name = cfg.registry.model_name
        cfg.folders.root.mkdir(parents=True, exist_ok=True)
        user_setting = os.environ.get(TRACKING_URI_ENV)
        mlflow.set_tracking_uri(cfg.tracking_uri)
        mlflow.set_registry_uri(cfg.tracking_uri)
        # MLflow also exports the URI to the environment, where it would override the next config loaded in
        # this process; the user's own setting (or its absence) stays authoritative.
        if user_setting is None:
            os.environ.pop(TRACKING_URI_ENV, None)
        else:
            os.environ[TRACKING_URI_ENV] = user_setting
        apply_http_settings(cfg)
        retries = cfg.reliability.registry_http_retries
        self.client = _OutageNamed(MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri),
                                   cfg.tracking_uri, retries)  # fmt: skip
        self._cache = cfg.folders.cache
        self._calls = lambda: outage_named(cfg.tracking_uri, retries)
        self._lock_path = cfg.folders.locks / f"registry-{re.sub(r'[^A-Za-z0-9_.-]', '_', self.name)}.lock"

    # --- experiments and runs -------------------------------------------------------------------------------
    @property
    def experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(self.cfg.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        return self.client.create_experiment(self.cfg.experiment_name, artifact_location=self.cfg.artifact_location)

    # --- aliases ------------------------------------------------------------------------------------------------
    def alias(self, alias: str) -> ModelRef | None:
        from mlflow.exceptions import MlflowException

        try:
            version = self.client.get_model_version_by_alias(self.name, alias)
        except MlflowException:
            return None
        return ModelRef(self.name, str(version.version), version.run_id)

    def champion(self) -> ModelRef | None:
        return self.alias(CHAMPION)

    def live_challenger(self) -> ModelRef | None:
        """The `challenger` that may score live rows (rollout, serving): not one its gate refused, nor retired.

        A refused candidate keeps the alias (it is the latest challenger, for the record) but never answers a row.
        """
        challenger = self.alias(CHALLENGER)
        if challenger is None:
            return None
        tags = self.version_tags(challenger.version)
        if tags.get(f"{TAG}gate.verdict") == "refused" or tags.get(RETIRED) == "true":
            return None
        return challenger

    def require_champion(self) -> ModelRef:
        champion = self.champion()
        if champion is None:
            raise NoChampion(
                f"model {self.name!r} has no champion yet at {self.cfg.tracking_uri}; "
                "train one first: driftline train --config <config> --data <file>"
            )
        return champion

    # --- training ---------------------------------------------------------------------------------------------
    def log_candidate(
        self, trained: TrainedModel, lineage: Lineage, trigger: str, actor: Actor | None = None
    ) -> ModelRef:
        """Log one training run (params, metrics, lineage, reference, skops model), register it as `challenger`."""
        import mlflow
        import mlflow.sklearn

        model, input_example = trained.model, trained.input_example
        trusted = trusted_types_for(model, self.cfg)
        lineage_tags = {
            f"{TAG}data_fingerprints": ",".join(source.fingerprint for source in lineage.data),
            f"{TAG}data_rows": ",".join(str(source.rows) for source in lineage.data),
            f"{TAG}training_rows": str(lineage.training_rows),
            f"{TAG}packages": ",".join(f"{name}={version}" for name, version in lineage.packages.items()),
            f"{TAG}config_fingerprint": lineage.config_fingerprint,
            f"{TAG}git_commit": lineage.git_commit or "unknown",
            f"{TAG}seed": str(lineage.seed),
            f"{TAG}run_type": "training",
            f"{TAG}trigger": trigger[:500],
        }
        with self._calls(), mlflow.start_run(experiment_id=self.experiment_id, run_name=f"train-{self.name}") as run:
            mlflow.set_tags(lineage_tags)
            mlflow.log_params({key: str(value)[:500] for key, value in trained.params.items()})
            mlflow.log_metrics({f"{HOLDOUT}{name}": value for name, value in trained.metrics.items()})
            mlflow.log_text(self.cfg.source_text, CONFIG_ARTIFACT)
            mlflow.log_dict(lineage.to_dict(), "lineage.json")
            self._log_reference(trained.reference)
            signature = self._signature(model, input_example)
            info = mlflow.sklearn.log_model(
                model,
                name=MODEL_ARTIFACT,
                serialization_format="skops",
                skops_trusted_types=trusted,
                signature=signature,
                input_example=input_example,
            )
        self._ensure_registered_model()
        checksum = {MODEL_SHA256: self._logged_model_sha256(info.model_uri)}
        registered = self.client.create_model_version(
            self.name, source=info.model_uri, run_id=run.info.run_id, tags=lineage_tags | checksum,
            model_id=info.model_id,
        )
        version = str(registered.version)
        self.client.set_registered_model_alias(self.name, CHALLENGER, version)
        self.record_unmoved(Action.registered, version, actor, trigger, {
            "run_id": run.info.run_id, "data_fingerprints": [source.fingerprint for source in lineage.data],
            "training_rows": lineage.training_rows, "holdout_metrics": trained.metrics,
        })  # fmt: skip
        return ModelRef(self.name, version, run.info.run_id)

    def _logged_model_sha256(self, model_uri: str) -> str:
        """The checksum of the model as stored (read back from the artifact store), what every load verifies."""
        import mlflow

        with tempfile.TemporaryDirectory() as folder:
            return model_sha256(Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=folder)))

    def _signature(self, model: Pipeline, input_example: pd.DataFrame):
        """Input types from the config, not from a few example rows (where a category may happen to be missing)."""
        from mlflow.models import ModelSignature, infer_signature
        from mlflow.types import ColSpec, Schema

        dataset = self.cfg.dataset
        inputs = Schema(
            [ColSpec("double", name) for name in dataset.numeric_features]
            + [ColSpec("string", name) for name in dataset.categorical_features]
        )
        outputs = infer_signature(input_example, model.predict(input_example)).outputs
        return ModelSignature(inputs=inputs, outputs=outputs)

    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(self.name, description=self.cfg.description or None)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def _log_reference(self, reference: DriftReference) -> None:
        import mlflow

        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            reference.features.to_parquet(root / "features.parquet", index=False)
            pd.DataFrame({"prediction": reference.predictions}).to_parquet(root / "predictions.parquet", index=False)
            (root / "profile.json").write_text(json.dumps(reference.profile.to_dict()))
            reference.stats.save(root / REFERENCE_STATS)
            mlflow.log_artifacts(folder, REFERENCE_ARTIFACTS)

    def record_gate(self, candidate: ModelRef, decision: GateDecision, actor: Actor | None = None) -> None:
        """The decision and its evidence, on the model version (tags) and in its run (metrics, JSON)."""
        tags = {
            f"{TAG}gate.verdict": decision.verdict,
            f"{TAG}gate.reasons": " | ".join(decision.reasons)[:4900],
            f"{TAG}gate.metric": decision.metric,
            f"{TAG}gate.champion_version": decision.champion_version or "none",
            f"{TAG}gate.decided_at": datetime.now(UTC).isoformat(),
        }
        self._tag_version_and_run(candidate, tags)
        for name, value in (decision.champion_metrics or {}).items():
            self.client.log_metric(candidate.run_id, f"champion_{HOLDOUT}{name}", value)
        self.client.log_text(candidate.run_id, json.dumps(decision.to_dict(), indent=2, default=str), "gate.json")
        if not decision.promote:
            self.record_unmoved(Action.refused, candidate.version, actor, decision.summary,
                                decision.evidence(candidate.run_id))  # fmt: skip

    def promote(
        self, candidate: ModelRef, actor: Actor | None = None, reason: str = "passed the gate",
        evidence: dict | None = None,
    ) -> ModelRef | None:  # fmt: skip
        """Move `champion` to the candidate and the former champion to `previous`; returns the former champion.

        Aliases are unique per model, so `champion` moves in one registry write: never two champions, never none.
        Transitions take the registry lock one at a time, so `previous` and the audit log's before/after are what
        really held. A retired version, or one whose recorded gate verdict is not a pass, is refused. The intent is
        written first (a registered-model tag): a promotion interrupted midway is finished by the next transition.
        """
        with self.transition_lock():
            self._finish_interrupted_promotion()
            self._refuse_retired(candidate.version, "promote")
            self._refuse_ungated(candidate.version)
            before = self.alias_holders()
            if before.champion == candidate.version:  # a retried task: done already, recorded already
                return self.alias(PREVIOUS)
            former = self.champion()
            intent = {"version": candidate.version, "run_id": candidate.run_id, "at": now(), "reason": reason,
                      "actor": asdict(actor or Actor.os_user()), "before": asdict(before),
                      "evidence": {"run_id": candidate.run_id, **(evidence or {})}}  # fmt: skip
            self.client.set_registered_model_tag(self.name, PENDING_PROMOTION, json.dumps(intent, default=str))
            self._complete_promotion(intent)
            return former

    def _complete_promotion(self, intent: dict) -> None:
        """The alias moves and the audit record of a promotion; each step may be repeated without harm."""
        version, before = intent["version"], AliasHolders(**intent["before"])
        if before.champion is not None and before.champion != version:
            self.client.set_registered_model_alias(self.name, PREVIOUS, before.champion)
        self.client.set_registered_model_alias(self.name, CHAMPION, version)
        challenger = self.alias(CHALLENGER)
        if challenger is not None and challenger.version == version:
            self.client.delete_registered_model_alias(self.name, CHALLENGER)
        recorded = [e for e in self.audit_log() if e.action is Action.promoted and e.version == version
                    and e.at >= intent["at"]]  # fmt: skip
        if not recorded:
            self.record_transition(Action.promoted, version, Actor(**intent["actor"]), intent["reason"], before,
                                   self.alias_holders(), intent["evidence"])  # fmt: skip
        self.client.delete_registered_model_tag(self.name, PENDING_PROMOTION)

    def interrupted_promotion(self) -> dict | None:
        """The intent of a promotion that began and did not finish (a crash, an outage midway), if any."""
        from mlflow.exceptions import MlflowException

        try:
            tags = self.client.get_registered_model(self.name).tags
        except MlflowException:
            return None
        return json.loads(tags[PENDING_PROMOTION]) if PENDING_PROMOTION in tags else None

    def _finish_interrupted_promotion(self) -> None:
        intent = self.interrupted_promotion()
        if intent is not None:
            log.warning("finishing the interrupted promotion of v%s begun at %s", intent["version"], intent["at"])
            self._complete_promotion(intent)

    def _refuse_ungated(self, version: str) -> None:
        verdict = self.version_tags(version).get(f"{TAG}gate.verdict")
        if verdict is not None and verdict != PASSED:
            raise TransitionRefused(f"cannot promote v{version}: its gate verdict is {verdict!r}, not a pass")

    @contextmanager
    def transition_lock(self) -> Iterator[None]:
        """One alias transition of this model at a time among processes sharing the workspace (an OS file lock,
        released by the kernel if the holder dies)."""
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- governance: audit log, approval, rollback, retirement ------------------------------------------------------
    def alias_holders(self) -> AliasHolders:
        champion, previous = self.alias(CHAMPION), self.alias(PREVIOUS)
        return AliasHolders(champion.version if champion else None, previous.version if previous else None)

    @property
    def audit_experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(self.cfg.audit_experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        return self.client.create_experiment(
            self.cfg.audit_experiment_name, artifact_location=self.cfg.artifact_location,
            tags={"driftline.purpose": "audit log: one run per registry transition, never edited"},
        )  # fmt: skip

    def record_transition(
        self, action: Action, version: str, actor: Actor | None, reason: str, before: AliasHolders,
        after: AliasHolders, evidence: dict | None = None,
    ) -> AuditEvent:  # fmt: skip
        """Append one event to the audit log (its own MLflow run) and tag the model version with it.

        The log lives in the registry's own backend, beside the versions it describes: it is as durable and as
        shared as the registry. Runs of the audit experiment are only ever created, never updated.
        """
        actor = actor or Actor.os_user()
        event = AuditEvent(now(), action, version, actor, reason, before, after, evidence or {})
        evidence_json = json.dumps(event.evidence, default=str, sort_keys=True)
        tags = {
            f"{AUDIT}model": self.name, f"{AUDIT}action": str(action), f"{AUDIT}version": version,
            f"{AUDIT}at": event.at, f"{AUDIT}actor": actor.name, f"{AUDIT}actor_kind": actor.kind,
            f"{AUDIT}actor_id": actor.id or "", f"{AUDIT}reason": reason[:MAX_TAG_VALUE],
            f"{AUDIT}champion_before": before.champion or "", f"{AUDIT}previous_before": before.previous or "",
            f"{AUDIT}champion_after": after.champion or "", f"{AUDIT}previous_after": after.previous or "",
            f"{AUDIT}evidence": evidence_json if len(evidence_json) <= MAX_TAG_VALUE else "{}",
        }  # fmt: skip
        run = self.client.create_run(self.audit_experiment_id, run_name=f"{action}-{self.name}-v{version}", tags=tags)
        self.client.log_text(run.info.run_id, json.dumps(event.to_dict(), indent=2, default=str), "audit_event.json")
        self.client.set_terminated(run.info.run_id)
        for key, value in {"at": event.at, "by": str(actor), "reason": reason[:MAX_TAG_VALUE]}.items():
            self.client.set_model_version_tag(self.name, version, f"{AUDIT}{action}.{key}", value)
        self.client.set_model_version_tag(self.name, version, f"{AUDIT}last_action", str(action))
        return replace(event, run_id=run.info.run_id)

    def record_unmoved(
        self, action: Action, version: str, actor: Actor | None, reason: str, evidence: dict | None = None
    ) -> AuditEvent:
        """An event that moves no alias, recorded under the transition lock: the holders it states are current."""
        with self.transition_lock():
            holders = self.alias_holders()
            return self.record_transition(action, version, actor, reason, holders, holders, evidence)

    def audit_log(self) -> list[AuditEvent]:
        """Every recorded transition of this model, oldest first."""
        experiment = self.client.get_experiment_by_name(self.cfg.audit_experiment_name)
        if experiment is None:
            return []
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [experiment.experiment_id], filter_string=f"tags.`{AUDIT}model` = '{self.name}'",
                order_by=[f"tags.`{AUDIT}at` ASC"], max_results=1000, page_token=token,
            )  # fmt: skip
            runs += list(page)
            token = page.token
            if not token:
                break
        return sorted((_audit_event(run) for run in runs), key=lambda event: event.at)

    def version_tags(self, version: str) -> dict[str, str]:
        from mlflow.exceptions import MlflowException

        try:
            return dict(self.client.get_model_version(self.name, version).tags)
        except MlflowException:
            raise TransitionRefused(f"model {self.name!r} has no version {version}; see driftline status") from None

    def version_ref(self, version: str) -> ModelRef:
        found = self.client.get_model_version(self.name, version)
        return ModelRef(self.name, str(found.version), found.run_id)

    def _refuse_retired(self, version: str, doing: str) -> None:
        tags = self.version_tags(version)
        if tags.get(RETIRED) == "true":
            raise TransitionRefused(
                f"cannot {doing} v{version}: it was retired ({tags.get(f'{AUDIT}retired.reason', 'no reason')}); "
                "bring it back only with: driftline rollback --to VERSION --override-retired --reason '...'"
            )

    def record_approval(self, candidate: ModelRef, approval: Approval) -> None:
        """The approver's answer on the version (tags) and in the audit log; the aliases do not move here.

        A rejection turns the version's gate verdict to `refused`: the automatic checks passed, the gate did not.
        """
        if not approval.approved:
            self.client.set_model_version_tag(self.name, candidate.version, f"{TAG}gate.verdict", "refused")
            self.client.set_tag(candidate.run_id, f"{TAG}gate.verdict", "refused")
        for key, value in {"verdict": str(approval.action), "by": approval.approver, "reason": approval.reason,
                           "timed_out": str(approval.timed_out).lower()}.items():  # fmt: skip
            self.client.set_model_version_tag(
                self.name, candidate.version, f"{TAG}approval.{key}", value[:MAX_TAG_VALUE]
            )
        self.record_unmoved(approval.action, candidate.version, Actor.approver(approval.approver), approval.reason,
                            {"run_id": candidate.run_id, "timed_out": approval.timed_out})  # fmt: skip

    def hold_for_rollout(self, candidate: ModelRef, decision: GateDecision, actor: Actor | None = None) -> None:
        """A candidate that passed its gate stays `challenger` for a shadow or canary rollout (recorded)."""
        self._set_verdict(candidate, decision.verdict, {f"{TAG}rollout.mode": decision.held_for or ""})
        evidence = decision.evidence(candidate.run_id)
        self.record_unmoved(Action.held, candidate.version, actor, decision.summary, evidence)

    def end_rollout(
        self, challenger: ModelRef, promote: bool, reason: str, evidence: dict, actor: Actor | None = None
    ) -> ModelRef | None:
        """The rollout's verdict: promote the challenger, or drop it (alias removed, verdict `refused`, recorded)."""
        self._set_verdict(challenger, "promoted" if promote else "refused", {f"{TAG}rollout.verdict": reason[:500]})
        if promote:
            return self.promote(challenger, actor, reason, evidence)
        with self.transition_lock():
            if self.alias(CHALLENGER) == challenger:
                self.client.delete_registered_model_alias(self.name, CHALLENGER)
        self.record_unmoved(Action.refused, challenger.version, actor, reason, evidence)
        return None

    def _set_verdict(self, ref: ModelRef, verdict: str, extra: dict[str, str]) -> None:
        self._tag_version_and_run(
            ref, {f"{TAG}gate.verdict": verdict, f"{TAG}gate.decided_at": datetime.now(UTC).isoformat(), **extra}
        )

    def _tag_version_and_run(self, ref: ModelRef, tags: dict[str, str]) -> None:
        """The same tags on the model version and on its training run (both UIs show them)."""
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, ref.version, key, value)
            self.client.set_tag(ref.run_id, key, value)

    def was_champion(self, version: str) -> bool:
        """Whether the version ever served: per the audit log, or (versions older than it) its gate verdict."""
        events = self.audit_log()
        if any(event.after.champion == version for event in events):
            return True
        tags = self.version_tags(version)
        return tags.get(f"{TAG}gate.verdict") == "promoted" and tags.get(f"{TAG}approval.verdict") != "rejected"

    def rollback(
        self, reason: str, actor: Actor | None = None, to: str | None = None, override_retired: bool = False,
        evidence: dict | None = None,
    ) -> Rollback:  # fmt: skip
        """Move `champion` back to `previous` (or to `to`) in one alias write; `previous` is then cleared.

        Clearing `previous` makes a repeated rollback a no-op instead of a flip back to the version just left;
        the next promotion sets `previous` again. Repeats (and rolling back to the current champion) change nothing.
        """
        with self.transition_lock():
            self._finish_interrupted_promotion()
            before = self.alias_holders()
            if before.champion is None:
                raise NoChampion(f"model {self.name!r} has no champion: nothing to roll back")
            target = to or before.previous
            if target is None:
                last = self.audit_log()[-1:]
                if last and last[0].action is Action.rolled_back and last[0].after.champion == before.champion:
                    return Rollback(False, before.champion, last[0].before.champion,
                                    f"already rolled back to v{before.champion} at {last[0].at}")  # fmt: skip
                raise TransitionRefused(
                    f"model {self.name!r} has no `previous` version to roll back to; name one: --to VERSION"
                )
            if target == before.champion:
                return Rollback(False, target, None, f"v{target} is already champion")
            if not self.was_champion(target):
                raise TransitionRefused(f"v{target} never served as champion; roll back only to a former champion")
            if not override_retired:
                self._refuse_retired(target, "roll back to")
            tags = self.version_tags(target)
            overridden = tags.get(RETIRED) == "true"
            if overridden:
                self.client.set_model_version_tag(self.name, target, RETIRED, "false")
            self.client.set_registered_model_alias(self.name, CHAMPION, target)
            if before.previous is not None:
                self.client.delete_registered_model_alias(self.name, PREVIOUS)
            self.record_transition(Action.rolled_back, target, actor, reason, before, self.alias_holders(),
                                   {"from_version": before.champion, "retirement_overridden": overridden,
                                    **(evidence or {})})  # fmt: skip
            return Rollback(True, target, before.champion, f"v{before.champion} → v{target}")

    def retire(self, version: str, reason: str, actor: Actor | None = None) -> bool:
        """Take a version out of service: no alias points to it afterwards. False when it was retired already."""
        with self.transition_lock():
            self._finish_interrupted_promotion()
            tags = self.version_tags(version)
            if tags.get(RETIRED) == "true":
                return False
            before = self.alias_holders()
            if before.champion == version:
                raise TransitionRefused(
                    f"v{version} is the champion; roll back first (driftline rollback --config C --reason '...'), "
                    "then retire it"
                )
            registered = self.client.get_registered_model(self.name)
            dropped = sorted(alias for alias, held in registered.aliases.items() if str(held) == version)
            for alias in dropped:
                self.client.delete_registered_model_alias(self.name, alias)
            self.client.set_model_version_tag(self.name, version, RETIRED, "true")
            self.record_transition(Action.retired, version, actor, reason, before, self.alias_holders(),
                                   {"aliases_removed": dropped})  # fmt: skip
            return True

    def promoted_at(self, version: str) -> str | None:
        """When the version last became champion (promotion or rollback), per its audit tags."""
        tags = self.version_tags(version)
        times = [tags.get(f"{AUDIT}{action}.at") for action in (Action.promoted, Action.rolled_back)]
        return max((time for time in times if time), default=None)

    def missing_records(self, info: VersionInfo) -> list[str]:
        """What a registered version must carry and does not: holdout metrics, lineage tags, run artifacts, model."""
        import mlflow

        missing = [] if info.metrics else ["holdout metrics"]
        missing += [f"tag {TAG}{key}" for key in LINEAGE_TAGS if f"{TAG}{key}" not in info.tags]
        logged = {artifact.path for artifact in self.client.list_artifacts(info.run_id)}
        missing += [f"artifact {path}" for path in RUN_ARTIFACTS if path not in logged]
        source = self.client.get_model_version(self.name, info.version).source
        with self._calls():
            stored = {Path(a.path).name for a in mlflow.artifacts.list_artifacts(artifact_uri=source) or []}
        missing += [f"model file {name}" for name in ("MLmodel", SKOPS_FILE) if name not in stored]
        return missing

    # --- model cards and reproduction ---------------------------------------------------------------------------
    def log_model_card(self, ref: ModelRef, markdown: str) -> None:
        """The card as the run's `model_card.md` and as the version's description (what the MLflow UI shows)."""
        self.client.log_text(ref.run_id, markdown, MODEL_CARD)
        description = markdown
        if len(description) > MAX_VERSION_DESCRIPTION:
            note = f"\n\n… (full card: `{MODEL_CARD}` in run {ref.run_id})"
            description = description[: MAX_VERSION_DESCRIPTION - len(note)] + note
        self.client.update_model_version(self.name, ref.version, description=description)

    def log_importances(self, ref: ModelRef, importances: dict[str, float]) -> None:
        for feature, value in importances.items():
            self.client.log_metric(ref.run_id, metric_key(f"importance_{feature}"), float(value))

    def recorded_config_text(self, run_id: str) -> str | None:
        """The config YAML exactly as the version was trained with (None if the run lacks it)."""
        import mlflow
        from mlflow.exceptions import MlflowException

        try:
            return mlflow.artifacts.load_text(f"runs:/{run_id}/{CONFIG_ARTIFACT}")
        except MlflowException:
            return None

    def delete_model(self) -> None:
        """Remove the registered model and its versions (runs stay in the experiment as history)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_registered_model(self.name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        shutil.rmtree(self._cache, ignore_errors=True)

    # --- loading ---------------------------------------------------------------------------------------------
    def _download(self, uri: str, folder: Path) -> Path:
        import mlflow

        if folder.exists():
            return folder
        self._cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self._cache))
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(staging))
        try:
            staging.rename(folder)
        except OSError:  # another process cached it first; theirs is the same content
            shutil.rmtree(staging, ignore_errors=True)
        return folder

    def load_model(self, ref: ModelRef) -> Pipeline:
        """Load with skops, trusting our reviewed types: never the list stored beside the model, never pickle.

        The files are checked against the checksum recorded at registration first: changed bytes are not loaded.
        """
        import skops.io

        folder = self._download(f"models:/{ref.name}/{ref.version}", self._cache / f"model-{ref.name}-v{ref.version}")
        self._verify(ref, folder)
        trusted = sorted(set(REVIEWED_SKOPS_TYPES) | set(self.cfg.model.trusted_types))
        return skops.io.load(folder / SKOPS_FILE, trusted=trusted)

    def _verify(self, ref: ModelRef, folder: Path) -> None:
        recorded = self.version_tags(ref.version).get(MODEL_SHA256)
        if recorded is None:
            raise ModelTampered(
                f"model {ref.name!r} v{ref.version} has no recorded checksum (tag {MODEL_SHA256}): its artifact "
                "cannot be verified, so it is not loaded; register a new version: driftline train --config <config>"
            )
        found = model_sha256(folder)
        if found != recorded:
            raise ModelTampered(
                f"model {ref.name!r} v{ref.version}: artifact files at {folder} have sha256 {found[:12]}…, "
                f"registration recorded {recorded[:12]}…; refusing to load a changed model. Restore the artifact "
                f"or retire the version: driftline retire --version {ref.version} --reason tampered"
            )

    def load_reference(self, ref: ModelRef) -> DriftReference:
        """The version's drift reference, from the local cache after the first download."""
        folder = self._download(f"runs:/{ref.run_id}/{REFERENCE_ARTIFACTS}", self._cache / f"reference-{ref.run_id}")
        folder = folder / REFERENCE_ARTIFACTS if (folder / REFERENCE_ARTIFACTS).is_dir() else folder
        features = pd.read_parquet(folder / "features.parquet")
        predictions = pd.read_parquet(folder / "predictions.parquet")["prediction"].to_numpy()
        stats = (
            ReferenceStats.load(folder / REFERENCE_STATS)
            if (folder / REFERENCE_STATS).is_dir()
            else reference_stats(features, self.cfg, predictions)  # a version registered before reference/stats/
        )
        return DriftReference(
            features=features,
            predictions=predictions,
            profile=ReferenceProfile.from_dict(json.loads((folder / "profile.json").read_text())),
            stats=stats,
        )

    def load_champion(self) -> Champion:
        """The champion, if it was trained on the features the config lists today (else scores would mislead)."""
        ref = self.require_champion()
        reference = self.load_reference(ref)
        trained_on = [c for c in reference.features.columns if c != self.cfg.dataset.target]
        added = sorted(set(self.cfg.dataset.feature_names) - set(trained_on))
        removed = sorted(set(trained_on) - set(self.cfg.dataset.feature_names))
        if added or removed:
            raise ConfigError(
                f"{self.cfg.source or 'config'}: dataset.features differ from champion v{ref.version}'s "
                f"(added {added}, removed {removed}); train a new champion: driftline train --config <config> "
                "--data <files with these columns>"
            )
        return Champion(ref=ref, model=self.load_model(ref), reference=reference)

    def holdout_metrics_of(self, run_id: str) -> dict[str, float]:
        """The metrics a version had on its own holdout when it was trained."""
        metrics = self.client.get_run(run_id).data.metrics
        return {k[len(HOLDOUT) :]: v for k, v in metrics.items() if k.startswith(HOLDOUT)}

    # --- monitoring -------------------------------------------------------------------------------------------
    def log_monitoring(
        self, champion: ModelRef, batch_name: str, fingerprint: str, metrics: dict[str, float],
        summary: dict, report_path: Path | None, log_through: str | None = None,
    ) -> str:  # fmt: skip
        """One run per monitored batch or log window: drift figures as metrics, the decision as JSON, the report.

        `log_through` is the newest prediction-log file the run read: the next scheduled run starts after it.
        """
        tags = {f"{TAG}run_type": "monitoring", f"{TAG}champion_version": champion.version,
                f"{TAG}batch_fingerprint": fingerprint, f"{TAG}batch": batch_name[:500]}  # fmt: skip
        if log_through:
            tags[f"{TAG}{LOG_THROUGH}"] = log_through
        run = self.client.create_run(self.experiment_id, run_name=f"monitor-{batch_name}"[:250], tags=tags)
        run_id = run.info.run_id
        for name, value in metrics.items():
            if np.isfinite(value):
                self.client.log_metric(run_id, metric_key(name), float(value))
        self.client.log_text(run_id, json.dumps(summary, indent=2, default=str), "drift.json")
        if report_path is not None:
            self.client.log_artifact(run_id, str(report_path), REPORTS)
        self.client.set_terminated(run_id)
        return run_id

    def monitored_through(self) -> str | None:
        """The newest prediction-log file any monitoring run of this model has read (the watermark)."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TAG}{LOG_THROUGH}` LIKE '%'",
            order_by=[f"tags.`{TAG}{LOG_THROUGH}` DESC"],
            max_results=1,
        )
        return runs[0].data.tags[f"{TAG}{LOG_THROUGH}"] if runs else None

    # --- trends, performance, scoring (monitoring over time) -------------------------------------------------
    def _runs_of_type(self, run_type: str, extra_filter: str = "", max_results: int = 10_000) -> list:
        query = f"tags.`{RUN_TYPE}` = '{run_type}'" + (f" AND {extra_filter}" if extra_filter else "")
        return self.client.search_runs([self.experiment_id], filter_string=query, max_results=max_results)

    def _trend_run(self) -> str:
        found = self._runs_of_type(TRENDS_RUN_TYPE, max_results=1)
        if found:
            return found[0].info.run_id
        run = self.client.create_run(self.experiment_id, run_name=f"trends-{self.name}",
                                     tags={RUN_TYPE: TRENDS_RUN_TYPE})  # fmt: skip
        self.client.set_terminated(run.info.run_id)  # a finished run still takes metrics: one point per monitoring run
        return run.info.run_id

    def _log_steps(self, run_id: str, points: list[tuple[str, float, int, datetime]]) -> None:
        """(key, value, step, time) points, in batches of MLflow's limit per call."""
        from mlflow.entities import Metric

        metrics = [Metric(metric_key(key), float(value), int(at.timestamp() * 1000), step)
                   for key, value, step, at in points if np.isfinite(value)]  # fmt: skip
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000])

    def log_drift_trend(self, figures: dict[str, float], at: datetime) -> int:
        """Append one monitoring run's drift figures to the model's trend run, at the next step; returns the step."""
        run_id = self._trend_run()
        step = len(self.client.get_metric_history(run_id, "drifted_feature_share"))
        self._log_steps(run_id, [(key, value, step, at) for key, value in figures.items()])
        return step

    def log_performance(
        self, champion: ModelRef, results: list[Performance], steps: dict[str, int], degradation: Degradation,
        counts: dict[str, float], summary: dict,
    ) -> str:  # fmt: skip
        """One run per label join: per-batch metrics at the batch's step (its place in the prediction log), per
        version at the version number, and the champion's degradation verdict; MLflow's charts show the trends."""
        run = self.client.create_run(
            self.experiment_id, run_name=f"performance-v{champion.version}",
            tags={RUN_TYPE: "performance", f"{TAG}champion_version": champion.version},
        )  # fmt: skip
        run_id, now = run.info.run_id, datetime.now(UTC)
        points = [(f"batch_{name}", value, steps.get(r.source, 0), r.scored_at)
                  for r in results if r.per_batch for name, value in r.metrics.items()]  # fmt: skip
        points += [("batch_labeled_rows", r.rows, steps.get(r.source, 0), r.scored_at) for r in results if r.per_batch]
        points += [(f"version_{name}", value, int(r.model_version), now)
                   for r in results if not r.per_batch for name, value in r.metrics.items()]  # fmt: skip
        figures = {**counts, "degraded": float(degradation.degraded)}
        if degradation.measured is not None:
            figures[f"champion_{degradation.metric}"] = degradation.measured
        if degradation.at_promotion is not None:
            figures[f"promotion_{degradation.metric}"] = degradation.at_promotion
        if degradation.loss is not None:
            figures["degradation"] = degradation.loss
        points += [(key, value, 0, now) for key, value in figures.items()]
        self._log_steps(run_id, points)
        self.client.log_text(run_id, json.dumps(summary, indent=2, default=str), "performance.json")
        self.client.set_terminated(run_id)
        return run_id

    def log_rollout(self, run_id: str, summary: str, evidence: dict, points: list[tuple[str, float, int]]) -> None:
        """A rollout verdict in the label join's run: a tag, its evidence, and per-batch figures at the batch steps."""
        now = datetime.now(UTC)
        self.client.set_tag(run_id, f"{TAG}rollout", summary[:MAX_TAG_VALUE])
        self.client.log_text(run_id, json.dumps(evidence, indent=2, default=str), "rollout.json")
        self._log_steps(run_id, [(key, value, step, now) for key, value, step in points])

    def log_scoring(
        self, model_version: str, batch_name: str, rows: int, seconds: float, extra: dict[str, float] | None = None
    ) -> None:
        """Rows and seconds of one scoring run (the throughput KPI reads them back), and a rollout's figures."""
        run = self.client.create_run(
            self.experiment_id, run_name=f"score-{batch_name}"[:250],
            tags={RUN_TYPE: "scoring", f"{TAG}model_version": model_version, f"{TAG}batch": batch_name[:500]},
        )  # fmt: skip
        now = datetime.now(UTC)
        figures = [("rows", rows, 0, now), ("seconds", seconds, 0, now)]
        self._log_steps(run.info.run_id, figures + [(name, value, 0, now) for name, value in (extra or {}).items()])
        self.client.set_terminated(run.info.run_id)

    # --- what the operational KPIs are computed from -------------------------------------------------------------
    def transitions(self) -> list[Transition]:
        """Every gate decision on this model's versions (tags `driftline.gate.verdict` / `gate.decided_at`)."""
        found = []
        for info in self.versions():
            decided_at = info.tags.get(f"{TAG}gate.decided_at")
            if info.gate_verdict and decided_at:
                found.append(Transition(info.version, info.gate_verdict, datetime.fromisoformat(decided_at),
                                        info.tags.get(f"{TAG}trigger", "")))  # fmt: skip
        return sorted(found, key=lambda transition: transition.decided_at)

    def detections(self) -> list[Detection]:
        """Monitoring runs that found drift, and label joins that found the champion degraded."""
        found = [Detection("drift", _started(run), run.data.tags.get(f"{TAG}batch", ""))
                 for run in self._runs_of_type("monitoring", "metrics.dataset_drift = 1")]  # fmt: skip
        found += [Detection("degradation", _started(run), run.data.tags.get(f"{TAG}champion_version", ""))
                  for run in self._runs_of_type("performance", "metrics.degraded = 1")]  # fmt: skip
        return sorted(found, key=lambda detection: detection.at)

    def training_runs(self) -> list[PipelineRun]:
        """Training runs in MLflow (those that got as far as logging a challenger), with their status."""
        return [PipelineRun(run.info.status == "FINISHED", _started(run)) for run in self._runs_of_type("training")]

    def scoring_runs(self) -> list[ScoringRun]:
        return [ScoringRun(int(run.data.metrics.get("rows", 0)), float(run.data.metrics.get("seconds", 0.0)),
                           _started(run)) for run in self._runs_of_type("scoring")]  # fmt: skip

    # --- links for people --------------------------------------------------------------------------------------
    def run_url(self, run_id: str) -> str | None:
        ui = self.cfg.mlflow_ui_url
        return f"{ui}/#/experiments/{self.experiment_id}/runs/{run_id}" if ui else None

    def version_url(self, version: str) -> str | None:
        ui = self.cfg.mlflow_ui_url
        return f"{ui}/#/models/{quote(self.name)}/versions/{version}" if ui else None

    def artifact_url(self, run_id: str, artifact_path: str) -> str | None:
        ui = self.cfg.mlflow_ui_url
        return f"{ui}/get-artifact?path={quote(artifact_path)}&run_uuid={run_id}" if ui else None

    # --- status -------------------------------------------------------------------------------------------------
    def versions(self) -> list[VersionInfo]:
        from mlflow.exceptions import MlflowException

        try:
            # search results leave aliases out; the registered model has them all
            registered = self.client.get_registered_model(self.name)
        except MlflowException:
            return []  # nothing registered yet
        found = self.client.search_model_versions(f"name = '{self.name}'")
        aliases_by_version: dict[str, list[str]] = {}
        for alias, version in registered.aliases.items():
            aliases_by_version.setdefault(str(version), []).append(alias)
        infos = []
        for version in sorted(found, key=lambda v: int(v.version)):
            infos.append(
                VersionInfo(
                    version=str(version.version),
                    aliases=sorted(aliases_by_version.get(str(version.version), [])),
                    created_at=datetime.fromtimestamp(version.creation_timestamp / 1000, UTC).isoformat(),
                    run_id=version.run_id,
                    metrics=self.holdout_metrics_of(version.run_id),
                    tags=dict(version.tags),
                )
            )
        return infos
