"""The label rules: what a labeled batch's target column must hold for the task. One place, used for training data, new
batches (before they are archived), the retraining window and label files."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from driftline.config import DriftlineConfig, Task
from driftline.data.loading import as_text
from driftline.validation.report import Outcome, build_report

LABELS_PRESENT, LABELS_FIT_TASK = "expect_labels_to_be_present", "expect_labels_to_fit_the_task"
SHOWN = 10  # classes named in a message


def class_values(classes: list) -> dict[str, object]:
    """The model's classes by their text, so '1', 1 and 1.0 in a file all mean the class 1."""
    return {str(value): value for value in classes}


def as_classes(labels: pd.Series, trained: list) -> pd.Series:
    """Labels as the champion's class values; a new class (allowed for multiclass) keeps its text, or becomes a
    number when the trained classes are numbers, so the target column keeps one type."""
    known = class_values(trained)
    text = as_text(labels)
    numeric = bool(trained) and all(isinstance(value, (int, float, np.number)) for value in trained)

    def value(label: object) -> object:
        if pd.isna(label) or label in known:
            return known.get(str(label), label)
        number = pd.to_numeric(label, errors="coerce") if numeric else np.nan
        return label if pd.isna(number) else (int(number) if float(number).is_integer() else float(number))

    return text.map(value)


@dataclass(frozen=True)
class LabelRules:
    """What a labeled batch's target must hold: the task's kind of label and, once a champion exists, its classes."""

    column: str
    task: Task
    trained_classes: list | None = None  # the champion's; None before the first champion, and for regression
    allow_new_classes: bool = False  # multiclass: a class the champion never saw is reported instead of rejected

    @classmethod
    def of(cls, cfg: DriftlineConfig, trained_classes: list | None = None, column: str | None = None) -> LabelRules:
        return cls(column or cfg.dataset.target, cfg.dataset.task, trained_classes, cfg.validation.allow_new_classes)


@dataclass
class LabelTally:
    """What a file's label column holds, counted chunk by chunk: memory grows with the classes, not with the rows."""

    rules: LabelRules
    seen: bool = False  # whether the file has the label column at all
    rows: int = 0
    missing: int = 0
    classes: Counter = field(default_factory=Counter)  # classification: rows per class, by its text
    not_finite: int = 0  # regression: labels that are not finite numbers
    examples: list[str] = field(default_factory=list)

    def add(self, frame: pd.DataFrame) -> LabelTally:
        if self.rules.column not in frame:
            return self
        labels = frame[self.rules.column]
        present = labels.dropna()
        self.seen, self.rows, self.missing = True, self.rows + len(labels), self.missing + len(labels) - len(present)
        if self.rules.task.is_classification:
            self.classes.update(as_text(present).value_counts().to_dict())
            return self
        numbers = pd.to_numeric(present, errors="coerce").to_numpy(dtype=float)
        bad = present[~np.isfinite(numbers)]
        self.not_finite += len(bad)
        self.examples = list(dict.fromkeys([*self.examples, *map(str, bad.head(3))]))[:3]
        return self

    def outcomes(self) -> list[Outcome]:
        """Two checks a person reads in the validation table: every row labeled, every label one the task allows."""
        if not self.seen:
            return []
        column = {"column": self.rules.column}
        present = Outcome(
            LABELS_PRESENT,
            column,
            self.missing == 0,
            {
                "element_count": self.rows,
                "missing_count": self.missing,
                "problem": f"column {self.rules.column!r}: {self.missing} of {self.rows} rows have no label; fill "
                "them in or drop those rows",
            },
        )
        return [present, Outcome(LABELS_FIT_TASK, column, *self._fit())]

    def _fit(self) -> tuple[bool, dict]:
        rules, column = self.rules, self.rules.column
        if not rules.task.is_classification:
            return self.not_finite == 0, {
                "not_finite": self.not_finite,
                "problem": (
                    f"column {column!r}: {self.not_finite} labels are not finite numbers "
                    f"(e.g. {', '.join(self.examples)}); a regression target needs a number on every row"
                ),
            }
        found = sorted(self.classes)
        trained = None if rules.trained_classes is None else sorted(class_values(rules.trained_classes))
        new = [] if trained is None else [label for label in found if label not in trained]
        result: dict = {"classes": found, "trained_classes": trained, "new_classes": new}
        if rules.task is Task.binary and trained is None:
            result["problem"] = (
                f"dataset.task is binary but target {column!r} has {len(found)} classes "
                f"{found[:SHOWN]}; fix the labels or set task: multiclass"
            )
            return len(found) <= 2, result
        if rules.task is Task.binary:
            result["problem"] = (
                f"dataset.task is binary but target {column!r} has classes {found[:SHOWN]}: "
                f"{new[:SHOWN]} not among the champion's classes {trained}; fix the labels (a binary "
                "model learns exactly two classes)"
            )
            return not new, result
        unseen = (
            f"target {column!r} has classes {new[:SHOWN]} the champion was never trained on (it knows "
            f"{trained[:SHOWN] if trained else []})"
        )
        if new and rules.allow_new_classes:
            result["note"] = f"{unseen}; accepted (validation.allow_new_classes): the next retrain learns them"
        result["problem"] = (
            f"{unseen}; fix the labels, or set validation.allow_new_classes: true to learn them at the next retrain"
        )
        return not new or rules.allow_new_classes, result


def check_labels(frame: pd.DataFrame, rules: LabelRules) -> list[Outcome]:
    """The label checks of a whole frame (none when it has no label column)."""
    return LabelTally(rules).add(frame).outcomes()


def label_problems(frame: pd.DataFrame, rules: LabelRules) -> list[str]:
    """Why the labels of this frame break the rules, one readable line each (none: they are fine)."""
    return build_report(check_labels(frame, rules)).failures
