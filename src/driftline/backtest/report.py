"""The backtest's files: the result as JSON, the chart as PNG, and one self-contained HTML page with both tables."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from driftline.backtest import chart, table
from driftline.backtest.results import Backtest
from driftline.config import DriftlineConfig
from driftline.data.paths import allowed_path
from driftline.data.storage import write_atomically

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;
vertical-align:top;text-align:left}th{background:#f4f4f4}.verdict{font-size:1.1em;font-weight:600}
svg{max-width:100%;height:auto}"""


@dataclass(frozen=True)
class BacktestFiles:
    json: Path
    png: Path
    html: Path


def _html_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(column)}</th>" for column in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(value).replace(chr(10), '<br>')}</td>" for value in row.values()) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(result: Backtest) -> str:
    """Everything on one page that opens anywhere: the verdict, the chart (inline SVG), totals, every batch."""
    policies = "".join(
        f"<li><b>{html.escape(r.policy.name)}</b>: {html.escape(r.policy.describe())}; first champion "
        f"v{r.start.version} ({html.escape(r.start.verdict)})</li>"
        for r in result.replays
    )
    initial = ", ".join(file.name for file in result.history[: result.initial])
    title = f"Backtest of {result.name}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p class='verdict'>{html.escape(table.verdict(result))}</p>"
        f"<p>The first champion trained on {html.escape(initial)}; then {len(result.later)} batches in time order, "
        "each scored by the champion of its moment before any retraining it started (prequential), and judged on its "
        f"own labels; <i>est.</i> is the champion's estimate of {html.escape(result.metric)} from the batch's "
        f"features and its predictions, before any label, with its band. {_delay(result.label_delay)} Policies:</p>"
        f"<ul>{policies}</ul>{chart.svg(result)}<h2>Totals</h2>{_html_table(table.total_rows(result))}"
        f"<h2>Per batch</h2>{_html_table(table.batch_rows(result))}"
        f"<p>Finished {result.finished_at:%Y-%m-%d %H:%M:%S} UTC.</p></body></html>"
    )


def _delay(label_delay: int) -> str:
    if not label_delay:
        return "Each batch came with its labels."
    return (
        f"Labels came late: the loop saw each batch without them, and they reached it {label_delay} batch(es) later "
        "through the label path (the champion judged on them, a retrain when it degraded); a retrain trained only on "
        "labels that had arrived."
    )


def output_folder(output: str | None, cfg: DriftlineConfig, finished_at: datetime) -> Path:
    """`--output` when it lies in an allowed folder (else PathNotAllowed), by default
    `<workspace>/backtests/<name>-<UTC time>`."""
    if output:
        return allowed_path(output, cfg)
    return cfg.folders.root / "backtests" / f"{cfg.name}-{finished_at:%Y%m%dT%H%M%SZ}"


def write_outputs(result: Backtest, folder: Path) -> BacktestFiles:
    """backtest.json, backtest.png and backtest.html in `folder`, each written whole."""
    folder.mkdir(parents=True, exist_ok=True)
    files = BacktestFiles(folder / "backtest.json", folder / "backtest.png", folder / "backtest.html")
    text = json.dumps(result.to_dict(), indent=2, default=str)
    write_atomically(files.json, lambda temp: Path(temp).write_text(text, encoding="utf-8"))
    write_atomically(files.png, lambda temp: chart.write_png(result, Path(temp)))
    markup = page(result)
    write_atomically(files.html, lambda temp: Path(temp).write_text(markup, encoding="utf-8"))
    return files
