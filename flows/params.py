"""Typed flow parameters (the Prefect UI renders them as forms) and the summaries flows return."""

from __future__ import annotations

from prefect.input import RunInput
from pydantic import BaseModel, ConfigDict, Field

from driftline.backtest.policies import DEFAULT_POLICIES, NAMED_POLICIES
from driftline.backtest.results import DUPLICATE, SCORED, Backtest, ReplayedBatch
from driftline.data.chunking import DataFile
from driftline.data.loading import DataBatch, Observed
from driftline.errors import DataRejected
from driftline.evaluation.gate import GateDecision
from driftline.fleet.sla import Checked, Unchecked
from driftline.monitoring.drift import DriftResult
from driftline.serving.batch_scoring import ScoredBatch
from driftline.steps.estimate_check import EstimationCheck
from driftline.steps.label_intake import LabelIntake
from driftline.steps.performance_check import PerformanceReport

DEFAULT_CONFIG = "configs/demo.yaml"


class TrainParams(BaseModel):
    config: str = Field(DEFAULT_CONFIG, description="Path of the driftline config (YAML).")
    data: list[str] = Field(
        default_factory=list,
        description="CSV/Parquet files to train on. Leave empty to use the retraining window of the archive.",
    )
    reason: str = Field("manual", description="Why this training runs; recorded with the model version.")


class BatchParams(BaseModel):
    config: str = Field(DEFAULT_CONFIG, description="Path of the driftline config (YAML).")
    data: str = Field(description="The new data file (CSV or Parquet).")
    output: str | None = Field(None, description="Where to write predictions; default: the workspace outputs/.")


class ScoringParams(BaseModel):
    config: str = Field(DEFAULT_CONFIG, description="Path of the driftline config (YAML).")
    data: str | None = Field(
        None, description="A file to score. Leave empty to score every complete file waiting in scoring.inbox."
    )
    output: str | None = Field(
        None, description="Where to write predictions (.parquet or .csv); default: the workspace outputs/."
    )


class MonitorParams(BaseModel):
    config: str = Field(DEFAULT_CONFIG, description="Path of the driftline config (YAML).")
    data: str | None = Field(
        None,
        description="A file to check for drift. Leave empty to check the predictions logged since the last run.",
    )


class LabelParams(BaseModel):
    config: str = Field(DEFAULT_CONFIG, description="Path of the driftline config (YAML).")
    data: str | None = Field(
        None,
        description="A label file (CSV/Parquet: id and label). Leave empty to take every complete file "
        "waiting in labels.folder.",
    )


class BacktestParams(BaseModel):
    config: str = Field(DEFAULT_CONFIG, description="Path of the driftline config (YAML).")
    data: list[str] = Field(description="The history: CSV/Parquet files, replayed in event-time order (else as given).")
    initial: int = Field(1, description="How many of the earliest files train the first champion (the rest replay).")
    policies: list[str] = Field(
        default_factory=lambda: list(DEFAULT_POLICIES),
        description=f"Named policies to replay ({', '.join(NAMED_POLICIES)}): the config as written, the first "
        "champion frozen, a retrain after every batch (the gate still decides), the config retraining on the estimated "
        "metric (drift.trigger: estimated).",
    )
    variants: list[list[str]] = Field(
        default_factory=list,
        description='Config variants, each its own policy: a list of PATH=VALUE changes, e.g. [["drift.drift_share'
        '=0.5"], ["drift.numeric_method=wasserstein", "drift.categorical_method=jensenshannon"]].',
    )
    output: str | None = Field(
        None, description="Folder for backtest.json, .png and .html; default <workspace>/backtests/<name>-<time>."
    )
    label_delay: int = Field(
        0,
        ge=0,
        description="A batch's labels reach the loop this many batches after the batch (retraining windows, label "
        "drift, performance triggers); the served metric is still judged on them. 0: labels come with the batch.",
    )


class BacktestOutcome(BaseModel):
    """A backtest's result, where its files are, and its MLflow run."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    backtest: Backtest
    verdict: str = Field(description="Which policy served best, and what it cost.")
    json_file: str
    chart: str
    page: str
    mlflow_experiment: str
    mlflow_run_id: str
    mlflow_run_url: str | None = None


class RollbackParams(BaseModel):
    config: str = Field(DEFAULT_CONFIG, description="Path of the driftline config (YAML).")
    reason: str = Field(min_length=1, description="Why the champion is rolled back; recorded in the audit log.")
    to_version: str | None = Field(
        None, description="Version to make champion again. Leave empty for the one behind the `previous` alias."
    )
    override_retired: bool = Field(False, description="Allow a retired version back into service (recorded).")


class RollbackOutcome(BaseModel):
    champion_version: str
    rolled_back_from: str | None
    changed: bool = Field(description="False when it had been done already: a repeat changes nothing.")
    note: str


class ApprovalInput(RunInput):
    """What the Prefect UI asks the approver when a manual gate pauses the training run."""

    approve: bool = Field(description="Promote this challenger to champion?")
    approver: str = Field(min_length=1, description="Your name: recorded in the audit log with your answer.")
    reason: str = Field(min_length=1, description="Why: recorded with the answer.")


class TrainingOutcome(BaseModel):
    candidate_version: str
    verdict: str
    reasons: list[str]
    metric: str
    challenger_value: float | None
    champion_value: float | None
    champion_version: str | None = Field(description="Who holds `champion` after this run.")
    training_rows: int

    @classmethod
    def of(cls, candidate_version: str, decision: GateDecision, training_rows: int) -> TrainingOutcome:
        return cls(
            candidate_version=candidate_version,
            verdict=decision.verdict,
            reasons=decision.reasons,
            metric=decision.metric,
            challenger_value=decision.challenger_metrics.get(decision.metric),
            champion_value=(decision.champion_metrics or {}).get(decision.metric),
            champion_version=candidate_version if decision.promote else decision.champion_version,
            training_rows=training_rows,
        )


class ScoringOutcome(BaseModel):
    batch: str
    rows: int
    output: str
    model_version: str

    @classmethod
    def of(cls, batch: DataBatch | DataFile, scored: ScoredBatch) -> ScoringOutcome:
        return cls(batch=batch.name, rows=scored.rows, output=str(scored.output), model_version=scored.model_version)


class ScoringReport(BaseModel):
    """What one batch-scoring run did: the files it scored and those it rejected (now in quarantine)."""

    scored: list[ScoringOutcome] = Field(default_factory=list)
    rejected: list[str] = Field(default_factory=list, description="One line per rejected file.")

    def raise_if_rejected(self) -> None:
        """The run fails when any file was rejected, after the good ones were scored: a person must look."""
        if self.rejected:
            raise DataRejected(f"{len(self.rejected)} file(s)", self.rejected)


class EstimateOutcome(BaseModel):
    """The champion's metric estimated before labels on a monitored batch, and whether it may decide."""

    model_version: str
    metric: str
    value: float | None = Field(description="The estimate; None: no number (the verdict says why).")
    lower: float | None = None
    upper: float | None = None
    rows: int = 0
    others: dict[str, float] = Field(default_factory=dict, description="Confusion-matrix metrics, estimated.")
    trusted: bool | None = Field(None, description="The estimator's trust (None: the version has no estimator).")
    trust_reason: str = ""
    label_shift: bool = Field(False, description="The label-shift check flagged the batch: the estimate cannot see it.")
    label_shift_reason: str = ""
    at_promotion: float | None = None
    degraded: bool = Field(False, description="Even the band's best edge is worse than at promotion beyond the limit.")
    decides: bool = Field(False, description="Trusted, a number, no label shift: the estimate may drive a decision.")
    verdict: str = ""
    slices: dict[str, float | None] = Field(default_factory=dict, description="column=value -> estimate (gate.slices).")
    slice_trust: dict[str, bool | None] = Field(
        default_factory=dict, description="column=value -> the slice's estimator trust (None: no number to trust)."
    )
    labels_with_the_batch: str = Field("", description="The batch came with labels: its estimate checked against them.")
    realized: float | None = Field(None, description="What the labels that came with the batch realized.")
    within: bool | None = Field(None, description="The realized metric lay inside the band (None: not compared).")

    @classmethod
    def of(cls, estimation: EstimationCheck) -> EstimateOutcome:
        estimate, trust, shift = estimation.estimate, estimation.trust, estimation.prior_shift
        return cls(
            model_version=estimation.model_version,
            metric=estimation.metric,
            value=estimate.value if estimate else None,
            lower=estimate.lower if estimate else None,
            upper=estimate.upper if estimate else None,
            rows=estimate.rows if estimate else 0,
            others=dict(estimate.others) if estimate else {},
            trusted=trust.trusted if trust else None,
            trust_reason=trust.reason if trust else "",
            label_shift=estimation.label_shift,
            label_shift_reason=shift.reason if shift else "",
            at_promotion=estimation.at_promotion,
            degraded=estimation.degraded,
            decides=estimation.usable,
            verdict=estimation.verdict,
            slices={s.name: s.estimate.value for s in estimation.slices},
            slice_trust={s.name: s.trust.trusted if s.trust else None for s in estimation.slices},
            labels_with_the_batch=estimation.arrived.line() if estimation.arrived else "",
            realized=estimation.arrived.realized if estimation.arrived else None,
            within=estimation.arrived.within if estimation.arrived else None,
        )


class MonitoringOutcome(BaseModel):
    batch: str
    fingerprint: str
    rows: int
    drift_detected: bool
    drift_reasons: list[str]
    drifted_features: list[str]
    prediction_drift: bool | None = Field(None, description="Did the champion's predictions drift (None: unknown).")
    label_drift: bool | None = Field(None, description="Did the batch's labels drift (None: no labels).")
    quality_breaches: list[str] = Field(default_factory=list, description="Data-quality drift, one line each.")
    estimate: EstimateOutcome | None = Field(None, description="The champion's metric estimated before labels.")
    retraining: TrainingOutcome | None = None
    retrain_skipped: str = Field("", description="Why a retrain it called for did not run (nothing new to learn).")

    @classmethod
    def of(
        cls,
        observed: Observed,
        drift: DriftResult | None,
        retraining: TrainingOutcome | None,
        estimation: EstimationCheck | None = None,
        trained_already: str | None = None,
    ) -> MonitoringOutcome:
        prediction = drift.prediction_drift if drift else None
        label = next((c for c in drift.columns if c.role == "target"), None) if drift else None
        return cls(
            batch=observed.name,
            fingerprint=observed.fingerprint,
            rows=observed.rows,
            drift_detected=bool(drift and drift.detected),
            drift_reasons=drift.reasons if drift else [],
            drifted_features=drift.drifted_features if drift else [],
            prediction_drift=prediction.drifted if prediction else None,
            label_drift=label.drifted if label else None,
            quality_breaches=drift.quality_breaches if drift else [],
            estimate=EstimateOutcome.of(estimation) if estimation is not None else None,
            retraining=retraining,
            retrain_skipped=trained_already or "",
        )


class PerformanceOutcome(BaseModel):
    """What one label run found: files received, rows joined and waiting, the champion's verdict."""

    label_files: dict[str, int] = Field(description="Accepted label file -> rows.")
    already_received: list[str] = Field(default_factory=list)
    labeled_rows: int
    pending_predictions: int = Field(description="Logged predictions whose label has not arrived yet.")
    unmatched_labels: int = Field(description="Labels whose id no logged prediction has (kept: they may match later).")
    champion_version: str
    metric: str
    champion_value: float | None
    at_promotion: float | None
    degraded: bool = Field(description="The primary metric is worse than at promotion beyond labels.max_degradation.")
    reason: str
    fairness_breached: bool = Field(
        False, description="A newly labeled batch's disparate impact is under gate.fairness.min_disparate_impact."
    )
    degraded_slices: list[str] = Field(
        default_factory=list, description="Slices (column=value) worse than at promotion beyond gate.slices.tolerance."
    )
    slices_and_fairness: str = Field("", description="The verdict on the champion's slices and fairness, in words.")
    estimate_error: float | None = Field(
        None, description="The champion's estimator: mean |estimated − realized| over its labeled batches."
    )
    estimate_trusted: bool | None = Field(None, description="The champion's estimator after these labels (None: none).")
    estimate_trust_reason: str = ""
    estimate_checks: list[str] = Field(
        default_factory=list, description="Per newly labeled batch: its estimate against what its labels realized."
    )
    label_drift_checks: list[str] = Field(
        default_factory=list,
        description="Per newly labeled batch of the champion: its labels' drift against the training labels.",
    )
    label_drift_reasons: list[str] = Field(
        default_factory=list, description="The newly labeled batches whose labels drifted, as drift alarms word it."
    )
    label_drift_note: str = Field("", description="Why no label was tested for drift, when none was.")
    retraining: TrainingOutcome | None = None

    @classmethod
    def of(cls, intake: LabelIntake, report: PerformanceReport, retraining: TrainingOutcome | None):
        degradation, live = report.degradation, report.live
        return cls(
            label_files=intake.accepted,
            already_received=intake.already_received,
            labeled_rows=report.labeled_rows,
            pending_predictions=report.pending_predictions,
            unmatched_labels=report.unmatched_labels,
            champion_version=degradation.model_version,
            metric=degradation.metric,
            champion_value=degradation.measured,
            at_promotion=degradation.at_promotion,
            degraded=degradation.degraded,
            reason=degradation.reason,
            fairness_breached=bool(live.fairness_breaches),
            degraded_slices=[c.name for batch in live.slice_degradations for c in batch.degraded_slices],
            slices_and_fairness=live.summary,
            estimate_error=report.estimates.mean_error,
            estimate_trusted=report.estimates.trust.trusted if report.estimates.trust else None,
            estimate_trust_reason=report.estimates.trust.reason if report.estimates.trust else "",
            estimate_checks=[check.line() for check in report.estimates.checks],
            label_drift_checks=[batch.line() for batch in report.label_drift.batches],
            label_drift_reasons=report.label_drift.reasons,
            label_drift_note=report.label_drift.note,
            retraining=retraining,
        )


class RunSummary(BaseModel):
    """What one new batch did in the continuous-training loop; a batch seen before is not processed again."""

    batch: str
    fingerprint: str
    duplicate_of: str | None = Field(
        None, description="Set when this content was processed before: the file it was first archived as."
    )
    scoring: ScoringOutcome | None = None
    monitoring: MonitoringOutcome | None = None

    def replayed(self, metrics: dict[str, float], seconds: float) -> ReplayedBatch:
        """This run as one batch of a backtest, with the served model's metrics on the batch's labels."""
        if self.duplicate_of or self.scoring is None or self.monitoring is None:
            return ReplayedBatch(
                self.batch, None, DUPLICATE, note=f"same content as {self.duplicate_of}", seconds=seconds
            )
        monitoring, retraining = self.monitoring, self.monitoring.retraining
        signals = [
            name
            for name, drifted in [("prediction", monitoring.prediction_drift), ("label", monitoring.label_drift)]
            if drifted
        ]
        return ReplayedBatch(
            batch=self.batch,
            rows=self.scoring.rows,
            status=SCORED,
            served_version=self.scoring.model_version,
            metrics=metrics,
            drift=monitoring.drift_detected,
            drifted_features=monitoring.drifted_features,
            signals=signals,
            retrained=retraining is not None,
            candidate_version=retraining.candidate_version if retraining else None,
            gate=retraining.verdict if retraining else None,
            gate_reasons=retraining.reasons if retraining else [],
            champion_after=retraining.champion_version if retraining else self.scoring.model_version,
            seconds=seconds,
            retrain_skipped=monitoring.retrain_skipped,
        )


class FleetParams(BaseModel):
    config: str = Field(DEFAULT_CONFIG, description="A folder of model configs (a fleet) or one config file (YAML).")


class SlaCheckOutcome(BaseModel):
    """One sla-check: the evaluations per model, the breaches it announced, the models an outage left unchecked."""

    evaluated: dict[str, list[str]] = Field(description="Per model, one line per SLA evaluation of this check.")
    breached: dict[str, list[str]] = Field(description="Per model, the SLAs this check found newly breached.")
    unchecked: dict[str, str] = Field(description="Models not checked (their registry unreachable), and why.")

    @classmethod
    def of(cls, checked: list[Checked | Unchecked]) -> SlaCheckOutcome:
        done = [one for one in checked if isinstance(one, Checked)]
        return cls(
            evaluated={one.model: [e.line() for e in one.evaluations] for one in done},
            breached={one.model: [e.line() for e in one.breaches] for one in done if one.breaches},
            unchecked={one.model: one.problem for one in checked if isinstance(one, Unchecked)},
        )
