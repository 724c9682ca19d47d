"""Confidence-based performance estimation (CBPE, as NannyML 0.13.1 computes it): isotonic calibration on the
holdout, classifier metrics expected under the calibrated probabilities, and their sampling errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import auc, roc_auc_score
from sklearn.model_selection import StratifiedShuffleSplit

from driftline.config.base import Task

MULTICLASS_AUC_FACTOR = 1.2  # NannyML: the per-class variances underestimate the multiclass AUROC error by 20 %


@dataclass(frozen=True)
class IsotonicCurve:
    """One class's calibration: the isotonic fit's knots, applied by linear interpolation and clipped at the ends
    (scikit-learn's `IsotonicRegression(out_of_bounds="clip").predict`); no knots: scores kept as they are."""

    x: list[float]
    y: list[float]

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(scores, self.x, self.y) if self.x else np.asarray(scores, dtype=float)

    @classmethod
    def fit(cls, scores: np.ndarray, is_class: np.ndarray) -> IsotonicCurve:
        """Calibrate only when it lowers the expected calibration error in cross-validation (NannyML's test)."""
        if not needs_calibration(is_class, scores):
            return cls(x=[], y=[])
        fitted = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(scores, is_class)
        return cls(x=fitted.X_thresholds_.tolist(), y=fitted.y_thresholds_.tolist())


def needs_calibration(is_class: np.ndarray, scores: np.ndarray, bins: int = 10, splits: int = 10) -> bool:
    """NannyML's `needs_calibration`: isotonic fits on 10 stratified 90 % splits; calibrate when the pooled ECE of
    the calibrated held-out scores is below that of the raw ones."""
    if len(np.unique(is_class)) == 1 or roc_auc_score(is_class, scores) > 0.999:
        return False
    folds = StratifiedShuffleSplit(n_splits=splits, test_size=0.1, random_state=42)
    truth, raw, calibrated = [], [], []
    for train, test in folds.split(scores, is_class):
        fitted = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(scores[train], is_class[train])
        truth.append(is_class[test]), raw.append(scores[test]), calibrated.append(fitted.predict(scores[test]))
    truth_all = np.concatenate(truth)
    return _ece(truth_all, np.concatenate(raw), bins) > _ece(truth_all, np.concatenate(calibrated), bins)


def _ece(truth: np.ndarray, scores: np.ndarray, bins: int) -> float:
    """Expected calibration error over equal-count bins of the sorted scores (NannyML's bin edges)."""
    n = len(scores)
    if n <= 2 * bins:
        bins = max(n // 2, 1)
    width = n // bins
    edges = np.arange(0, n + 1, width)
    edges[-1] = n
    order = np.argsort(scores)
    scores, truth = scores[order], truth[order]
    return float(
        sum(
            (right - left) / n * abs(scores[left:right].mean() - truth[left:right].mean())
            for left, right in zip(edges[:-1], edges[1:], strict=True)
        )
    )


def fit_curves(task: Task, proba: np.ndarray, truth_index: np.ndarray) -> list[IsotonicCurve]:
    """Binary: one curve for the positive class (the second); multiclass: one per class, one against the rest."""
    if task is Task.binary:
        return [IsotonicCurve.fit(proba[:, 1], (truth_index == 1).astype(float))]
    return [IsotonicCurve.fit(proba[:, k], (truth_index == k).astype(float)) for k in range(proba.shape[1])]


def calibrate(task: Task, proba: np.ndarray, curves: list[IsotonicCurve]) -> np.ndarray:
    if task is Task.binary:
        positive = np.clip(curves[0].apply(proba[:, 1]), 0.0, 1.0)
        return np.column_stack([1 - positive, positive])
    calibrated = np.column_stack([curve.apply(proba[:, k]) for k, curve in enumerate(curves)])
    total = calibrated.sum(axis=1, keepdims=True)
    uniform = np.full_like(calibrated, 1 / calibrated.shape[1])
    return np.divide(calibrated, total, out=uniform, where=total != 0)  # rows renormalized, as NannyML does


def estimate_metrics(
    task: Task, calibrated: np.ndarray, proba: np.ndarray, label_index: np.ndarray
) -> dict[str, float]:
    """Each metric's expected value when every row's class follows its calibrated probabilities."""
    rows = np.arange(len(label_index))
    # Expected log loss: the model's probabilities scored against the calibrated ones (clipped as scikit-learn does).
    eps = np.finfo(proba.dtype).eps
    log_loss = float(np.mean(-(calibrated * np.log(np.clip(proba, eps, 1 - eps))).sum(axis=1)))
    accuracy = float(np.mean(calibrated[rows, label_index]))
    if task is Task.binary:
        predicted = label_index == 1
        p = calibrated[:, 1]
        tp, fp, fn = p[predicted].sum(), (1 - p[predicted]).sum(), p[~predicted].sum()
        return {
            "roc_auc": estimate_roc_auc(p, proba[:, 1]),
            "accuracy": accuracy,
            "f1": _ratio(tp, tp + 0.5 * (fp + fn)),
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "log_loss": log_loss,
        }
    classes = range(calibrated.shape[1])
    f1s = []
    for k in classes:
        predicted, p = label_index == k, calibrated[:, k]
        tp, fp, fn = p[predicted].sum(), (1 - p[predicted]).sum(), p[~predicted].sum()
        f1s.append(_ratio(tp, tp + 0.5 * (fp + fn)))
    return {
        "f1_macro": float(np.mean(f1s)),
        "accuracy": accuracy,
        "roc_auc_ovr": float(np.mean([estimate_roc_auc(calibrated[:, k], proba[:, k]) for k in classes])),
        "log_loss": log_loss,
    }


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def estimate_roc_auc(calibrated: np.ndarray, scores: np.ndarray) -> float:
    """NannyML's estimate: rows in descending model score, expected true and false positives from the calibrated
    probabilities at every cut, the area under that curve."""
    order = np.argsort(scores)[::-1]
    tps = np.cumsum(np.asarray(calibrated, dtype=float)[order])
    fps = 1 + np.arange(len(tps)) - tps
    tps, fps = np.round(np.r_[0, tps], 5), np.round(np.r_[0, fps], 5)
    if tps[-1] == 0 or fps[-1] == 0:
        return float("nan")
    return float(auc(fps / fps[-1], tps / tps[-1]))


@dataclass(frozen=True)
class SamplingTerms:
    """A metric's sampling error at n rows: sqrt(sum(variance / (n * fraction))) / terms * factor; one term per
    class for a macro average, else one (NannyML's components, measured on the holdout)."""

    variances: list[float]
    fractions: list[float]
    factor: float = 1.0

    def error(self, rows: int) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = np.sum(np.asarray(self.variances) / (rows * np.asarray(self.fractions)))
        return float(np.sqrt(spread) / len(self.variances) * self.factor)


def sampling_terms(
    task: Task, truth_index: np.ndarray, label_index: np.ndarray, proba: np.ndarray
) -> dict[str, SamplingTerms]:
    """The holdout's per-row spread of each metric, from its labels (NannyML's sampling-error components)."""
    eps = np.finfo(proba.dtype).eps
    row_loss = -np.log(np.clip(proba[np.arange(len(truth_index)), truth_index], eps, 1 - eps))
    correct = (truth_index == label_index).astype(float)
    common = {
        "accuracy": SamplingTerms([float(correct.var())], [1.0]),
        "log_loss": SamplingTerms([float(row_loss.var())], [1.0]),
    }
    if task is Task.binary:
        truth, predicted = truth_index == 1, label_index == 1
        return {
            **common,
            "roc_auc": SamplingTerms(*_auroc_terms(truth, proba[:, 1])),
            "f1": SamplingTerms(*_f1_terms(truth, predicted, corrected=True)),
            "precision": SamplingTerms([_var(truth[predicted])], [predicted.mean()]),
            "recall": SamplingTerms([_var(predicted[truth])], [truth.mean()]),
        }
    per_class_f1 = [_f1_terms(truth_index == k, label_index == k, corrected=False) for k in range(proba.shape[1])]
    per_class_auc = [_auroc_terms(truth_index == k, proba[:, k]) for k in range(proba.shape[1])]
    return {
        **common,
        "f1_macro": SamplingTerms([t[0][0] for t in per_class_f1], [t[1][0] for t in per_class_f1]),
        "roc_auc_ovr": SamplingTerms(
            [t[0][0] for t in per_class_auc], [t[1][0] for t in per_class_auc], MULTICLASS_AUC_FACTOR
        ),
    }


def _var(values: np.ndarray) -> float:
    return float(np.var(values.astype(float))) if len(values) else float("nan")


def _auroc_terms(truth: np.ndarray, scores: np.ndarray) -> tuple[list[float], list[float]]:
    """AUROC's variance as DeLong's: the spread over positives of the share of negatives ranked below each, over the
    positives' fraction, plus the same over negatives, as one term of fraction 1. NannyML keeps the positives' half
    only, which narrows its band by about a third: 3 of its sampling errors covered 68 % of the demo's stable batches
    of 2,000 rows (docs/monitoring.md)."""
    truth, scores = truth.astype(bool), np.asarray(scores, dtype=float)
    positives, negatives = truth.sum(), (~truth).sum()
    if not positives or not negatives:
        return [float("nan")], [0.0]
    # Mid-ranks, so tied scores count a half, as roc_auc_score counts them.
    ranks = rankdata(scores)
    negatives_below = (ranks[truth] - rankdata(scores[truth])) / negatives
    positives_above = 1 - (ranks[~truth] - rankdata(scores[~truth])) / positives
    rows = len(truth)
    spread = np.var(negatives_below) / (positives / rows) + np.var(positives_above) / (negatives / rows)
    return [float(spread)], [1.0]


def _f1_terms(truth: np.ndarray, predicted: np.ndarray, corrected: bool) -> tuple[list[float], list[float]]:
    """Rows that are a true positive (1), false positive or false negative (0); binary F1 rescales them so their
    mean is F1 (NannyML's correcting factor), the multiclass per-class terms do not."""
    tp, fp, fn = (truth & predicted).sum(), (~truth & predicted).sum(), (truth & ~predicted).sum()
    relevant = tp + fp + fn
    if not relevant:
        return [float("nan")], [0.0]
    values = np.r_[np.ones(tp), np.zeros(fp + fn)]
    if corrected:
        values = values * relevant / (0.5 * (fp + fn) + tp)
    return [float(values.var())], [relevant / len(truth)]
