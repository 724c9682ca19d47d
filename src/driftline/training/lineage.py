"""Lineage of a training run: data fingerprints, config, code commit, package versions and seed."""

from __future__ import annotations

import os
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from driftline.config import DriftlineConfig

TRACKED_PACKAGES = [
    "driftline",
    "scikit-learn",
    "pandas",
    "numpy",
    "scipy",
    "mlflow",
    "prefect",
    "great-expectations",
    "evidently",
    "skops",
]
GIT_COMMIT_ENV = "DRIFTLINE_GIT_COMMIT"


@dataclass(frozen=True)
class DataSource:
    fingerprint: str
    rows: int
    source_name: str
    archived_file: str  # name inside the model's archive folder


@dataclass(frozen=True)
class Lineage:
    data: list[DataSource]
    config_fingerprint: str
    config_source: str | None
    git_commit: str | None
    seed: int
    packages: dict[str, str] = field(default_factory=dict)

    @property
    def training_rows(self) -> int:
        return sum(source.rows for source in self.data)

    def to_dict(self) -> dict:
        return {**asdict(self), "training_rows": self.training_rows}


def git_commit(folder: Path | None = None) -> str | None:
    """The commit the code runs from, with '-dirty' when the work tree has changes. Outside git (an image), the
    commit the image was built from ($DRIFTLINE_GIT_COMMIT, a build argument of infra/Dockerfile), else None."""
    built_from = os.environ.get(GIT_COMMIT_ENV) or None
    try:
        cwd = str(folder or Path.cwd())
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return built_from
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return built_from


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def collect_lineage(cfg: DriftlineConfig, data: list[DataSource]) -> Lineage:
    return Lineage(
        data=data,
        config_fingerprint=cfg.fingerprint,
        config_source=str(cfg.source) if cfg.source else None,
        git_commit=git_commit(Path(__file__).parent),
        seed=cfg.model.seed,
        packages=package_versions(),
    )
