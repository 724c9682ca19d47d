"""A finished backtest recorded in the user's MLflow, in the `<experiment>-backtests` experiment: its figures with
each batch at its step and its data's time, and its files. The user's registry and model runs stay untouched."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from driftline.backtest.report import BacktestFiles
from driftline.backtest.results import Backtest
from driftline.config import DriftlineConfig
from driftline.registry import TAG, Registry
from driftline.registry.runs import Point


@dataclass(frozen=True)
class RecordedBacktest:
    run_id: str
    run_url: str | None  # None: no MLflow UI address configured


def points(result: Backtest) -> list[Point]:
    """Per policy: the served metric, its estimate and the alarm at each batch's step and time; the totals at the
    end."""
    found = []
    for step, file in enumerate(result.later):
        at = file.event_time or result.finished_at
        for replay in result.replays:
            batch, name = replay.batches[step], replay.policy.name
            if result.metric in batch.metrics:
                found.append((f"{name}.served_{result.metric}", batch.metrics[result.metric], step, at))
            if batch.estimated_metric is not None:
                found.append((f"{name}.estimated_{result.metric}", batch.estimated_metric, step, at))
            found.append((f"{name}.drift_alarm", float(batch.drift), step, at))
            found.append((f"{name}.promoted", float(batch.promoted), step, at))
    for name, totals in result.totals().items():
        figures = {key: value for key, value in asdict(totals).items() if value is not None}
        found += [(f"{name}.{key}", float(value), 0, result.finished_at) for key, value in figures.items()]
    return found


def record_backtest(result: Backtest, files: BacktestFiles, cfg: DriftlineConfig) -> RecordedBacktest:
    registry = Registry(cfg)
    params = {
        "config": str(cfg.source or cfg.name),
        "metric": result.metric,
        "batches": str(len(result.later)),
        "label_delay": str(result.label_delay),
        "initial": ", ".join(file.name for file in result.history[: result.initial]),
        "history": ", ".join(file.name for file in result.history),
        "policies": json.dumps({r.policy.name: r.policy.describe() for r in result.replays}),
    }
    tags = {f"{TAG}best_policy": result.best() or "none", f"{TAG}config_fingerprint": cfg.fingerprint}
    run_id = registry.log_backtest(
        f"backtest-{result.name}", tags, params, points(result), [files.json, files.png, files.html]
    )
    return RecordedBacktest(run_id, registry.backtest_run_url(run_id))
