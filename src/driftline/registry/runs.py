"""What driftline logs to MLflow runs: training candidates, gate decisions, monitoring, trends, performance, scoring."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from driftline.evaluation.gate import GateDecision
from driftline.monitoring.estimation import EstimatorUnavailable, PerformanceEstimator
from driftline.monitoring.fairness_watch import BatchCheck, LiveChecks
from driftline.monitoring.label_drift import LabelDrift
from driftline.monitoring.performance import Degradation, Performance
from driftline.registry.artifacts import ModelStore, trusted_types_for
from driftline.registry.audit_events import Action, Actor
from driftline.registry.audit_log import AuditLog
from driftline.registry.client import Connection
from driftline.registry.identity import registry_folders
from driftline.registry.refs import (
    CHALLENGER,
    CONFIG_ARTIFACT,
    ESTIMATE_HOLDOUT_WITHIN,
    ESTIMATE_UNAVAILABLE,
    GATE_ARTIFACT,
    HOLDOUT,
    LOG_THROUGH,
    MAX_TAG_VALUE,
    MODEL_CARD,
    MODEL_SHA256,
    REPORTS,
    RUN_TYPE,
    TAG,
    ModelRef,
)
from driftline.training.lineage import Lineage
from driftline.training.train import TrainedModel

# The per-model run whose metrics, appended step by step, are MLflow's trend charts of the monitoring runs.
TRENDS_RUN_TYPE = "trends"
MAX_VERSION_DESCRIPTION = 5000  # the registry's column width
MAX_PARAMS_PER_BATCH = 100  # MLflow's limit per log_batch call


def metric_key(name: str) -> str:
    """MLflow keys allow letters, digits and `_-. /`; column names may hold anything else."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)


Point = tuple[str, float, int, datetime]  # a metric's key, value, step and time


def log_points(client, run_id: str, points: list[Point]) -> None:
    """(key, value, step, time) points, in batches of MLflow's limit per call; missing values are left out."""
    from mlflow.entities import Metric

    metrics = [
        Metric(metric_key(key), float(value), int(at.timestamp() * 1000), step)
        for key, value, step, at in points
        if np.isfinite(value)
    ]
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000])


def _watch_points(
    live: LiveChecks, label_drift: LabelDrift, steps: dict[str, int], data_times: dict[str, datetime], now: datetime
) -> list[tuple[str, float, int, datetime]]:
    """Each labeled batch's slice and fairness figures and its label drift, at the batch's step and data time."""
    points = [
        (key, value, steps.get(batch.source, 0), data_times.get(batch.source, batch.scored_at))
        for batch in live.batches
        for key, value in _live_figures(batch).items()
    ]
    return points + [
        (key, value, steps.get(batch.source, 0), data_times.get(batch.source, now))
        for batch in label_drift.batches
        for key, value in batch.figures().items()
    ]


def _live_figures(batch: BatchCheck) -> dict[str, float]:
    """A batch's slice metrics, disparate impact and group rates as MLflow keys, grouped in charts by the prefix."""
    figures = {f"batch_slice_{batch.metric}/{c.column}/{c.value}": c.live for c in batch.slices if c.live is not None}
    if batch.fairness is not None:
        attribute = batch.fairness.attribute
        figures |= {f"batch_positive_rate/{attribute}/{g.group}": g.positive_rate for g in batch.fairness.groups}
        if batch.disparate_impact is not None:
            figures[f"batch_disparate_impact/{attribute}"] = batch.disparate_impact
    return figures


def estimator_tags(trained: TrainedModel) -> dict[str, str]:
    """The estimator's starting trust (its holdout check), or why the version has none; nothing when estimation is
    off."""
    estimator = trained.estimator
    if estimator is None:
        return {}
    if isinstance(estimator, EstimatorUnavailable):
        return {ESTIMATE_UNAVAILABLE: estimator.reason[:500]}
    return {ESTIMATE_HOLDOUT_WITHIN: str(estimator.holdout_within).lower()}


def estimator_figures(trained: TrainedModel) -> dict[str, float]:
    """The holdout check of the estimator as training-run metrics: its mean |error| and its chunks outside the band."""
    estimator = trained.estimator
    check = estimator.holdout_check if isinstance(estimator, PerformanceEstimator) else None
    if check is None or check.mean_absolute_error is None:
        return {}
    outside = sum(not chunk.inside for chunk in check.chunks)
    return {"estimator_holdout_error": check.mean_absolute_error, "estimator_holdout_chunks_outside": float(outside)}


def _estimate_points(results: list[Performance], steps: dict[str, int], now: datetime) -> list[Point]:
    """Each labeled batch's estimate beside its realized metric at the batch's step (inside the band or not, when
    compared); each version's mean |error| over its compared batches at the version number."""
    points = []
    for r in results:
        check = r.estimated
        if not r.per_batch and r.estimate_error is not None:
            points.append(("version_estimate_error", r.estimate_error, int(r.model_version), now))
        if not r.per_batch or check is None:
            continue
        figures = {
            f"batch_estimated_{check.metric}": check.estimated,
            "batch_estimate_labeled_rows": check.labeled_rows,
        }
        if check.within is not None:
            figures |= {"batch_estimate_error": check.error, "batch_estimate_within": float(check.within)}
        step = steps.get(r.source, 0)
        points += [(key, value, step, r.data_time) for key, value in figures.items() if value is not None]
    return points


class RunLog:
    """The runs of one model's experiment: one per training, monitored batch, label join and scoring run."""

    def __init__(self, connection: Connection, store: ModelStore, audit: AuditLog):
        self._connection, self._client, self._name = connection, connection.client, connection.name
        self._store, self._audit = store, audit

    # --- training -------------------------------------------------------------------------------------------------
    def log_candidate(
        self,
        trained: TrainedModel,
        lineage: Lineage,
        trigger: str,
        actor: Actor | None = None,
        as_challenger: bool = True,
    ) -> ModelRef:
        """Log one training run (params, metrics, lineage, reference, skops model), register it as `challenger`."""
        from mlflow.entities import Metric, Param, RunStatus

        cfg = self._connection.cfg
        trusted = trusted_types_for(trained.model, cfg)
        lineage_tags = {
            f"{TAG}data_fingerprints": ",".join(source.fingerprint for source in lineage.data),
            f"{TAG}data_rows": ",".join(str(source.rows) for source in lineage.data),
            f"{TAG}training_rows": str(lineage.training_rows),
            f"{TAG}packages": ",".join(f"{name}={version}" for name, version in lineage.packages.items()),
            f"{TAG}config_fingerprint": lineage.config_fingerprint,
            f"{TAG}git_commit": lineage.git_commit or "unknown",
            f"{TAG}seed": str(lineage.seed),
            f"{TAG}run_type": "training",
            f"{TAG}trigger": trigger[:500],
            **estimator_tags(trained),
        }
        run = self._client.create_run(self._connection.experiment_id, run_name=f"train-{self._name}", tags=lineage_tags)
        run_id, now = run.info.run_id, int(datetime.now(UTC).timestamp() * 1000)
        try:
            params = [Param(key, str(value)[:500]) for key, value in trained.params.items()]
            for start in range(0, len(params), MAX_PARAMS_PER_BATCH):
                self._client.log_batch(run_id, params=params[start : start + MAX_PARAMS_PER_BATCH])
            metrics = [Metric(f"{HOLDOUT}{name}", float(value), now, 0) for name, value in trained.metrics.items()]
            metrics += [Metric(name, value, now, 0) for name, value in estimator_figures(trained).items()]
            self._client.log_batch(run_id, metrics=metrics)
            self._client.log_text(run_id, cfg.source_text, CONFIG_ARTIFACT)
            self._client.log_dict(run_id, lineage.to_dict(), "lineage.json")
            self._store.log_reference(run_id, trained.reference)
            if trained.estimator is not None and not isinstance(trained.estimator, EstimatorUnavailable):
                self._store.log_estimator(run_id, trained.estimator)
            logged = self._store.log_model(run_id, trained.model, trained.input_example, trusted)
        except BaseException as error:
            ended = RunStatus.FAILED if isinstance(error, Exception) else RunStatus.KILLED
            self._client.set_terminated(run_id, RunStatus.to_string(ended))
            raise
        self._client.set_terminated(run_id)
        registry_folders(cfg, self._connection)  # registers the model with its identity if it is not yet
        registered = self._client.create_model_version(
            self._name,
            source=logged.location,  # the files' place: MLflow's SQL registry resolves models:/ by the global URI
            run_id=run_id,
            tags=lineage_tags | {MODEL_SHA256: logged.sha256},
            model_id=logged.model_id,
        )
        version = str(registered.version)
        if as_challenger:  # not while an A/B test holds `challenger` for its arm B
            self._client.set_registered_model_alias(self._name, CHALLENGER, version)
        self._audit.record_unmoved(
            Action.registered,
            version,
            actor,
            trigger,
            {
                "run_id": run_id,
                "data_fingerprints": [source.fingerprint for source in lineage.data],
                "training_rows": lineage.training_rows,
                "holdout_metrics": trained.metrics,
            },
        )
        return ModelRef(self._name, version, run_id)

    def record_gate(self, candidate: ModelRef, decision: GateDecision, actor: Actor | None = None) -> None:
        """The decision and its evidence, on the model version (tags) and in its run (metrics, JSON)."""
        tags = {
            f"{TAG}gate.verdict": decision.verdict,
            f"{TAG}gate.reasons": " | ".join(decision.reasons)[:4900],
            f"{TAG}gate.metric": decision.metric,
            f"{TAG}gate.champion_version": decision.champion_version or "none",
            f"{TAG}gate.decided_at": datetime.now(UTC).isoformat(),
        }
        self._connection.tag_version_and_run(candidate, tags)
        for name, value in (decision.champion_metrics or {}).items():
            self._client.log_metric(candidate.run_id, f"champion_{HOLDOUT}{name}", value)
        self._client.log_text(candidate.run_id, json.dumps(decision.to_dict(), indent=2, default=str), GATE_ARTIFACT)
        if not decision.promote:
            self._audit.record_unmoved(
                Action.refused, candidate.version, actor, decision.summary, decision.evidence(candidate.run_id)
            )

    def log_model_card(self, ref: ModelRef, markdown: str) -> None:
        """The card as the run's `model_card.md` and as the version's description (what the MLflow UI shows)."""
        self._client.log_text(ref.run_id, markdown, MODEL_CARD)
        description = markdown
        if len(description) > MAX_VERSION_DESCRIPTION:
            note = f"\n\n… (full card: `{MODEL_CARD}` in run {ref.run_id})"
            description = description[: MAX_VERSION_DESCRIPTION - len(note)] + note
        self._client.update_model_version(self._name, ref.version, description=description)

    def log_importances(self, ref: ModelRef, importances: dict[str, float]) -> None:
        for feature, value in importances.items():
            self._client.log_metric(ref.run_id, metric_key(f"importance_{feature}"), float(value))

    # --- monitoring -------------------------------------------------------------------------------------------
    def log_monitoring(
        self,
        champion: ModelRef,
        batch_name: str,
        fingerprint: str,
        metrics: dict[str, float],
        summary: dict,
        report_path: Path | None,
        log_through: str | None = None,
    ) -> str:
        """One run per monitored batch or log window: drift figures as metrics, the decision as JSON, the report.

        `log_through` is the newest prediction-log file the run read: the next scheduled run starts after it.
        """
        tags = {
            f"{TAG}run_type": "monitoring",
            f"{TAG}champion_version": champion.version,
            f"{TAG}batch_fingerprint": fingerprint,
            f"{TAG}batch": batch_name[:500],
        }
        if log_through:
            tags[f"{TAG}{LOG_THROUGH}"] = log_through
        run = self._client.create_run(self._connection.experiment_id, run_name=f"monitor-{batch_name}"[:250], tags=tags)
        run_id = run.info.run_id
        for name, value in metrics.items():
            if np.isfinite(value):
                self._client.log_metric(run_id, metric_key(name), float(value))
        self._client.log_text(run_id, json.dumps(summary, indent=2, default=str), "drift.json")
        if report_path is not None:
            self._client.log_artifact(run_id, str(report_path), REPORTS)
        self._client.set_terminated(run_id)
        return run_id

    def _trend_run(self) -> str:
        found = self._connection.runs_of_type(TRENDS_RUN_TYPE, max_results=1)
        if found:
            return found[0].info.run_id
        run = self._client.create_run(
            self._connection.experiment_id, run_name=f"trends-{self._name}", tags={RUN_TYPE: TRENDS_RUN_TYPE}
        )
        self._client.set_terminated(run.info.run_id)  # a finished run still takes metrics: one point per monitoring run
        return run.info.run_id

    def log_drift_trend(self, figures: dict[str, float], at: datetime) -> int:
        """Append one monitoring run's drift figures to the model's trend run, at the next step; returns the step."""
        run_id = self._trend_run()
        step = len(self._client.get_metric_history(run_id, "drifted_feature_share"))
        log_points(self._client, run_id, [(key, value, step, at) for key, value in figures.items()])
        return step

    # --- performance, rollout, scoring ----------------------------------------------------------------------------
    def log_performance(
        self,
        champion: ModelRef,
        results: list[Performance],
        steps: dict[str, int],
        degradation: Degradation,
        live: LiveChecks,
        counts: dict[str, float],
        summary: dict,
        label_drift: LabelDrift,
    ) -> str:
        """One run per label join: per-batch metrics, slices and fairness, and label drift at the batch's step (its
        place in the prediction log) and its data's time, per version at the version number, and the champion's
        verdicts; MLflow's charts show the trends."""
        judged = live.judged
        tags = {RUN_TYPE: "performance", f"{TAG}champion_version": champion.version}
        if judged:
            tags[f"{TAG}watched_batch"] = judged[-1].source[:500]
            tags[f"{TAG}degraded_slices"] = ",".join(c.name for b in judged for c in b.degraded_slices)[:MAX_TAG_VALUE]
        run = self._client.create_run(
            self._connection.experiment_id, run_name=f"performance-v{champion.version}", tags=tags
        )
        run_id, now = run.info.run_id, datetime.now(UTC)
        points = [
            (f"batch_{name}", value, steps.get(r.source, 0), r.data_time)
            for r in results
            if r.per_batch
            for name, value in r.metrics.items()
        ]
        points += [("batch_labeled_rows", r.rows, steps.get(r.source, 0), r.data_time) for r in results if r.per_batch]
        points += [
            (f"version_{name}", value, int(r.model_version), now)
            for r in results
            if not r.per_batch
            for name, value in r.metrics.items()
        ]
        points += _estimate_points(results, steps, now)
        data_times = {r.source: r.data_time for r in results if r.per_batch}
        points += _watch_points(live, label_drift, steps, data_times, now)
        figures = {**counts, "degraded": float(degradation.degraded)}
        if judged:
            figures |= {
                "watched_batches": len(judged),
                "fairness_breached": float(bool(live.fairness_breaches)),
                "slices_degraded": sum(len(b.degraded_slices) for b in judged),
            }
            if judged[-1].disparate_impact is not None:
                figures["disparate_impact"] = judged[-1].disparate_impact
            if judged[-1].fairness_at_promotion is not None:
                figures["promotion_disparate_impact"] = judged[-1].fairness_at_promotion
        if degradation.measured is not None:
            figures[f"champion_{degradation.metric}"] = degradation.measured
        if degradation.at_promotion is not None:
            figures[f"promotion_{degradation.metric}"] = degradation.at_promotion
        if degradation.loss is not None:
            figures["degradation"] = degradation.loss
        points += [(key, value, 0, now) for key, value in figures.items()]
        log_points(self._client, run_id, points)
        self._client.log_text(run_id, json.dumps(summary, indent=2, default=str), "performance.json")
        self._client.set_terminated(run_id)
        return run_id

    def log_rollout(self, run_id: str, summary: str, evidence: dict, points: list[tuple[str, float, int]]) -> None:
        """A rollout verdict in the label join's run: a tag, its evidence, and per-batch figures at the batch steps."""
        now = datetime.now(UTC)
        self._client.set_tag(run_id, f"{TAG}rollout", summary[:MAX_TAG_VALUE])
        self._client.log_text(run_id, json.dumps(evidence, indent=2, default=str), "rollout.json")
        log_points(self._client, run_id, [(key, value, step, now) for key, value, step in points])

    def log_scoring(
        self, model_version: str, batch_name: str, rows: int, seconds: float, extra: dict[str, float] | None = None
    ) -> None:
        """Rows and seconds of one scoring run (the throughput KPI reads them back), and a rollout's figures."""
        run = self._client.create_run(
            self._connection.experiment_id,
            run_name=f"score-{batch_name}"[:250],
            tags={RUN_TYPE: "scoring", f"{TAG}model_version": model_version, f"{TAG}batch": batch_name[:500]},
        )
        now = datetime.now(UTC)
        figures = [("rows", rows, 0, now), ("seconds", seconds, 0, now)]
        figures += [(name, value, 0, now) for name, value in (extra or {}).items()]
        log_points(self._client, run.info.run_id, figures)
        self._client.set_terminated(run.info.run_id)
