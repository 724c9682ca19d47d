"""The `Registry` front: one object per registered model, composed of the parts and delegating to them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sklearn.pipeline import Pipeline

from driftline.config import DriftlineConfig, RegistryFolders
from driftline.evaluation.gate import GateDecision
from driftline.monitoring.fairness_watch import AtPromotion, LiveChecks
from driftline.monitoring.kpis import Detection, LiveCheck, MonitoredBatch, PipelineRun, ScoringRun, Transition
from driftline.monitoring.label_drift import LabelDrift
from driftline.monitoring.performance import Degradation, Performance
from driftline.monitoring.reference import DriftReference
from driftline.registry.ab_tests import AbTest, AbTests
from driftline.registry.artifacts import ModelStore
from driftline.registry.audit_events import Action, Actor, AliasHolders, Approval, AuditEvent, Rollback
from driftline.registry.audit_log import AuditLog
from driftline.registry.backtests import BacktestLog
from driftline.registry.client import Connection
from driftline.registry.history import History
from driftline.registry.identity import registry_folders
from driftline.registry.refs import Champion, ModelRef, VersionInfo
from driftline.registry.runs import Point, RunLog
from driftline.registry.transitions import TransitionLock, Transitions
from driftline.training.lineage import Lineage
from driftline.training.train import TrainedModel


class Registry:
    """One registered model and its experiment, as driftline uses them.

    Each method is one of the parts': the identity (`folders`: the local state keyed by it), the connection
    (aliases, version tags), the model store (skops, checksums, cache), the audit log, the history (versions, KPI
    inputs, links), the transitions (aliases moved under the lock) and the run log (what is logged to MLflow runs).
    Read the part for what a method does.
    """

    def __init__(self, cfg: DriftlineConfig):
        self._connection = Connection(cfg)
        self.cfg, self.name, self.client = cfg, self._connection.name, self._connection.client
        lock = TransitionLock(self._connection)
        self._store = ModelStore(self._connection)
        self._audit = AuditLog(self._connection, lock.held)
        self._history = History(self._connection, self._audit)
        self._transitions = Transitions(self._connection, self._audit, self._history, lock)
        self._runs = RunLog(self._connection, self._store, self._audit)
        self._backtests = BacktestLog(self._connection)
        self._ab_tests = AbTests(self._connection, self._audit, self._transitions, lock)

    # --- the connection: identity and its folders, experiment, aliases, version tags ------------------------------
    @property
    def folders(self) -> RegistryFolders:
        """The local state of this model in this registry (archive, cache, ledger, ...), keyed by its identity."""
        return registry_folders(self.cfg, self._connection)

    @property
    def experiment_id(self) -> str:
        return self._connection.experiment_id

    def alias(self, alias: str) -> ModelRef | None:
        return self._connection.alias(alias)

    def champion(self) -> ModelRef | None:
        return self._connection.champion()

    def live_challenger(self) -> ModelRef | None:
        return self._connection.live_challenger()

    def require_champion(self) -> ModelRef:
        return self._connection.require_champion()

    def alias_holders(self) -> AliasHolders:
        return self._connection.alias_holders()

    def version_tags(self, version: str) -> dict[str, str]:
        return self._connection.version_tags(version)

    def version_ref(self, version: str) -> ModelRef:
        return self._connection.version_ref(version)

    def run_text(self, run_id: str, artifact_path: str) -> str | None:
        """A text artifact of a run of this store (`model_card.md`, `gate.json`), None if the run has none."""
        return self._connection.run_text(run_id, artifact_path)

    # --- the model store: loading (verified, cached) and deleting ------------------------------------------------
    def load_model(self, ref: ModelRef) -> Pipeline:
        return self._store.load_model(ref)

    def load_reference(self, ref: ModelRef) -> DriftReference:
        return self._store.load_reference(ref)

    def load_champion(self) -> Champion:
        return self._store.load_champion()

    def delete_model(self) -> None:
        self._store.delete_model()

    # --- transitions and the audit log -------------------------------------------------------------------------
    def promote(
        self,
        candidate: ModelRef,
        actor: Actor | None = None,
        reason: str = "passed the gate",
        evidence: dict | None = None,
    ) -> ModelRef | None:
        """Refused while an A/B test runs (arm A is frozen until `ab_tests.stop` ends it)."""
        self._ab_tests.refuse_promotion(candidate.version)
        return self._transitions.promote(candidate, actor, reason, evidence)

    def rollback(
        self,
        reason: str,
        actor: Actor | None = None,
        to: str | None = None,
        override_retired: bool = False,
        evidence: dict | None = None,
    ) -> Rollback:
        """A rollback during an A/B test ends the test first (halted, recorded): its arm A is no longer serving."""
        self._ab_tests.halt(f"halted: the champion is rolled back ({reason})", actor)
        return self._transitions.rollback(reason, actor, to, override_retired, evidence)

    def retire(self, version: str, reason: str, actor: Actor | None = None) -> bool:
        """Retiring arm B of a running A/B test ends the test first (halted, recorded)."""
        self._ab_tests.halt(f"halted: v{version} is retired ({reason})", actor, arm_b=version)
        return self._transitions.retire(version, reason, actor)

    def hold_for_rollout(self, candidate: ModelRef, decision: GateDecision, actor: Actor | None = None) -> None:
        self._transitions.hold_for_rollout(candidate, decision, actor)

    def end_rollout(
        self, challenger: ModelRef, promote: bool, reason: str, evidence: dict, actor: Actor | None = None
    ) -> ModelRef | None:
        return self._transitions.end_rollout(challenger, promote, reason, evidence, actor)

    def record_approval(self, candidate: ModelRef, approval: Approval) -> None:
        self._transitions.record_approval(candidate, approval)

    def record_archive_removal(self, reason: str, actor: Actor | None, evidence: dict) -> AuditEvent:
        """A batch taken out of the retraining window, in the audit log: it concerns no version and moves no alias."""
        return self._audit.record_unmoved(Action.archive_removed, "", actor, reason, evidence)

    def interrupted_promotion(self) -> dict | None:
        return self._transitions.interrupted_promotion()

    def audit_log(self) -> list[AuditEvent]:
        return self._audit.events()

    # --- A/B tests: a rollout mode recorded in the registry ---------------------------------------------------
    def running_ab_test(self) -> AbTest | None:
        """The A/B test running on this model (arm B `version` on `share` of the units by `unit_column`), if any."""
        return self._ab_tests.running()

    def ab_test(self) -> AbTest | None:
        """The running A/B test, or the last one that ended; None if the model never had one."""
        return self._ab_tests.current()

    @property
    def ab_tests(self) -> AbTests:
        """Begin (`start`) and end (`stop`) this model's A/B tests, each a recorded transition."""
        return self._ab_tests

    # --- the run log -------------------------------------------------------------------------------------------
    def log_candidate(
        self, trained: TrainedModel, lineage: Lineage, trigger: str, actor: Actor | None = None
    ) -> ModelRef:
        """Registered as `challenger`, except while an A/B test runs: then `challenger` stays on its arm B."""
        return self._runs.log_candidate(trained, lineage, trigger, actor, as_challenger=self.running_ab_test() is None)

    def record_gate(self, candidate: ModelRef, decision: GateDecision, actor: Actor | None = None) -> None:
        self._runs.record_gate(candidate, decision, actor)

    def log_model_card(self, ref: ModelRef, markdown: str) -> None:
        self._runs.log_model_card(ref, markdown)

    def log_importances(self, ref: ModelRef, importances: dict[str, float]) -> None:
        self._runs.log_importances(ref, importances)

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
        return self._runs.log_monitoring(champion, batch_name, fingerprint, metrics, summary, report_path, log_through)

    def log_drift_trend(self, figures: dict[str, float], at: datetime) -> int:
        return self._runs.log_drift_trend(figures, at)

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
        return self._runs.log_performance(champion, results, steps, degradation, live, counts, summary, label_drift)

    def log_rollout(self, run_id: str, summary: str, evidence: dict, points: list[tuple[str, float, int]]) -> None:
        self._runs.log_rollout(run_id, summary, evidence, points)

    def log_scoring(
        self, model_version: str, batch_name: str, rows: int, seconds: float, extra: dict[str, float] | None = None
    ) -> None:
        self._runs.log_scoring(model_version, batch_name, rows, seconds, extra)

    def log_backtest(
        self, run_name: str, tags: dict[str, str], params: dict[str, str], points: list[Point], artifacts: list[Path]
    ) -> str:
        return self._backtests.log(run_name, tags, params, points, artifacts)

    def backtest_run_url(self, run_id: str) -> str | None:
        return self._backtests.run_url(run_id)

    # --- history: versions, KPI inputs, links --------------------------------------------------------------------
    def versions(self, newest_only: bool = False) -> list[VersionInfo]:
        return self._history.versions(newest_only)

    def holdout_metrics_of(self, run_id: str) -> dict[str, float]:
        return self._history.holdout_metrics_of(run_id)

    def at_promotion(self, run_id: str) -> AtPromotion:
        return self._history.at_promotion(run_id)

    def promoted_at(self, version: str) -> str | None:
        return self._history.promoted_at(version)

    def missing_records(self, info: VersionInfo) -> list[str]:
        return self._history.missing_records(info)

    def recorded_config_text(self, run_id: str) -> str | None:
        return self._history.recorded_config_text(run_id)

    def monitored_through(self) -> str | None:
        return self._history.monitored_through()

    def transitions(self) -> list[Transition]:
        return self._history.transitions()

    def detections(self) -> list[Detection]:
        return self._history.detections()

    def training_runs(self) -> list[PipelineRun]:
        return self._history.training_runs()

    def monitored_batches(self) -> list[MonitoredBatch]:
        return self._history.monitored_batches()

    def live_checks(self) -> list[LiveCheck]:
        return self._history.live_checks()

    def scoring_runs(self) -> list[ScoringRun]:
        return self._history.scoring_runs()

    def run_url(self, run_id: str) -> str | None:
        return self._history.run_url(run_id)

    def version_url(self, version: str) -> str | None:
        return self._history.version_url(version)

    def artifact_url(self, run_id: str, artifact_path: str) -> str | None:
        return self._history.artifact_url(run_id, artifact_path)
