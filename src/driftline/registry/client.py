"""The connection to MLflow for one registered model: its own client, outages named, experiment, aliases, tags."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from driftline.config import DriftlineConfig
from driftline.config.base import REMOTE_TRACKING_SCHEMES
from driftline.errors import NoChampion, RegistryUnavailable, TransitionRefused
from driftline.outages import is_outage, outage_cause, outage_url
from driftline.registry.audit_events import AliasHolders
from driftline.registry.refs import CHALLENGER, CHAMPION, PREVIOUS, RETIRED, RUN_TYPE, TAG, ModelRef

logging.getLogger("mlflow").setLevel(logging.WARNING)

HTTP_SETTINGS = {  # MLflow's own retry settings for calls to a tracking server, from reliability.*
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "registry_http_retries",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "registry_backoff_seconds",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "registry_timeout_seconds",
}


def use_http_settings(cfg: DriftlineConfig, command: bool = False) -> None:
    """MLflow reads its HTTP retry settings from the environment only, for every client of the process: they are one
    process-wide setting, taken from the first config the process opens (variables already set win). A `driftline`
    command sets them from its own config (`command=True`): what it inherited from a parent process does not win."""
    for variable, field_name in HTTP_SETTINGS.items():
        value = str(getattr(cfg.reliability, field_name))
        if command:
            os.environ[variable] = value
        else:
            os.environ.setdefault(variable, value)


def shown_uri(uri: str) -> str:
    """The URI without credentials (a marker, a log line or an error message is no place for a password)."""
    return re.sub(r"//[^/@]*@", "//", uri)


def unavailable(error: BaseException, tracking_uri: str) -> RegistryUnavailable | None:
    """The one line naming an outage of the MLflow store (what was called, the status or the refusal, the fix), or
    None if the error is something else (a missing version, a bad request, a bug) that no retry would change."""
    if not is_outage(error):
        return None
    cause, url = outage_cause(error), outage_url(error)
    if not tracking_uri.startswith(REMOTE_TRACKING_SCHEMES):
        return RegistryUnavailable(
            f"MLflow store {shown_uri(tracking_uri)} unavailable: {cause}; run again once the database is free or "
            "back (an MLflow server in front of it, driftline stack up, serves many writers)"
        )
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES

    called = f" ({urlsplit(url).path})" if url else ""
    return RegistryUnavailable(
        f"MLflow tracking server {shown_uri(tracking_uri)} unavailable{called}: {cause} after "
        f"{MLFLOW_HTTP_REQUEST_MAX_RETRIES.get()} retries; check the server, or raise reliability.registry_http_retries"
    )


@contextmanager
def outage_named(tracking_uri: str) -> Iterator[None]:
    """An outage inside the block leaves it as `RegistryUnavailable` (one line, the original as its cause)."""
    try:
        yield
    except RegistryUnavailable:
        raise
    except Exception as error:
        named = unavailable(error, tracking_uri)
        if named is None:
            raise
        raise named from error


class _OutageNamed:
    """The MLflow client whose calls fail with `RegistryUnavailable` (one line) once MLflow's retries are spent."""

    def __init__(self, client, tracking_uri: str):
        self._client, self._uri = client, tracking_uri

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            with outage_named(self._uri):
                return attribute(*args, **kwargs)

        return call


class Connection:
    """One registered model and its experiment on the configured MLflow store: what every other part calls.

    The URIs live on its own `MlflowClient`: nothing here sets MLflow's global tracking or registry URI or
    `MLFLOW_TRACKING_URI`, so one process may hold connections to several stores at once. MLflow's HTTP retry
    settings are the one process-wide setting (`use_http_settings`).
    """

    def __init__(self, cfg: DriftlineConfig):
        from mlflow import MlflowClient

        self.cfg = cfg
        self.name = cfg.registry.model_name
        self.tracking_uri = cfg.tracking_uri
        cfg.folders.root.mkdir(parents=True, exist_ok=True)
        use_http_settings(cfg)
        self.client = _OutageNamed(
            MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri), self.tracking_uri
        )

    def _files_at(self, artifact_uri: str):
        """The artifact repository of a storage location of this store (a version's or a logged model's files)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        return get_artifact_repository(artifact_uri, tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def download(self, artifact_uri: str, folder: Path) -> Path:
        """The files at a storage location of this store into `folder` (an existing folder), as they are there."""
        with outage_named(self.tracking_uri):
            self._files_at(artifact_uri).download_artifacts("", dst_path=str(folder))
        return folder

    def file_names(self, artifact_uri: str) -> set[str]:
        """The names of the files and folders directly at a storage location of this store."""
        with outage_named(self.tracking_uri):
            return {Path(info.path).name for info in self._files_at(artifact_uri).list_artifacts("") or []}

    def run_text(self, run_id: str, artifact_path: str) -> str | None:
        """A text artifact of a run, or None if the run has no such file."""
        from mlflow.exceptions import MlflowException

        with tempfile.TemporaryDirectory() as folder:
            try:
                return Path(self.client.download_artifacts(run_id, artifact_path, folder)).read_text(encoding="utf-8")
            except (MlflowException, OSError):  # missing: a local store's OSError, a server's 404 (requests' errors)
                return None

    def version_source(self, version: str) -> str:
        """Where a version's model files are stored (the logged model's artifacts), for downloads and listings."""
        return self.client.get_model_version_download_uri(self.name, version)

    @property
    def experiment_id(self) -> str:
        return self.experiment_named(self.cfg.experiment_name)

    def experiment_named(self, name: str, tags: dict[str, str] | None = None) -> str:
        """The id of an experiment of this store, created (at the configured artifact location) if it is missing."""
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        return self.client.create_experiment(name, artifact_location=self.cfg.artifact_location, tags=tags)

    def runs_of_type(self, run_type: str, extra_filter: str = "", max_results: int = 10_000) -> list:
        query = f"tags.`{RUN_TYPE}` = '{run_type}'" + (f" AND {extra_filter}" if extra_filter else "")
        return self.client.search_runs([self.experiment_id], filter_string=query, max_results=max_results)

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
                f"model {self.name!r} has no champion yet at {shown_uri(self.tracking_uri)}; "
                "train one first: driftline train --config <config> --data <file>"
            )
        return champion

    def alias_holders(self) -> AliasHolders:
        champion, previous = self.alias(CHAMPION), self.alias(PREVIOUS)
        return AliasHolders(champion.version if champion else None, previous.version if previous else None)

    # --- versions -----------------------------------------------------------------------------------------------
    def version_tags(self, version: str) -> dict[str, str]:
        from mlflow.exceptions import MlflowException

        try:
            return dict(self.client.get_model_version(self.name, version).tags)
        except MlflowException:
            raise TransitionRefused(f"model {self.name!r} has no version {version}; see driftline status") from None

    def version_ref(self, version: str) -> ModelRef:
        found = self.client.get_model_version(self.name, version)
        return ModelRef(self.name, str(found.version), found.run_id)

    def tag_version_and_run(self, ref: ModelRef, tags: dict[str, str]) -> None:
        """The same tags on the model version and on its training run (both UIs show them)."""
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, ref.version, key, value)
            self.client.set_tag(ref.run_id, key, value)
