"""DeLong variance of the ROC AUC and DeLong's test for two correlated AUCs.

The empirical AUC is a two-sample U-statistic. DeLong, DeLong & Clarke-Pearson (1988) estimate
its variance (and the covariance between the AUCs of several scores measured on the same
patients) from its *structural components*: for each positive patient ``i`` the fraction of
negatives it outscores, ``V10[i]``, and for each negative ``j`` the fraction of positives that
outscore it, ``V01[j]`` (ties count one half). Sun & Xu (2014) showed that these components
follow from mid-ranks, so the whole computation is a sort, O(n log n), instead of the
O(n1 * n0) pair matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm, rankdata

from smartimaging.exceptions import LearningError
from smartimaging.learn.metrics import _binary_labels

__all__ = ["DeLongAUC", "DeLongTest", "delong_auc", "delong_covariance", "delong_test"]


@dataclass(frozen=True)
class DeLongAUC:
    """AUC with its DeLong standard error and normal-approximation interval.

    Attributes
    ----------
    auc : float
        Empirical (Mann-Whitney) AUC.
    se : float
        DeLong standard error.
    ci : (float, float)
        ``auc -/+ z * se``, clipped to [0, 1].
    level : float
        Confidence level of ``ci`` (e.g. 0.95).
    n_positive, n_negative : int
        Class sizes.
    """

    auc: float
    se: float
    ci: tuple[float, float]
    level: float
    n_positive: int
    n_negative: int


@dataclass(frozen=True)
class DeLongTest:
    """DeLong's test of H0: AUC_a = AUC_b for two scores of the same patients.

    Attributes
    ----------
    auc_a, auc_b : float
        The two AUCs.
    difference : float
        ``auc_a - auc_b``.
    se_difference : float
        DeLong standard error of the difference (accounts for the correlation of the scores).
    z : float
        ``difference / se_difference``.
    p_value : float
        Two-sided p-value from the standard normal distribution.
    ci_difference : (float, float)
        Normal-approximation interval of the difference at ``level``.
    correlation : float
        Estimated correlation between the two AUC estimates.
    level : float
        Confidence level of ``ci_difference``.
    """

    auc_a: float
    auc_b: float
    difference: float
    se_difference: float
    z: float
    p_value: float
    ci_difference: tuple[float, float]
    correlation: float
    level: float


def _score_matrix(y_score: ArrayLike, n: int, *, where: str) -> NDArray[np.float64]:
    s = np.asarray(y_score, dtype=float)
    if s.ndim == 1:
        s = s[None, :]
    if s.ndim != 2 or s.shape[1] != n:
        raise LearningError(
            f"{where}: scores must have shape (n,) or (k, n) with n = {n} patients, got {np.shape(y_score)}."
        )
    if not np.isfinite(s).all():
        raise LearningError(f"{where}: scores hold {int((~np.isfinite(s)).sum())} non-finite value(s).")
    return s


def _structural_components(
    y: NDArray[np.int8], s: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """AUCs and DeLong components of each row of ``s`` (Sun & Xu 2014, section 3)."""
    pos, neg = s[:, y == 1], s[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    # mid-ranks within positives (T_x), within negatives (T_y) and over everyone (T_z)
    tx = rankdata(pos, axis=1)
    ty = rankdata(neg, axis=1)
    tz = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    v10 = (tz[:, :m] - tx) / n  # per positive: fraction of negatives outscored
    v01 = 1.0 - (tz[:, m:] - ty) / m  # per negative: fraction of positives outscoring it
    aucs = v10.mean(axis=1)
    return aucs, v10, v01


def delong_covariance(
    y_true: ArrayLike, y_score: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """AUCs of one or several scores and their DeLong covariance matrix.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        0/1 outcome; 1 is the positive class.
    y_score : array_like of shape (n,) or (k, n)
        One score per patient, or ``k`` scores (e.g. models) of the same patients; higher
        means more likely positive.

    Returns
    -------
    aucs : ndarray of shape (k,)
        Empirical AUCs.
    cov : ndarray of shape (k, k)
        ``S10 / n1 + S01 / n0`` where ``S10``, ``S01`` are the sample covariance matrices
        (denominator ``n - 1``) of the structural components of positives and negatives.

    Raises
    ------
    LearningError
        If labels are not 0/1, a class has fewer than two patients, or scores are non-finite
        or of the wrong shape.

    References
    ----------
    DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more correlated
    receiver operating characteristic curves: a nonparametric approach. Biometrics
    1988;44:837-845.
    Sun X, Xu W. Fast implementation of DeLong's algorithm for comparing the areas under
    correlated receiver operating characteristic curves. IEEE Signal Process Lett
    2014;21:1389-1393.
    """
    y = _binary_labels(y_true, where="delong_covariance")
    n1 = int(y.sum())
    n0 = int(y.size - n1)
    if min(n1, n0) < 2:
        raise LearningError(
            f"delong_covariance: the DeLong variance needs at least 2 patients per class, found {n1} positive "
            f"and {n0} negative."
        )
    s = _score_matrix(y_score, y.size, where="delong_covariance")
    aucs, v10, v01 = _structural_components(y, s)
    cov = np.atleast_2d(np.cov(v10)) / n1 + np.atleast_2d(np.cov(v01)) / n0
    return aucs, cov


def _check_level(level: float, where: str) -> float:
    if not 0.0 < level < 1.0:
        raise LearningError(f"{where}: level must lie in (0, 1), e.g. 0.95, got {level!r}.")
    return float(norm.ppf(0.5 + level / 2.0))


def delong_auc(y_true: ArrayLike, y_score: ArrayLike, *, level: float = 0.95) -> DeLongAUC:
    """AUC with the DeLong standard error and a normal-approximation confidence interval.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        0/1 outcome.
    y_score : array_like of shape (n,)
        Scores, higher means more likely positive.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    DeLongAUC

    Raises
    ------
    LearningError
        As :func:`delong_covariance`, or if ``level`` is outside (0, 1).

    References
    ----------
    DeLong et al. 1988; Sun & Xu 2014 (see :func:`delong_covariance`).

    Examples
    --------
    >>> r = delong_auc([0, 0, 0, 1, 1, 1], [0.1, 0.3, 0.6, 0.4, 0.8, 0.9])
    >>> round(r.auc, 4), round(r.se, 4)
    (0.8889, 0.1571)
    """
    z = _check_level(level, "delong_auc")
    if np.ndim(y_score) != 1:
        raise LearningError(f"delong_auc: y_score must be one-dimensional, got shape {np.shape(y_score)}.")
    aucs, cov = delong_covariance(y_true, y_score)
    auc = float(aucs[0])
    se = float(np.sqrt(max(cov[0, 0], 0.0)))
    y = np.asarray(y_true).astype(float)
    return DeLongAUC(
        auc=auc,
        se=se,
        ci=(max(0.0, auc - z * se), min(1.0, auc + z * se)),
        level=level,
        n_positive=int(y.sum()),
        n_negative=int(y.size - y.sum()),
    )


def delong_test(
    y_true: ArrayLike, score_a: ArrayLike, score_b: ArrayLike, *, level: float = 0.95
) -> DeLongTest:
    """DeLong's two-sided test comparing the AUCs of two scores on the same patients.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        0/1 outcome.
    score_a, score_b : array_like of shape (n,)
        Scores of the two models for the same patients in the same order.
    level : float, default 0.95
        Confidence level of the interval of the difference.

    Returns
    -------
    DeLongTest

    Raises
    ------
    LearningError
        As :func:`delong_covariance`; or if the difference has zero variance (e.g. the two
        scores rank every patient identically), where no test is possible.

    References
    ----------
    DeLong et al. 1988, eq. (5)-(6); Sun & Xu 2014 (see :func:`delong_covariance`).
    """
    z_crit = _check_level(level, "delong_test")
    a = np.asarray(score_a, dtype=float)
    b = np.asarray(score_b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise LearningError(
            f"delong_test: score_a and score_b must be 1-D and of equal length, got {a.shape} and {b.shape}."
        )
    aucs, cov = delong_covariance(y_true, np.vstack([a, b]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    if var <= 1e-15:
        raise LearningError(
            "delong_test: the two scores give an AUC difference with zero variance (they order the patients "
            "identically); there is nothing to test."
        )
    se = float(np.sqrt(var))
    z = diff / se
    denom = np.sqrt(cov[0, 0] * cov[1, 1])
    corr = float(cov[0, 1] / denom) if denom > 0 else 0.0
    return DeLongTest(
        auc_a=float(aucs[0]),
        auc_b=float(aucs[1]),
        difference=diff,
        se_difference=se,
        z=float(z),
        p_value=float(2.0 * norm.sf(abs(z))),
        ci_difference=(diff - z_crit * se, diff + z_crit * se),
        correlation=corr,
        level=level,
    )
