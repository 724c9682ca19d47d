"""Operational KPIs of the loop, as MLOps maturity models ask for them: deployment frequency, time from detection
to a new champion (MTTR), training-pipeline success rate, data freshness and scoring throughput; and what the loop
costs and watches: drift alarms per batch, retrains per promotion, the champion's slices and fairness, and how far
its estimator's estimates before labels were from what the labels realized.

Plain functions over small typed histories; adapters fetch them (registry transitions and monitoring runs from
MLflow, training runs from Prefect or driftline's own record of them, the archive index from disk). Any other source
of the same types (an audit log of registry transitions) can feed them unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from statistics import mean

PROMOTED, REFUSED = "promoted", "refused"


@dataclass(frozen=True)
class Transition:
    """A registry transition: the gate promoted or refused a version at a time, for a reason (the trigger)."""

    version: str
    verdict: str  # promoted | refused
    decided_at: datetime
    trigger: str = ""
    champion_version: str | None = None  # the champion it was judged against; None: the first model

    @property
    def is_retrain(self) -> bool:
        """A challenger trained while a champion served (after drift, degradation or by hand)."""
        return self.champion_version is not None


@dataclass(frozen=True)
class Detection:
    """A monitoring run that found the champion wanting: drift in a batch, or degraded performance on labels."""

    kind: str  # drift | degradation
    at: datetime
    subject: str = ""  # the batch, or the champion version


@dataclass(frozen=True)
class PipelineRun:
    succeeded: bool
    started_at: datetime


@dataclass(frozen=True)
class ScoringRun:
    rows: int
    seconds: float
    at: datetime


@dataclass(frozen=True)
class MonitoredBatch:
    """One drift check (a batch or a prediction-log window), and whether it raised the drift alarm."""

    at: datetime
    drifted: bool


@dataclass(frozen=True)
class LiveCheck:
    """A label run's verdict on the champion's slices and fairness, over its newly labeled batches."""

    champion_version: str
    at: datetime
    batch: str  # the newest batch it judged
    fairness_breached: bool
    degraded_slices: list[str]
    disparate_impact: float | None  # on the newest batch it judged


@dataclass(frozen=True)
class EstimatorRecord:
    """The champion's performance estimator: its trust, and its estimates against what labels realized."""

    state: str  # trusted | untrusted | none
    reason: str
    compared: int  # labeled batches whose estimate was compared
    outside: int  # of them, outside the band
    mean_error: float | None  # mean |estimated − realized|


@dataclass(frozen=True)
class LoopHistory:
    """What the KPIs are computed from, each list from its source: the registry and its runs, the orchestrator's
    history of training runs, the archive."""

    transitions: list[Transition]
    detections: list[Detection]
    training_runs: list[PipelineRun]
    training_runs_source: str
    newest_training_data: tuple[str, datetime] | None
    scoring_runs: list[ScoringRun]
    monitored_batches: list[MonitoredBatch]
    live_checks: list[LiveCheck]
    champion_version: str | None
    estimator: EstimatorRecord | None = None  # None: no champion


@dataclass(frozen=True)
class Incident:
    """Detections until the next promotion: one incident, restored when a new champion takes over."""

    detected_at: datetime
    detections: int
    restored_at: datetime | None

    @property
    def hours_to_restore(self) -> float | None:
        return None if self.restored_at is None else (self.restored_at - self.detected_at).total_seconds() / 3600


@dataclass(frozen=True)
class Kpis:
    promotions: int
    refusals: int
    deployments_per_week: float | None
    incidents: int
    open_incidents: int
    mttr_hours: float | None
    training_runs: int
    training_success_rate: float | None
    training_runs_source: str
    newest_training_data: str | None
    data_freshness_hours: float | None
    scoring_runs: int
    scored_rows: int
    scoring_rows_per_second: float | None
    monitored_batches: int
    drift_alarms: int
    drift_alarms_per_batch: float | None
    retrains: int
    promoted_retrains: int
    refused_retrains: int
    retrains_per_promotion: float | None
    champion_version: str | None
    champion_watch: str | None  # ok | breached; None: not judged yet
    champion_watch_detail: str
    estimate_error: float | None = None  # the champion's estimator: mean |estimated − realized| on labeled batches
    estimator_state: str | None = None  # trusted | untrusted | none; None: no champion
    estimator_detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def rows(self) -> list[tuple[str, str, str]]:
        """(KPI, value, how it is measured): the table `driftline kpis` prints and the Prefect artifact shows."""

        def shown(value: float | None, unit: str = "", digits: int = 1) -> str:
            return "–" if value is None else f"{value:,.{digits}f}{unit}"

        def duration(hours: float | None) -> str:
            return shown(hours * 60, " min") if hours is not None and hours < 1 else shown(hours, " h")

        return [
            (
                "deployment frequency",
                shown(self.deployments_per_week, " / week", 2),
                f"{self.promotions} promotions ({self.refusals} refused) since the first gate decision",
            ),
            (
                "time to restore (MTTR)",
                duration(self.mttr_hours),
                f"detection (drift or degradation) → new champion, mean over {self.incidents - self.open_incidents} "
                f"restored incidents; {self.open_incidents} still open",
            ),
            (
                "training success rate",
                shown(None if self.training_success_rate is None else 100 * self.training_success_rate, " %"),
                f"{self.training_runs} training runs, from {self.training_runs_source}",
            ),
            (
                "data freshness",
                duration(self.data_freshness_hours),
                f"age of the newest labeled archived batch ({self.newest_training_data or 'none'})",
            ),
            (
                "scoring throughput",
                shown(self.scoring_rows_per_second, " rows/s", 0),
                f"{self.scored_rows:,} rows in {self.scoring_runs} scoring runs",
            ),
            (
                "drift alarms per batch",
                shown(self.drift_alarms_per_batch, "", 2),
                f"{self.drift_alarms} drift alarms in {self.monitored_batches} monitored batches",
            ),
            (
                "retrains per promotion",
                shown(self.retrains_per_promotion, "", 1),
                f"{self.retrains} retrains (challengers judged against a champion): "
                f"{self.promoted_retrains} promoted, {self.refused_retrains} refused by the gate",
            ),
            ("champion slices and fairness", self.champion_watch or "–", self.champion_watch_detail),
            ("estimate error", shown(self.estimate_error, "", 4), self.estimator_detail),
        ]


def incidents(detections: list[Detection], transitions: list[Transition]) -> list[Incident]:
    """Group detections into incidents: each ends at the first promotion after it began."""
    promotions = sorted(t.decided_at for t in transitions if t.verdict == PROMOTED)
    found: list[Incident] = []
    for detection in sorted(detections, key=lambda d: d.at):
        current = found[-1] if found else None
        if current is not None and (current.restored_at is None or detection.at <= current.restored_at):
            found[-1] = Incident(current.detected_at, current.detections + 1, current.restored_at)
            continue
        restored = next((at for at in promotions if at >= detection.at), None)
        found.append(Incident(detection.at, 1, restored))
    return found


def champion_watch(checks: list[LiveCheck], champion_version: str | None) -> tuple[str | None, str]:
    """The newest label run's verdict on the champion's slices and fairness, and what it rests on."""
    mine = [check for check in checks if check.champion_version == champion_version]
    if champion_version is None or not mine:
        return None, "no label run has judged the champion's slices or fairness (gate.slices, gate.fairness)"
    newest = max(mine, key=lambda check: check.at)
    impact = "–" if newest.disparate_impact is None else f"{newest.disparate_impact:.3f}"
    slices = ", ".join(newest.degraded_slices) or "none"
    verdict = "breached" if newest.fairness_breached or newest.degraded_slices else "ok"
    return verdict, (
        f"v{champion_version} on {newest.batch}: disparate impact {impact}"
        f"{' (under the minimum)' if newest.fairness_breached else ''}; slices degraded: {slices}"
    )


def compute_kpis(history: LoopHistory, now: datetime) -> Kpis:
    transitions, scoring_runs, training_runs = history.transitions, history.scoring_runs, history.training_runs
    promotions = [t for t in transitions if t.verdict == PROMOTED]
    per_week = None
    if promotions:
        days = max((now - transitions[0].decided_at).total_seconds() / 86400, 1.0)
        per_week = len(promotions) / days * 7
    grouped = incidents(history.detections, transitions)
    restore_hours = [i.hours_to_restore for i in grouped if i.hours_to_restore is not None]
    seconds = sum(run.seconds for run in scoring_runs)
    rows = sum(run.rows for run in scoring_runs)
    newest = history.newest_training_data
    monitored, alarms = len(history.monitored_batches), sum(b.drifted for b in history.monitored_batches)
    retrains = [t for t in transitions if t.is_retrain]
    promoted_retrains = sum(t.verdict == PROMOTED for t in retrains)
    refused_retrains = sum(t.verdict == REFUSED for t in retrains)
    watch, watch_detail = champion_watch(history.live_checks, history.champion_version)
    return Kpis(
        promotions=len(promotions),
        refusals=sum(t.verdict != PROMOTED for t in transitions),
        deployments_per_week=per_week,
        incidents=len(grouped),
        open_incidents=sum(i.restored_at is None for i in grouped),
        mttr_hours=mean(restore_hours) if restore_hours else None,
        training_runs=len(training_runs),
        training_success_rate=(sum(r.succeeded for r in training_runs) / len(training_runs)) if training_runs else None,
        training_runs_source=history.training_runs_source,
        newest_training_data=newest[0] if newest else None,
        data_freshness_hours=(now - newest[1]).total_seconds() / 3600 if newest else None,
        scoring_runs=len(scoring_runs),
        scored_rows=rows,
        scoring_rows_per_second=rows / seconds if seconds > 0 else None,
        monitored_batches=monitored,
        drift_alarms=alarms,
        drift_alarms_per_batch=alarms / monitored if monitored else None,
        retrains=len(retrains),
        promoted_retrains=promoted_retrains,
        refused_retrains=refused_retrains,
        retrains_per_promotion=len(retrains) / promoted_retrains if promoted_retrains else None,
        champion_version=history.champion_version,
        champion_watch=watch,
        champion_watch_detail=watch_detail,
        **estimator_kpis(history.estimator, history.champion_version),
    )


def estimator_kpis(record: EstimatorRecord | None, champion_version: str | None) -> dict:
    """The estimate-error KPI: the champion's estimates before labels against what its labels realized."""
    if record is None or champion_version is None:
        return {"estimator_detail": "no champion"}
    if record.state == "none":
        detail = f"v{champion_version} has no estimator ({record.reason})"
    else:
        detail = (
            f"mean |estimated − realized| over {record.compared} labeled batches of v{champion_version} "
            f"({record.outside} outside the band); estimator {record.state}: {record.reason}"
        )
    return {"estimate_error": record.mean_error, "estimator_state": record.state, "estimator_detail": detail}
