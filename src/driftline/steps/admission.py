"""Admission of new data: a file read (refused outside the allowed folders), a batch or a file validated (its labels
against the champion's classes), and quarantined with its report when it is unreadable or fails."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from driftline.config import DriftlineConfig
from driftline.data import loading, paths
from driftline.data.chunking import Chunk, DataFile
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
        cfg.dataset,
        cfg.validation,
        profile,
        require_target,
        columns=batch.frame.columns,
        declared=cfg.declared_columns,
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


class Admission:
    """A file to score on its way in, read once: `chunks()` gives its chunks, each validated as it is read (the
    expectations counted as they pass; once a chunk dooms the file, no more are given), and `judge()` reads what is
    left and judges the whole file, quarantining a failing one (DataRejected) before anything scored from it is
    committed. Made by `admit_in_one_pass`."""

    def __init__(self, checked: chunked.CheckedFile, cfg: DriftlineConfig, show: ShowVerdict | None):
        self._checked, self._cfg, self._show = checked, cfg, show
        self._judged = False

    @property
    def name(self) -> str:
        return self._checked.name

    @property
    def fingerprint(self) -> str:
        return self._checked.fingerprint

    @property
    def source(self) -> DataFile:
        """The file as read: its path, fingerprint, rows and columns (all its rows once judged)."""
        return self._checked.source

    def chunks(self) -> Iterator[Chunk]:
        """The validated chunks in file order, the next one read and validated on a thread meanwhile."""
        return iter(self._checked)

    def judge(self) -> None:
        """The whole file's verdict, shown: a file that fails goes to quarantine whole (DataRejected). Judged once."""
        if not self._judged:
            self._judged = True
            checked = self._checked
            _quarantine_if_failed(checked.verdict(), checked.path, checked.source.rows, self._cfg, self._show)


@contextmanager
def admit_in_one_pass(
    path: str | Path,
    cfg: DriftlineConfig,
    profile: ReferenceProfile | None,
    trained_classes: list | None,
    show: ShowVerdict | None = None,
) -> Iterator[Admission]:
    """A file to score, read once (`Admission`): each chunk validated as it is read, labels it carries against the
    champion's `trained_classes`.

    Refused outside the allowed folders before it is read; quarantined when unreadable. Whatever else stops the
    `with` block before the file is judged (scoring failed), a file that fails validation is still quarantined; the
    caller judges it before committing what it made of the chunks.
    """
    allowed = paths.allowed_path(path, cfg)
    with (
        unreadable_quarantined(allowed, cfg.folders.quarantine),
        chunked.CheckedFile(allowed, cfg, profile, False, LabelRules.of(cfg, trained_classes)) as checked,
    ):
        admission = Admission(checked, cfg, show)
        try:
            yield admission
        except DataRejected:
            raise
        except Exception:
            admission.judge()
            raise
        admission.judge()  # a file is never let through unjudged


def load_new_batch(path: str | Path, cfg: DriftlineConfig) -> DataBatch:
    """Read and fingerprint a new file; refused outside the allowed folders before it is read or moved, quarantined
    like one that fails validation when it cannot be read."""
    allowed = paths.allowed_path(path, cfg)
    with unreadable_quarantined(allowed, cfg.folders.quarantine):
        return loading.load_batch(allowed, cfg.dataset)


def _quarantine_if_failed(
    report: ValidationReport, path: Path, rows: int, cfg: DriftlineConfig, show: ShowVerdict | None
) -> None:
    if show is not None:
        show(report, path, rows)
    if not report.success:
        destination = quarantine_file(path, cfg.folders.quarantine, report.failures, report.to_dict())
        raise DataRejected(str(path), report.failures, str(destination))
