"""The drift reference of a model version: statistics of every training row (stored with the version), a bounded sample,
the holdout predictions and the data profile."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from driftline.config import DatasetConfig, DriftlineConfig, FeatureType, Task
from driftline.errors import ConfigError
from driftline.monitoring.calibration import Calibration, batch_rows, column_thresholds, methods_to_calibrate
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
    calibration: Calibration | None = None  # calibrated thresholds, when the config asked for them at training

    def save(self, folder: Path) -> None:
        """`stats.json` (with the calibrated thresholds) plus one file per column: sorted float64 values (.npy) or
        category counts (.parquet)."""
        folder.mkdir(parents=True, exist_ok=True)
        columns = [
            {"name": name, **_save_column(column, folder, str(index))}
            for index, (name, column) in enumerate(self.columns.items())
        ]
        prediction = None if self.prediction is None else _save_column(self.prediction, folder, "prediction")
        calibration = None if self.calibration is None else self.calibration.to_dict()
        manifest = {"rows": self.rows, "columns": columns, "prediction": prediction, "calibration": calibration}
        (folder / STATS_MANIFEST).write_text(json.dumps(manifest, indent=1))

    @classmethod
    def load(cls, folder: Path) -> ReferenceStats:
        """A version's statistics; one registered before calibration existed has no `calibration` entry."""
        manifest = json.loads((folder / STATS_MANIFEST).read_text())
        columns = {entry["name"]: _load_column(folder, entry) for entry in manifest["columns"]}
        prediction = None if manifest["prediction"] is None else _load_column(folder, manifest["prediction"])
        calibration = manifest.get("calibration")
        calibration = None if calibration is None else Calibration.from_dict(calibration)
        return cls(rows=int(manifest["rows"]), columns=columns, prediction=prediction, calibration=calibration)


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


def _in_time_order(frame: pd.DataFrame, cfg: DriftlineConfig) -> np.ndarray:
    """Row positions by event time when the dataset has one, else in arrival order (the index of the rows as
    they were read, which a random holdout split shuffles)."""
    event_time = cfg.dataset.event_time_column
    if event_time and event_time in frame:
        return frame.reset_index(drop=True).sort_values(event_time, kind="stable").index.to_numpy()
    return np.argsort(frame.index.to_numpy(), kind="stable")


def calibrate(
    stats: ReferenceStats,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    holdout_signal: np.ndarray,
    cfg: DriftlineConfig,
    file_rows: Sequence[int] = (),
) -> Calibration:
    """Calibrated thresholds of the columns whose method asks for them, for the declared batch size or for every
    size: features and target from the training rows, prediction drift from the holdout predictions (the only ones
    the model did not learn from)."""
    spec = cfg.drift
    ordered = train.iloc[_in_time_order(train, cfg)]
    columns = {}
    for name, known in stats.columns.items():
        role = "target" if name == cfg.dataset.target else "feature"
        floors = methods_to_calibrate(spec, known, role)
        columns[name] = column_thresholds(ordered[name], known, floors, spec)
    prediction = {}
    if stats.prediction is not None:
        signal = pd.Series(np.asarray(holdout_signal)[_in_time_order(holdout, cfg)])
        floors = methods_to_calibrate(spec, stats.prediction, "prediction")
        prediction = column_thresholds(signal, stats.prediction, floors, spec)
    return Calibration(batch_rows(spec, list(file_rows)), spec.calibration.quantile, columns, prediction)


@dataclass(frozen=True)
class DriftReference:
    """What drift is measured against: statistics of the training rows, a sample of them (for the report and the
    feature check), the holdout predictions, the data profile."""

    features: pd.DataFrame
    predictions: np.ndarray
    profile: ReferenceProfile
    stats: ReferenceStats

    def trained_classes(self, dataset: DatasetConfig) -> list | None:
        """The labels the model was trained on (None for regression): new labels must be among them. Sorted, as the
        model's own classes are, so the second one is the positive class of binary metrics and of fairness."""
        if not dataset.task.is_classification:
            return None
        return sorted(self.stats.columns[dataset.target].counts.index)


def build_reference(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    holdout_signal: np.ndarray,
    cfg: DriftlineConfig,
    file_rows: Sequence[int] = (),
) -> DriftReference:
    """The statistics come from every training row (a sorted float64 array per numeric column, counts per
    categorical one), with calibrated thresholds when the config asks for them (`file_rows`: the rows of each file
    trained on, the size a threshold is for when a batch's is not given); the stored sample is bounded by
    `drift.reference_sample_rows`."""
    columns = [*cfg.dataset.feature_names, cfg.dataset.target]
    rows = min(len(train), cfg.drift.reference_sample_rows)
    sample = train[columns].sample(n=rows, random_state=cfg.model.seed) if rows < len(train) else train[columns]
    stats = reference_stats(train[columns], cfg, holdout_signal)
    if cfg.drift.any_calibrated:
        stats = replace(stats, calibration=calibrate(stats, train, holdout, holdout_signal, cfg, file_rows))
    return DriftReference(
        features=sample.reset_index(drop=True),
        predictions=np.asarray(holdout_signal),
        profile=learn_profile(train, cfg.dataset),
        stats=stats,
    )


def reference_column(reference: ReferenceStats, name: str, kind: FeatureType) -> ColumnSummary:
    column = reference.columns.get(name)
    if column is None or isinstance(column, NumericColumn) != (kind is FeatureType.numeric):
        raise ConfigError(
            f"column {name!r} ({kind.value} in the config) is not a {kind.value} column of the champion's drift "
            "reference; train a new champion on the configured features: driftline train --config <config>"
        )
    return column
