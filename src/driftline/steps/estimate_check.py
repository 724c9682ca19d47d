"""The champion's metric estimated before labels on a monitored batch (or prediction-log window): the estimate with its
band, the confusion metrics, the label-shift check, the estimator's trust and the verdict against the metric at
promotion; each scoring batch's estimate kept until its labels come. Calls the `Registry`: the registry never imports
it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from driftline.config import DriftlineConfig
from driftline.data import prediction_log
from driftline.data.loading import Observed
from driftline.data.prediction_log import LogWindow
from driftline.evaluation.measure import subset
from driftline.modeling.metrics import greater_is_better
from driftline.modeling.pipeline import Predictions, feature_frame, predict
from driftline.monitoring import estimate_ledger
from driftline.monitoring.estimate_ledger import WHOLE_BATCH, BatchEstimate, EstimateCheck
from driftline.monitoring.estimate_trust import TrustState
from driftline.monitoring.estimation import Estimate, PerformanceEstimator
from driftline.monitoring.label_shift import PriorShift
from driftline.registry import Champion, Registry
from driftline.registry.refs import ESTIMATE_UNAVAILABLE
from driftline.steps.drift_check import data_time
from driftline.steps.estimate_review import add_estimate_snapshot, review_arrived, version_trust


@dataclass(frozen=True)
class SliceEstimate:
    column: str
    value: str
    estimate: Estimate
    trust: TrustState  # from the slice's own labeled batches: an estimate can hold overall and fail on one slice

    @property
    def name(self) -> str:
        return slice_name(self.column, self.value)


def slice_name(column: str, value: str) -> str:
    return f"{column}={value}"


@dataclass(frozen=True)
class EstimationCheck:
    """What the champion's estimator says of a monitored batch, and whether that may drive a decision."""

    model_version: str
    metric: str
    estimate: Estimate | None  # None: the version has no estimator (the note says why)
    trust: TrustState | None
    prior_shift: PriorShift | None  # classifiers only
    at_promotion: float | None  # the champion's metric on its holdout
    greater_is_better: bool
    max_degradation: float
    note: str = ""
    slices: list[SliceEstimate] = field(default_factory=list)
    batches: list[BatchEstimate] = field(default_factory=list)  # kept for the self-check when labels come
    arrived: EstimateCheck | None = None  # a file that came with its labels: its estimate checked at once

    @property
    def has_number(self) -> bool:
        return self.estimate is not None and self.estimate.value is not None

    @property
    def label_shift(self) -> bool:
        return self.prior_shift is not None and self.prior_shift.flagged

    @property
    def usable(self) -> bool:
        """May drive a decision: a number, from a trusted estimator, on a batch whose class prior did not move."""
        return self.has_number and self.trust is not None and self.trust.trusted and not self.label_shift

    @property
    def worse_by(self) -> float | None:
        """How far even the band's best edge lies below the metric at promotion (positive: worse), in its units."""
        if not self.has_number or self.at_promotion is None:
            return None
        estimate = self.estimate
        if self.greater_is_better:
            return self.at_promotion - (estimate.upper if estimate.upper is not None else estimate.value)
        return (estimate.lower if estimate.lower is not None else estimate.value) - self.at_promotion

    @property
    def degraded(self) -> bool:
        """Even the band's best edge is worse than at promotion by more than labels.max_degradation."""
        worse = self.worse_by
        return worse is not None and worse > self.max_degradation

    @property
    def verdict(self) -> str:
        """The estimate against the metric at promotion, and whether it may decide, in words."""
        if not self.has_number:
            return self.note or (self.estimate.note if self.estimate else "no estimate")
        estimate, edge = self.estimate, "upper" if self.greater_is_better else "lower"
        line = f"estimated {self.metric} {band_text(estimate)} on {estimate.rows} rows"
        if self.at_promotion is not None and self.worse_by > 0:
            line += (
                f"; its {edge} edge is worse than {self.at_promotion:.4f} at promotion by {self.worse_by:.4f} "
                f"(allowed {self.max_degradation})"
            )
        elif self.at_promotion is not None:
            line += f"; its {edge} edge is not worse than {self.at_promotion:.4f} at promotion"
        if self.label_shift:
            return f"{line}; flagged ({self.prior_shift.reason}): it decides nothing"
        if not self.trust.trusted:
            return f"{line}; estimator untrusted ({self.trust.reason}): the estimate decides nothing"
        return line + ("; DEGRADED (estimated)" if self.degraded else "")

    def figures(self) -> dict[str, float]:
        """MLflow metrics of the monitoring run: estimate, band, confusion metrics, trust, priors, slices."""
        if self.estimate is None:
            return {}
        estimate, figures = self.estimate, {}
        if estimate.value is not None:
            figures[f"estimated_{self.metric}"] = estimate.value
            if estimate.lower is not None and estimate.upper is not None:
                figures[f"estimated_{self.metric}_lower"] = estimate.lower
                figures[f"estimated_{self.metric}_upper"] = estimate.upper
            figures |= {f"estimated_{name}": value for name, value in estimate.others.items()}
        figures["estimate_trusted"] = float(bool(self.trust and self.trust.trusted))
        if self.prior_shift is not None:
            figures["label_shift_flagged"] = float(self.prior_shift.flagged)
            figures |= {f"estimated_prior/{c.label}": c.estimated for c in self.prior_shift.classes}
        figures |= {
            f"estimated_slice_{self.metric}/{s.column}/{s.value}": s.estimate.value
            for s in self.slices
            if s.estimate.value is not None
        }
        return figures

    def to_dict(self) -> dict:
        return {
            "model_version": self.model_version,
            "metric": self.metric,
            "estimate": None if self.estimate is None else self.estimate.to_dict(),
            "trust": None if self.trust is None else asdict(self.trust),
            "prior_shift": None if self.prior_shift is None else self.prior_shift.to_dict(),
            "at_promotion": self.at_promotion,
            "degraded": self.degraded,
            "usable": self.usable,
            "verdict": self.verdict,
            "slices": [
                {"column": s.column, "value": s.value, **asdict(s.estimate), "trust": asdict(s.trust)}
                for s in self.slices
            ],
            "batches": [asdict(b) for b in self.batches],
            "labels_with_the_batch": None if self.arrived is None else asdict(self.arrived),
        }


def band_text(estimate: Estimate) -> str:
    if estimate.value is None:
        return "–"
    if estimate.lower is None or estimate.upper is None:
        return f"{estimate.value:.4f}"
    return f"{estimate.value:.4f} [{estimate.lower:.4f}, {estimate.upper:.4f}]"


def no_estimator_note(registry: Registry, champion: Champion) -> str:
    version = champion.ref.version
    why = registry.version_tags(version).get(ESTIMATE_UNAVAILABLE)
    if why:
        return f"v{version} has no estimator: {why}; no estimate"
    return (
        f"v{version} was trained without an estimator (before estimation existed, or with estimation.enabled off): "
        "no estimate"
    )


def estimate_observed(observed: Observed, champion: Champion, cfg: DriftlineConfig) -> EstimationCheck:
    """The champion's estimator on what is monitored: the whole batch or window, its slices (gate.slices), each scoring
    batch in it (kept in the ledger for the self-check, and shown on the dashboard)."""
    registry, version, metric = Registry(cfg), champion.ref.version, cfg.primary_metric
    at_promotion = registry.holdout_metrics_of(champion.ref.run_id).get(metric)
    common = {
        "model_version": version,
        "metric": metric,
        "at_promotion": at_promotion,
        "greater_is_better": greater_is_better(cfg.dataset.task, metric),
        "max_degradation": cfg.labels.max_degradation,
    }
    estimator = champion.estimator
    if estimator is None:
        return EstimationCheck(
            estimate=None, trust=None, prior_shift=None, note=no_estimator_note(registry, champion), **common
        )
    dataset = cfg.dataset
    features = feature_frame(observed.frame, dataset)
    predictions = predict(champion.model, observed.frame, dataset)
    path = estimate_ledger.ledger_path(registry.folders.root)
    at = data_time(observed, cfg)
    batches = scoring_batches(observed, version, estimator, features, predictions, cfg, at)
    ledger = estimate_ledger.read_ledger(path)  # before this batch's labels
    trust = version_trust(estimator, version, ledger, cfg)
    slices = slice_estimates(observed.frame, features, predictions, estimator, cfg)
    arrived = keep_for_self_check(observed, batches, features, predictions, estimator, cfg, path)
    return EstimationCheck(
        estimate=estimator.estimate(features, predictions),
        trust=trust,
        prior_shift=estimator.prior_shift(features, predictions),
        slices=[
            SliceEstimate(
                column, value, estimate, version_trust(estimator, version, ledger, cfg, slice_name(column, value))
            )
            for column, value, estimate in slices
        ],
        batches=batches,
        arrived=arrived,
        **common,
    )


def keep_for_self_check(
    observed: Observed,
    batches: list[BatchEstimate],
    features: pd.DataFrame,
    predictions: Predictions,
    estimator: PerformanceEstimator,
    cfg: DriftlineConfig,
    path: Path,
) -> EstimateCheck | None:
    """Each scoring batch's estimate (and its slices') kept until its labels come (in the ledger at `path`), the whole
    batches' on the dashboard; a file that came with its labels is checked against them at once, whole and per slice
    (the whole batch's check returned)."""
    estimate_ledger.record_estimates(path, batches)
    arrived, checks = None, []
    if not isinstance(observed, LogWindow):
        for kept in batches:  # one file: its whole batch, then its slices
            rows = slice_rows(observed.frame, kept.slice_name)
            check = review_arrived(
                kept,
                observed.frame[rows].reset_index(drop=True),
                features[rows].reset_index(drop=True),
                subset(predictions, rows),
                estimator,
                cfg,
            )
            arrived = arrived or check
            checks += [check] if check is not None else []
    estimate_ledger.record_checks(path, checks)
    for batch in batches:
        if batch.slice_name:
            continue
        compared = arrived is not None and arrived.within is not None and arrived.key == batch.key
        add_estimate_snapshot(batch, cfg, arrived.realized if compared else None)
    return arrived


def slice_rows(frame: pd.DataFrame, name: str) -> np.ndarray:
    """The rows of the slice `column=value` (every row for the whole batch)."""
    if not name:
        return np.ones(len(frame), dtype=bool)
    column, value = name.split("=", 1)
    return frame[column].astype(str).to_numpy() == value


def slice_estimates(
    frame: pd.DataFrame,
    features: pd.DataFrame,
    predictions: Predictions,
    estimator: PerformanceEstimator,
    cfg: DriftlineConfig,
) -> list[tuple[str, str, Estimate]]:
    """The estimate per value of each gate.slices column the rows carry (a small slice gets a note, no number)."""
    found = []
    for column in cfg.gate.slices.columns:
        if column not in frame:
            continue
        values = frame[column].astype(str).to_numpy()
        for value in sorted(set(values)):
            mask = values == value
            found.append(
                (column, value, estimator.estimate(features[mask].reset_index(drop=True), subset(predictions, mask)))
            )
    return found


def scoring_batches(
    observed: Observed,
    version: str,
    estimator: PerformanceEstimator,
    features: pd.DataFrame,
    predictions: Predictions,
    cfg: DriftlineConfig,
    at: datetime,
) -> list[BatchEstimate]:
    """One estimate per scoring batch the labels will be joined to: the file itself, or, in a prediction-log window,
    the rows of each logged batch that this version served (by the batch's content fingerprint)."""
    frame, now = observed.frame, datetime.now(UTC).isoformat()
    if prediction_log.SOURCE_FINGERPRINT in frame:
        served = frame[prediction_log.MODEL_VERSION].astype(str).to_numpy() == version
        fingerprints = frame[prediction_log.SOURCE_FINGERPRINT].astype(str).to_numpy()
        sources = frame[prediction_log.SOURCE].astype(str).to_numpy()
        masks = [served & (fingerprints == fingerprint) for fingerprint in dict.fromkeys(fingerprints[served])]
        groups = [(fingerprints[mask][0], sources[mask][0], mask) for mask in masks]
    else:
        groups = [(observed.fingerprint, observed.name, None)]
    batches = []
    for fingerprint, name, mask in groups:
        rows_frame = frame if mask is None else frame[mask].reset_index(drop=True)
        rows_features = features if mask is None else features[mask].reset_index(drop=True)
        rows_predictions = predictions if mask is None else subset(predictions, mask)
        kept = [(WHOLE_BATCH, estimator.estimate(rows_features, rows_predictions))]
        kept += [
            (slice_name(column, value), estimate)
            for column, value, estimate in slice_estimates(rows_frame, rows_features, rows_predictions, estimator, cfg)
        ]
        shift = estimator.prior_shift(rows_features, rows_predictions)
        batches += [
            BatchEstimate(
                model_version=version,
                source_fingerprint=fingerprint,
                batch=name,
                metric=estimate.metric,
                value=estimate.value,
                lower=estimate.lower,
                upper=estimate.upper,
                rows=estimate.rows,
                note=estimate.note or "",
                estimated_at=now,
                data_time=pd.Timestamp(at).floor("us").isoformat(),
                label_shift=bool(shift and shift.flagged),
                slice_name=part,
            )
            for part, estimate in kept
        ]
    return batches
