"""The evaluation gate: challenger against champion and thresholds, judged by MLflow's `validate_evaluation_results`."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace

import pandas as pd
from sklearn.pipeline import Pipeline

from driftline.config import DriftlineConfig
from driftline.evaluation.importance import Explanation, explain, permutation_importances
from driftline.evaluation.measure import metrics_of
from driftline.evaluation.slices import FairnessResult, SliceResult, fairness_of, slice_metrics
from driftline.modeling.metrics import greater_is_better
from driftline.modeling.pipeline import predict


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    metric: str
    reasons: list[str]
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    champion_version: str | None
    slices: list[SliceResult] = field(default_factory=list)
    fairness: FairnessResult | None = None
    explanation: Explanation | None = None
    held_for: str | None = None  # shadow | canary: passed, and tried on live batches before promotion

    @property
    def verdict(self) -> str:
        if self.promote:
            return "promoted"
        return "held" if self.held_for else "refused"

    @property
    def summary(self) -> str:
        return f"{self.verdict}: " + "; ".join(self.reasons)

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}

    def evidence(self, run_id: str) -> dict:
        """What the audit log keeps of this decision: small enough for one tag."""
        refused_slices = [s.name for s in self.slices if s.decides and any(s.name in r for r in self.reasons)]
        return {
            "run_id": run_id,
            "metric": self.metric,
            "champion_version": self.champion_version,
            "challenger": self.challenger_metrics.get(self.metric),
            "champion": (self.champion_metrics or {}).get(self.metric),
            "refused_slices": refused_slices,
            "disparate_impact": self.fairness.disparate_impact if self.fairness else None,
            "top_features_flagged": self.explanation.flagged if self.explanation else False,
        }

    def held(self, mode: str, reason: str) -> GateDecision:
        """Passed, but kept as `challenger` for a shadow or canary rollout that decides its promotion."""
        return replace(self, promote=False, held_for=mode, reasons=[*self.reasons, reason])

    def overruled(self, reason: str) -> GateDecision:
        """The same evidence, refused for a reason outside the automatic checks (a person, a timeout)."""
        return replace(self, promote=False, reasons=[*self.reasons, reason])


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


def _slice_key(metric: str, result: SliceResult) -> str:
    return f"{metric}[{result.name}]"


def _disparate_impact_key(fairness: FairnessResult) -> str:
    return f"disparate_impact[{fairness.attribute}]"


def decide(
    cfg: DriftlineConfig,
    challenger_metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    champion_version: str | None,
    slices: list[SliceResult] | None = None,
    fairness: FairnessResult | None = None,
    explanation: Explanation | None = None,
) -> GateDecision:
    """Promote only if every threshold holds and, when a champion exists, the challenger beats it by the margin,
    is not worse than it beyond gate.slices.tolerance on any slice with enough rows, and keeps the disparate
    impact at or above gate.fairness.min_disparate_impact. One MLflow validation judges all of it, so a refusal
    names the failing metric, slice (`roc_auc[contract=two-year]`) or attribute (`disparate_impact[region]`).
    """
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation import EvaluationResult
    from mlflow.models.evaluation.validation import ModelValidationFailedException, validate_evaluation_results

    primary = cfg.primary_metric
    has_champion = champion_metrics is not None
    slices = slices or []
    thresholds = gate_thresholds(cfg, has_champion)
    candidate, baseline = dict(challenger_metrics), dict(champion_metrics or {})
    higher = greater_is_better(cfg.dataset.task, primary)
    for result in slices:
        if result.decides and result.champion is not None:
            key = _slice_key(primary, result)
            floor = (
                result.champion - cfg.gate.slices.tolerance if higher else result.champion + cfg.gate.slices.tolerance
            )
            thresholds[key] = MetricThreshold(threshold=floor, greater_is_better=higher)
            candidate[key], baseline[key] = result.challenger, result.champion
    if fairness is not None and fairness.disparate_impact is not None:
        key = _disparate_impact_key(fairness)
        thresholds[key] = MetricThreshold(threshold=fairness.minimum, greater_is_better=True)
        candidate[key] = baseline[key] = fairness.disparate_impact
    evidence = {"slices": slices, "fairness": fairness, "explanation": explanation}
    try:
        validate_evaluation_results(
            thresholds,
            EvaluationResult(metrics=candidate, artifacts={}),
            EvaluationResult(metrics=baseline, artifacts={}) if has_champion else None,
        )
    except ModelValidationFailedException as refusal:
        # MLflow's own words, with metric values rounded for reading
        reasons = [
            re.sub(r"-?\d+\.\d{5,}", lambda number: f"{float(number.group()):.4f}", line.strip())
            for line in str(refusal.message).splitlines()
            if line.strip()
        ]
        reasons += _flag(explanation)
        return GateDecision(False, primary, reasons, challenger_metrics, champion_metrics, champion_version, **evidence)
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
    reasons = [reason]
    if any(result.decides for result in slices):
        reasons.append(
            f"no slice of {cfg.gate.slices.columns} worse than the champion by over {cfg.gate.slices.tolerance}"
        )
    if fairness is not None and fairness.disparate_impact is not None:
        reasons.append(
            f"disparate impact on {fairness.attribute} {fairness.disparate_impact:.3f} >= {fairness.minimum}"
        )
    reasons += _flag(explanation)
    return GateDecision(True, primary, reasons, challenger_metrics, champion_metrics, champion_version, **evidence)


def _flag(explanation: Explanation | None) -> list[str]:
    """A change of top features does not refuse on its own: it is a line a reviewer must read."""
    return [explanation.note] if explanation is not None and explanation.flagged else []


def judge(
    cfg: DriftlineConfig,
    challenger: Pipeline,
    holdout: pd.DataFrame,
    challenger_metrics: dict[str, float],
    champion: Pipeline | None,
    champion_version: str | None,
) -> GateDecision:
    """Everything the gate looks at, both models on the challenger's holdout: metrics, slices, fairness, importance."""
    theirs = predict(champion, holdout, cfg.dataset) if champion is not None else None
    mine = predict(challenger, holdout, cfg.dataset)
    champion_metrics = metrics_of(theirs, holdout[cfg.dataset.target], cfg) if theirs is not None else None
    explanation = explain(
        permutation_importances(challenger, holdout, cfg),
        permutation_importances(champion, holdout, cfg) if champion is not None else None,
        cfg,
    )
    return decide(
        cfg,
        challenger_metrics,
        champion_metrics,
        champion_version,
        slices=slice_metrics(holdout, mine, theirs, cfg),
        fairness=fairness_of(holdout, mine, cfg),
        explanation=explanation,
    )
