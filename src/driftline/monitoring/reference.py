"""The drift reference of a model version: statistics of every training row (stored with the version), a bounded sample,
the holdout predictions and the data profile."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from driftline.config import DatasetConfig, DriftlineConfig, FeatureType, Task
from driftline.errors import ConfigError
from driftline.monitoring.drift_stats import CategoricalColumn, ColumnSummary, NumericColumn, summarize
from driftline.validation.profile import ReferenceProfile, learn_profile

STATS_MANIFEST = "stats.json"


def _save_column(column: ColumnSummary, folder: Path, stem: str) -> dict:
    if isinstance(column, NumericColumn):
        np.save(folder / f"{stem}.npy", column.values, allow_pickle=False)
        return {"kind": "numeric", "file": f"{stem}.npy", "std": column.std}
    counts = pd.DataFrame({"value": column.counts.index, "count": column.counts.to_numpy()})
    counts.to_parquet(folder / f"{stem}.parquet", index=False)  # parquet keeps the values' type (str, int, bool)
    return {"kind": "categorical", "file": f"{stem}.parquet"}


def _load_column(folder: Path, entry: dict) -> ColumnSummary:
    if entry["kind"] == "numeric":
        return NumericColumn(np.load(folder / entry["file"], allow_pickle=False), float(entry["std"]))
    counts = pd.read_parquet(folder / entry["file"])
    return CategoricalColumn(pd.Series(counts["count"].to_numpy(), index=counts["value"]))


@dataclass(frozen=True)
class ReferenceStats:
    """What drift needs from the reference, per column, computed once per model version and stored with it."""

    rows: int
    columns: dict[str, ColumnSummary]  # the features and the target
    prediction: ColumnSummary | None = None  # the champion's signal on its holdout

    def save(self, folder: Path) -> None:
        """`stats.json` plus one file per column: sorted float64 values (.npy) or category counts (.parquet)."""
        folder.mkdir(parents=True, exist_ok=True)
        columns = [{"name": name, **_save_column(column, folder, str(index))}
                   for index, (name, column) in enumerate(self.columns.items())]  # fmt: skip
        prediction = None if self.prediction is None else _save_column(self.prediction, folder, "prediction")
        manifest = {"rows": self.rows, "columns": columns, "prediction": prediction}
        (folder / STATS_MANIFEST).write_text(json.dumps(manifest, indent=1))

    @classmethod
    def load(cls, folder: Path) -> ReferenceStats:
        manifest = json.loads((folder / STATS_MANIFEST).read_text())
        columns = {entry["name"]: _load_column(folder, entry) for entry in manifest["columns"]}
        prediction = None if manifest["prediction"] is None else _load_column(folder, manifest["prediction"])
        return cls(rows=int(manifest["rows"]), columns=columns, prediction=prediction)


def target_kind(task: Task) -> FeatureType:
    return FeatureType.numeric if task is Task.regression else FeatureType.categorical


def signal_kind(task: Task) -> FeatureType:
    return FeatureType.categorical if task is Task.multiclass else FeatureType.numeric


def reference_stats(frame: pd.DataFrame, cfg: DriftlineConfig, predictions: np.ndarray | None = None) -> ReferenceStats:
    """The reference statistics of these rows (features and target, as typed by the config) and predictions."""
    dataset = cfg.dataset
    kinds = {**dataset.features, dataset.target: target_kind(dataset.task)}
    columns = {
        name: summarize(frame[name], kind is FeatureType.numeric) for name, kind in kinds.items() if name in frame
    }
    numeric_signal = signal_kind(dataset.task) is FeatureType.numeric
    prediction = None if predictions is None else summarize(pd.Series(predictions), numeric_signal)
    return ReferenceStats(rows=len(frame), columns=columns, prediction=prediction)


@dataclass(frozen=True)
class DriftReference:
    """What drift is measured against: statistics of the training rows, a sample of them (for the report and the
    feature check), the holdout predictions, the data profile."""

    features: pd.DataFrame
    predictions: np.ndarray
    profile: ReferenceProfile
    stats: ReferenceStats

    def trained_classes(self, dataset: DatasetConfig) -> list | None:
        """The labels the model was trained on (None for regression): new labels must be among them."""
        if not dataset.task.is_classification:
            return None
        return list(self.stats.columns[dataset.target].counts.index)


def build_reference(train: pd.DataFrame, holdout_signal: np.ndarray, cfg: DriftlineConfig) -> DriftReference:
    """The statistics come from every training row (a sorted float64 array per numeric column, counts per
    categorical one); the stored sample is bounded by `drift.reference_sample_rows`."""
    columns = [*cfg.dataset.feature_names, cfg.dataset.target]
    rows = min(len(train), cfg.drift.reference_sample_rows)
    sample = train[columns].sample(n=rows, random_state=cfg.model.seed) if rows < len(train) else train[columns]
    return DriftReference(
        features=sample.reset_index(drop=True),
        predictions=np.asarray(holdout_signal),
        profile=learn_profile(train, cfg.dataset),
        stats=reference_stats(train[columns], cfg, holdout_signal),
    )


def reference_column(reference: ReferenceStats, name: str, kind: FeatureType) -> ColumnSummary:
    column = reference.columns.get(name)
    if column is None or isinstance(column, NumericColumn) != (kind is FeatureType.numeric):
        raise ConfigError(
            f"column {name!r} ({kind.value} in the config) is not a {kind.value} column of the champion's drift "
            "reference; train a new champion on the configured features: driftline train --config <config>"
        )
    return column
