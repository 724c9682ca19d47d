"""The registry's identity (a UUID tag on the registered model) and the local folders keyed by it.

The identity belongs to the store, not to the URI it is reached through: the SQLite file and an MLflow server
serving that file give the same identity, any other store another one. Every piece of local state that refers to a
registry's versions lives under `RegistryFolders` of that identity, so no registry reads another one's files.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

from driftline.config import DriftlineConfig
from driftline.config.workspace import REGISTRY_MARKER, RegistryFolders, safe_name, short_id
from driftline.errors import ConfigError
from driftline.registry.client import Connection, shown_uri
from driftline.registry.refs import TAG

REGISTRY_ID = f"{TAG}registry_id"  # registered-model tag: the identity of this model in this store
# uuid5 namespace of the identities given to models registered before identities existed (see `_identity_of_existing`).
_EXISTING_MODELS = uuid.UUID("6f1c1c52-8a52-4f43-9a57-3d6b0bd1a7e4")

log = logging.getLogger("driftline.registry")

_lock = threading.Lock()
_known: dict[tuple[str, str], str] = {}  # (tracking URI, model name) -> identity: one MLflow call per process
_marked: set[tuple[Path, Path]] = set()  # (folder, archive) whose markers this process checked


def registry_folders(cfg: DriftlineConfig, connection: Connection | None = None) -> RegistryFolders:
    """The folders of the config's model in its registry, the identity looked up (or given) once per process."""
    key = (cfg.tracking_uri, cfg.registry.model_name)
    with _lock:
        if key not in _known:
            _known[key] = registry_identity(connection or Connection(cfg))
        folders = cfg.registry_folders(_known[key])
        if (folders.root, folders.archive) not in _marked:
            _mark(folders, cfg)
            _marked.add((folders.root, folders.archive))
    return folders


def forget_identity(cfg: DriftlineConfig) -> None:
    """After the registered model was deleted: a model registered again under the name gets a new identity."""
    with _lock:
        _known.pop((cfg.tracking_uri, cfg.registry.model_name), None)


def registry_identity(connection: Connection) -> str:
    """The identity tag of the registered model, which is registered (with a new identity) if it is not yet."""
    from mlflow.exceptions import MlflowException

    client, name = connection.client, connection.name
    try:
        registered = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            client.create_registered_model(
                name, tags={REGISTRY_ID: str(uuid.uuid4())}, description=connection.cfg.description or None
            )
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # else another process registered it first: theirs
                raise
        registered = client.get_registered_model(name)
    return registered.tags.get(REGISTRY_ID) or _identity_of_existing(connection)


def _identity_of_existing(connection: Connection) -> str:
    """A model registered before identities: its identity is derived from its creation time (so processes doing
    this at once agree), and with versions registered it adopts the folders that were keyed by its name alone."""
    cfg, client, name = connection.cfg, connection.client, connection.name
    folders = cfg.folders.registries
    folders.mkdir(parents=True, exist_ok=True)
    with (folders / f".{safe_name(name)}.identity.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        registered = client.get_registered_model(name)
        if registered.tags.get(REGISTRY_ID):  # another process gave it its identity meanwhile
            return registered.tags[REGISTRY_ID]
        registry_id = str(uuid.uuid5(_EXISTING_MODELS, f"{name}\0{registered.creation_timestamp}"))
        if client.search_model_versions(f"name = '{name}'", max_results=1):
            _adopt(cfg, cfg.registry_folders(registry_id))
        client.set_registered_model_tag(name, REGISTRY_ID, registry_id)
        return registry_id


def _adopt(cfg: DriftlineConfig, folders: RegistryFolders) -> None:
    """Move the state kept under the model's name alone into the registry's folder (once; moved, never copied)."""
    for field_name, old in RegistryFolders.before_identities(cfg.folders, cfg.storage, cfg.registry.model_name).items():
        new = getattr(folders, field_name)
        if old.exists() and not new.exists():
            new.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(old), str(new))
            log.warning(
                "model %r at %s: adopted %s as %s (state from before registry identities)",
                cfg.registry.model_name,
                shown_uri(cfg.tracking_uri),
                old,
                new,
            )


def _marker(registry_id: str, cfg: DriftlineConfig) -> dict[str, str]:
    return {
        "registry_id": registry_id,
        "model": cfg.registry.model_name,
        "tracking_uri": shown_uri(cfg.tracking_uri),
        "created_at": datetime.now(UTC).isoformat(),
    }


def _mark(folders: RegistryFolders, cfg: DriftlineConfig) -> None:
    """The registry's folder says whose it is; a named archive (storage.archive_dir) refuses another registry."""
    named_archive = [] if folders.archive.is_relative_to(folders.root) else [folders.archive]
    for folder in [folders.root, *named_archive]:
        marker = folder / REGISTRY_MARKER
        if not marker.exists():
            folder.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps(_marker(folders.registry_id, cfg), indent=2) + "\n")
            continue
        theirs = json.loads(marker.read_text())
        if theirs["registry_id"] != folders.registry_id:
            raise ConfigError(
                f"{cfg.source or 'config'}: storage.archive_dir {folder} holds the archive of model "
                f"{theirs['model']!r} in registry {short_id(theirs['registry_id'])} ({theirs['tracking_uri']}), not "
                f"of registry {short_id(folders.registry_id)} ({shown_uri(cfg.tracking_uri)}); point "
                f"storage.archive_dir at a folder of its own for this registry, or registry.tracking_uri back at "
                f"{theirs['tracking_uri']}"
            )
