"""Tasks for delayed labels: receive label files, join them to the prediction log, measure and judge the champion."""

from __future__ import annotations

import json

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.governance.rollout import RolloutVerdict
from driftline.monitoring.label_drift import BatchLabelDrift
from driftline.monitoring.performance import Performance
from driftline.registry import Champion
from driftline.steps import label_intake, performance_check, rollout_check
from driftline.steps.label_intake import LabelIntake
from driftline.steps.performance_check import PerformanceReport
from driftline.tasks.events import FAIRNESS_BREACHED, PERFORMANCE_DEGRADED, SLICE_DEGRADED, emit_model_event
from driftline.tasks.publishing import links_markdown, publish_markdown, publish_table
from driftline.tasks.registry import run_actor
from driftline.tasks.retries import retried


@task(name="receive-labels", cache_policy=NO_CACHE)
def receive_labels(cfg: DriftlineConfig, champion: Champion, path: str | None) -> LabelIntake:
    """The label files waiting in labels.folder (or the one named): checked, kept in the label store and filed
    away to done/; a bad file is quarantined with its reasons and the others still count."""
    return label_intake.receive_labels(cfg, champion, path)


@task(name="measure-performance", cache_policy=NO_CACHE, **retried(1, 5))
def measure_performance(cfg: DriftlineConfig, champion: Champion, intake: LabelIntake) -> PerformanceReport:
    """The champion measured on every labeled prediction and judged, its newly labeled batches' labels tested for
    drift (logged to MLflow), published as a table."""
    report = performance_check.measure_performance(cfg, champion, intake, str(run_actor()))
    degradation = report.degradation
    label_drift = {batch.source: batch for batch in report.label_drift.batches}
    rows = [
        {
            "model version": f"v{r.model_version}",
            "batch": r.source,
            "labeled rows": r.rows,
            **{name: round(value, 4) for name, value in r.metrics.items()},
            **estimate_cells(r),
            "label drift": label_drift_cell(label_drift, r, degradation.model_version),
        }
        for r in report.results
    ]
    links = {"MLflow performance run": report.mlflow_run_url}
    publish_table(
        cfg,
        "performance",
        rows,
        (
            f"Performance on labeled predictions: {report.labeled_rows} labeled, {report.pending_predictions} "
            f"waiting for a label, {report.unmatched_labels} labels without a prediction. "
            f"{'DEGRADED: ' if degradation.degraded else ''}{degradation.reason}. "
            f"Slices and fairness of v{degradation.model_version}: {report.live.summary}. "
            f"{estimator_summary(report)}. Label drift of v{degradation.model_version}: "
            f"{'DRIFTED: ' if report.label_drift.drifted else ''}{report.label_drift.summary}. "
            f"{links_markdown(links, report.mlflow_run_id)}"
        ),
    )
    return report


def estimate_cells(result: Performance) -> dict[str, object]:
    """The batch's estimate before labels beside what they realized; the version's mean error over its batches."""
    check = result.estimated
    if not result.per_batch:
        error = "–" if result.estimate_error is None else round(result.estimate_error, 4)
        return {"estimated": "–", "within band": "–", "estimate error": error}
    if check is None:
        return {"estimated": "–", "within band": "no estimate kept", "estimate error": "–"}
    band = "" if check.lower is None else f" [{check.lower:.4f}, {check.upper:.4f}]"
    estimated = "–" if check.estimated is None else f"{check.estimated:.4f}{band}"
    within = check.note if check.within is None else ("yes" if check.within else "NO")
    error = "–" if check.error is None else round(check.error, 4)
    return {"estimated": estimated, "within band": within, "estimate error": error}


def label_drift_cell(tested: dict[str, BatchLabelDrift], result: Performance, champion_version: str) -> str:
    """A newly labeled batch of the champion: its labels' drift statistic against the threshold, or why none."""
    batch = tested.get(result.source) if result.per_batch and result.model_version == champion_version else None
    return "–" if batch is None else batch.verdict()


def estimator_summary(report: PerformanceReport) -> str:
    """The champion's estimator after this run's labels: its trust and its mean error."""
    checked, version = report.estimates, report.degradation.model_version
    if checked.trust is None:
        return f"Estimator of v{version}: none"
    error = "no labeled batch compared yet" if checked.mean_error is None else f"mean |error| {checked.mean_error:.4f}"
    state = "trusted" if checked.trust.trusted else "UNTRUSTED"
    return f"Estimator of v{version}: {state} ({checked.trust.reason}); {error}"


@task(name="judge-rollout", cache_policy=NO_CACHE)
def judge_rollout(cfg: DriftlineConfig, champion: Champion, report: PerformanceReport) -> RolloutVerdict | None:
    """The held challenger's labeled live rows against the champion's: promote, hold or drop (None: none held)."""
    verdict = rollout_check.judge_rollout(cfg, champion, report)
    if verdict is None:
        return None
    evidence = json.dumps(verdict.evidence, indent=2, default=str)
    publish_markdown(
        cfg,
        "rollout",
        f"## {verdict.summary}\n\nEvidence:\n```json\n{evidence}\n```",
        f"Rollout of v{verdict.challenger_version}: {verdict.action}",
    )
    return verdict


@task(name="notify-degradation", cache_policy=NO_CACHE)
def notify_degradation(report: PerformanceReport, cfg: DriftlineConfig, retraining: str) -> None:
    degradation = report.degradation
    emit_model_event(
        PERFORMANCE_DEGRADED,
        cfg,
        {
            "champion_version": degradation.model_version,
            "metric": degradation.metric,
            "at_promotion": degradation.at_promotion,
            "measured": degradation.measured,
            "rows": degradation.rows,
            "reason": degradation.reason,
            "retraining": retraining,
            "mlflow_run_id": report.mlflow_run_id,
            "mlflow_run_url": report.mlflow_run_url,
        },
    )


@task(name="notify-slices-and-fairness", cache_policy=NO_CACHE)
def notify_slices_and_fairness(report: PerformanceReport, cfg: DriftlineConfig, retraining: str) -> None:
    """One event per newly labeled batch of the champion whose disparate impact fell under the minimum, and one per
    batch with slices worse than at promotion beyond the tolerance."""
    live = report.live
    links = {
        "mlflow_run_id": report.mlflow_run_id,
        "mlflow_run_url": report.mlflow_run_url,
        "counts_as_degradation": live.counts_as_degradation,
        "retraining": retraining,
    }
    for batch in live.fairness_breaches:
        fairness = batch.fairness
        emit_model_event(
            FAIRNESS_BREACHED,
            cfg,
            {
                "champion_version": batch.model_version,
                "batch": batch.source,
                "rows": batch.rows,
                "attribute": fairness.attribute,
                "disparate_impact": fairness.disparate_impact,
                "minimum": fairness.minimum,
                "at_promotion": batch.fairness_at_promotion,
                "positive_rates": {group.group: group.positive_rate for group in fairness.groups},
                "reason": batch.fairness_reason,
                **links,
            },
        )
    for batch in live.slice_degradations:
        emit_model_event(
            SLICE_DEGRADED,
            cfg,
            {
                "champion_version": batch.model_version,
                "batch": batch.source,
                "rows": batch.rows,
                "metric": batch.metric,
                "tolerance": live.tolerance,
                "slices": [
                    {
                        "slice": check.name,
                        "rows": check.rows,
                        "measured": check.live,
                        "at_promotion": check.at_promotion,
                    }
                    for check in batch.degraded_slices
                ],
                "reason": batch.slice_reason(live.tolerance),
                **links,
            },
        )
