"""What the registry remembers: versions, gate decisions, detections and runs (the KPIs' inputs), links for people."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import quote

from driftline.monitoring.fairness_watch import AtPromotion
from driftline.monitoring.kpis import Detection, LiveCheck, MonitoredBatch, PipelineRun, ScoringRun, Transition
from driftline.registry.audit_events import Action
from driftline.registry.audit_log import AuditLog
from driftline.registry.client import Connection
from driftline.registry.refs import (
    AUDIT,
    CONFIG_ARTIFACT,
    GATE_ARTIFACT,
    HOLDOUT,
    LOG_THROUGH,
    REFERENCE_ARTIFACTS,
    SKOPS_FILE,
    TAG,
    VersionInfo,
)

LINEAGE_TAGS = ("data_fingerprints", "data_rows", "training_rows", "config_fingerprint", "packages", "seed")
RUN_ARTIFACTS = (REFERENCE_ARTIFACTS, "lineage.json", CONFIG_ARTIFACT.split("/")[0])


def _started(run) -> datetime:
    return datetime.fromtimestamp(run.info.start_time / 1000, UTC)


class History:
    """Read-only queries over one model's versions, runs and audit log."""

    def __init__(self, connection: Connection, audit: AuditLog):
        self._connection, self._client, self._name = connection, connection.client, connection.name
        self._audit = audit

    # --- versions -----------------------------------------------------------------------------------------------
    def versions(self, newest_only: bool = False) -> list[VersionInfo]:
        """Every version, oldest first; with `newest_only`, just the newest (one search, one run read)."""
        from mlflow.exceptions import MlflowException

        try:
            # search results leave aliases out; the registered model has them all
            registered = self._client.get_registered_model(self._name)
        except MlflowException:
            return []  # nothing registered yet
        found = self._client.search_model_versions(
            f"name = '{self._name}'", **({"max_results": 1, "order_by": ["version_number DESC"]} if newest_only else {})
        )
        aliases_by_version: dict[str, list[str]] = {}
        for alias, version in registered.aliases.items():
            aliases_by_version.setdefault(str(version), []).append(alias)
        infos = []
        for version in sorted(found, key=lambda v: int(v.version)):
            infos.append(
                VersionInfo(
                    version=str(version.version),
                    aliases=sorted(aliases_by_version.get(str(version.version), [])),
                    created_at=datetime.fromtimestamp(version.creation_timestamp / 1000, UTC).isoformat(),
                    run_id=version.run_id,
                    metrics=self.holdout_metrics_of(version.run_id),
                    tags=dict(version.tags),
                )
            )
        return infos

    def holdout_metrics_of(self, run_id: str) -> dict[str, float]:
        """The metrics a version had on its own holdout when it was trained."""
        metrics = self._client.get_run(run_id).data.metrics
        return {k[len(HOLDOUT) :]: v for k, v in metrics.items() if k.startswith(HOLDOUT)}

    def was_champion(self, version: str) -> bool:
        """Whether the version ever served: per the audit log, or (versions older than it) its gate verdict."""
        events = self._audit.events()
        if any(event.after.champion == version for event in events):
            return True
        tags = self._connection.version_tags(version)
        return tags.get(f"{TAG}gate.verdict") == "promoted" and tags.get(f"{TAG}approval.verdict") != "rejected"

    def promoted_at(self, version: str) -> str | None:
        """When the version last became champion (promotion or rollback), per its audit tags."""
        tags = self._connection.version_tags(version)
        times = [tags.get(f"{AUDIT}{action}.at") for action in (Action.promoted, Action.rolled_back)]
        return max((time for time in times if time), default=None)

    def missing_records(self, info: VersionInfo) -> list[str]:
        """What a registered version must carry and does not: holdout metrics, lineage tags, run artifacts, model."""
        missing = [] if info.metrics else ["holdout metrics"]
        missing += [f"tag {TAG}{key}" for key in LINEAGE_TAGS if f"{TAG}{key}" not in info.tags]
        logged = {artifact.path for artifact in self._client.list_artifacts(info.run_id)}
        missing += [f"artifact {path}" for path in RUN_ARTIFACTS if path not in logged]
        stored = self._connection.file_names(self._connection.version_source(info.version))
        missing += [f"model file {name}" for name in ("MLmodel", SKOPS_FILE) if name not in stored]
        return missing

    def recorded_config_text(self, run_id: str) -> str | None:
        """The config YAML exactly as the version was trained with (None if the run lacks it)."""
        return self._connection.run_text(run_id, CONFIG_ARTIFACT)

    def at_promotion(self, run_id: str) -> AtPromotion:
        """The version's own slice metrics and disparate impact on its holdout, from the gate.json its gate wrote
        (empty for a version whose gate had no slices or fairness configured)."""
        recorded = self._connection.run_text(run_id, GATE_ARTIFACT)
        return AtPromotion() if recorded is None else AtPromotion.of_gate_record(json.loads(recorded))

    # --- what the operational KPIs are computed from -------------------------------------------------------------
    def transitions(self) -> list[Transition]:
        """Every gate decision on this model's versions (tags `driftline.gate.verdict` / `gate.decided_at`)."""
        found = []
        for info in self.versions():
            decided_at = info.tags.get(f"{TAG}gate.decided_at")
            if info.gate_verdict and decided_at:
                against = info.tags.get(f"{TAG}gate.champion_version", "none")
                found.append(
                    Transition(
                        info.version,
                        info.gate_verdict,
                        datetime.fromisoformat(decided_at),
                        info.tags.get(f"{TAG}trigger", ""),
                        None if against == "none" else against,
                    )
                )
        return sorted(found, key=lambda transition: transition.decided_at)

    def detections(self) -> list[Detection]:
        """Monitoring runs that found drift, and label joins that found the champion degraded."""
        runs_of_type = self._connection.runs_of_type
        found = [
            Detection("drift", _started(run), run.data.tags.get(f"{TAG}batch", ""))
            for run in runs_of_type("monitoring", "metrics.dataset_drift = 1")
        ]
        found += [
            Detection("degradation", _started(run), run.data.tags.get(f"{TAG}champion_version", ""))
            for run in runs_of_type("performance", "metrics.degraded = 1")
        ]
        return sorted(found, key=lambda detection: detection.at)

    def monitored_batches(self) -> list[MonitoredBatch]:
        """Every drift check (monitoring run) and whether it found dataset drift."""
        return [
            MonitoredBatch(_started(run), run.data.metrics.get("dataset_drift") == 1)
            for run in self._connection.runs_of_type("monitoring")
        ]

    def live_checks(self) -> list[LiveCheck]:
        """The label runs that judged slices and fairness on newly labeled batches of the champion of the time."""
        found = []
        for run in self._connection.runs_of_type("performance", "metrics.watched_batches > 0"):
            tags, metrics = run.data.tags, run.data.metrics
            degraded = tags.get(f"{TAG}degraded_slices", "")
            found.append(
                LiveCheck(
                    tags.get(f"{TAG}champion_version", ""),
                    _started(run),
                    tags.get(f"{TAG}watched_batch", ""),
                    metrics.get("fairness_breached") == 1,
                    degraded.split(",") if degraded else [],
                    metrics.get("disparate_impact"),
                )
            )
        return found

    def training_runs(self) -> list[PipelineRun]:
        """Training runs in MLflow (those that got as far as logging a challenger), with their status."""
        runs = self._connection.runs_of_type("training")
        return [PipelineRun(run.info.status == "FINISHED", _started(run)) for run in runs]

    def scoring_runs(self) -> list[ScoringRun]:
        return [
            ScoringRun(int(run.data.metrics.get("rows", 0)), float(run.data.metrics.get("seconds", 0.0)), _started(run))
            for run in self._connection.runs_of_type("scoring")
        ]

    def monitored_through(self) -> str | None:
        """The newest prediction-log file any monitoring run of this model has read (the watermark)."""
        runs = self._client.search_runs(
            [self._connection.experiment_id],
            filter_string=f"tags.`{TAG}{LOG_THROUGH}` LIKE '%'",
            order_by=[f"tags.`{TAG}{LOG_THROUGH}` DESC"],
            max_results=1,
        )
        return runs[0].data.tags[f"{TAG}{LOG_THROUGH}"] if runs else None

    # --- links for people --------------------------------------------------------------------------------------
    def run_url(self, run_id: str) -> str | None:
        ui = self._connection.cfg.mlflow_ui_url
        return f"{ui}/#/experiments/{self._connection.experiment_id}/runs/{run_id}" if ui else None

    def version_url(self, version: str) -> str | None:
        ui = self._connection.cfg.mlflow_ui_url
        return f"{ui}/#/models/{quote(self._name)}/versions/{version}" if ui else None

    def artifact_url(self, run_id: str, artifact_path: str) -> str | None:
        ui = self._connection.cfg.mlflow_ui_url
        return f"{ui}/get-artifact?path={quote(artifact_path)}&run_uuid={run_id}" if ui else None
