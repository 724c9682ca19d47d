"""The evaluation gate: holdout metrics for challenger and champion, judged by MLflow's own model validation."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import pandas as pd
from sklearn.pipeline import Pipeline

from driftline.config import DriftlineConfig
from driftline.metrics import compute_metrics, greater_is_better
from driftline.modeling import predict


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    metric: str
    reasons: list[str]
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    champion_version: str | None

    @property
    def verdict(self) -> str:
        return "promoted" if self.promote else "refused"

    @property
    def summary(self) -> str:
        return f"{self.verdict}: " + "; ".join(self.reasons)

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def holdout_metrics(model: Pipeline, holdout: pd.DataFrame, cfg: DriftlineConfig) -> dict[str, float]:
    predictions = predict(model, holdout, cfg.dataset)
    return compute_metrics(
        cfg.dataset.task, holdout[cfg.dataset.target], predictions.labels, predictions.proba, predictions.classes
    )


def gate_thresholds(cfg: DriftlineConfig, has_champion: bool) -> dict:
    """MetricThresholds: each configured floor/ceiling, plus the required improvement on the primary metric."""
    from mlflow.models import MetricThreshold

    task, primary = cfg.dataset.task, cfg.primary_metric
    thresholds = {
        name: MetricThreshold(threshold=value, greater_is_better=greater_is_better(task, name))
        for name, value in cfg.gate.thresholds.items()
    }
    if has_champion:
        thresholds[primary] = MetricThreshold(
            threshold=cfg.gate.thresholds.get(primary),
            min_absolute_change=cfg.gate.min_improvement,
            greater_is_better=greater_is_better(task, primary),
        )
    return thresholds


def decide(
    cfg: DriftlineConfig,
    challenger_metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    champion_version: str | None,
) -> GateDecision:
    """Promote only if every threshold holds and, when a champion exists, the challenger beats it by the margin."""
    from mlflow.models.evaluation import EvaluationResult
    from mlflow.models.evaluation.validation import ModelValidationFailedException, validate_evaluation_results

    primary = cfg.primary_metric
    has_champion = champion_metrics is not None
    try:
        validate_evaluation_results(
            gate_thresholds(cfg, has_champion),
            EvaluationResult(metrics=challenger_metrics, artifacts={}),
            EvaluationResult(metrics=champion_metrics, artifacts={}) if has_champion else None,
        )
    except ModelValidationFailedException as refusal:
        # MLflow's own words, with metric values rounded for reading
        reasons = [
            re.sub(r"-?\d+\.\d{5,}", lambda number: f"{float(number.group()):.4f}", line.strip())
            for line in str(refusal.message).splitlines()
            if line.strip()
        ]
        return GateDecision(False, primary, reasons, challenger_metrics, champion_metrics, champion_version)
    value = challenger_metrics.get(primary, float("nan"))
    if has_champion:
        reason = (
            f"{primary} {value:.4f} vs champion v{champion_version} {champion_metrics.get(primary, float('nan')):.4f}: "
            f"better by at least {cfg.gate.min_improvement}"
        )
    else:
        reason = (
            f"first model: {primary} {value:.4f} passes the configured thresholds {cfg.gate.thresholds or '(none)'}"
        )
    return GateDecision(True, primary, [reason], challenger_metrics, champion_metrics, champion_version)


def gate_markdown(decision: GateDecision, candidate_version: str) -> str:
    """Challenger vs champion, metric by metric, with the verdict: what a reviewer reads in the Prefect UI."""
    champion = decision.champion_metrics or {}
    title = f"v{decision.champion_version}" if decision.champion_version else "none yet"
    lines = [
        f"## Gate: challenger v{candidate_version} **{decision.verdict}**",
        "",
        f"| metric | challenger v{candidate_version} | champion ({title}) |",
        "|---|---|---|",
    ]
    for name, value in decision.challenger_metrics.items():
        other = f"{champion[name]:.4f}" if name in champion else "–"
        marker = " (primary)" if name == decision.metric else ""
        lines.append(f"| {name}{marker} | {value:.4f} | {other} |")
    lines += ["", "**Reasons**", *[f"- {reason}" for reason in decision.reasons]]
    return "\n".join(lines)
