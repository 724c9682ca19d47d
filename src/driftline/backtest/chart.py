"""The backtest chart: the served metric per batch per policy (dashed, with its band: its estimate before labels),
with drift alarms, promotions and refused retrains marked. The only module that imports matplotlib (the object API:
no pyplot, no display needed)."""

from __future__ import annotations

import io
import math
import os
import textwrap
from pathlib import Path

from driftline.backtest.results import PROMOTED, REJECTED, Backtest

MARKS = {
    "drift alarm": dict(marker="^", markersize=10, markerfacecolor="none"),
    "retrain promoted": dict(marker="*", markersize=15, markeredgecolor="black"),
    "retrain refused": dict(marker="X", markersize=10, markeredgecolor="black", markeredgewidth=0.8),
}


def short_labels(names: list[str]) -> list[str]:
    """Batch names without their common start and suffix (`flights-2013-04.parquet` → `04`)."""
    stems = [Path(name).stem for name in names]
    prefix = os.path.commonprefix(stems) if len(stems) > 1 else ""
    cut = max(prefix.rfind("-"), prefix.rfind("_")) + 1
    return [stem[cut:] or stem for stem in stems]


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _figure(result: Backtest):
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    figure = Figure(figsize=(11, 5), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    positions = range(len(result.later))
    dodge = 0.08  # policies that served the same value stay visible side by side
    for index, replay in enumerate(result.replays):
        offset = (index - (len(result.replays) - 1) / 2) * dodge
        xs = [x + offset for x in positions]
        ys = [b.metrics.get(result.metric, math.nan) for b in replay.batches]  # realized: on the batch's labels
        label = textwrap.fill(replay.policy.name, 40, break_long_words=False)  # a variant's name is its settings
        line = axes.plot(xs, ys, marker="o", markersize=4, linewidth=1.6, label=label)[0]
        estimated = [_or_nan(b.estimated_metric) for b in replay.batches]
        if not all(math.isnan(value) for value in estimated):  # the estimate before labels, dashed, with its band
            axes.plot(xs, estimated, linestyle="--", linewidth=1.2, color=line.get_color(), alpha=0.8)
            lower = [_or_nan(b.estimated_lower) for b in replay.batches]
            upper = [_or_nan(b.estimated_upper) for b in replay.batches]
            axes.fill_between(xs, lower, upper, color=line.get_color(), alpha=0.12, linewidth=0)
        for x, y, batch in zip(xs, ys, replay.batches, strict=True):
            verdicts = batch.verdicts()
            marks = [
                ("drift alarm", batch.drift),
                ("retrain promoted", PROMOTED in verdicts),
                ("retrain refused", any(verdict != PROMOTED for verdict in verdicts)),
            ]
            for mark, shown in marks:
                if shown and not math.isnan(y):
                    axes.plot([x], [y], linestyle="none", color=line.get_color(), **MARKS[mark])
    for position in positions:
        if any(replay.batches[position].status == REJECTED for replay in result.replays):
            axes.axvspan(position - 0.4, position + 0.4, color="tab:red", alpha=0.08, linewidth=0)
    axes.set_xticks(list(positions), short_labels([file.name for file in result.later]))
    axes.set_xlabel("batch, in time order (each scored by the champion of its moment)")
    axes.set_ylabel(f"served {result.metric}")
    late = f", {result.late_labels}" if result.label_delay else ""
    axes.set_title(f"{result.name}: served {result.metric} per batch and policy{late}")
    axes.grid(alpha=0.3)
    # Both legends beside the axes, laid out by the figure (a legend only added as an artist was cut off).
    figure.legend(title="policy", loc="outside right upper", fontsize=8)
    proxies = [Line2D([], [], color="black", linestyle="none", **style) for style in MARKS.values()]
    proxies += [Patch(color="tab:red", alpha=0.15), Line2D([], [], color="black", linestyle="--")]
    names = [*MARKS, "batch rejected", "estimated before labels"]
    figure.legend(proxies, names, loc="outside right lower", fontsize=8)
    return figure


def write_png(result: Backtest, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _figure(result).savefig(path, format="png")
    return path


def svg(result: Backtest) -> str:
    """The same chart as SVG text, to inline in the HTML page."""
    buffer = io.StringIO()
    _figure(result).savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg") :]
