"""The backtest as rows of text: one row per batch with a cell per policy, then the totals; the terminal, the Prefect
table artifact and the HTML page show the same rows."""

from __future__ import annotations

import base64
from pathlib import Path

from driftline.backtest.results import DUPLICATE, REJECTED, SCORED, Backtest, ReplayedBatch, Totals

BATCH, ROWS, WHEN = "batch", "rows", "event time"
NOTE_CHARS = 60


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def outcome(batch: ReplayedBatch) -> str:
    """What happened beside serving: the alarm (features, signals) and the retrain with its gate verdict."""
    if batch.status == REJECTED:  # the first reason, shortened: all of them are in the JSON
        first, *more = batch.note.split("; ")
        shown = first if len(first) <= NOTE_CHARS else first[: NOTE_CHARS - 1] + "…"
        return f"rejected: {shown}" + (f" (+{len(more)} more)" if more else "")
    if batch.status == DUPLICATE:
        return "duplicate of an earlier file: skipped"
    parts = []
    if batch.drift:
        causes = [*batch.drifted_features, *(f"{signal} signal" for signal in batch.signals)]
        parts.append("drift: " + (", ".join(causes) or "yes"))
    if batch.retrained:
        parts.append(f"→ v{batch.candidate_version} {batch.gate}")
    return "; ".join(parts) or "no drift"


def cell(batch: ReplayedBatch, metric: str, separator: str = "\n") -> str:
    """`v1 0.662` (who served it, and how well), then what happened."""
    if batch.status != SCORED:
        return outcome(batch)
    return f"v{batch.served_version} {_number(batch.metrics.get(metric))}{separator}{outcome(batch)}"


def batch_rows(result: Backtest, separator: str = "\n") -> list[dict[str, str]]:
    """One row per later batch, in time order: its name, rows, event time and a cell per policy."""
    rows = []
    for position, file in enumerate(result.later):
        replayed = {r.policy.name: r.batches[position] for r in result.replays}
        counted = next((b.rows for b in replayed.values() if b.rows is not None), None)
        when = file.event_time.strftime("%Y-%m-%d %H:%M") if file.event_time is not None else "–"
        rows.append(
            {BATCH: file.name, ROWS: "–" if counted is None else f"{counted:,}", WHEN: when}
            | {name: cell(batch, result.metric, separator) for name, batch in replayed.items()}
        )
    return rows


TOTALS: list[tuple[str, str]] = [
    ("mean served {metric}", "mean_metric"),
    ("drift alarms", "alarms"),
    ("retrains", "retrains"),
    ("promotions", "promotions"),
    ("refused retrains", "refused"),
    ("rejected batches", "rejected"),
    ("compute (s)", "seconds"),
]


def _shown(totals: Totals, field: str) -> str:
    value = getattr(totals, field)
    if field == "mean_metric":
        return _number(value)
    return f"{value:.0f}" if field == "seconds" else str(value)


def total_rows(result: Backtest) -> list[dict[str, str]]:
    """One row per total, a column per policy; the first column says what it counts."""
    totals = result.totals()
    return [
        {BATCH: label.format(metric=result.metric)} | {name: _shown(t, field) for name, t in totals.items()}
        for label, field in TOTALS
    ]


def verdict(result: Backtest) -> str:
    """The answer at a glance: which policy served best, and what it cost against the others."""
    best = result.best()
    if best is None:
        return "no batch carried labels: no served quality to compare"
    totals = result.totals()
    others = [f"{name} {_number(t.mean_metric)} ({t.retrains} retrains)" for name, t in totals.items() if name != best]
    chosen = totals[best]
    line = (
        f"best mean served {result.metric}: {best} {_number(chosen.mean_metric)} with {chosen.retrains} "
        f"retrains, {chosen.alarms} drift alarms"
    )
    return line + (f"; then {', '.join(others)}" if others else "")


def markdown(result: Backtest, chart_png: Path) -> str:
    """The verdict, the chart (inline, as a data URI: the page opens anywhere) and the totals, in Markdown."""
    totals = total_rows(result)
    policies = list(totals[0])[1:]
    lines = ["| | " + " | ".join(policies) + " |", "|---|" + "---|" * len(policies)]
    lines += ["| " + " | ".join(row.values()) + " |" for row in totals]
    image = base64.b64encode(chart_png.read_bytes()).decode()
    return (
        f"**{verdict(result)}**\n\n![served {result.metric} per batch](data:image/png;base64,{image})\n\n"
        + "\n".join(lines)
    )
