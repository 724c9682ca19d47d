"""Task: the champion's metric estimated before labels on a monitored batch (or prediction-log window), published as a
markdown artifact a person reads: the estimate and its band, the estimator's trust, the label-shift check, slices."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftline.config import DriftlineConfig
from driftline.data.loading import Observed
from driftline.monitoring.estimate_trust import TrustState
from driftline.registry import Champion
from driftline.steps import estimate_check
from driftline.steps.estimate_check import EstimationCheck, band_text
from driftline.steps.retraining import trigger_line
from driftline.tasks.publishing import publish_markdown
from driftline.tasks.retries import retried


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def trust_word(trust: TrustState) -> str:
    return "trusted" if trust.trusted else "UNTRUSTED"


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def estimation_markdown(observed: Observed, estimation: EstimationCheck, cfg: DriftlineConfig) -> str:
    """The estimate of one monitored batch as a person reads it: figures in tables, the verdict and trust in words."""
    title = f"## Estimated {estimation.metric} of {observed.name} ({observed.rows} rows), v{estimation.model_version}"
    estimate = estimation.estimate
    if estimate is None:
        return f"{title}\n\n{estimation.note}"
    metrics = [[estimate.metric, band_text(estimate), estimate.rows, estimate.note or ""]]
    metrics += [[name, _figure(value), estimate.rows, "no band"] for name, value in estimate.others.items()]
    trust = estimation.trust
    lines = [
        title,
        "",
        *_table(["metric", "estimate [band]", "rows", "note"], metrics),
        "",
        f"**Verdict:** {estimation.verdict}",
        "",
        f"**Estimator:** {trust_word(trust)}: {trust.reason}",
        "",
        f"**Retraining:** {trigger_line(estimation, cfg)}",
    ]
    if estimation.arrived is not None:
        lines += ["", f"**Labels came with the batch:** {estimation.arrived.line()}"]
    shift = estimation.prior_shift
    if shift is not None:
        priors = [[c.label, f"{c.holdout:.3f}", f"{c.estimated:.3f}", f"{c.confusion:.3f}"] for c in shift.classes]
        lines += ["", f"**Label shift:** {'FLAGGED' if shift.flagged else 'not flagged'}: {shift.reason}", ""]
        lines += _table(["class", "holdout share", "estimated (EM)", "estimated (confusion matrix)"], priors)
    if estimation.slices:
        slices = [
            [s.name, band_text(s.estimate), s.estimate.rows, trust_word(s.trust), s.estimate.note or s.trust.reason]
            for s in estimation.slices
        ]
        lines += ["", "**Per slice** (gate.slices; each slice's estimator trust follows its own labeled batches)", ""]
        lines += _table(["slice", "estimate [band]", "rows", "estimator", "note"], slices)
    if estimation.batches:
        kept = [[b.batch, b.slice_name or "all", _figure(b.value), b.rows, b.note] for b in estimation.batches]
        lines += ["", "**Kept until their labels come** (the self-check)", ""]
        lines += _table(["scoring batch", "rows of", "estimated", "rows", "note"], kept)
    return "\n".join(lines)


@task(name="estimate-performance", cache_policy=NO_CACHE, **retried(1, 5))
def estimate_performance(observed: Observed, champion: Champion, cfg: DriftlineConfig) -> EstimationCheck:
    """The estimate of what is monitored, kept for the self-check, published as markdown (key `<model>-estimate`)."""
    estimation = estimate_check.estimate_observed(observed, champion, cfg)
    publish_markdown(
        cfg,
        "estimate",
        estimation_markdown(observed, estimation, cfg),
        f"Estimated {estimation.metric} of {observed.name}: {estimation.verdict}",
    )
    return estimation
