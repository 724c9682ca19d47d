"""Sections about data: the dataset's columns and roles, validation rules, the landing folder, storage, and the
retraining window."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from driftline.config.base import FeatureType, Section, Task


class DatasetConfig(Section):
    target: str = Field(description="Column holding the label (classification) or value (regression).")
    task: Task
    features: dict[str, FeatureType] = Field(min_length=1, description="Feature column -> numeric|categorical.")
    id_column: str | None = Field(None, description="Row identifier, copied to scoring outputs; must be unique.")
    event_time_column: str | None = Field(None, description="Event time; enables the time-based holdout.")
    csv_delimiter: str = Field(",", min_length=1, max_length=1)
    passthrough_columns: list[str] = Field(
        default_factory=list,
        description="Columns a data file may carry besides the declared ones (ignored by the model, not copied to "
        "outputs). Any other column rejects the file: an undeclared column is schema drift upstream.",
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
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ValidationConfig(Section):
    max_null_fraction: float = Field(0.05, ge=0, le=1, description="Largest share of nulls allowed in a feature.")
    range_tolerance: float = Field(
        0.5, ge=0, description="Allowed overshoot of the reference min/max, as a share of the reference range."
    )
    max_out_of_range_fraction: float = Field(0.01, ge=0, le=1)
    max_unseen_category_fraction: float = Field(0.01, ge=0, le=1)
    max_abs_value: float = Field(
        1e15,
        gt=0,
        description="Largest magnitude a numeric feature may hold; beyond it (and ±inf) a file is rejected. 1e15 is "
        "under 2**53, where float64 still holds every integer; larger values are export errors (1e308 sentinels).",
    )
    allow_new_classes: bool = Field(
        False,
        description="multiclass: labels of a class the champion was never trained on are reported and accepted (the "
        "next retrain learns the class) instead of rejecting the batch. A binary task never takes a third class.",
    )
    extra_expectations: list[ExtraExpectation] = Field(default_factory=list)


class RetrainingConfig(Section):
    window: Literal["all", "last_batches", "last_days"] = Field(
        "all", description="Which archived batches a retrain uses."
    )
    size: int | None = Field(None, ge=1, description="N for last_batches / last_days.")
    every_batch: bool = Field(False, description="Retrain after every new batch, drift or not; the gate still decides.")

    @model_validator(mode="after")
    def _size_given_for_windows(self) -> RetrainingConfig:
        if self.window != "all" and self.size is None:
            raise ValueError(f"window {self.window!r} needs size (how many batches or days)")
        return self


class LandingConfig(Section):
    folder: Path | None = Field(
        None, description="Folder the watcher watches for new data; default <workspace>/landing/<model>."
    )
    poll_seconds: float = Field(2.0, gt=0, description="How often the watcher looks at the folder.")
    stable_seconds: float = Field(
        5.0, ge=0, description="A file counts as complete once its size and mtime stayed the same this long."
    )


class StorageConfig(Section):
    workspace: Path = Field(Path(".driftline"), description="Where archives, quarantine, outputs and MLflow live.")
    archive_dir: Path | None = None
    quarantine_dir: Path | None = None
    output_dir: Path | None = None
    allowed_roots: list[Path] = Field(
        default_factory=list,
        description="Folders data may also be read from and outputs written to, besides the workspace, the config "
        "file's folder and the folders the config names (landing, inbox, labels, outputs); relative to the "
        "current folder, like workspace. Symlinks are resolved before the check.",
    )
