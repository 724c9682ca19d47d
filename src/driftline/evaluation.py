"""The evaluation gate: holdout metrics for challenger and champion, judged by MLflow's own model validation."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from driftline.config import DriftlineConfig
from driftline.errors import ConfigError
from driftline.metrics import compute_metrics, greater_is_better
from driftline.modeling import Predictions, feature_frame, predict


@dataclass(frozen=True)
class SliceResult:
    """The primary metric of both models on the holdout rows where `column == value`."""

    column: str
    value: str
    rows: int
    challenger: float | None
    champion: float | None
    decides: bool  # enough rows (gate.slices.min_rows) and both values defined

    @property
    def name(self) -> str:
        return f"{self.column}={self.value}"


@dataclass(frozen=True)
class GroupRate:
    group: str
    rows: int
    positive_rate: float


@dataclass(frozen=True)
class FairnessResult:
    """Positive-prediction rate of the challenger per group; disparate impact = smallest rate / largest rate."""

    attribute: str
    groups: list[GroupRate]
    disparate_impact: float | None  # None: fewer than two groups with enough rows, or no positive predictions
    minimum: float


@dataclass(frozen=True)
class Explanation:
    """Permutation importance (drop of the primary metric when a feature is shuffled) of both models."""

    challenger: dict[str, float]
    champion: dict[str, float] | None
    top_overlap: float | None  # share of the champion's top features that are also the challenger's
    flagged: bool
    note: str


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
            "run_id": run_id, "metric": self.metric, "champion_version": self.champion_version,
            "challenger": self.challenger_metrics.get(self.metric),
            "champion": (self.champion_metrics or {}).get(self.metric),
            "refused_slices": refused_slices,
            "disparate_impact": self.fairness.disparate_impact if self.fairness else None,
            "top_features_flagged": self.explanation.flagged if self.explanation else False,
        }  # fmt: skip

    def held(self, mode: str, reason: str) -> GateDecision:
        """Passed, but kept as `challenger` for a shadow or canary rollout that decides its promotion."""
        return replace(self, promote=False, held_for=mode, reasons=[*self.reasons, reason])

    def overruled(self, reason: str) -> GateDecision:
        """The same evidence, refused for a reason outside the automatic checks (a person, a timeout)."""
        return replace(self, promote=False, reasons=[*self.reasons, reason])


def _all_metrics(predictions: Predictions, truth: pd.Series, cfg: DriftlineConfig) -> dict[str, float]:
    return compute_metrics(cfg.dataset.task, truth, predictions.labels, predictions.proba, predictions.classes)


def holdout_metrics(model: Pipeline, holdout: pd.DataFrame, cfg: DriftlineConfig) -> dict[str, float]:
    return _all_metrics(predict(model, holdout, cfg.dataset), holdout[cfg.dataset.target], cfg)


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


def _metric_of(predictions: Predictions, truth: pd.Series, cfg: DriftlineConfig) -> float | None:
    return _all_metrics(predictions, truth, cfg).get(cfg.primary_metric)


def _subset(predictions: Predictions, mask: np.ndarray) -> Predictions:
    proba = predictions.proba[mask] if predictions.proba is not None else None
    return Predictions(predictions.labels[mask], proba, predictions.classes)


def _require_columns(holdout: pd.DataFrame, columns: list[str], field_name: str, cfg: DriftlineConfig) -> None:
    missing = [column for column in columns if column not in holdout.columns]
    if missing:
        raise ConfigError(
            f"{cfg.source or 'config'}: {field_name} names columns {missing} that the training data lacks; "
            "fix the names or add the columns to the data"
        )


def slice_metrics(
    holdout: pd.DataFrame, challenger: Predictions, champion: Predictions | None, cfg: DriftlineConfig
) -> list[SliceResult]:
    """The primary metric per value of each gate.slices column, for both models, on the same holdout rows."""
    settings = cfg.gate.slices
    _require_columns(holdout, settings.columns, "gate.slices.columns", cfg)
    truth = holdout[cfg.dataset.target].reset_index(drop=True)
    results = []
    for column in settings.columns:
        values = holdout[column].astype("string").fillna("(missing)").to_numpy()
        for value in sorted(set(values)):
            mask = values == value
            mine = _metric_of(_subset(challenger, mask), truth[mask], cfg)
            theirs = _metric_of(_subset(champion, mask), truth[mask], cfg) if champion is not None else None
            decides = int(mask.sum()) >= settings.min_rows and mine is not None and theirs is not None
            results.append(SliceResult(column, str(value), int(mask.sum()), mine, theirs, decides))
    return results


def fairness_of(holdout: pd.DataFrame, challenger: Predictions, cfg: DriftlineConfig) -> FairnessResult | None:
    """Positive-prediction rate per group of gate.fairness.attribute (binary task: positive = the second class)."""
    settings = cfg.gate.fairness
    if settings.attribute is None:
        return None
    _require_columns(holdout, [settings.attribute], "gate.fairness.attribute", cfg)
    groups = holdout[settings.attribute].astype("string").fillna("(missing)").to_numpy()
    positive = challenger.labels == challenger.classes[1]
    rates = [
        GroupRate(str(group), int((groups == group).sum()), float(positive[groups == group].mean()))
        for group in sorted(set(groups))
    ]
    counted = [rate.positive_rate for rate in rates if rate.rows >= settings.min_rows]
    ratio = min(counted) / max(counted) if len(counted) >= 2 and max(counted) > 0 else None
    return FairnessResult(settings.attribute, rates, ratio, settings.min_disparate_impact)


def permutation_importances(model: Pipeline, holdout: pd.DataFrame, cfg: DriftlineConfig) -> dict[str, float]:
    """Mean drop of the primary metric when each feature is shuffled, on a bounded seeded sample of the holdout."""
    from sklearn.inspection import permutation_importance

    settings = cfg.governance.explainability
    sample = holdout.sample(n=min(settings.sample_rows, len(holdout)), random_state=cfg.model.seed)
    sign = 1.0 if greater_is_better(cfg.dataset.task, cfg.primary_metric) else -1.0

    def score(estimator: Pipeline, features: pd.DataFrame, truth: pd.Series) -> float:
        if cfg.dataset.task.is_classification:  # one pass: labels from the probabilities, not a second predict
            proba = estimator.predict_proba(features)
            found = Predictions(estimator.classes_[proba.argmax(axis=1)], proba, estimator.classes_)
        else:
            found = Predictions(estimator.predict(features), None, np.array([]))
        value = _metric_of(found, truth, cfg)
        return sign * (value if value is not None else float("nan"))

    found = permutation_importance(
        model, feature_frame(sample, cfg.dataset), sample[cfg.dataset.target], scoring=score,
        n_repeats=settings.repeats, random_state=cfg.model.seed, n_jobs=1,
    )  # fmt: skip
    return {name: float(value) for name, value in zip(cfg.dataset.feature_names, found.importances_mean, strict=True)}


def top_features(importances: dict[str, float], count: int) -> list[str]:
    return [name for name, _ in sorted(importances.items(), key=lambda item: -item[1])[:count]]


def explain(challenger: dict[str, float], champion: dict[str, float] | None, cfg: DriftlineConfig) -> Explanation:
    """Flag a challenger whose top features share too few with the champion's: it decides on something else."""
    settings = cfg.governance.explainability
    count = min(settings.top_features, len(challenger))
    mine = top_features(challenger, count)
    if champion is None:
        return Explanation(challenger, None, None, False, f"top features: {', '.join(mine)}")
    theirs = top_features(champion, count)
    overlap = len(set(mine) & set(theirs)) / count
    flagged = overlap < settings.min_top_overlap
    note = f"top {count}: challenger {mine} vs champion {theirs} (shared {overlap:.0%})"
    return Explanation(challenger, champion, overlap, flagged, ("TOP FEATURES CHANGED: " if flagged else "") + note)


def judge(
    cfg: DriftlineConfig, challenger: Pipeline, holdout: pd.DataFrame, challenger_metrics: dict[str, float],
    champion: Pipeline | None, champion_version: str | None,
) -> GateDecision:  # fmt: skip
    """Everything the gate looks at, both models on the challenger's holdout: metrics, slices, fairness, importance."""
    theirs = predict(champion, holdout, cfg.dataset) if champion is not None else None
    mine = predict(challenger, holdout, cfg.dataset)
    champion_metrics = _all_metrics(theirs, holdout[cfg.dataset.target], cfg) if theirs is not None else None
    explanation = explain(
        permutation_importances(challenger, holdout, cfg),
        permutation_importances(champion, holdout, cfg) if champion is not None else None,
        cfg,
    )
    return decide(
        cfg, challenger_metrics, champion_metrics, champion_version,
        slices=slice_metrics(holdout, mine, theirs, cfg), fairness=fairness_of(holdout, mine, cfg),
        explanation=explanation,
    )  # fmt: skip


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
    return "\n".join(lines + governance_markdown(decision))


def slices_markdown(decision: GateDecision) -> list[str]:
    lines = [f"**{decision.metric} per slice**", "", "| slice | rows | challenger | champion | decides |",
             "|---|---|---|---|---|"]  # fmt: skip
    for s in decision.slices:
        decides = "yes" if s.decides else "no"
        lines.append(f"| {s.name} | {s.rows} | {_num(s.challenger)} | {_num(s.champion)} | {decides} |")
    return lines


def fairness_markdown(fairness: FairnessResult) -> list[str]:
    return [f"**Fairness on {fairness.attribute}**: disparate impact {_num(fairness.disparate_impact)} "
            f"(minimum {fairness.minimum})", "", "| group | rows | positive rate |", "|---|---|---|",
            *[f"| {g.group} | {g.rows} | {g.positive_rate:.4f} |" for g in fairness.groups]]  # fmt: skip


def importance_markdown(explanation: Explanation, metric: str) -> list[str]:
    champion = explanation.champion or {}
    lines = [f"**Permutation importance** ({metric} drop when shuffled): {explanation.note}", "",
             "| feature | challenger | champion |", "|---|---|---|"]  # fmt: skip
    for name, value in sorted(explanation.challenger.items(), key=lambda item: -item[1]):
        lines.append(f"| {name} | {value:.4f} | {_num(champion.get(name))} |")
    return lines


def governance_markdown(decision: GateDecision) -> list[str]:
    """Slices, fairness and importance under the gate table (the model card shows each in its own section)."""
    lines = []
    if decision.slices:
        lines += ["", *slices_markdown(decision)]
    if decision.fairness is not None:
        lines += ["", *fairness_markdown(decision.fairness)]
    if decision.explanation is not None:
        lines += ["", *importance_markdown(decision.explanation, decision.metric)]
    return lines


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"
