"""The backtest as rows of text: one row per batch with a cell per policy, then the totals; the terminal, the Prefect
table artifact and the HTML page show the same rows."""

from __future__ import annotations

import base64
from pathlib import Path

from driftline.backtest.chart import short_labels
from driftline.backtest.results import (
    DUPLICATE,
    PROMOTED,
    REJECTED,
    SCORED,
    Backtest,
    LabelArrival,
    ReplayedBatch,
    Totals,
)

BATCH, ROWS, WHEN = "batch", "rows", "event time"
NOTE_CHARS = 60


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def estimate(batch: ReplayedBatch) -> str:
    """`est. 0.612 [0.580, 0.641]` (`, untrusted` when the estimator may not decide), or why there is none."""
    if batch.estimated_metric is None:
        return f"no estimate: {batch.estimate_note}" if batch.estimate_note else ""
    band = f" [{_number(batch.estimated_lower)}, {_number(batch.estimated_upper)}]"
    shown = band if batch.estimated_lower is not None and batch.estimated_upper is not None else ""
    return f"est. {_number(batch.estimated_metric)}{shown}" + (", untrusted" if batch.estimate_trusted is False else "")


def arrival(labels: LabelArrival) -> str:
    """Late labels in words: how many, what the champion measured on them, the retrain they started."""
    if labels.note:
        return f"rejected: {labels.note}"
    line = f"{labels.rows:,} rows, champion {_number(labels.champion_value)}"
    if labels.degraded:
        line += ", degraded"
    if labels.label_drift:
        line += ", label drift"
    if labels.candidate_version:
        line += f" → v{labels.candidate_version} {labels.gate}"
    return line


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
        parts.append("drift: " + (", ".join(causes(batch)) or "yes"))
    if batch.retrained:
        parts.append(f"→ v{batch.candidate_version} {batch.gate}")
    if batch.retrain_skipped:
        parts.append("→ no retrain: no new labels since the newest version")
    return "; ".join(parts) or "no drift"


def causes(batch: ReplayedBatch) -> list[str]:
    return [*batch.drifted_features, *(f"{signal} signal" for signal in batch.signals)]


def cell(batch: ReplayedBatch, metric: str, separator: str = "\n") -> str:
    """`v1 0.662` (who served it, and how well), its estimate, what happened, the labels that arrived after it."""
    lines = [outcome(batch)]
    if batch.status == SCORED:
        lines = [f"v{batch.served_version} {_number(batch.metrics.get(metric))}", estimate(batch), outcome(batch)]
    if batch.labels is not None:
        lines.append(f"labels of {batch.labels.batch}: {arrival(batch.labels)}")
    return separator.join(line for line in lines if line)


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
    ("estimate error", "estimate_error"),
    ("drift alarms", "alarms"),
    ("degraded on labels", "degraded"),
    ("retrains", "retrains"),
    ("promotions", "promotions"),
    ("refused retrains", "refused"),
    ("rejected batches", "rejected"),
    ("compute (s)", "seconds"),
]


def _shown(totals: Totals, field: str) -> str:
    value = getattr(totals, field)
    if field in ("mean_metric", "estimate_error"):
        return _number(value)
    return f"{value:.0f}" if field == "seconds" else str(value)


def total_rows(result: Backtest) -> list[dict[str, str]]:
    """One row per total, a column per policy; the first column says what it counts. Late-label degradations only
    when labels came late."""
    totals = result.totals()
    shown = [(label, field) for label, field in TOTALS if field != "degraded" or result.label_delay]
    return [
        {BATCH: label.format(metric=result.metric)} | {name: _shown(t, field) for name, t in totals.items()}
        for label, field in shown
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


# The terminal's table: figures and symbols only, so that it stays readable at 80 columns; the words are in the page.
KEY = (
    "▲n drift alarm (n features and signals drifted) · →vN✓ a retrain promoted vN, ✗ refused it · "
    "→= a retrain not run: the newest version learned the same labeled data · "
    "↓ late labels found the champion degraded · ▲y late labels drifted · ~ estimated before labels"
)
NAME_CHARS = 12  # a longer policy name (a variant's settings) is shown as a letter, spelled out under the table


def _verdict_mark(gate: str | None) -> str:
    return "✓" if gate == PROMOTED else "✗"


def short_cell(batch: ReplayedBatch, metric: str, estimates: bool) -> str:
    """`v1 0.662` / `~0.650` / `▲3 →v2✓ ↓`: who served it and how well, its estimate, then what happened."""
    if batch.status != SCORED:
        return "rejected" if batch.status == REJECTED else "duplicate"
    lines = [f"v{batch.served_version} {_number(batch.metrics.get(metric))}"]
    if estimates:
        lines.append(f"~{_number(batch.estimated_metric)}")
    events = [f"▲{len(causes(batch)) or ''}"] * batch.drift
    if batch.retrained:
        events.append(f"→v{batch.candidate_version}{_verdict_mark(batch.gate)}")
    events += ["→="] * bool(batch.retrain_skipped)
    labels = batch.labels
    if labels is not None:
        events += ["labels✗"] * bool(labels.note) + ["↓"] * labels.degraded + ["▲y"] * labels.label_drift
        if labels.candidate_version:
            events.append(f"→v{labels.candidate_version}{_verdict_mark(labels.gate)}")
    return "\n".join([*lines, " ".join(events)] if events else lines)


def short_names(result: Backtest) -> dict[str, str]:
    """Each policy's column heading: its name, or a letter when the name is long."""
    letters = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return {r.policy.name: r.policy.name if len(r.policy.name) <= NAME_CHARS else next(letters) for r in result.replays}


def short_rows(result: Backtest) -> list[dict[str, str]]:
    """One row per later batch: its short name, rows and a cell of figures and symbols per policy."""
    names, later = short_names(result), result.later
    estimates = any(b.estimated_metric is not None for r in result.replays for b in r.batches)
    shown = short_labels([file.name for file in later])
    return [
        {BATCH: shown[position], ROWS: row[ROWS]}
        | {names[r.policy.name]: short_cell(r.batches[position], result.metric, estimates) for r in result.replays}
        for position, row in enumerate(batch_rows(result))
    ]


def short_totals(result: Backtest) -> list[dict[str, str]]:
    """The totals under the short headings."""
    names = short_names(result)
    return [{names.get(column, column): value for column, value in row.items()} for row in total_rows(result)]


def short_key(result: Backtest) -> list[str]:
    """What the symbols and letters mean, one line each."""
    return [KEY, *(f"{letter}: {name}" for name, letter in short_names(result).items() if letter != name)]
