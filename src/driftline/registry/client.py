"""The connection to MLflow for one registered model: URIs, retries, outages named, experiment, aliases, tags."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from driftline.config import TRACKING_URI_ENV, DriftlineConfig
from driftline.errors import NoChampion, RegistryUnavailable, TransitionRefused
from driftline.registry.audit_events import AliasHolders
from driftline.registry.refs import CHALLENGER, CHAMPION, PREVIOUS, RETIRED, RUN_TYPE, TAG, ModelRef

logging.getLogger("mlflow").setLevel(logging.WARNING)

HTTP_SETTINGS = {  # MLflow's own retry settings for calls to a tracking server, from reliability.*
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "registry_http_retries",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "registry_backoff_seconds",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "registry_timeout_seconds",
}
_OUTAGE_SIGNS = (
    "Max retries exceeded",
    "error responses",
    "Connection refused",
    "Read timed out",
    "Failed to establish",
    "RemoteDisconnected",
    "Connection aborted",
)


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


class Connection:
    """One registered model and its experiment on the configured MLflow server: what every other part calls."""

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
        self._retries = cfg.reliability.registry_http_retries
        self.client = _OutageNamed(
            MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri), cfg.tracking_uri, self._retries
        )

    def calls(self) -> AbstractContextManager[None]:
        """Calls through the `mlflow` module (not the client) with their outages named too."""
        return outage_named(self.cfg.tracking_uri, self._retries)

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
                f"model {self.name!r} has no champion yet at {self.cfg.tracking_uri}; "
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
