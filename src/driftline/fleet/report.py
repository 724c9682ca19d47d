"""The fleet report: one self-contained HTML page with a chart per model of its served metric on labeled batches and
its drift, both over the data's time (the event time of the batches), under the model's inventory row."""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from pathlib import Path

from driftline.config import Fleet
from driftline.data.paths import allowed_path
from driftline.data.storage import write_atomically
from driftline.fleet.inventory import Inventory, ModelRow, take_inventory
from driftline.registry.inventory_queries import FleetQueries, Series

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
section{border-top:1px solid #ccc;padding:.5em 0 1em}h2{margin:.3em 0;font-size:1.15em}
.flags{color:#b00020}.ok{color:#1b5e20}.facts{font-size:14px;color:#444;margin:.2em 0}
svg{max-width:100%;height:auto}"""
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 960, 230, 64, 64, 16, 44
METRIC_COLOUR, DRIFT_COLOUR, ALARM_COLOUR = "#1f77b4", "#ff7f0e", "#d62728"


def _scale(low: float, high: float, start: float, end: float):
    span = (high - low) or 1.0
    return lambda value: start + (value - low) / span * (end - start)


def chart(metric: Series, drift: Series, alarms: Series) -> str:
    """An inline SVG: the served metric (left axis) and the drifted feature share (right axis, 0-1) over the data's
    time, drift alarms marked; a sentence instead when there is nothing to draw yet."""
    times = [at for series in (metric, drift) for at, _ in series.points]
    if not times:
        return "<p class='facts'>No labeled batch measured and no drift check yet: nothing to chart.</p>"
    first, last = min(times), max(times)
    if first == last:
        first, last = first - timedelta(days=1), last + timedelta(days=1)
    x = _scale(first.timestamp(), last.timestamp(), LEFT, WIDTH - RIGHT)
    values = [value for _, value in metric.points] or [0.0, 1.0]
    low, high = min(values), max(values)
    margin = (high - low) * 0.1 or 0.05
    y_metric = _scale(low - margin, high + margin, HEIGHT - BOTTOM, TOP)
    y_drift = _scale(0.0, 1.0, HEIGHT - BOTTOM, TOP)
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {WIDTH} {HEIGHT}' width='{WIDTH}' height='{HEIGHT}' "
        "font-size='12' font-family='system-ui,sans-serif'>",
        f"<rect x='{LEFT}' y='{TOP}' width='{WIDTH - LEFT - RIGHT}' height='{HEIGHT - TOP - BOTTOM}' fill='#fafafa' "
        "stroke='#ccc'/>",
    ]
    shown = "%Y-%m-%d" if last - first > timedelta(days=4) else "%m-%d %H:%M"  # ticks a day apart or closer
    for step in range(5):  # time ticks
        moment = first + (last - first) * step / 4
        at = x(moment.timestamp())
        parts.append(f"<line x1='{at:.1f}' x2='{at:.1f}' y1='{TOP}' y2='{HEIGHT - BOTTOM}' stroke='#eee'/>")
        parts.append(f"<text x='{at:.1f}' y='{HEIGHT - BOTTOM + 16}' text-anchor='middle'>{moment:{shown}}</text>")
    for value in (low, high) if metric.points else ():
        parts.append(
            f"<text x='{LEFT - 6}' y='{y_metric(value) + 4:.1f}' text-anchor='end' fill='{METRIC_COLOUR}'>"
            f"{value:.3g}</text>"
        )
    for value in (0.0, 0.5, 1.0):
        parts.append(
            f"<text x='{WIDTH - RIGHT + 6}' y='{y_drift(value) + 4:.1f}' fill='{DRIFT_COLOUR}'>{value:.0%}</text>"
        )
    parts.append(
        f"<text x='{LEFT}' y='{HEIGHT - 6}' fill='{METRIC_COLOUR}'>● {html.escape(metric.name)} per labeled batch"
        f"</text><text x='{WIDTH - RIGHT}' y='{HEIGHT - 6}' text-anchor='end' fill='{DRIFT_COLOUR}'>■ "
        f"{html.escape(drift.name)} per drift check <tspan fill='{ALARM_COLOUR}'>▲ drift alarm</tspan></text>"
    )
    parts += _line(metric.points, x, y_metric, METRIC_COLOUR, "circle")
    parts += _line(drift.points, x, y_drift, DRIFT_COLOUR, "square", dashed=True)
    alarmed = {at for at, value in alarms.points if value == 1}
    for at, value in drift.points:
        if at in alarmed:
            cx, cy = x(at.timestamp()), y_drift(value)
            parts.append(
                f"<path d='M{cx:.1f},{cy - 9:.1f} l6,10 h-12 z' fill='{ALARM_COLOUR}'>"
                f"<title>drift alarm {at:%Y-%m-%d %H:%M}</title></path>"
            )
    return "".join(parts) + "</svg>"


def _line(points: list[tuple[datetime, float]], x, y, colour: str, mark: str, dashed: bool = False) -> list[str]:
    if not points:
        return []
    coordinates = [(x(at.timestamp()), y(value), at, value) for at, value in points]
    dash = " stroke-dasharray='5 3'" if dashed else ""
    path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy, _, _ in coordinates)
    drawn = [f"<polyline points='{path}' fill='none' stroke='{colour}' stroke-width='1.8'{dash}/>"]
    for cx, cy, at, value in coordinates:
        tip = f"<title>{at:%Y-%m-%d %H:%M}: {value:.4g}</title>"
        if mark == "circle":
            drawn.append(f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='3.5' fill='{colour}'>{tip}</circle>")
        else:
            drawn.append(f"<rect x='{cx - 3:.1f}' y='{cy - 3:.1f}' width='6' height='6' fill='{colour}'>{tip}</rect>")
    return drawn


def _facts(row: ModelRow) -> str:
    champion = f"champion v{row.champion}" if row.champion else "no champion"
    owner = row.owner or "no owner"
    now = "–" if row.metric_now is None else f"{row.metric_now:.4g}"
    promoted = "–" if row.metric_at_promotion is None else f"{row.metric_at_promotion:.4g}"
    drift = {"drift": "drift alarm", "none": "no drift"}.get(row.drift or "", "drift not monitored")
    return (
        f"{html.escape(owner)} · {row.lifecycle_stage} · risk {row.risk_tier or 'not assessed'} · {champion} · "
        f"{row.metric} now {now}, at promotion {promoted} · {drift} · "
        f"rollout {html.escape(row.rollout or '–')}"
    )


def page(fleet: Fleet, inventory: Inventory) -> str:
    sections = []
    configs = {cfg.registry.model_name: cfg for cfg in fleet.configs}
    stores: dict[str, FleetQueries] = {}  # one client per MLflow store
    for row in inventory.rows:
        flags = "".join(f"<li>{html.escape(flag)}</li>" for flag in row.flags)
        flagged = f"<ul class='flags'>{flags}</ul>" if flags else "<p class='ok'>nothing needs a person</p>"
        if row.config_error is not None:
            sections.append(f"<section><h2>{html.escape(row.model)}</h2>{flagged}</section>")
            continue
        cfg = configs[row.model]
        if cfg.tracking_uri not in stores:
            stores[cfg.tracking_uri] = FleetQueries(cfg)
        drawn = chart(*stores[cfg.tracking_uri].series(cfg))
        sections.append(
            f"<section><h2>{html.escape(row.model)}</h2><p class='facts'>{_facts(row)}</p>{flagged}{drawn}</section>"
        )
    title = f"Fleet report: {fleet.folder}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{len(inventory.rows)} models, {len(inventory.flagged)} flagged. Each chart: the champion's served "
        "metric on each labeled batch and the drifted feature share of each drift check, placed at the data's time "
        "(the newest event time of the batch).</p>"
        f"{''.join(sections)}<p>Taken {inventory.taken_at:%Y-%m-%d %H:%M:%S} UTC.</p></body></html>"
    )


def write_report(fleet: Fleet, output: str | None = None) -> Path:
    """The page at `output` (under an allowed folder), by default <workspace>/reports/fleet.html, written whole."""
    cfg = fleet.workspace
    path = allowed_path(output, cfg) if output else cfg.folders.reports / "fleet.html"
    markup = page(fleet, take_inventory(fleet))
    return write_atomically(path, lambda temp: Path(temp).write_text(markup, encoding="utf-8"))
