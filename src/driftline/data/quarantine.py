"""Quarantine: a rejected file moved aside with its reasons and validation report."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from driftline.errors import DataRejected


def quarantine_file(path: Path, quarantine_dir: Path, reasons: list[str], report: dict, copy: bool = False) -> Path:
    """Move a rejected file out of the way, with its reasons and validation report beside it; with `copy`, the
    original stays until the caller has recorded where its copy went (the archive removes it after)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    destination = quarantine_dir / f"{stamp}-{path.name}"
    destination.mkdir(parents=True, exist_ok=True)
    if path.exists():
        (shutil.copy2 if copy else shutil.move)(str(path), destination / path.name)
    summary = {"file": str(path), "quarantined_at": stamp, "reasons": reasons, "report": report}
    (destination / "validation.json").write_text(json.dumps(summary, indent=2, default=str))
    return destination


@contextmanager
def unreadable_quarantined(path: Path, quarantine_dir: Path) -> Iterator[None]:
    """A file that cannot be read is quarantined like one that fails validation; DataRejected names where it went."""
    try:
        yield
    except DataRejected as rejected:
        if not path.is_file():
            raise  # a mistyped path: nothing to quarantine
        destination = quarantine_file(path, quarantine_dir, rejected.reasons, {"stage": "load"})
        raise DataRejected(rejected.path, rejected.reasons, str(destination)) from None
