"""Performance estimation before labels: the estimator fitted on the holdout at training (CBPE for classifiers, DLE
for regressors), the estimate of a batch with its confidence band, the holdout check, saving and loading."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from driftline.config.base import METRICS, Task
from driftline.config.estimation import EstimationConfig
from driftline.errors import DriftlineError
from driftline.modeling.metrics import compute_metrics
from driftline.modeling.pipeline import Predictions
from driftline.monitoring.confidence_estimate import (
    IsotonicCurve,
    SamplingTerms,
    calibrate,
    estimate_metrics,
    fit_curves,
    sampling_terms,
)
from driftline.monitoring.estimate_inputs import FeatureCodes, fit_loss_model, load_trees, predict_loss, save_trees
from driftline.monitoring.label_shift import PriorReference, PriorShift, estimate_priors, fit_prior_reference

ESTIMATOR_FILE = "estimator.json"
FORMAT = 1
NOT_ESTIMABLE = {"r2": "r2 needs the variance of the batch's target, which only its labels give"}
UNBOUNDED = {"log_loss", "mae", "rmse"}  # from 0 up; the other metrics lie in [0, 1]


@dataclass(frozen=True)
class Estimate:
    """What a monitored batch gets before its labels: the primary metric, its band, the confusion-matrix metrics."""

    metric: str
    value: float | None  # None with a note: too few rows, no estimator for this version, a metric not estimable
    lower: float | None
    upper: float | None
    rows: int
    others: dict[str, float] = field(default_factory=dict)
    note: str | None = None

    def within(self, realized: float) -> bool:
        """The realized metric lies inside the band (never, without a band)."""
        return self.lower is not None and self.upper is not None and self.lower <= realized <= self.upper

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def without_value(cls, metric: str, rows: int, note: str) -> Estimate:
        return cls(metric=metric, value=None, lower=None, upper=None, rows=rows, note=note)


@dataclass(frozen=True)
class EstimatorUnavailable:
    """No estimator for this version, and why; the version registers without one."""

    reason: str


@dataclass(frozen=True)
class ChunkCheck:
    rows: int
    estimated: float
    lower: float
    upper: float
    realized: float

    @property
    def inside(self) -> bool:
        return self.lower <= self.realized <= self.upper


@dataclass(frozen=True)
class HoldoutCheck:
    """Each holdout chunk estimated by an estimator fitted on the other chunks, against its realized metric."""

    chunks: list[ChunkCheck]
    within: bool  # fewer than `untrusted_after` chunks outside their band: the estimator starts trusted
    reason: str

    @property
    def mean_absolute_error(self) -> float | None:
        errors = [abs(chunk.estimated - chunk.realized) for chunk in self.chunks]
        return float(np.mean(errors)) if errors else None

    def to_dict(self) -> dict:
        return {"chunks": [asdict(chunk) for chunk in self.chunks], "within": self.within, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict) -> HoldoutCheck:
        return cls([ChunkCheck(**chunk) for chunk in data["chunks"]], bool(data["within"]), data["reason"])


class PerformanceEstimator:
    """Fitted at training on the holdout and stored with the model version; estimates a batch from its predictions."""

    kind = ""

    def __init__(
        self, task: Task, metric: str, settings: EstimationConfig, codes: FeatureCodes, terms, check, holdout_rows
    ):
        self.task, self.metric, self.settings, self.codes = task, metric, settings, codes
        self.terms: dict[str, SamplingTerms] = terms
        self.holdout_check: HoldoutCheck | None = check
        self.holdout_rows: int | None = holdout_rows  # None: an estimator saved before the band counted the holdout

    @property
    def holdout_within(self) -> bool:
        return self.holdout_check is not None and self.holdout_check.within

    def estimate(
        self, features: pd.DataFrame, predictions: Predictions, settings: EstimationConfig | None = None
    ) -> Estimate:
        """The batch's estimated metric and band; `settings` (else those at training) give min_rows and the band."""
        settings = settings or self.settings
        rows = len(features)
        if rows < settings.min_rows:
            return Estimate.without_value(
                self.metric, rows, f"{rows} rows; an estimate needs at least {settings.min_rows}"
            )
        values, note = self._metric_values(features, predictions)
        if note:
            return Estimate.without_value(self.metric, rows, note)
        others = {name: value for name, value in values.items() if name != self.metric and np.isfinite(value)}
        if self.metric in NOT_ESTIMABLE:
            return Estimate(self.metric, None, None, None, rows, others, NOT_ESTIMABLE[self.metric])
        value = values[self.metric]
        if not np.isfinite(value):
            return Estimate(self.metric, None, None, None, rows, others, f"{self.metric} is undefined on this batch")
        lower, upper = self._band(value, rows, settings.band_sigmas)
        return Estimate(self.metric, value, lower, upper, rows, others)

    def _band(self, value: float, rows: int, sigmas: float) -> tuple[float, float]:
        floor, ceiling = (0.0, np.inf) if self.metric in UNBOUNDED else (0.0, 1.0)
        terms = self.terms[self.metric]
        # The estimator was learned from the holdout, so its own error is about the holdout's sampling error; it adds
        # to the batch's and does not shrink with the batch's size.
        learned = terms.error(self.holdout_rows) if self.holdout_rows else 0.0
        error = float(np.hypot(terms.error(rows), learned))
        if not np.isfinite(error):
            return floor, float(ceiling)
        width = sigmas * error
        return float(max(floor, value - width)), float(min(ceiling, value + width))

    def _metric_values(self, features: pd.DataFrame, predictions: Predictions) -> tuple[dict[str, float], str | None]:
        raise NotImplementedError

    def prior_shift(
        self, features: pd.DataFrame, predictions: Predictions, settings: EstimationConfig | None = None
    ) -> PriorShift | None:
        """The batch's class prior and the label-shift flag (classifiers); None for a regressor or too few rows."""
        return None

    def _document(self) -> dict:
        return {
            "format": FORMAT,
            "kind": self.kind,
            "task": self.task.value,
            "metric": self.metric,
            "settings": self.settings.model_dump(),
            "codes": self.codes.to_dict(),
            "terms": {name: asdict(terms) for name, terms in self.terms.items()},
            "holdout_check": self.holdout_check.to_dict() if self.holdout_check else None,
            "holdout_rows": self.holdout_rows,
        }

    def save(self, folder: Path) -> None:
        """JSON for everything but a loss model's trees, which go to .npz arrays (loaded without pickle)."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ESTIMATOR_FILE).write_text(json.dumps(self._document(), indent=1))

    @classmethod
    def load(cls, folder: Path) -> PerformanceEstimator:
        path = folder / ESTIMATOR_FILE
        if not path.is_file():
            raise DriftlineError(f"no performance estimator in {folder} ({ESTIMATOR_FILE} missing)")
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise DriftlineError(f"{path}: estimator format {data.get('format')}, this driftline reads {FORMAT}")
        common = {
            "task": Task(data["task"]),
            "metric": data["metric"],
            "settings": EstimationConfig(**data["settings"]),
            "codes": FeatureCodes.from_dict(data["codes"]),
            "terms": {name: SamplingTerms(**terms) for name, terms in data["terms"].items()},
            "check": HoldoutCheck.from_dict(data["holdout_check"]) if data["holdout_check"] else None,
            "holdout_rows": data.get("holdout_rows"),
        }
        if data["kind"] == ConfidenceEstimator.kind:
            return ConfidenceEstimator(
                **common,
                labels=data["labels"],
                curves=[IsotonicCurve(**curve) for curve in data["curves"]],
                priors=PriorReference.from_dict(data["priors"]),
            )
        trees = {name: load_trees(folder / f"loss_{name}.npz") for name in data["losses"]}
        return LossEstimator(**common, trees=trees)


class ConfidenceEstimator(PerformanceEstimator):
    """CBPE: the classifier's probabilities calibrated on the holdout stand in for the labels it has not seen."""

    kind = "cbpe"

    def __init__(self, *, labels: list[str], curves: list[IsotonicCurve], priors: PriorReference, **common):
        super().__init__(**common)
        self.labels, self.curves, self.priors = labels, curves, priors

    def _label_index(self, predictions: Predictions) -> tuple[np.ndarray | None, str | None]:
        if [str(c) for c in predictions.classes] != self.labels:
            shown = [str(c) for c in predictions.classes]
            return None, f"the model's classes {shown} are not the holdout's {self.labels}"
        position = {label: i for i, label in enumerate(self.labels)}
        return np.array([position[str(label)] for label in predictions.labels], dtype=int), None

    def _metric_values(self, features: pd.DataFrame, predictions: Predictions) -> tuple[dict[str, float], str | None]:
        label_index, note = self._label_index(predictions)
        if note:
            return {}, note
        calibrated = calibrate(self.task, predictions.proba, self.curves)
        return estimate_metrics(self.task, calibrated, predictions.proba, label_index), None

    def prior_shift(
        self, features: pd.DataFrame, predictions: Predictions, settings: EstimationConfig | None = None
    ) -> PriorShift | None:
        settings = settings or self.settings
        label_index, note = self._label_index(predictions)
        if note or len(features) < settings.min_rows:
            return None
        encoded, _ = self.codes.indicators(features)
        calibrated = calibrate(self.task, predictions.proba, self.curves)
        return estimate_priors(self.priors, encoded, calibrated, label_index, settings)

    def _document(self) -> dict:
        curves = [asdict(curve) for curve in self.curves]
        return {**super()._document(), "labels": self.labels, "curves": curves, "priors": self.priors.to_dict()}


class LossEstimator(PerformanceEstimator):
    """DLE: models of each row's absolute and squared error, fitted on the holdout's features and predictions."""

    kind = "dle"

    def __init__(self, *, trees: dict, **common):
        super().__init__(**common)
        self.trees = trees

    def _metric_values(self, features: pd.DataFrame, predictions: Predictions) -> tuple[dict[str, float], str | None]:
        inputs = loss_inputs(self.codes, features, predictions)
        values = {name: float(np.mean(predict_loss(trees, inputs))) for name, trees in self.trees.items()}
        if "rmse" in values:
            values["rmse"] = float(np.sqrt(values["rmse"]))  # the mean squared error's root
        return values, None

    def _document(self) -> dict:
        return {**super()._document(), "losses": sorted(self.trees)}

    def save(self, folder: Path) -> None:
        super().save(folder)
        for name, trees in self.trees.items():
            save_trees(trees, folder / f"loss_{name}.npz")


def loss_inputs(codes: FeatureCodes, features: pd.DataFrame, predictions: Predictions) -> np.ndarray:
    return np.column_stack([codes.ordinal(features), np.asarray(predictions.labels, dtype=float)])


def fit_estimator(
    features: pd.DataFrame,
    truth: pd.Series | np.ndarray,
    predictions: Predictions,
    task: Task,
    metric: str,
    settings: EstimationConfig,
) -> PerformanceEstimator | EstimatorUnavailable:
    """The estimator of `metric` from the holdout (its model inputs, target and the model's predictions), checked on
    the holdout's chunks; EstimatorUnavailable with the reason when the holdout cannot support one."""
    if metric not in METRICS[task]:
        raise DriftlineError(f"{metric} is not a {task.value} metric; known: {sorted(METRICS[task])}")
    truth = np.asarray(truth)
    reason = _unavailable(truth, predictions, task, settings)
    if reason:
        return EstimatorUnavailable(reason)
    features = features.reset_index(drop=True)
    estimator = _fit(features, truth, predictions, task, metric, settings, FeatureCodes.of(features), check=None)
    check = holdout_check(features, truth, predictions, estimator)
    estimator.holdout_check = check
    return estimator


def _unavailable(truth: np.ndarray, predictions: Predictions, task: Task, settings: EstimationConfig) -> str | None:
    if len(truth) < settings.min_rows:
        return (
            f"the holdout has {len(truth)} rows; an estimator needs at least estimation.min_rows ({settings.min_rows})"
        )
    distinct = pd.unique(truth)
    if len(distinct) < 2:
        what = "one class" if task.is_classification else "one value"
        return f"the holdout's target has {what} ({distinct[0]}): nothing to calibrate the estimate on"
    if task.is_classification:
        unknown = sorted(set(map(str, distinct)) - set(map(str, predictions.classes)))
        if unknown:
            return f"the holdout's target has classes the model does not know: {unknown}"
    return None


def _fit(
    features, truth, predictions, task, metric, settings, codes, check, primary_only: bool = False
) -> PerformanceEstimator:
    common = {
        "task": task,
        "metric": metric,
        "settings": settings,
        "codes": codes,
        "check": check,
        "holdout_rows": len(truth),
    }
    if task.is_classification:
        labels = [str(c) for c in predictions.classes]
        position = {label: i for i, label in enumerate(labels)}
        truth_index = np.array([position[str(value)] for value in truth], dtype=int)
        label_index = np.array([position[str(value)] for value in predictions.labels], dtype=int)
        encoded, columns = codes.indicators(features)
        return ConfidenceEstimator(
            **common,
            terms=sampling_terms(task, truth_index, label_index, predictions.proba),
            labels=labels,
            curves=fit_curves(task, predictions.proba, truth_index),
            priors=fit_prior_reference(labels, truth_index, label_index, encoded, columns),
        )
    predicted = np.asarray(predictions.labels, dtype=float)
    absolute, squared = np.abs(truth.astype(float) - predicted), (truth.astype(float) - predicted) ** 2
    inputs = loss_inputs(codes, features, predictions)
    terms = {
        "mae": SamplingTerms([float(absolute.var())], [1.0]),
        "rmse": SamplingTerms([float(squared.var())], [4 * float(squared.mean()) or 1.0]),  # NannyML's RMSE error
    }
    losses = {"mae": absolute, "rmse": squared}
    # A holdout chunk's check needs only the primary metric's model; a version's estimator has both.
    names = [metric] if primary_only and metric in losses else list(losses)
    trees = {name: fit_loss_model(inputs, losses[name]) for name in names}
    return LossEstimator(**common, terms=terms, trees=trees)


def _subset(predictions: Predictions, rows: np.ndarray) -> Predictions:
    proba = None if predictions.proba is None else predictions.proba[rows]
    return Predictions(labels=np.asarray(predictions.labels)[rows], proba=proba, classes=predictions.classes)


def holdout_check(
    features: pd.DataFrame, truth: np.ndarray, predictions: Predictions, estimator: PerformanceEstimator
) -> HoldoutCheck:
    """Cut the holdout into consecutive chunks; estimate each with an estimator fitted on the others and compare with
    its realized metric. Within when fewer than `untrusted_after` chunks fall outside their band."""
    settings, metric, task = estimator.settings, estimator.metric, estimator.task
    if metric in NOT_ESTIMABLE:
        return HoldoutCheck([], False, NOT_ESTIMABLE[metric])
    count = min(settings.holdout_chunks, len(truth) // settings.min_rows)
    if count < 2:
        return HoldoutCheck(
            [],
            False,
            f"the holdout's {len(truth)} rows make fewer than 2 chunks of {settings.min_rows} rows to check on",
        )
    chunks = []
    for rows in np.array_split(np.arange(len(truth)), count):
        rest = np.setdiff1d(np.arange(len(truth)), rows)
        if _unavailable(truth[rest], predictions, task, settings):
            continue
        fitted = _fit(
            features.iloc[rest],
            truth[rest],
            _subset(predictions, rest),
            task,
            metric,
            settings,
            estimator.codes,
            check=None,
            primary_only=True,
        )
        batch = _subset(predictions, rows)
        estimate = fitted.estimate(features.iloc[rows], batch)
        realized = compute_metrics(task, truth[rows], batch.labels, batch.proba, batch.classes, only=[metric])
        if estimate.value is not None and metric in realized:
            chunks.append(ChunkCheck(len(rows), estimate.value, estimate.lower, estimate.upper, realized[metric]))
    outside = sum(not chunk.inside for chunk in chunks)
    if not chunks:
        return HoldoutCheck([], False, f"{metric} could not be realized on any holdout chunk")
    reason = (
        f"{outside} of {len(chunks)} holdout chunks fell outside their band "
        f"(from {settings.untrusted_after}, the estimator starts untrusted)"
    )
    return HoldoutCheck(chunks, outside < settings.untrusted_after, reason)
