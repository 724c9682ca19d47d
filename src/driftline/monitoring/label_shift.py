"""The class prior of an unlabeled batch (EM on calibrated probabilities, and black-box shift estimation from the
holdout confusion matrix), and whether a prior change rather than covariate shift is what moved."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import norm

from driftline.config.estimation import EstimationConfig

EM_ITERATIONS, EM_TOLERANCE = 200, 1e-8
# Chance of calling a column unexplained when a prior change explains it, shared out over the columns (Bonferroni).
UNEXPLAINED_ALPHA = 0.01
PRIOR_Z = 3.0  # a prior change is told from noise beyond this many standard errors
MAX_REPORTED_Z = 1e6  # a column constant on the holdout that moved has an infinite z


@dataclass(frozen=True)
class ClassPrior:
    label: str
    holdout: float  # the class's share of the holdout
    estimated: float  # its share of the batch: EM on the calibrated probabilities (Saerens et al. 2002)
    error: float  # the standard error of `estimated` (inf when the classifier cannot tell the prior)
    confusion: float  # its share of the batch: black-box shift estimation (Lipton et al. 2018)
    calibrated: float  # its share if only the features moved: the mean calibrated probability (what CBPE assumes)


@dataclass(frozen=True)
class PriorShift:
    classes: list[ClassPrior]
    rows: int
    flagged: bool  # the prior moved and the holdout reweighted to the new prior explains the batch's features
    reason: str
    unexplained: dict[str, float]  # columns a prior change does not explain: |z| of the batch mean after reweighting

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PriorReference:
    """What the holdout says about its classes: shares, the confusion matrix, each column's mean and variance."""

    labels: list[str]
    prior: list[float]
    confusion: list[list[float]]  # P(predicted class i, true class j) on the holdout
    columns: list[str]
    means: list[list[float]]  # [class][column], missing values left out
    variances: list[list[float]]
    counts: list[list[int]]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PriorReference:
        return cls(**data)


def fit_prior_reference(
    labels: list[str], truth_index: np.ndarray, label_index: np.ndarray, encoded: np.ndarray, columns: list[str]
) -> PriorReference:
    k = len(labels)
    confusion = np.zeros((k, k))
    np.add.at(confusion, (label_index, truth_index), 1.0)
    means, variances, counts = [], [], []
    for c in range(k):
        rows = encoded[truth_index == c]
        present = ~np.isnan(rows)
        counts.append(present.sum(axis=0).astype(int).tolist())
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(np.nan_to_num(np.nanmean(rows, axis=0)).tolist() if len(rows) else [0.0] * len(columns))
            variances.append(np.nan_to_num(np.nanvar(rows, axis=0)).tolist() if len(rows) else [0.0] * len(columns))
    return PriorReference(
        labels=labels,
        prior=(np.bincount(truth_index, minlength=k) / len(truth_index)).tolist(),
        confusion=(confusion / len(truth_index)).tolist(),
        columns=columns,
        means=means,
        variances=variances,
        counts=counts,
    )


def em_prior(calibrated: np.ndarray, holdout_prior: np.ndarray) -> np.ndarray:
    """The batch prior that makes the reweighted calibrated probabilities average to it (EM, Saerens et al.)."""
    prior = holdout_prior.copy()
    for _ in range(EM_ITERATIONS):
        updated = _posterior(calibrated, holdout_prior, prior).mean(axis=0)
        if np.abs(updated - prior).max() < EM_TOLERANCE:
            return updated
        prior = updated
    return prior


def _posterior(calibrated: np.ndarray, holdout_prior: np.ndarray, prior: np.ndarray) -> np.ndarray:
    weighted = calibrated * (prior / np.where(holdout_prior > 0, holdout_prior, 1.0))
    total = weighted.sum(axis=1, keepdims=True)
    return np.divide(weighted, total, out=np.full_like(weighted, 1 / weighted.shape[1]), where=total > 0)


def em_standard_errors(calibrated: np.ndarray, holdout_prior: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Each class share's standard error from the observed information of the label-shift likelihood: large when
    the classifier tells the classes apart poorly, since then a batch's probabilities say little about its prior."""
    ratio = calibrated / np.where(holdout_prior > 0, holdout_prior, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = ratio / (ratio @ prior)[:, None]
    share = np.nan_to_num(share)
    free = share[:, :-1] - share[:, -1:]  # the last class's share is one minus the others
    information = free.T @ free
    if np.linalg.cond(information) > 1e12:
        return np.full(len(prior), np.inf)
    covariance = np.linalg.inv(information)
    last = np.ones(len(prior) - 1) @ covariance @ np.ones(len(prior) - 1)
    return np.sqrt(np.maximum(np.r_[np.diag(covariance), last], 0.0))


def confusion_prior(confusion: np.ndarray, predicted_share: np.ndarray, holdout_prior: np.ndarray) -> np.ndarray:
    """Black-box shift estimation: class weights w solving C w = the batch's predicted shares, with C the holdout's
    joint confusion matrix; the batch prior is w times the holdout prior, clipped at zero and renormalized."""
    weights = np.linalg.lstsq(confusion, predicted_share, rcond=None)[0]
    prior = np.clip(weights * holdout_prior, 0.0, None)
    return prior / prior.sum() if prior.sum() > 0 else holdout_prior


def estimate_priors(
    reference: PriorReference,
    encoded: np.ndarray,
    calibrated: np.ndarray,
    label_index: np.ndarray,
    settings: EstimationConfig,
) -> PriorShift:
    """The batch's class prior two ways, and a flag when the prior moved by at least `prior_shift_min` and the holdout,
    its classes reweighted to the estimated prior, explains every column's batch mean (|z| under a Bonferroni bound):
    a prior change, which CBPE cannot see. Features a prior change does not explain mean covariate shift instead."""
    holdout_prior = np.asarray(reference.prior)
    k = len(holdout_prior)
    estimated = em_prior(calibrated, holdout_prior)
    predicted_share = np.bincount(label_index, minlength=k) / len(label_index)
    confusion = confusion_prior(np.asarray(reference.confusion), predicted_share, holdout_prior)
    errors = em_standard_errors(calibrated, holdout_prior, estimated)
    classes = [
        ClassPrior(label, float(h), float(e), float(se), float(c), float(m))
        for label, h, e, se, c, m in zip(
            reference.labels, holdout_prior, estimated, errors, confusion, calibrated.mean(axis=0), strict=True
        )
    ]
    moved = k - 1 - int(np.argmax(np.abs(estimated - holdout_prior)[::-1]))  # a tie (binary): the positive class
    change = (
        f"{reference.labels[moved]}: {holdout_prior[moved]:.3f} on the holdout, {estimated[moved]:.3f} "
        f"± {errors[moved]:.3f} estimated"
    )
    unexplained = _unexplained_columns(reference, encoded, estimated)
    if abs(estimated[moved] - holdout_prior[moved]) < settings.prior_shift_min:
        flagged = False
        reason = f"the class prior held within {settings.prior_shift_min} ({change})"
    elif abs(estimated[moved] - holdout_prior[moved]) < PRIOR_Z * errors[moved]:
        flagged = False
        reason = f"the class prior cannot be told apart from the holdout's at this size ({change})"
    elif unexplained:
        flagged = False
        worst = max(unexplained, key=unexplained.get)
        reason = (
            f"the class prior moved ({change}), but a prior change does not explain the features "
            f"({len(unexplained)} columns, {worst} |z| {unexplained[worst]:.1f}): covariate shift"
        )
    else:
        flagged = True
        reason = (
            f"label shift: the class prior moved ({change}) and the holdout reweighted to it explains every "
            "feature; the estimate assumes the holdout's prior and cannot see this"
        )
    return PriorShift(classes=classes, rows=len(label_index), flagged=flagged, reason=reason, unexplained=unexplained)


def _unexplained_columns(reference: PriorReference, encoded: np.ndarray, prior: np.ndarray) -> dict[str, float]:
    """Columns whose batch mean lies off the mixture of the holdout's class means under `prior`: |z| above the bound."""
    means, variances = np.asarray(reference.means), np.asarray(reference.variances)
    counts = np.maximum(np.asarray(reference.counts), 1)
    present = ~np.isnan(encoded)
    rows = np.maximum(present.sum(axis=0), 1)
    with np.errstate(invalid="ignore"):
        batch_mean = np.nanmean(np.where(present, encoded, np.nan), axis=0) if len(encoded) else np.zeros(len(means[0]))
    mixture_mean = prior @ means
    mixture_var = prior @ (variances + means**2) - mixture_mean**2
    # The batch mean's noise at its size, plus the holdout class means' own noise.
    standard_error = np.sqrt(np.maximum(mixture_var, 0) / rows + (prior**2) @ (variances / counts))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(batch_mean - mixture_mean) / standard_error
    bound = norm.ppf(1 - UNEXPLAINED_ALPHA / (2 * max(len(reference.columns), 1)))
    return {
        column: round(min(float(value), MAX_REPORTED_Z), 2)
        for column, value in zip(reference.columns, z, strict=True)
        if not np.isnan(value) and value > bound
    }
