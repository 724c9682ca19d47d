"""Reproduction of a registered version: retrain from its archived data, recorded config and seed; compare."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import yaml

from driftline.config import DriftlineConfig, parse_config
from driftline.data.archive import read_archive_index
from driftline.data.loading import load_batch
from driftline.registry import TAG, Registry
from driftline.training.lineage import package_versions
from driftline.training.train import train_model


@dataclass(frozen=True)
class MetricMatch:
    name: str
    recorded: float
    reproduced: float | None

    @property
    def difference(self) -> float | None:
        return None if self.reproduced is None else abs(self.reproduced - self.recorded)


@dataclass(frozen=True)
class Reproduction:
    version: str
    tolerance: float
    missing: list[str] = field(default_factory=list)  # inputs that could not be found: nothing was retrained
    metrics: list[MetricMatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # environment differences that may explain a mismatch

    @property
    def matches(self) -> bool:
        return not self.missing and all(
            m.difference is not None and m.difference <= self.tolerance for m in self.metrics
        )


def reproduce(cfg: DriftlineConfig, version: str) -> Reproduction:
    """Retrain version `version` from the archive (content-addressed by sha256) with its recorded config YAML."""
    registry = Registry(cfg)
    tags = registry.version_tags(version)
    ref = registry.version_ref(version)
    tolerance = cfg.governance.reproduce_tolerance
    missing = []
    config_text = registry.recorded_config_text(ref.run_id)
    if config_text is None:
        missing.append(f"the recorded config (config/driftline.yaml) of run {ref.run_id}")
    archive_dir = registry.folders.archive
    archive = {entry.fingerprint: entry for entry in read_archive_index(archive_dir)}
    fingerprints = [f for f in tags.get(f"{TAG}data_fingerprints", "").split(",") if f]
    for fingerprint in fingerprints:
        entry = archive.get(fingerprint)
        if entry is None or not entry.location(archive_dir).is_file():
            missing.append(f"training data sha256 {fingerprint} (not in the archive {archive_dir})")
    if not fingerprints:
        missing.append(f"the data fingerprints of v{version} (tag {TAG}data_fingerprints)")
    if missing:
        return Reproduction(version, tolerance, missing=missing)
    recorded_cfg = parse_config(yaml.safe_load(config_text), f"config recorded with v{version}")
    batches = [load_batch(archive[f].location(archive_dir), recorded_cfg.dataset) for f in fingerprints]
    changed = [b.name for b, f in zip(batches, fingerprints, strict=True) if b.fingerprint != f]
    if changed:
        return Reproduction(version, tolerance, missing=[f"archived files changed since training: {changed}"])
    frame = pd.concat([batch.frame for batch in batches], ignore_index=True)
    reproduced = train_model(frame, recorded_cfg, source=f"archive of v{version}").metrics
    recorded = registry.holdout_metrics_of(ref.run_id)
    metrics = [MetricMatch(name, value, reproduced.get(name)) for name, value in recorded.items()]
    return Reproduction(version, tolerance, metrics=metrics, notes=_environment_notes(tags))


def _environment_notes(tags: dict[str, str]) -> list[str]:
    recorded = dict(item.split("=", 1) for item in tags.get(f"{TAG}packages", "").split(",") if "=" in item)
    now = package_versions()
    return [
        f"{name} was {version}, is {now.get(name, 'not installed')}"
        for name, version in recorded.items()
        if now.get(name) != version and name != "driftline"
    ]
