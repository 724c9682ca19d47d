"""Performance on delayed labels: labels joined to the prediction log by id, metrics per batch and per version, and
whether the champion degraded since its promotion (semantics: docs/monitoring.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from driftline.config import DriftlineConfig, Task
from driftline.data import prediction_log
from driftline.data.loading import newest_event_time
from driftline.modeling.metrics import compute_metrics, greater_is_better
from driftline.modeling.pipeline import Predictions
from driftline.monitoring.estimate_ledger import EstimateCheck
from driftline.monitoring.label_store import ARCHIVED_IDS, ID, LABEL, LABEL_FILE
from driftline.validation.labels import class_values

PROBA_PREFIX = "proba_"


ALL_BATCHES = "(all batches)"


# --- the join ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelJoin:
    """Logged predictions with their labels, and what is still unmatched on either side."""

    labeled: pd.DataFrame  # prediction-log rows that have a label, with the label in LABEL
    pending_predictions: int  # logged predictions whose label has not arrived (yet)
    unmatched_labels: int  # stored labels whose id no logged prediction has (yet)
    unmatched_examples: list[str] = field(default_factory=list)


def join_labels(predictions: pd.DataFrame, labels: pd.DataFrame, cfg: DriftlineConfig) -> LabelJoin:
    id_column = cfg.dataset.id_column
    if predictions.empty:  # nothing logged yet: every label waits for its prediction
        nothing = pd.DataFrame(columns=[id_column, LABEL, LABEL_FILE])
        return LabelJoin(nothing, 0, len(labels), labels[ID].astype(str).head(3).tolist())
    ids = predictions[id_column].astype(object)
    has_label = ids.isin(labels[ID])
    labeled = predictions[has_label].merge(labels[[ID, LABEL, LABEL_FILE]], left_on=id_column, right_on=ID, how="left")
    unmatched = labels[~labels[ID].isin(ids)]
    return LabelJoin(
        labeled=labeled.drop(columns=ID if ID != id_column else []),
        pending_predictions=int((~has_label).sum()),
        unmatched_labels=len(unmatched),
        unmatched_examples=unmatched[ID].astype(str).head(3).tolist(),
    )


def batch_steps(predictions: pd.DataFrame) -> dict[str, int]:
    """Each scoring batch's position in the prediction log (by when it was first scored): its step in MLflow."""
    if predictions.empty:
        return {}
    first = predictions.groupby(prediction_log.SOURCE)[prediction_log.SCORED_AT].min().sort_values()
    return {str(source): step for step, source in enumerate(first.index)}


def newly_labeled(joined: LabelJoin, store_dir: Path, id_column: str) -> pd.DataFrame:
    """Labeled prediction rows whose id no earlier run archived: what this run adds to what is known."""
    done = store_dir / ARCHIVED_IDS
    labeled = joined.labeled
    if done.exists() and not labeled.empty:
        labeled = labeled[~labeled[id_column].isin(pd.read_parquet(done)[ID])]
    return labeled


def not_yet_in_training_data(labeled: pd.DataFrame, labeled_fingerprints: set[str]) -> pd.DataFrame:
    """Leave out rows of batches that arrived with their labels (archived as labeled): they train already."""
    if labeled.empty:
        return labeled
    return labeled[~labeled[prediction_log.SOURCE_FINGERPRINT].isin(labeled_fingerprints)]


def as_training_rows(labeled: pd.DataFrame, cfg: DriftlineConfig) -> pd.DataFrame:
    """Labeled predictions as training data (id, event time, features, the gate's slice and fairness columns,
    target), one row per id (the latest scoring): archived, they put what the model is now judged on into the
    retraining window, and the gate can still slice a challenger trained on them."""
    dataset = cfg.dataset
    named = [dataset.id_column, dataset.event_time_column, *dataset.feature_names, *cfg.gate.watched_columns]
    columns = [c for c in dict.fromkeys(named) if c and c in labeled]
    rows = labeled.sort_values(prediction_log.SCORED_AT, kind="stable").drop_duplicates(dataset.id_column, keep="last")
    return rows[columns].assign(**{dataset.target: rows[LABEL].to_numpy()}).reset_index(drop=True)


# --- performance ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Performance:
    """The model's metrics on the labeled predictions of one scoring batch (or of all its batches)."""

    model_version: str
    source: str  # the scoring batch, or ALL_BATCHES
    rows: int
    metrics: dict[str, float]
    scored_at: datetime  # when the batch was scored (its first row)
    event_time: datetime | None = None  # the newest event time of its rows, when the data has one
    estimated: EstimateCheck | None = None  # a batch: its estimate before labels against these metrics
    estimate_error: float | None = None  # a version: mean |estimated − realized| over its compared batches

    @property
    def per_batch(self) -> bool:
        return self.source != ALL_BATCHES

    @property
    def data_time(self) -> datetime:
        """Its place on the dashboards' time axis: when the data happened, else when it was scored."""
        return self.event_time or self.scored_at


def logged_predictions(rows: pd.DataFrame, cfg: DriftlineConfig, classes: list | None) -> Predictions:
    """The logged answers as the model gave them: labels, class probabilities (`proba_<class>`), classes."""
    if cfg.dataset.task is Task.regression:
        return Predictions(rows[prediction_log.PREDICTION].to_numpy(dtype=float), None, np.array([]))
    known = class_values(classes or [])
    proba_columns = [f"{PROBA_PREFIX}{text}" for text in known]
    proba = rows[proba_columns].to_numpy(dtype=float) if all(c in rows for c in proba_columns) else None
    return Predictions(rows[prediction_log.PREDICTION].to_numpy(), proba, np.array(list(known.values())))


def truth_of(rows: pd.DataFrame, cfg: DriftlineConfig) -> pd.Series:
    return rows[LABEL].astype(float) if cfg.dataset.task is Task.regression else rows[LABEL]


def measure(rows: pd.DataFrame, cfg: DriftlineConfig, classes: list | None) -> dict[str, float]:
    predictions = logged_predictions(rows, cfg, classes)
    return compute_metrics(
        cfg.dataset.task, truth_of(rows, cfg), predictions.labels, predictions.proba, predictions.classes
    )


def performance(joined: LabelJoin, cfg: DriftlineConfig, classes: list | None) -> list[Performance]:
    """Per model version: its metrics on every labeled prediction it made, then per scoring batch, in scoring order."""
    labeled, results = joined.labeled, []
    if labeled.empty:
        return []
    version_key, source_key = prediction_log.MODEL_VERSION, prediction_log.SOURCE
    first_scored = labeled.groupby([version_key, source_key])[prediction_log.SCORED_AT].min().sort_values()
    for version, rows in sorted(labeled.groupby(version_key), key=lambda item: int(item[0])):
        results.append(
            Performance(
                str(version),
                ALL_BATCHES,
                len(rows),
                measure(rows, cfg, classes),
                rows[prediction_log.SCORED_AT].min().to_pydatetime(),
            )
        )
    groups = labeled.groupby([version_key, source_key])
    for (version, source), scored_at in first_scored.items():
        rows = groups.get_group((version, source))
        results.append(
            Performance(
                str(version),
                str(source),
                len(rows),
                measure(rows, cfg, classes),
                scored_at.to_pydatetime(),
                newest_event_time(rows, cfg.dataset),
            )
        )
    return results


@dataclass(frozen=True)
class Degradation:
    """The champion's metric on labeled predictions against its metric at promotion (its holdout)."""

    model_version: str
    metric: str
    at_promotion: float | None
    measured: float | None
    rows: int
    degraded: bool
    reason: str
    greater_is_better: bool = True

    @property
    def live_metrics(self) -> dict[str, float] | None:
        """The measured metric, when there were enough labeled rows to judge it (what automatic rollback reads)."""
        return {self.metric: self.measured} if self.measured is not None and self.at_promotion is not None else None

    @property
    def loss(self) -> float | None:
        """How much worse than at promotion, in the metric's units (positive = worse), whatever its direction."""
        if self.at_promotion is None or self.measured is None:
            return None
        return self.at_promotion - self.measured if self.greater_is_better else self.measured - self.at_promotion


def judge_degradation(
    champion_version: str, measured: Performance | None, at_promotion: dict[str, float], cfg: DriftlineConfig
) -> Degradation:
    """Degraded when the primary metric is worse than at promotion by more than labels.max_degradation, measured
    on at least labels.min_rows labeled predictions of the champion."""
    metric, rules = cfg.primary_metric, cfg.labels
    scores = greater_is_better(cfg.dataset.task, metric)
    rows = measured.rows if measured else 0
    value = measured.metrics.get(metric) if measured else None
    baseline = at_promotion.get(metric)

    def verdict(degraded: bool, reason: str) -> Degradation:
        return Degradation(champion_version, metric, baseline, value, rows, degraded, reason, scores)

    if rows < rules.min_rows:
        return verdict(
            False,
            f"{rows} labeled predictions of v{champion_version}, fewer than labels.min_rows="
            f"{rules.min_rows}: no verdict",
        )
    if value is None or baseline is None:
        return verdict(False, f"{metric} is undefined on the labeled predictions or at promotion: no verdict")
    judged = verdict(False, "")
    loss = judged.loss or 0.0
    described = (
        f"{metric} {value:.4f} on {rows} labeled predictions vs {baseline:.4f} at promotion "
        f"(worse by {loss:.4f}, allowed {rules.max_degradation})"
    )
    return verdict(loss > rules.max_degradation, described)
