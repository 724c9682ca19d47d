"""Label drift when labels come late: each newly labeled scoring batch of the champion, its labels tested against the
champion's training reference of the target with the drift check's own statistic, method and threshold."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from driftline.config import DriftConfig, DriftlineConfig, FeatureType
from driftline.data import prediction_log
from driftline.monitoring.drift import ColumnDrift, summarize, summary_drift
from driftline.monitoring.performance import truth_of
from driftline.monitoring.reference import ReferenceStats, reference_column, target_kind


@dataclass(frozen=True)
class BatchLabelDrift:
    """One scoring batch's labels so far against the training labels (None: too few labeled rows for a verdict)."""

    source: str
    rows: int  # labeled rows of the champion's predictions in the batch
    test: ColumnDrift | None
    note: str = ""

    @property
    def drifted(self) -> bool:
        return self.test is not None and self.test.drifted

    @property
    def reason(self) -> str:
        """The drift check's own words for a drifted label (at label delay 0), naming the batch."""
        test = self.test
        return (
            f"label drift in {self.source}: {test.role} {test.column!r} drifted ({test.method} = {test.statistic:.3g})"
        )

    def verdict(self) -> str:
        """The statistic against its threshold on the batch's labeled rows, or why there is no verdict."""
        if self.test is None:
            return self.note
        test = self.test
        bound = "calibrated threshold" if test.calibrated else "threshold"
        drifted = "DRIFTED" if test.drifted else "no drift"
        figures = f"{test.method} = {test.statistic:.3g}, {bound} {test.threshold:.3g}"
        return f"{drifted} on {self.rows} labeled rows ({figures})"

    def line(self) -> str:
        return f"{self.source}: {self.verdict()}"

    def figures(self) -> dict[str, float]:
        """What MLflow records at the batch's step: the statistic under its method's name, and the verdict."""
        if self.test is None:
            return {}
        return {
            f"batch_label_drift_{self.test.method}": self.test.statistic,
            "batch_label_drifted": float(self.drifted),
        }


@dataclass(frozen=True)
class LabelDrift:
    """The champion's newly labeled batches, each judged on all its labeled rows so far, in scoring order."""

    batches: list[BatchLabelDrift] = field(default_factory=list)
    note: str = ""  # why no batch was tested

    @property
    def drifted(self) -> list[BatchLabelDrift]:
        return [batch for batch in self.batches if batch.drifted]

    @property
    def reasons(self) -> list[str]:
        return [batch.reason for batch in self.drifted]

    @property
    def summary(self) -> str:
        if self.note:
            return self.note
        if not self.batches:
            return "no newly labeled batch of the champion"
        if self.drifted:
            return "; ".join(self.reasons)
        return f"no label drift in {len(self.batches)} newly labeled batch(es)"

    def retraining_reasons(self, spec: DriftConfig, estimate_trusted: bool) -> list[str]:
        """Label drift starts a retrain as a drift alarm would at label delay 0, with drift.retrain: under trigger
        `drift` always; under `either` only when the champion's estimator is not trusted (a trusted one decides);
        under `estimated` never (drift alarms only report)."""
        if not spec.retrain or spec.trigger == "estimated" or (spec.trigger == "either" and estimate_trusted):
            return []
        return self.reasons


def check_label_drift(
    labeled: pd.DataFrame,
    champion_version: str,
    reference: ReferenceStats,
    cfg: DriftlineConfig,
    newly_labeled: set[str],
) -> LabelDrift:
    """Per scoring batch of the champion that gained labels in this run (`newly_labeled`), in scoring order: the
    drift of all its labeled rows' labels against the champion's training labels, as detect_drift tests a batch that
    carries its target. Fewer than drift.min_rows labeled rows: a note, no verdict."""
    spec, dataset = cfg.drift, cfg.dataset
    if not spec.target_drift:
        return LabelDrift(note="drift.target_drift is off: labels are not tested for drift")
    if dataset.target not in reference.columns:
        return LabelDrift(note=f"the champion's drift reference has no target {dataset.target!r}: no label drift")
    rows = labeled[labeled[prediction_log.MODEL_VERSION] == champion_version] if not labeled.empty else labeled
    rows = rows[rows[prediction_log.SOURCE].isin(newly_labeled)] if not rows.empty else rows
    if rows.empty:
        return LabelDrift()
    kind = target_kind(dataset.task)
    known = reference_column(reference, dataset.target, kind)
    first_scored = rows.groupby(prediction_log.SOURCE)[prediction_log.SCORED_AT].min().sort_values()
    batches = []
    for source in first_scored.index:
        batch = rows[rows[prediction_log.SOURCE] == source]
        if len(batch) < spec.min_rows:
            note = f"{len(batch)} labeled rows, fewer than drift.min_rows={spec.min_rows}: no label drift verdict"
            batches.append(BatchLabelDrift(str(source), len(batch), None, note))
            continue
        labels = summarize(truth_of(batch, cfg), kind is FeatureType.numeric)
        test = summary_drift(reference, known, labels, dataset.target, "target", kind, spec)
        batches.append(BatchLabelDrift(str(source), len(batch), test))
    return LabelDrift(batches)
