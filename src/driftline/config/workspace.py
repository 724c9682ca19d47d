"""The workspace layout: every folder a model's runs read and write, derived from one config."""

from __future__ import annotations

import re
from dataclasses import astuple, dataclass
from pathlib import Path

from driftline.config.data import StorageConfig

REGISTRY_MARKER = "registry.json"  # in a registry's folder (and a named archive): whose state it holds


def safe_name(name: str) -> str:
    """A model name as a file name: what is not a letter, digit, `_`, `.` or `-` becomes `_`."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def short_id(registry_id: str) -> str:
    """The first 12 hex digits of a registry identity: how folders, status and messages name it."""
    return registry_id.replace("-", "")[:12]


@dataclass(frozen=True)
class WorkspaceFolders:
    """Where things live that do not depend on the registry: files as they arrive and what was made of them.
    A folder the config names (storage.*, landing.folder, scoring.inbox, labels.folder, dashboard.workspace)
    replaces the default. The state a registry's versions refer to lives in `RegistryFolders`."""

    root: Path  # storage.workspace: also the SQLite MLflow store and artifacts when no tracking server is set
    registries: Path  # one folder per (model, registry identity): `RegistryFolders`
    quarantine: Path  # rejected files with their reasons
    outputs: Path  # scored files
    reports: Path  # Evidently HTML drift reports
    inbox: Path  # files the scheduled batch scoring picks up
    landing: Path  # files the watcher announces to the continuous-training flow
    labels: Path  # label files as they arrive
    dashboard: Path  # the Evidently workspace `driftline dashboard` serves
    scratch: Path  # temporary files of chunked validation
    stack: Path  # `driftline stack up`: state, logs and databases of the local servers

    @classmethod
    def of(
        cls,
        storage: StorageConfig,
        model_name: str,
        landing: Path | None,
        inbox: Path | None,
        labels: Path | None,
        dashboard: Path | None,
    ) -> WorkspaceFolders:
        root = storage.workspace.resolve()

        def chosen(folder: Path | None, default: Path) -> Path:
            return (folder or default).resolve()

        return cls(
            root=root,
            registries=root / "registries",
            quarantine=chosen(storage.quarantine_dir, root / "quarantine"),
            outputs=chosen(storage.output_dir, root / "outputs"),
            reports=root / "reports",
            inbox=chosen(inbox, root / "inbox" / model_name),
            landing=chosen(landing, root / "landing" / model_name),
            labels=chosen(labels, root / "labels" / model_name),
            dashboard=chosen(dashboard, root / "evidently"),
            scratch=root / "scratch",
            stack=root / "stack",
        )

    def all(self) -> list[Path]:
        return list(astuple(self))


@dataclass(frozen=True)
class RegistryFolders:
    """The local state of one model in one registry: what refers to its versions or records what its runs did.

    Keyed by the registry's identity (a tag on the registered model), so two registries sharing a workspace (the
    CLI's SQLite store, a stack on PostgreSQL) never read each other's archive, cache or ledger."""

    registry_id: str
    root: Path  # <workspace>/registries/<model>-<id[:12]>, with the marker naming the identity
    archive: Path  # validated batches, content-addressed and read-only, with their index (or storage.archive_dir)
    prediction_log: Path  # every scored row (batch and online), one Parquet file per write
    label_store: Path  # accepted labels, as Parquet (id, label, file, received_at): every join reads them all
    labeled: Path  # labeled predictions turned into training batches before they are archived
    landing_ledger: Path  # every arrival in the landing folder and the outcome of the run that processed it
    cache: Path  # model artifacts and drift references downloaded from the registry (verified on every load)
    locks: Path  # the registry transition lock

    @classmethod
    def of(
        cls, workspace: WorkspaceFolders, storage: StorageConfig, model_name: str, registry_id: str
    ) -> RegistryFolders:
        root = workspace.registries / f"{safe_name(model_name)}-{short_id(registry_id)}"
        return cls(
            registry_id=registry_id,
            root=root,
            archive=storage.archive_dir.resolve() if storage.archive_dir else root / "archive",
            prediction_log=root / "predictions",
            label_store=root / "label-store",
            labeled=root / "labeled",
            landing_ledger=root / "landing.jsonl",
            cache=root / "cache",
            locks=root / "locks",
        )

    @staticmethod
    def before_identities(workspace: WorkspaceFolders, storage: StorageConfig, model_name: str) -> dict[str, Path]:
        """Where this state lived before registries had identities (keyed by model name only): what a registry
        adopts when it gets its identity with versions already registered. The field name -> the old path."""
        old = {
            "prediction_log": workspace.root / "predictions" / model_name,
            "label_store": workspace.root / "label-store" / model_name,
            "landing_ledger": workspace.root / "ledgers" / f"{model_name}-landing.jsonl",
        }
        return old if storage.archive_dir else {"archive": workspace.root / "archive" / model_name, **old}
