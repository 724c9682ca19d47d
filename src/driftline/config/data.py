"""Sections about data: the dataset's columns and roles, validation rules, the landing folder, storage, and the
retraining window."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from driftline.config.base import FeatureType, Section, Task


class DatasetConfig(Section):
    target: str = Field(description="The label (classification) or value (regression) column.")
    task: Task = Field(description="What the model predicts: one of two classes, one of many, or a number.")
    features: dict[str, FeatureType] = Field(
        min_length=1, description="The model's inputs (at least one): a map of column to its kind."
    )
    id_column: str | None = Field(
        None, description="Row id; must be unique and non-null; copied to scoring outputs. none: rows have no id."
    )
    event_time_column: str | None = Field(
        None, description="Event time (parsed as UTC); must be non-null; enables the time-based holdout."
    )
    csv_delimiter: str = Field(",", min_length=1, max_length=1, description="One character separating CSV fields.")
    passthrough_columns: list[str] = Field(
        default_factory=list,
        description="Columns a file may carry besides the declared ones (ignored by the model, not copied to "
        "outputs). The columns gate.slices.columns and gate.fairness.attribute name are declared already. Any other "
        "column rejects the file: an undeclared column is schema drift upstream.",
    )

    @model_validator(mode="after")
    def _roles_do_not_overlap(self) -> DatasetConfig:
        if self.target in self.features:
            raise ValueError(f"target {self.target!r} is also listed under features; remove it from features")
        for role in ("id_column", "event_time_column"):
            column = getattr(self, role)
            if column is not None and (column in self.features or column == self.target):
                raise ValueError(f"{role} {column!r} is also the target or a feature; give each column one role")
        return self

    @property
    def numeric_features(self) -> list[str]:
        return [name for name, kind in self.features.items() if kind is FeatureType.numeric]

    @property
    def categorical_features(self) -> list[str]:
        return [name for name, kind in self.features.items() if kind is FeatureType.categorical]

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)


class ExtraExpectation(Section):
    type: str = Field(
        description="A Great Expectations expectation in snake case, e.g. expect_column_values_to_be_between"
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="The expectation's arguments.")


class ValidationConfig(Section):
    max_null_fraction: float = Field(0.05, ge=0, le=1, description="Largest share of nulls allowed in a feature.")
    range_tolerance: float = Field(
        0.5,
        ge=0,
        description="How far values may go past the training min/max, as a share of the training range.",
    )
    max_out_of_range_fraction: float = Field(
        0.01, ge=0, le=1, description="Share of numeric values allowed outside that widened range."
    )
    max_unseen_category_fraction: float = Field(
        0.01, ge=0, le=1, description="Share of categorical values allowed that training never saw."
    )
    max_abs_value: float = Field(
        1e15,
        gt=0,
        description="Largest magnitude a numeric feature may hold; ±inf and larger reject the file, first training "
        "included. 1e15 is under 2^53, where float64 still holds every integer; larger values are export errors "
        "(1e308 sentinels).",
    )
    allow_new_classes: bool = Field(
        False,
        description="multiclass: a label class the champion was never trained on is reported (validation artifact, "
        "flow log) and accepted, so the next retrain learns it; false rejects the batch. A binary task never accepts "
        "a third class.",
    )
    extra_expectations: list[ExtraExpectation] = Field(
        default_factory=list,
        description="Extra Great Expectations checks, each {type: expect_..., kwargs: {...}}.",
    )


class RetrainingConfig(Section):
    window: Literal["all", "last_batches", "last_days"] = Field(
        "all", description="Which labeled archived batches a retrain uses."
    )
    size: int | None = Field(None, ge=1, description="N for last_batches / last_days (required for those).")
    every_batch: bool = Field(
        False,
        description="Retrain after every new batch (continuous-training, drift-monitoring), drift or not; the gate "
        "still decides. The every-batch policy of driftline backtest.",
    )

    @model_validator(mode="after")
    def _size_given_for_windows(self) -> RetrainingConfig:
        if self.window != "all" and self.size is None:
            raise ValueError(f"window {self.window!r} needs size (how many batches or days)")
        return self


class LandingConfig(Section):
    folder: Path | None = Field(
        None, description="The folder the watcher watches for new data. none: `<workspace>/landing/<model_name>`."
    )
    poll_seconds: float = Field(2.0, gt=0, description="How often the watcher looks.")
    stable_seconds: float = Field(
        5.0,
        ge=0,
        description="A file is complete once its size and modification time stayed the same this long.",
    )


class StorageConfig(Section):
    workspace: Path = Field(
        Path(".driftline"),
        description="Where the default MLflow database, each registry's folder (archive, cache, ledger, prediction "
        "log), quarantine, outputs and reports live; relative to the folder driftline runs from.",
    )
    archive_dir: Path | None = Field(
        None,
        description="Where admitted batches are archived. none: `<workspace>/registries/<model>-<id>/archive`. A named "
        "archive_dir belongs to the first registry that uses it (a marker file in it): used with another registry "
        "it is refused, naming both.",
    )
    quarantine_dir: Path | None = Field(
        None, description="Where rejected files go, with their reports. none: `<workspace>/quarantine`."
    )
    output_dir: Path | None = Field(None, description="Where scoring outputs are written. none: `<workspace>/outputs`.")
    allowed_roots: list[Path] = Field(
        default_factory=list,
        description="Folders data may be read from and outputs written to, besides the workspace, the config file's "
        "folder and the folders the config names (landing, inbox, labels, outputs); relative to the current folder, "
        "like workspace. Symlinks are resolved before the check; any other path is refused (exit 1) and left "
        "untouched.",
    )
