"""Always-valid inference on a difference in means: the normal-mixture mSPRT, its p-value and confidence sequence.

Johari, Pekelis, Walsh, "Always valid inference: continuous monitoring of A/B tests" (Operations Research, 2022) and
Howard, Ramdas, McAuliffe, Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences" (Annals of
Statistics, 2021). With an estimate `difference` of B - A whose variance is `variance` (s_A²/n_A + s_B²/n_B) and a
normal mixture N(0, tau²) over the true difference, the mixture likelihood ratio against "no difference" is

    Lambda = sqrt(V / (V + tau²)) * exp(tau² * difference² / (2 V (V + tau²)))

Under no difference, Lambda is a martingale: the chance it ever reaches 1/alpha, however often it is looked at, is at
most alpha (Ville's inequality). So 1/Lambda is a p-value and {theta: Lambda(theta) < 1/alpha} a confidence interval
that stay valid at every look. The functions broadcast over numpy arrays, so simulations run thousands of looks at once.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

ArrayLike = float | np.ndarray


def log_likelihood_ratio(difference: ArrayLike, variance: ArrayLike, mixing_variance: ArrayLike) -> np.ndarray:
    """log Lambda: the normal-mixture likelihood ratio of "the true difference is not 0" against "it is 0"."""
    v = np.asarray(variance, dtype=float)
    tau2 = np.asarray(mixing_variance, dtype=float)
    d = np.asarray(difference, dtype=float)
    return 0.5 * np.log(v / (v + tau2)) + tau2 * d**2 / (2.0 * v * (v + tau2))


def always_valid_p_value(difference: ArrayLike, variance: ArrayLike, mixing_variance: ArrayLike) -> np.ndarray:
    """min(1, 1/Lambda): two-sided evidence against "no difference", valid however often it is computed."""
    return np.minimum(1.0, np.exp(-log_likelihood_ratio(difference, variance, mixing_variance)))


def one_sided_p_value(difference: ArrayLike, variance: ArrayLike, mixing_variance: ArrayLike) -> np.ndarray:
    """Evidence that the true difference is above 0 (against "it is 0 or below"), valid at every look.

    The mixture over positive differences only (a half-normal, Howard et al. 2021):
    Lambda+ = 2 sqrt(V/(V+tau²)) exp(tau² d²/(2V(V+tau²))) Phi(d tau / sqrt(V(V+tau²))).
    """
    v = np.asarray(variance, dtype=float)
    tau2 = np.asarray(mixing_variance, dtype=float)
    d = np.asarray(difference, dtype=float)
    log_lambda = np.log(2.0) + log_likelihood_ratio(d, v, tau2) + log_ndtr(d * np.sqrt(tau2) / np.sqrt(v * (v + tau2)))
    return np.minimum(1.0, np.exp(-log_lambda))


def half_width(variance: ArrayLike, mixing_variance: ArrayLike, alpha: float) -> np.ndarray:
    """Half the width of the always-valid (1 - alpha) interval: the differences theta with Lambda(theta) < 1/alpha.

    sqrt(V (V + tau²) / tau² * (log(1 + tau²/V) - 2 log alpha)); at the same V it is wider than the fixed-sample
    z * sqrt(V), the price of looking at any time.
    """
    v = np.asarray(variance, dtype=float)
    tau2 = np.asarray(mixing_variance, dtype=float)
    return np.sqrt(v * (v + tau2) / tau2 * (np.log1p(tau2 / v) - 2.0 * np.log(alpha)))


def optimal_ratio(alpha: float) -> float:
    """tau²/V at which the interval is narrowest for that V: -2 log alpha + log(1 - 2 log alpha) (7.94 at 0.05).

    Howard et al. (2021), section 3.5: tuning the mixture to the sample size where the test is expected to decide.
    """
    return -2.0 * np.log(alpha) + np.log(1.0 - 2.0 * np.log(alpha))


def tuned_mixing_variance(variance_at_planned_size: float, alpha: float) -> float:
    """The mixing variance tau² that makes the interval narrowest when the difference's variance reaches this value
    (at the planned sample size). It must be fixed before the data come: a tau² chosen after looking is not valid."""
    return float(optimal_ratio(alpha) * variance_at_planned_size)
