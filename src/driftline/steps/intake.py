"""A new data file taken in: refused outside the allowed folders before it is read, quarantined when unreadable."""

from __future__ import annotations

from pathlib import Path

from driftline.config import DriftlineConfig
from driftline.data import loading, paths
from driftline.data.quarantine import unreadable_quarantined


def load_new_batch(path: str | Path, cfg: DriftlineConfig) -> loading.DataBatch:
    """Read and fingerprint a new file; a file that cannot be read is quarantined like one that fails validation."""
    allowed = paths.allowed_path(path, cfg)  # outside the allowed folders: refused before it is read or moved
    with unreadable_quarantined(allowed, cfg.folders.quarantine):
        return loading.load_batch(allowed, cfg.dataset)
