"""Admission of new data: a batch or a file validated, and quarantined with its report when it fails."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from driftline.config import DriftlineConfig
from driftline.data import paths
from driftline.data.chunking import DataFile
from driftline.data.loading import DataBatch
from driftline.data.quarantine import quarantine_file, unreadable_quarantined
from driftline.errors import DataRejected
from driftline.validation import chunked, expectations
from driftline.validation.profile import ReferenceProfile
from driftline.validation.report import ValidationReport

# Shown the verdict (report, file, rows) before a failed file is quarantined: a person reads why the run stopped.
ShowVerdict = Callable[[ValidationReport, Path, int], None]
Consumed = TypeVar("Consumed")


def validate_batch_or_quarantine(
    batch: DataBatch, cfg: DriftlineConfig, profile: ReferenceProfile | None, for_training: bool,
    show: ShowVerdict | None = None,
) -> ValidationReport:  # fmt: skip
    """Training data must carry labels; a batch to score may omit them, but labels it carries must be complete.

    A failed batch's file goes to quarantine with its report: DataRejected names where.
    """
    require_target = for_training or cfg.dataset.target in batch.frame
    suite = expectations.build_expectations(
        cfg.dataset, cfg.validation, profile, require_target, columns=batch.frame.columns
    )
    report = expectations.validate_frame(batch.frame, suite)
    _quarantine_if_failed(report, batch.path, batch.rows, cfg, show)
    return report


def validate_file_or_quarantine(
    path: str | Path, cfg: DriftlineConfig, profile: ReferenceProfile | None, show: ShowVerdict | None = None
) -> DataFile:
    """A file to score, read and validated `scoring.chunk_rows` rows at a time: memory does not grow with it.

    Refused outside the allowed folders before it is read; quarantined when unreadable or failing (DataRejected).
    """
    allowed = paths.allowed_path(path, cfg)  # outside the allowed folders: refused before it is read or moved
    with unreadable_quarantined(allowed, cfg.folders.quarantine):
        source, report = chunked.validate_file(allowed, cfg, profile, for_training=False)
    _quarantine_if_failed(report, source.path, source.rows, cfg, show)
    return source


def admit_in_one_pass(
    path: str | Path, cfg: DriftlineConfig, profile: ReferenceProfile | None,
    consume: Callable[[chunked.CheckedFile, Callable[[], None]], Consumed], show: ShowVerdict | None = None,
) -> Consumed:  # fmt: skip
    """A file to score, read once: each chunk validated as it is read, then handed to `consume` (scoring).

    `consume` calls the verdict it is given before it commits anything: there the whole file is judged, and a
    failing file is quarantined whole (DataRejected), so nothing `consume` wrote appears. Whatever else stops
    `consume`, a file that fails validation is still quarantined for that. Refused outside the allowed folders
    before it is read; quarantined when unreadable.
    """
    allowed = paths.allowed_path(path, cfg)
    with (
        unreadable_quarantined(allowed, cfg.folders.quarantine),
        chunked.CheckedFile(allowed, cfg, profile, for_training=False) as checked,
    ):
        judged: list[bool] = []

        def verdict() -> None:
            if not judged:
                judged.append(True)
                _quarantine_if_failed(checked.verdict(), checked.path, checked.source.rows, cfg, show)

        try:
            return consume(checked, verdict)
        except DataRejected:
            raise
        except Exception:
            verdict()
            raise


def _quarantine_if_failed(
    report: ValidationReport, path: Path, rows: int, cfg: DriftlineConfig, show: ShowVerdict | None
) -> None:
    if show is not None:
        show(report, path, rows)
    if not report.success:
        destination = quarantine_file(path, cfg.folders.quarantine, report.failures, report.to_dict())
        raise DataRejected(str(path), report.failures, str(destination))
