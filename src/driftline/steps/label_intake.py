"""Label files received: each checked against the champion's classes, kept in the label store and filed away to
done/; a bad one quarantined with its reasons."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from driftline.config import DriftlineConfig
from driftline.data import landing, paths
from driftline.data.quarantine import quarantine_file
from driftline.errors import DataRejected
from driftline.monitoring import label_store
from driftline.registry import Champion


@dataclass
class LabelIntake:
    """What one run received: the label files accepted (and how many rows), those rejected (now in quarantine)."""

    accepted: dict[str, int] = field(default_factory=dict)
    already_received: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def raise_if_rejected(self) -> None:
        if self.rejected:
            raise DataRejected(f"{len(self.rejected)} label file(s)", self.rejected)


def trained_classes(champion: Champion, cfg: DriftlineConfig) -> list | None:
    """The labels the champion was trained on (None for regression): label files must use these. Sorted, as the
    model's own classes are, so the second one is the positive class of binary metrics and of fairness."""
    if not cfg.dataset.task.is_classification:
        return None
    return sorted(champion.reference.stats.columns[cfg.dataset.target].counts.index)


def receive_labels(cfg: DriftlineConfig, champion: Champion, path: str | None) -> LabelIntake:
    """The label files waiting in labels.folder (or the one named): checked, kept in the label store and filed
    away to done/; a bad file is quarantined with its reasons and the others still count.

    Raises DataRejected for a named file that is rejected (quarantined, unless the path names no file).
    """
    classes, intake = trained_classes(champion, cfg), LabelIntake()
    waiting = (
        [paths.allowed_path(path, cfg)]
        if path
        else landing.settled_files(cfg.folders.labels, cfg.landing.stable_seconds, time.time())
    )
    for label_path in waiting:
        try:
            labels = label_store.load_labels(label_path, cfg, classes)
        except DataRejected as rejected:
            if not label_path.is_file():
                raise  # a mistyped path: nothing to quarantine
            destination = quarantine_file(label_path, cfg.folders.quarantine, rejected.reasons, {"stage": "labels"})
            quarantined = DataRejected(rejected.path, rejected.reasons, str(destination))
            if path:
                raise quarantined from None
            intake.rejected.append(str(quarantined))
            continue
        if label_store.store_labels(labels, cfg.folders.label_store) is None:
            intake.already_received.append(label_path.name)
        else:
            intake.accepted[label_path.name] = labels.rows
        if not path:
            landing.file_away(label_path, cfg.folders.labels / "done")
    return intake
