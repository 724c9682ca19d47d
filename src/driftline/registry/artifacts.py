"""Model, reference and estimator artifacts: skops save and load, checksums, reviewed types, the local download
cache."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pandas as pd
from sklearn.pipeline import Pipeline

from driftline.config import DriftlineConfig
from driftline.data.loading import fingerprint_file
from driftline.errors import ConfigError, DriftlineError, ModelTampered
from driftline.monitoring.estimation import PerformanceEstimator
from driftline.monitoring.reference import DriftReference, ReferenceStats, reference_stats
from driftline.registry.client import Connection
from driftline.registry.identity import forget_identity, registry_folders, shown_uri
from driftline.registry.refs import (
    ESTIMATOR_ARTIFACTS,
    MODEL_SHA256,
    REFERENCE_ARTIFACTS,
    SKOPS_FILE,
    Champion,
    ModelRef,
)
from driftline.validation.profile import ReferenceProfile

MODEL_ARTIFACT = "model"
REFERENCE_STATS = "stats"  # reference/stats/: drift statistics of every training row (`ReferenceStats`)
# Written by MLflow into a folder downloaded from a models:/ URI (as caches of earlier releases were); never logged.
DOWNLOAD_ONLY_FILES = {"registered_model_meta"}
# What a logged pipeline needs to load and predict (MLflow adds itself to the list).
MODEL_REQUIREMENTS = ("scikit-learn", "skops", "numpy", "pandas", "scipy")

log = logging.getLogger("driftline.registry")

# Types skops does not trust by default that we reviewed: plain data holders of scikit-learn models, no code.
REVIEWED_SKOPS_TYPES = [
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
]


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


@dataclass(frozen=True)
class LoggedModel:
    """A model logged to a run: MLflow's LoggedModel id, where its files are stored, and their checksum."""

    model_id: str
    location: str
    sha256: str


class ModelStore:
    """The versions' models and drift references: logged into a run, loaded (verified) through the local cache."""

    def __init__(self, connection: Connection):
        self._connection, self._cfg = connection, connection.cfg

    @property
    def _cache(self) -> Path:
        return registry_folders(self._cfg, self._connection).cache

    # --- saving -----------------------------------------------------------------------------------------------
    def log_model(self, run_id: str, model: Pipeline, input_example: pd.DataFrame, trusted: list[str]) -> LoggedModel:
        """The model as an MLflow LoggedModel of the run: skops (never pickle), with its signature and checksum.

        Saved to a temporary folder and uploaded by this store's client (MLflow's `log_model` would use the
        process-wide tracking URI); the checksum is of the files as stored, read back from the artifact store.
        """
        import mlflow.sklearn
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus
        from mlflow.models import Model

        client = self._connection.client
        experiment_id = client.get_run(run_id).info.experiment_id
        logged = client.create_logged_model(experiment_id, name=MODEL_ARTIFACT, source_run_id=run_id)
        try:
            with tempfile.TemporaryDirectory() as folder:
                saved = Path(folder) / MODEL_ARTIFACT
                mlflow.sklearn.save_model(
                    model,
                    str(saved),
                    mlflow_model=Model(
                        artifact_path=logged.artifact_location,
                        run_id=run_id,
                        model_uuid=logged.model_id,
                        model_id=logged.model_id,
                    ),
                    serialization_format="skops",
                    skops_trusted_types=trusted,
                    signature=self._signature(model, input_example),
                    input_example=input_example,
                    # Named, not inferred: inference loads the model in a subprocess to see what it imports (seconds
                    # per training, and it lists whatever the process had loaded, pytest included).
                    pip_requirements=[f"{name}=={version(name)}" for name in MODEL_REQUIREMENTS],
                )
                client.log_model_artifacts(logged.model_id, str(saved))
            client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
            with tempfile.TemporaryDirectory() as folder:
                stored = self._connection.download(logged.artifact_location, Path(folder))
                checksum = model_sha256(stored)
        except BaseException:
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        return LoggedModel(logged.model_id, logged.artifact_location, checksum)

    def _signature(self, model: Pipeline, input_example: pd.DataFrame):
        """Input types from the config, not from a few example rows (where a category may happen to be missing)."""
        from mlflow.models import ModelSignature, infer_signature
        from mlflow.types import ColSpec, Schema

        dataset = self._cfg.dataset
        inputs = Schema(
            [ColSpec("double", name) for name in dataset.numeric_features]
            + [ColSpec("string", name) for name in dataset.categorical_features]
        )
        outputs = infer_signature(input_example, model.predict(input_example)).outputs
        return ModelSignature(inputs=inputs, outputs=outputs)

    def log_reference(self, run_id: str, reference: DriftReference) -> None:
        """The drift reference into the run: features, predictions, profile and statistics."""
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            reference.features.to_parquet(root / "features.parquet", index=False)
            pd.DataFrame({"prediction": reference.predictions}).to_parquet(root / "predictions.parquet", index=False)
            (root / "profile.json").write_text(json.dumps(reference.profile.to_dict()))
            reference.stats.save(root / REFERENCE_STATS)
            self._connection.client.log_artifacts(run_id, folder, REFERENCE_ARTIFACTS)

    def log_estimator(self, run_id: str, estimator: PerformanceEstimator) -> None:
        """The performance estimator into the run, beside the drift reference (`estimator/`)."""
        with tempfile.TemporaryDirectory() as folder:
            estimator.save(Path(folder))
            self._connection.client.log_artifacts(run_id, folder, ESTIMATOR_ARTIFACTS)

    # --- loading ----------------------------------------------------------------------------------------------
    def _cached(self, folder: Path, fetch: Callable[[Path], object]) -> Path:
        """`folder` in the local cache, filled by `fetch(staging)` the first time (renamed into place when whole)."""
        if folder.exists():
            return folder
        self._cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self._cache))
        fetch(staging)
        try:
            staging.rename(folder)
        except OSError:  # another process cached it first; theirs is the same content
            shutil.rmtree(staging, ignore_errors=True)
        return folder

    def load_model(self, ref: ModelRef) -> Pipeline:
        """Load with skops, trusting our reviewed types: never the list stored beside the model, never pickle.

        The files are checked against the checksum recorded at registration first: changed bytes are not loaded. A
        cached copy that differs is stale (a partial copy, a changed file) and is fetched again; only the registry's
        own artifact differing from its record is refused (`ModelTampered`).
        """
        import skops.io

        recorded = self._recorded_sha256(ref)
        folder = self._cache / f"model-{ref.name}-v{ref.version}"
        if folder.exists() and _checksum_or_none(folder) != recorded:
            log.info("model %r v%s: cached copy at %s is stale; fetching it again", ref.name, ref.version, folder)
            _remove(folder)
        source = self._connection.version_source
        self._cached(folder, lambda staging: self._connection.download(source(ref.version), staging))
        found = _checksum_or_none(folder)
        if found != recorded:
            _remove(folder)  # not kept: nothing loads it, and a restored artifact is fetched at the next load
            raise ModelTampered(
                f"model {ref.name!r} v{ref.version}: the registry's artifact ({source(ref.version)}) has sha256 "
                f"{(found or 'unreadable')[:12]}…, its registration recorded {recorded[:12]}…; refusing to load a "
                f"changed model. Restore the artifact from a backup of the store at "
                f"{shown_uri(self._connection.tracking_uri)}, or take the version out of service: "
                f"driftline retire --version {ref.version} --reason tampered"
            )
        trusted = sorted(set(REVIEWED_SKOPS_TYPES) | set(self._cfg.model.trusted_types))
        return skops.io.load(folder / SKOPS_FILE, trusted=trusted)

    def _recorded_sha256(self, ref: ModelRef) -> str:
        recorded = self._connection.version_tags(ref.version).get(MODEL_SHA256)
        if recorded is None:
            raise ModelTampered(
                f"model {ref.name!r} v{ref.version} has no recorded checksum (tag {MODEL_SHA256}): its artifact "
                "cannot be verified, so it is not loaded; register a new version: driftline train --config <config>"
            )
        return recorded

    def load_reference(self, ref: ModelRef) -> DriftReference:
        """The version's drift reference, from the local cache after the first download."""
        folder = self._cached(
            self._cache / f"reference-{ref.run_id}",
            lambda staging: self._connection.client.download_artifacts(ref.run_id, REFERENCE_ARTIFACTS, str(staging)),
        )
        folder = folder / REFERENCE_ARTIFACTS if (folder / REFERENCE_ARTIFACTS).is_dir() else folder
        features = pd.read_parquet(folder / "features.parquet")
        predictions = pd.read_parquet(folder / "predictions.parquet")["prediction"].to_numpy()
        stats = (
            ReferenceStats.load(folder / REFERENCE_STATS)
            if (folder / REFERENCE_STATS).is_dir()
            else reference_stats(features, self._cfg, predictions)  # a version registered before reference/stats/
        )
        return DriftReference(
            features=features,
            predictions=predictions,
            profile=ReferenceProfile.from_dict(json.loads((folder / "profile.json").read_text())),
            stats=stats,
        )

    def load_estimator(self, ref: ModelRef) -> PerformanceEstimator | None:
        """The version's performance estimator, from the local cache after the first download; None when its run has
        none (trained before estimation existed, or its estimator could not be fitted)."""
        folder = self._cache / f"estimator-{ref.run_id}"
        if not folder.exists() and not self._connection.client.list_artifacts(ref.run_id, ESTIMATOR_ARTIFACTS):
            return None
        folder = self._cached(
            folder,
            lambda staging: self._connection.client.download_artifacts(ref.run_id, ESTIMATOR_ARTIFACTS, str(staging)),
        )
        return PerformanceEstimator.load(folder / ESTIMATOR_ARTIFACTS)

    def load_champion(self) -> Champion:
        """The champion, if it was trained on the features the config lists today (else scores would mislead)."""
        ref = self._connection.require_champion()
        reference = self.load_reference(ref)
        dataset = self._cfg.dataset
        trained_on = [c for c in reference.features.columns if c != dataset.target]
        added = sorted(set(dataset.feature_names) - set(trained_on))
        removed = sorted(set(trained_on) - set(dataset.feature_names))
        if added or removed:
            raise ConfigError(
                f"{self._cfg.source or 'config'}: dataset.features differ from champion v{ref.version}'s "
                f"(added {added}, removed {removed}); train a new champion: driftline train --config <config> "
                "--data <files with these columns>"
            )
        return Champion(ref=ref, model=self.load_model(ref), reference=reference, estimator=self.load_estimator(ref))

    def delete_model(self) -> None:
        """Remove the registered model and its versions (runs stay in the experiment as history), and the cache."""
        from mlflow.exceptions import MlflowException

        cache = self._cache
        try:
            self._connection.client.delete_registered_model(self._connection.name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        forget_identity(self._cfg)
        shutil.rmtree(cache, ignore_errors=True)


def _checksum_or_none(folder: Path) -> str | None:
    """The folder's checksum, or None when its files vanish while read (another process replacing a stale copy)."""
    try:
        return model_sha256(folder)
    except FileNotFoundError:
        return None


def _remove(folder: Path) -> None:
    """Out of the way at once (a rename), then deleted: a reader never sees half of it under its name."""
    doomed = folder.with_name(f".{folder.name}.stale-{uuid.uuid4().hex[:8]}")
    try:
        folder.rename(doomed)
    except OSError:  # another process removed it first
        return
    shutil.rmtree(doomed, ignore_errors=True)
