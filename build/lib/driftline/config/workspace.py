"""The workspace layout: every folder a model's runs read and write, derived from one config."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from pathlib import Path

from driftline.config.data import StorageConfig


@dataclass(frozen=True)
class WorkspaceFolders:
    """Where things live. Folders that hold one model's state are named after it, so configs sharing a workspace
    never read each other's batches, predictions or labels; a folder the config names (storage.*, landing.folder,
    scoring.inbox, labels.folder, dashboard.workspace) replaces the default."""

    root: Path  # storage.workspace: also the SQLite MLflow store and artifacts when no tracking server is set
    archive: Path  # validated batches, content-addressed and read-only, with their index
    quarantine: Path  # rejected files with their reasons
    outputs: Path  # scored files
    reports: Path  # Evidently HTML drift reports
    inbox: Path  # files the scheduled batch scoring picks up
    landing: Path  # files the watcher announces to the continuous-training flow
    prediction_log: Path  # every scored row (batch and online), one Parquet file per write
    labels: Path  # label files as they arrive
    label_store: Path  # accepted labels, as Parquet (id, label, file, received_at): every join reads them all
    labeled: Path  # labeled predictions turned into training batches before they are archived
    dashboard: Path  # the Evidently workspace `driftline dashboard` serves
    ledgers: Path  # the landing watcher's record of what it announced
    cache: Path  # model artifacts and drift references downloaded from the registry
    locks: Path  # the registry transition lock
    scratch: Path  # temporary files of chunked validation
    stack: Path  # `driftline stack up`: state, logs and databases of the local servers

    @classmethod
    def of(cls, storage: StorageConfig, model_name: str, landing: Path | None, inbox: Path | None,
           labels: Path | None, dashboard: Path | None) -> WorkspaceFolders:  # fmt: skip
        root = storage.workspace.resolve()

        def chosen(folder: Path | None, default: Path) -> Path:
            return (folder or default).resolve()

        return cls(
            root=root,
            archive=chosen(storage.archive_dir, root / "archive" / model_name),
            quarantine=chosen(storage.quarantine_dir, root / "quarantine"),
            outputs=chosen(storage.output_dir, root / "outputs"),
            reports=root / "reports",
            inbox=chosen(inbox, root / "inbox" / model_name),
            landing=chosen(landing, root / "landing" / model_name),
            prediction_log=root / "predictions" / model_name,
            labels=chosen(labels, root / "labels" / model_name),
            label_store=root / "label-store" / model_name,
            labeled=root / "labeled",
            dashboard=chosen(dashboard, root / "evidently"),
            ledgers=root / "ledgers",
            cache=root / "cache",
            locks=root / "locks",
            scratch=root / "scratch",
            stack=root / "stack",
        )

    def all(self) -> list[Path]:
        return list(astuple(self))
