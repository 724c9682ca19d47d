"""Admission of new data: a batch or a file validated (its labels against the champion's classes), and quarantined with
its report when it fails."""

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
from driftline.registry import Registry
from driftline.validation import chunked, expectations
from driftline.validation.labels import LabelRules, check_labels
from driftline.validation.profile import ReferenceProfile
from driftline.validation.report import ValidationReport

# Shown the verdict (report, file, rows) before a failed file is quarantined: a person reads why the run stopped.
ShowVerdict = Callable[[ValidationReport, Path, int], None]
Consumed = TypeVar("Consumed")


def validate_batch_or_quarantine(
    batch: DataBatch,
    cfg: DriftlineConfig,
    profile: ReferenceProfile | None,
    trained_classes: list | None,
    for_training: bool,
    show: ShowVerdict | None = None,
) -> ValidationReport:
    """Training data must carry labels; a batch to score may omit them. Labels a batch carries follow the label rules
    (driftline.validation.labels), against the champion's `trained_classes` when there is a champion.

    A failed batch's file goes to quarantine with its report: DataRejected names where.
    """
    require_target = for_training or cfg.dataset.target in batch.frame
    suite = expectations.build_expectations(
        cfg.dataset, cfg.validation, profile, require_target, columns=batch.frame.columns
    )
    label_checks = check_labels(batch.frame, LabelRules.of(cfg, trained_classes))
    report = expectations.validate_frame(batch.frame, suite, also=label_checks)
    _quarantine_if_failed(report, batch.path, batch.rows, cfg, show)
    return report


def validate_file_or_quarantine(
    path: str | Path,
    cfg: DriftlineConfig,
    profile: ReferenceProfile | None,
    trained_classes: list | None,
    show: ShowVerdict | None = None,
) -> DataFile:
    """A file to score, read and validated `scoring.chunk_rows` rows at a time: memory does not grow with it.

    Refused outside the allowed folders before it is read; quarantined when unreadable or failing (DataRejected).
    """
    allowed = paths.allowed_path(path, cfg)  # outside the allowed folders: refused before it is read or moved
    with unreadable_quarantined(allowed, cfg.folders.quarantine):
        source, report = chunked.validate_file(allowed, cfg, profile, False, LabelRules.of(cfg, trained_classes))
    _quarantine_if_failed(report, source.path, source.rows, cfg, show)
    return source


def champion_classes(cfg: DriftlineConfig) -> list | None:
    """The classes the champion was trained on: what labels of new training data may be (None: no champion yet, or
    regression)."""
    registry = Registry(cfg)
    champion = registry.champion()
    if champion is None or not cfg.dataset.task.is_classification:
        return None
    return registry.load_reference(champion).trained_classes(cfg.dataset)


def admit_in_one_pass(
    path: str | Path,
    cfg: DriftlineConfig,
    profile: ReferenceProfile | None,
    trained_classes: list | None,
    consume: Callable[[chunked.CheckedFile, Callable[[], None]], Consumed],
    show: ShowVerdict | None = None,
) -> Consumed:
    """A file to score, read once: each chunk validated as it is read (labels it carries against the champion's
    `trained_classes`), then handed to `consume` (scoring).

    `consume` calls the verdict it is given before it commits anything: there the whole file is judged, and a
    failing file is quarantined whole (DataRejected), so nothing `consume` wrote appears. Whatever else stops
    `consume`, a file that fails validation is still quarantined for that. Refused outside the allowed folders
    before it is read; quarantined when unreadable.
    """
    allowed = paths.allowed_path(path, cfg)
    with (
        unreadable_quarantined(allowed, cfg.folders.quarantine),
        chunked.CheckedFile(allowed, cfg, profile, False, LabelRules.of(cfg, trained_classes)) as checked,
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
