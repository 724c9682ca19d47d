"""Driftline's record of every flow run of every model: the flow, how it ended, its error line and a few facts of its
outcome, kept in the workspace by a state hook of each flow, so the fleet inventory reads it without a Prefect server.

Per model, `<workspace>/flow-runs/<model>.jsonl` holds every finished run (appended, never rewritten) and
`<model>.json` the newest run of each flow and the last runs of all flows: what the inventory reads, one small file a
model whatever its history's length.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftline.config import DriftlineConfig, load_config
from driftline.config.workspace import safe_name
from driftline.data.storage import write_atomically
from driftline.errors import ConfigError
from driftline.file_lock import held

COMPLETED = "COMPLETED"
RECENT_RUNS = 20  # kept in the summary: more than any sensible fleet.failing_runs
# What the inventory reads of a flow's outcome, wherever the outcome holds it.
FACTS = (
    "verdict",
    "candidate_version",
    "champion_version",
    "metric",
    "champion_value",
    "at_promotion",
    "degraded",
    "fairness_breached",
    "degraded_slices",
    "drift_detected",
    "labeled_rows",
    "rows",
    "batch",
)


@dataclass(frozen=True)
class FlowRun:
    """One finished flow run of one model."""

    model: str
    flow: str
    flow_run_id: str
    state: str  # Prefect's final state type: COMPLETED, FAILED, CRASHED
    started_at: datetime
    ended_at: datetime
    error: str = ""  # the failure in one line
    facts: dict[str, Any] = field(default_factory=dict)  # FACTS of the outcome, when the run completed

    @property
    def failed(self) -> bool:
        return self.state != COMPLETED

    def to_dict(self) -> dict:
        return asdict(self) | {"started_at": self.started_at.isoformat(), "ended_at": self.ended_at.isoformat()}

    @classmethod
    def of(cls, data: dict) -> FlowRun:
        times = {key: datetime.fromisoformat(data[key]) for key in ("started_at", "ended_at")}
        return cls(**(data | times))


@dataclass(frozen=True)
class RunSummary:
    """A model's record as the inventory reads it: the newest run of each flow, the newest completed one (its facts
    stay when a later run fails), and the last runs of all flows."""

    latest: dict[str, FlowRun] = field(default_factory=dict)
    completed: dict[str, FlowRun] = field(default_factory=dict)
    recent: list[FlowRun] = field(default_factory=list)  # oldest first

    def last_failures(self, count: int) -> list[FlowRun] | None:
        """The last `count` runs when every one of them failed, else None."""
        last = self.recent[-count:]
        return last if len(last) == count and all(run.failed for run in last) else None

    def newest(self, *flows: str) -> FlowRun | None:
        """The newest completed run among these flows."""
        done = [self.completed[name] for name in flows if name in self.completed]
        return max(done, key=lambda run: run.ended_at, default=None)


def summary_path(workspace: Path, model: str) -> Path:
    return workspace / "flow-runs" / f"{safe_name(model)}.json"


def read_summary(workspace: Path, model: str) -> RunSummary:
    """The model's record in the workspace (empty when no run of it was recorded there)."""
    try:
        data = json.loads(summary_path(workspace, model).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return RunSummary()
    return RunSummary(
        {name: FlowRun.of(run) for name, run in data["latest"].items()},
        {name: FlowRun.of(run) for name, run in data["completed"].items()},
        [FlowRun.of(run) for run in data["recent"]],
    )


def record(cfg: DriftlineConfig, run: FlowRun) -> None:
    """Append the run to the model's history and fold it into its summary (under a lock: runs of one model may end
    at once; the summary is replaced whole, so a reader never sees half of it)."""
    path = summary_path(cfg.folders.root, cfg.registry.model_name)
    with held(path.with_name(f".{path.stem}.lock")):
        with path.with_suffix(".jsonl").open("a", encoding="utf-8") as history:
            history.write(json.dumps(run.to_dict()) + "\n")
        empty = {"latest": {}, "completed": {}, "recent": []}
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else empty
        data["latest"][run.flow] = run.to_dict()
        if not run.failed:
            data["completed"][run.flow] = run.to_dict()
        data["recent"] = (data["recent"] + [run.to_dict()])[-RECENT_RUNS:]
        text = json.dumps(data, indent=1)
        write_atomically(path, lambda temp: Path(temp).write_text(text, encoding="utf-8"))


def facts_of(outcome: Any) -> dict[str, Any]:
    """The FACTS of a flow's outcome (a pydantic model), from it or from the scoring and monitoring it holds."""
    if not hasattr(outcome, "model_dump"):
        return {}
    dump = outcome.model_dump(mode="json")
    facts = {key: dump[key] for key in FACTS if key in dump}
    for part in ("scoring", "monitoring"):  # a continuous-training run's summary
        if isinstance(dump.get(part), dict):
            facts |= {key: value for key, value in dump[part].items() if key in ("rows", "drift_detected")}
    if isinstance(dump.get("scored"), list):  # a batch-scoring run's files
        facts |= {"rows": sum(item["rows"] for item in dump["scored"]), "files": len(dump["scored"])}
    if isinstance(dump.get("label_files"), dict):
        facts["label_rows"] = sum(dump["label_files"].values())
    return facts


def error_line(error: Any, message: str | None) -> str:
    if isinstance(error, BaseException):
        text = str(error).strip().splitlines()
        return f"{type(error).__name__}: {text[0] if text else ''}"[:500]
    return (message or "").strip().splitlines()[0][:500] if message else ""


def record_flow_run(flow, flow_run, state) -> None:
    """A state hook of every flow (on completion, failure and crash): the finished run goes to its model's record.
    A run whose config does not load is not recorded (its model is unknown; the inventory lists the broken file)."""
    params = flow_run.parameters.get("params")
    config = params.get("config") if isinstance(params, dict) else getattr(params, "config", None)
    if config is None:
        return
    try:
        cfg = load_config(config)
    except ConfigError:
        return
    outcome = state.result(raise_on_failure=False)
    failed = state.type.value != COMPLETED
    now = datetime.now(UTC)
    record(
        cfg,
        FlowRun(
            model=cfg.registry.model_name,
            flow=flow.name,
            flow_run_id=str(flow_run.id),
            state=state.type.value,
            started_at=(flow_run.start_time or flow_run.created or now).astimezone(UTC),
            ended_at=now,
            error=error_line(outcome, state.message) if failed else "",
            facts={} if failed else facts_of(outcome),
        ),
    )
