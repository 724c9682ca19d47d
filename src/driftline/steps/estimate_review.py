"""The estimator's self-check when labels come: each labeled scoring batch's kept estimate against the metric its labels
realized (on the labeled rows), kept in the ledger and shown on the dashboard, and the champion's estimator's trust
after it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from driftline.config import DriftlineConfig
from driftline.data import prediction_log
from driftline.evaluation.measure import primary_metric_of, subset
from driftline.modeling.pipeline import Predictions, feature_frame
from driftline.monitoring import estimate_ledger, evidently_report, performance
from driftline.monitoring.estimate_ledger import BatchEstimate, EstimateCheck
from driftline.monitoring.estimate_trust import TrustState, trust_state
from driftline.monitoring.estimation import Estimate, PerformanceEstimator
from driftline.registry import Champion, VersionInfo
from driftline.registry.refs import ESTIMATE_HOLDOUT_WITHIN, ESTIMATE_UNAVAILABLE


def version_trust(
    estimator: PerformanceEstimator,
    version: str,
    ledger: estimate_ledger.Ledger,
    cfg: DriftlineConfig,
    slice_name: str = estimate_ledger.WHOLE_BATCH,
) -> TrustState:
    """The version's estimator's trust on whole batches, or on one slice's rows: a slice starts from the holdout check
    (too few holdout rows per slice to check it alone) and then follows its own labeled batches."""
    return trust_state(estimator.holdout_within, ledger.outcomes(version, slice_name), cfg.estimation)


def estimate_figures(metric: str, estimated: float | None, lower: float | None, upper: float | None) -> dict:
    figures = {f"estimated {metric}": estimated, "band lower": lower, "band upper": upper}
    return {name: value for name, value in figures.items() if value is not None}


def add_estimate_snapshot(batch: BatchEstimate, cfg: DriftlineConfig, realized: float | None = None) -> None:
    """The batch's estimate and band on the dashboard at its data's time; with labels, the realized metric beside
    them (the same snapshot, replaced)."""
    figures = estimate_figures(batch.metric, batch.value, batch.lower, batch.upper)
    if realized is not None:
        figures[f"realized {batch.metric}"] = realized
    snapshot = evidently_report.Snapshot(
        f"{evidently_report.ESTIMATE_TAG} {batch.batch} v{batch.model_version}",
        datetime.fromisoformat(batch.data_time),
        batch.model_version,
    )
    evidently_report.add_figures_snapshot(figures, evidently_report.ESTIMATE_TAG, cfg, snapshot)


def compare(
    kept: BatchEstimate,
    estimate: Estimate | None,
    realized: float | None,
    labeled_rows: int,
    note: str = "",
) -> EstimateCheck:
    """`estimate` (of the labeled rows: the whole batch's kept one, or one of the labeled part) against `realized`;
    no estimate of the labeled rows, or no number on either side: not compared (within None), the note says why."""
    now = datetime.now(UTC).isoformat()
    shown = estimate if estimate is not None and estimate.value is not None else None
    if shown is None:
        note = note or (estimate.note if estimate is not None else kept.note) or "no estimated number"
    elif realized is None:
        note = f"{kept.metric} is undefined on the {labeled_rows} labeled rows: not compared"
    return EstimateCheck(
        model_version=kept.model_version,
        source_fingerprint=kept.source_fingerprint,
        batch=kept.batch,
        metric=kept.metric,
        estimated=shown.value if shown else None,
        lower=shown.lower if shown else None,
        upper=shown.upper if shown else None,
        realized=realized,
        labeled_rows=labeled_rows,
        batch_rows=kept.rows,
        within=None if shown is None or realized is None else bool(shown.within(realized)),
        note=note,
        checked_at=now,
        estimated_at=kept.estimated_at,
        slice_name=kept.slice_name,
    )


def as_estimate(kept: BatchEstimate) -> Estimate:
    return Estimate(
        metric=kept.metric, value=kept.value, lower=kept.lower, upper=kept.upper, rows=kept.rows, note=kept.note
    )


def review_batch(
    kept: BatchEstimate, rows: pd.DataFrame, realized: float | None, champion: Champion, cfg: DriftlineConfig, classes
) -> EstimateCheck:
    """The kept estimate when the whole batch is labeled; with labels for part of it, the estimator's estimate of the
    labeled part (the champion's estimator: another version's is not loaded), when that part has estimation.min_rows."""
    labeled, least = len(rows), cfg.estimation.min_rows
    if labeled >= kept.rows:
        return compare(kept, as_estimate(kept), realized, labeled)
    part = f"{labeled} of {kept.rows} rows labeled"
    if labeled < least:
        return compare(
            kept, None, realized, labeled, f"{part}, fewer than estimation.min_rows={least}: not compared yet"
        )
    if kept.model_version != champion.ref.version or champion.estimator is None:
        return compare(
            kept,
            None,
            realized,
            labeled,
            f"{part}; v{kept.model_version} is not the champion, its estimator is not loaded: compared once the "
            "whole batch is labeled",
        )
    predictions = performance.logged_predictions(rows, cfg, classes)
    estimate = champion.estimator.estimate(feature_frame(rows, cfg.dataset).reset_index(drop=True), predictions)
    return compare(kept, estimate, realized, labeled, f"{part}: compared on the labeled part")


def review_arrived(
    kept: BatchEstimate,
    frame: pd.DataFrame,
    features: pd.DataFrame,
    predictions: Predictions,
    estimator: PerformanceEstimator,
    cfg: DriftlineConfig,
) -> EstimateCheck | None:
    """A monitored file that came with its labels: its estimate against them at once (on the labeled rows; the
    estimator re-estimates them when only part is labeled, with estimation.min_rows of them). None: no label."""
    target = cfg.dataset.target
    labeled = frame[target].notna().to_numpy() if target in frame else None
    if labeled is None or not labeled.any():
        return None
    count, part = int(labeled.sum()), subset(predictions, labeled)
    realized = primary_metric_of(part, frame[target][labeled], cfg)
    if labeled.all():
        return compare(kept, as_estimate(kept), realized, count)
    if count < cfg.estimation.min_rows:
        too_few = f"{count} of {kept.rows} rows labeled, fewer than estimation.min_rows={cfg.estimation.min_rows}"
        return compare(kept, None, realized, count, f"{too_few}: not compared")
    estimate = estimator.estimate(features[labeled].reset_index(drop=True), part)
    return compare(
        kept, estimate, realized, count, f"{count} of {kept.rows} rows labeled: compared on the labeled part"
    )


@dataclass(frozen=True)
class SelfCheck:
    """What this label run's labels said of the kept estimates: the checks, and the champion's estimator after them."""

    checks: list[EstimateCheck]
    results: list[performance.Performance]  # the label run's results, each batch with its check, each version its error
    trust: TrustState | None  # the champion's estimator now; None: the champion has none
    mean_error: float | None  # the champion's mean |estimated − realized| over its compared batches

    def figures(self) -> dict[str, float]:
        figures = {} if self.mean_error is None else {"estimate_error": self.mean_error}
        if self.trust is not None:
            figures["estimate_trusted"] = float(self.trust.trusted)
        return figures


def self_check(
    labeled: pd.DataFrame,
    results: list[performance.Performance],
    touched: set[tuple[str, str]],
    champion: Champion,
    cfg: DriftlineConfig,
    classes: list | None,
    registry_root: Path,
) -> SelfCheck:
    """Each scoring batch that gained labels in this run and has a kept estimate: its estimate against the realized
    primary metric (on the labeled rows), kept in the ledger and shown on the dashboard; then the champion's trust."""
    path = estimate_ledger.ledger_path(registry_root)
    ledger = estimate_ledger.read_ledger(path)
    checks: dict[tuple[str, str], EstimateCheck] = {}
    slice_checks: list[EstimateCheck] = []
    for result in results:
        if not result.per_batch or (result.model_version, result.source) not in touched:
            continue
        rows = labeled[
            (labeled[prediction_log.MODEL_VERSION].astype(str) == result.model_version)
            & (labeled[prediction_log.SOURCE].astype(str) == result.source)
        ]
        for fingerprint, part in rows.groupby(prediction_log.SOURCE_FINGERPRINT, sort=False):
            kept = ledger.estimates.get((result.model_version, str(fingerprint), estimate_ledger.WHOLE_BATCH))
            if kept is None:  # never monitored: no estimate to check
                continue
            realized = performance.measure(part, cfg, classes).get(cfg.primary_metric)
            checks[result.model_version, result.source] = check = review_batch(
                kept, part, realized, champion, cfg, classes
            )
            if check.estimated is not None:
                add_estimate_snapshot(replace_estimate(kept, check), cfg, realized)
            slice_checks += review_slices(
                ledger.slices_of(kept.model_version, kept.source_fingerprint), part, champion, cfg, classes
            )
    estimate_ledger.record_checks(path, [*checks.values(), *slice_checks])
    ledger = estimate_ledger.read_ledger(path)
    reviewed = [
        replace(r, estimated=checks.get((r.model_version, r.source)))
        if r.per_batch
        else replace(r, estimate_error=ledger.mean_error(r.model_version))
        for r in results
    ]
    version, estimator = champion.ref.version, champion.estimator
    trust = None if estimator is None else version_trust(estimator, version, ledger, cfg)
    return SelfCheck([*checks.values(), *slice_checks], reviewed, trust, ledger.mean_error(version))


def review_slices(
    kept_slices: list[BatchEstimate], part: pd.DataFrame, champion: Champion, cfg: DriftlineConfig, classes
) -> list[EstimateCheck]:
    """Each kept slice estimate of a labeled batch against the metric its slice's labeled rows realized (a slice
    column the log does not carry: not compared)."""
    checks = []
    for kept in kept_slices:
        column, value = kept.slice_name.split("=", 1)
        if column not in part:
            continue
        rows = part[part[column].astype(str) == value]
        realized = performance.measure(rows, cfg, classes).get(cfg.primary_metric) if len(rows) else None
        checks.append(review_batch(kept, rows, realized, champion, cfg, classes))
    return checks


def replace_estimate(kept: BatchEstimate, check: EstimateCheck) -> BatchEstimate:
    """The kept estimate as compared (of the labeled part, when only part was labeled): what the dashboard shows."""
    return replace(kept, value=check.estimated, lower=check.lower, upper=check.upper)


@dataclass(frozen=True)
class EstimatorState:
    """A version's estimator as `driftline status` and the KPIs show it: its trust and its record on labeled batches."""

    version: str
    trust: TrustState | None  # None: the version has no estimator (`note` says why)
    compared: int
    outside: int
    mean_error: float | None
    note: str = ""
    untrusted_slices: list[str] = field(default_factory=list)  # gate.slices slices whose own record lost trust

    @property
    def shown(self) -> str:
        return "none" if self.trust is None else "trusted" if self.trust.trusted else "untrusted"

    def line(self) -> str:
        if self.trust is None:
            return f"estimator of v{self.version}: none ({self.note})"
        error = "" if self.mean_error is None else f", mean |error| {self.mean_error:.4f}"
        record = f"{self.compared} labeled batches compared, {self.outside} outside the band{error}"
        slices = f"; untrusted on slices {', '.join(self.untrusted_slices)}" if self.untrusted_slices else ""
        return f"estimator of v{self.version}: {self.shown} ({self.trust.reason}); {record}{slices}"

    def to_dict(self) -> dict:
        return {
            "state": self.shown,
            "reason": self.trust.reason if self.trust else self.note,
            "compared_batches": self.compared,
            "outside_band": self.outside,
            "mean_error": self.mean_error,
            "untrusted_slices": self.untrusted_slices,
        }


def estimator_states(
    cfg: DriftlineConfig, versions: list[VersionInfo], registry_root: Path
) -> dict[str, EstimatorState]:
    """Each version's estimator from its tags (the holdout check at training, or why it has none) and the ledger."""
    ledger = estimate_ledger.read_ledger(estimate_ledger.ledger_path(registry_root))
    states = {}
    for info in versions:
        compared = ledger.compared(info.version)
        record = {
            "version": info.version,
            "compared": len(compared),
            "outside": sum(not check.within for check in compared),
            "mean_error": ledger.mean_error(info.version),
        }
        holdout = info.tags.get(ESTIMATE_HOLDOUT_WITHIN)
        if holdout is None:
            why = info.tags.get(ESTIMATE_UNAVAILABLE) or "trained before estimation existed, or with it off"
            states[info.version] = EstimatorState(trust=None, note=why, **record)
        else:
            within = holdout == "true"
            untrusted = [
                name
                for name in ledger.slice_names(info.version)
                if not trust_state(within, ledger.outcomes(info.version, name), cfg.estimation).trusted
            ]
            states[info.version] = EstimatorState(
                trust=trust_state(within, ledger.outcomes(info.version), cfg.estimation),
                untrusted_slices=untrusted,
                **record,
            )
    return states
