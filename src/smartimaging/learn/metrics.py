"""Discrimination metrics of a binary classifier: ROC AUC, its bootstrap interval, ROC points.

The area under the ROC curve equals the Mann-Whitney probability that a randomly drawn
positive patient scores higher than a randomly drawn negative one (ties count one half).
The bootstrap below uses that pairwise form, which lets all resamples be evaluated with two
matrix products instead of a Python loop.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import roc_auc_score, roc_curve

from smartimaging.exceptions import LearningError

__all__ = ["bootstrap_auc_ci", "bootstrap_ci", "roc_auc", "roc_curve_points"]

# Above this many (positive, negative) pairs the pairwise matrix is built per resample chunk
# of patients instead of once; keeps memory bounded for very large cohorts.
_MAX_PAIRS = 20_000_000


def _binary_labels(y_true: ArrayLike, *, where: str) -> NDArray[np.int8]:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise LearningError(f"{where}: y_true must be one-dimensional, got shape {y.shape}.")
    if y.dtype == bool:
        return y.astype(np.int8)
    try:
        yf = y.astype(float)
    except (TypeError, ValueError):
        raise LearningError(
            f"{where}: y_true must hold 0/1 labels, found values {sorted(set(y.tolist()))[:5]}; "
            "encode the outcome as 0 (negative) and 1 (positive)."
        ) from None
    if np.isnan(yf).any():
        raise LearningError(
            f"{where}: y_true has {int(np.isnan(yf).sum())} missing label(s); drop those patients first."
        )
    bad = ~np.isin(yf, (0.0, 1.0))
    if bad.any():
        raise LearningError(
            f"{where}: y_true must hold 0/1 labels, found {sorted(set(yf[bad].tolist()))[:5]}; "
            "encode the outcome as 0 (negative) and 1 (positive)."
        )
    n_pos = int(yf.sum())
    if n_pos == 0 or n_pos == yf.size:
        raise LearningError(
            f"{where}: the AUC needs both classes, found {n_pos} positive and {yf.size - n_pos} negative "
            "label(s)."
        )
    return yf.astype(np.int8)


def _scores(y_score: ArrayLike, n: int, *, where: str) -> NDArray[np.float64]:
    s = np.asarray(y_score, dtype=float)
    if s.shape[0] != n:
        raise LearningError(f"{where}: y_score has {s.shape[0]} rows but y_true has {n}.")
    if not np.isfinite(s).all():
        raise LearningError(f"{where}: y_score has {int((~np.isfinite(s)).sum())} non-finite value(s).")
    return s


def roc_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve of scores ``y_score`` for 0/1 labels ``y_true``.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        0/1 (or boolean) outcome; 1 is the positive class.
    y_score : array_like of shape (n,)
        Higher means more likely positive (probability or decision value).

    Returns
    -------
    float
        AUC in [0, 1]; identical to :func:`sklearn.metrics.roc_auc_score`.

    Raises
    ------
    LearningError
        If the labels are not 0/1, a class is absent, or scores are non-finite.

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    y = _binary_labels(y_true, where="roc_auc")
    s = _scores(y_score, y.size, where="roc_auc")
    return float(roc_auc_score(y, s))


def roc_curve_points(
    y_true: ArrayLike, y_score: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """False- and true-positive rates of the empirical ROC curve, from (0, 0) to (1, 1).

    Parameters
    ----------
    y_true : array_like of shape (n,)
        0/1 outcome.
    y_score : array_like of shape (n,)
        Scores, higher means more likely positive.

    Returns
    -------
    fpr, tpr : ndarray
        Monotone non-decreasing coordinates of the curve's corners.

    Raises
    ------
    LearningError
        As :func:`roc_auc`.
    """
    y = _binary_labels(y_true, where="roc_curve_points")
    s = _scores(y_score, y.size, where="roc_curve_points")
    fpr, tpr, _ = roc_curve(y, s)
    return np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float)


def _pair_matrix(pos: NDArray[np.float64], neg: NDArray[np.float64]) -> NDArray[np.float64]:
    """1 where a positive outscores a negative, 0.5 for a tie, averaged over score columns."""
    # pos: (n1, r), neg: (n0, r) -> mean over r of the (n1, n0) comparison matrices
    out = np.zeros((pos.shape[0], neg.shape[0]))
    for k in range(pos.shape[1]):
        p = pos[:, k][:, None]
        q = neg[:, k][None, :]
        out += (p > q) + 0.5 * (p == q)
    return out / pos.shape[1]


def bootstrap_auc_ci(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    random_state: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the AUC, resampling patients within each class.

    Positives and negatives are resampled separately (stratified bootstrap) so that every
    resample keeps the observed prevalence and both classes. The scores are held fixed: this
    is the uncertainty from the finite cohort, not from re-fitting a model.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        0/1 outcome.
    y_score : array_like of shape (n,) or (n, r)
        Scores. With several columns (e.g. out-of-fold scores of ``r`` cross-validation
        repeats) the statistic is the mean over columns of the per-column AUC, computed on the
        same resampled patients.
    n_boot : int, default 2000
        Number of bootstrap resamples.
    alpha : float, default 0.05
        Two-sided level; the interval is the ``alpha/2`` and ``1 - alpha/2`` quantiles.
    random_state : int, default 0
        Seed of the resampling (``numpy.random.default_rng``).

    Returns
    -------
    (lo, hi) : tuple of float
        Lower and upper limits.

    Raises
    ------
    LearningError
        On invalid labels or scores, ``n_boot < 1`` or ``alpha`` outside (0, 1).

    References
    ----------
    Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall, 1993, ch. 13.
    """
    if not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise LearningError(f"bootstrap_auc_ci: n_boot must be a positive integer, got {n_boot!r}.")
    if not 0.0 < alpha < 1.0:
        raise LearningError(f"bootstrap_auc_ci: alpha must lie in (0, 1), got {alpha!r}.")
    y = _binary_labels(y_true, where="bootstrap_auc_ci")
    s = _scores(y_score, y.size, where="bootstrap_auc_ci")
    if s.ndim == 1:
        s = s[:, None]
    elif s.ndim != 2:
        raise LearningError(f"bootstrap_auc_ci: y_score must be 1-D or 2-D, got shape {s.shape}.")
    pos, neg = s[y == 1], s[y == 0]
    n1, n0 = pos.shape[0], neg.shape[0]
    rng = np.random.default_rng(random_state)
    # multinomial counts = how often each patient is drawn in a resample of its class
    c_pos = rng.multinomial(n1, np.full(n1, 1.0 / n1), size=n_boot).astype(float)
    c_neg = rng.multinomial(n0, np.full(n0, 1.0 / n0), size=n_boot).astype(float)
    aucs = np.empty(n_boot)
    if n1 * n0 <= _MAX_PAIRS:
        pairs = _pair_matrix(pos, neg)
        aucs[:] = np.einsum("bi,ij,bj->b", c_pos, pairs, c_neg, optimize=True) / (n1 * n0)
    else:  # very large cohorts: build the comparison matrix in row blocks
        acc = np.zeros(n_boot)
        step = max(1, _MAX_PAIRS // n0)
        for start in range(0, n1, step):
            block = _pair_matrix(pos[start : start + step], neg)
            acc += np.einsum("bi,ij,bj->b", c_pos[:, start : start + step], block, c_neg, optimize=True)
        aucs[:] = acc / (n1 * n0)
    lo, hi = np.quantile(aucs, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def bootstrap_ci(
    y_true: ArrayLike,
    statistic: Callable[[NDArray[np.intp]], float | None],
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    random_state: int = 0,
) -> tuple[float, float] | None:
    """Stratified percentile bootstrap interval of any statistic of a cohort.

    Positives and negatives are resampled separately, as in :func:`bootstrap_auc_ci`; the
    statistic is called with the resampled patient indices (into ``y_true``) and computes its
    value on those patients, with predictions held fixed.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        0/1 outcome (only used to stratify the resampling).
    statistic : callable
        ``statistic(idx) -> float or None``; ``None`` (undefined in that resample, e.g. a PPV
        with nobody called positive) drops the resample.
    n_boot : int, default 1000
        Number of resamples.
    alpha : float, default 0.05
        Two-sided level.
    random_state : int, default 0
        Seed of the resampling.

    Returns
    -------
    (lo, hi) or None
        ``None`` if the statistic was undefined in more than half of the resamples.

    Raises
    ------
    LearningError
        On invalid labels, ``n_boot < 1`` or ``alpha`` outside (0, 1).

    References
    ----------
    Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall, 1993, ch. 13.
    """
    if not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise LearningError(f"bootstrap_ci: n_boot must be a positive integer, got {n_boot!r}.")
    if not 0.0 < alpha < 1.0:
        raise LearningError(f"bootstrap_ci: alpha must lie in (0, 1), got {alpha!r}.")
    y = _binary_labels(y_true, where="bootstrap_ci")
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    rng = np.random.default_rng(random_state)
    values = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        v = statistic(idx)
        if v is not None and np.isfinite(v):
            values.append(float(v))
    if len(values) * 2 < n_boot:
        return None
    lo, hi = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)
