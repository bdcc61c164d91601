"""Clinical performance of predicted probabilities: operating point, calibration, net benefit.

A classifier's threshold must be chosen on training data and then applied unchanged to new
patients; :func:`choose_threshold` does the choosing and :func:`threshold_metrics` the
applying. Calibration (Brier score, slope and intercept, calibration curve, Hosmer-Lemeshow)
and decision-curve analysis need probabilities, not arbitrary scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.stats import chi2, norm

from smartimaging.exceptions import LearningError
from smartimaging.learn.metrics import _binary_labels

__all__ = [
    "Calibration",
    "HosmerLemeshow",
    "ThresholdMetrics",
    "brier_score",
    "calibration_curve",
    "calibration_slope_intercept",
    "choose_threshold",
    "decision_curve",
    "hosmer_lemeshow",
    "plot_calibration",
    "plot_decision_curve",
    "threshold_metrics",
    "wilson_interval",
]

ThresholdMethod = Literal["youden", "sensitivity"]
THRESHOLD_METHODS: tuple[str, ...] = get_args(ThresholdMethod)
BinStrategy = Literal["quantile", "uniform"]
BIN_STRATEGIES: tuple[str, ...] = get_args(BinStrategy)

# Probabilities are clipped away from 0 and 1 before taking logits.
_EPS = 1e-12


def _labels_any(y_true: ArrayLike, *, where: str) -> NDArray[np.int8]:
    """0/1 labels; unlike the AUC, calibration and thresholds may see a single class."""
    y = np.asarray(y_true)
    if y.ndim != 1 or y.size == 0:
        raise LearningError(f"{where}: y_true must be a non-empty 1-D array, got shape {y.shape}.")
    try:
        yf = y.astype(float)
    except (TypeError, ValueError):
        raise LearningError(f"{where}: y_true must hold 0/1 labels.") from None
    if np.isnan(yf).any() or not np.isin(yf, (0.0, 1.0)).all():
        raise LearningError(
            f"{where}: y_true must hold 0/1 labels without missing values, found "
            f"{sorted({str(v) for v in yf[~np.isin(yf, (0.0, 1.0))].tolist()})[:5]}."
        )
    return yf.astype(np.int8)


def _probabilities(p: ArrayLike, n: int, *, where: str) -> NDArray[np.float64]:
    q = np.asarray(p, dtype=float)
    if q.ndim != 1 or q.size != n:
        raise LearningError(f"{where}: y_prob must be 1-D with {n} values, got shape {q.shape}.")
    if not np.isfinite(q).all() or (q < 0).any() or (q > 1).any():
        raise LearningError(
            f"{where}: y_prob must hold probabilities in [0, 1]; found values outside (e.g. "
            f"{q[~(np.isfinite(q) & (q >= 0) & (q <= 1))][:3].tolist()}). Use predict_proba, not a decision value."
        )
    return q


def _scores(s: ArrayLike, n: int, *, where: str) -> NDArray[np.float64]:
    q = np.asarray(s, dtype=float)
    if q.ndim != 1 or q.size != n:
        raise LearningError(f"{where}: y_score must be 1-D with {n} values, got shape {q.shape}.")
    if not np.isfinite(q).all():
        raise LearningError(f"{where}: y_score has {int((~np.isfinite(q)).sum())} non-finite value(s).")
    return q


def wilson_interval(successes: int, total: int, *, level: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a binomial proportion.

    Parameters
    ----------
    successes, total : int
        Counts, ``0 <= successes <= total``.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    (float, float) or None
        The interval; ``None`` when ``total == 0`` (the proportion is undefined).

    Raises
    ------
    LearningError
        On inconsistent counts or a level outside (0, 1).

    References
    ----------
    Wilson EB. Probable inference, the law of succession, and statistical inference.
    J Am Stat Assoc 1927;22:209-212.
    """
    if not 0 <= successes <= total:
        raise LearningError(f"wilson_interval: need 0 <= successes <= total, got {successes} and {total}.")
    if not 0.0 < level < 1.0:
        raise LearningError(f"wilson_interval: level must lie in (0, 1), got {level!r}.")
    if total == 0:
        return None
    z = float(norm.ppf(0.5 + level / 2.0))
    p = successes / total
    denom = 1.0 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def choose_threshold(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    method: ThresholdMethod = "youden",
    target_sensitivity: float = 0.9,
) -> float:
    """Operating threshold chosen on *training* scores (a patient is positive if score >= threshold).

    Parameters
    ----------
    y_true : array_like of shape (n,)
        0/1 outcome of the training patients.
    y_score : array_like of shape (n,)
        Their scores (ideally out-of-fold, from an inner cross-validation).
    method : {'youden', 'sensitivity'}, default 'youden'
        ``'youden'``: maximise sensitivity + specificity - 1 (ties: the highest such
        threshold). ``'sensitivity'``: the highest threshold whose training sensitivity is at
        least ``target_sensitivity``.
    target_sensitivity : float, default 0.9
        Used by ``method='sensitivity'``; in (0, 1].

    Returns
    -------
    float
        One of the observed scores (midpoints would depend on the score scale).

    Raises
    ------
    LearningError
        On an unknown method, invalid labels/scores, or a target outside (0, 1].

    References
    ----------
    Youden WJ. Index for rating diagnostic tests. Cancer 1950;3:32-35.
    """
    if method not in THRESHOLD_METHODS:
        raise LearningError(
            f"choose_threshold: unknown method {method!r}; valid values are {list(THRESHOLD_METHODS)}."
        )
    y = _binary_labels(y_true, where="choose_threshold")
    s = _scores(y_score, y.size, where="choose_threshold")
    cand = np.unique(s)[::-1]  # descending candidate thresholds
    # counts of positives / negatives with score >= each candidate, via sorted cumulative sums
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp_cum = np.cumsum(y_sorted)
    fp_cum = np.cumsum(1 - y_sorted)
    last = np.searchsorted(-s_sorted, -cand, side="right") - 1  # last index with score >= cand
    n1 = int(y.sum())
    n0 = int(y.size - n1)
    tp, fp = tp_cum[last], fp_cum[last]
    sens = tp / n1
    if method == "youden":
        # J * n1 * n0 = tp * n0 - fp * n1 in integers: ties are exact, not rounding noise
        j = tp.astype(np.int64) * n0 - fp.astype(np.int64) * n1
        return float(cand[int(np.argmax(j))])
    if not 0.0 < target_sensitivity <= 1.0:
        raise LearningError(
            f"choose_threshold: target_sensitivity must lie in (0, 1], got {target_sensitivity!r}."
        )
    ok = np.flatnonzero(sens >= target_sensitivity - 1e-12)
    return float(cand[int(ok[0])])


@dataclass(frozen=True)
class ThresholdMetrics:
    """Confusion counts and derived rates at a fixed threshold (positive if score >= threshold).

    ``None`` marks a rate whose denominator is zero (e.g. PPV when nobody is called positive);
    the ``*_ci`` attributes are Wilson 95 % intervals.
    """

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    sensitivity: float | None
    specificity: float | None
    ppv: float | None
    npv: float | None
    sensitivity_ci: tuple[float, float] | None
    specificity_ci: tuple[float, float] | None
    ppv_ci: tuple[float, float] | None
    npv_ci: tuple[float, float] | None

    def to_dict(self) -> dict[str, object]:
        """Plain dictionary (for tables and JSON)."""
        return dict(self.__dict__)


def threshold_metrics(
    y_true: ArrayLike, y_score: ArrayLike, *, threshold: float | ArrayLike
) -> ThresholdMetrics:
    """Sensitivity, specificity, PPV and NPV at a threshold fixed beforehand.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        0/1 outcome of the test patients.
    y_score : array_like of shape (n,)
        Their scores.
    threshold : float or array_like of shape (n,)
        The threshold from the training data (:func:`choose_threshold`). An array gives each
        patient its own threshold, e.g. that of the cross-validation fold that scored them.

    Returns
    -------
    ThresholdMetrics
        ``threshold`` is the scalar, or the mean of the per-patient thresholds.

    Raises
    ------
    LearningError
        On invalid labels, scores or thresholds.
    """
    y = _labels_any(y_true, where="threshold_metrics")
    s = _scores(y_score, y.size, where="threshold_metrics")
    t = np.asarray(threshold, dtype=float)
    if t.ndim == 0:
        t = np.full(s.shape, float(t))
    if t.shape != s.shape or not np.isfinite(t).all():
        raise LearningError("threshold_metrics: threshold must be a finite number or one per patient.")
    pred = s >= t
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    tn = int(np.sum(~pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))

    def rate(k: int, m: int) -> float | None:
        return k / m if m else None

    return ThresholdMetrics(
        threshold=float(np.mean(t)),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        sensitivity=rate(tp, tp + fn),
        specificity=rate(tn, tn + fp),
        ppv=rate(tp, tp + fp),
        npv=rate(tn, tn + fn),
        sensitivity_ci=wilson_interval(tp, tp + fn),
        specificity_ci=wilson_interval(tn, tn + fp),
        ppv_ci=wilson_interval(tp, tp + fp),
        npv_ci=wilson_interval(tn, tn + fn),
    )


def brier_score(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Mean squared difference between predicted probability and outcome.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        0/1 outcome.
    y_prob : array_like of shape (n,)
        Predicted probabilities of the positive class.

    Returns
    -------
    float
        In [0, 1]; 0 is perfect, ``prevalence * (1 - prevalence)`` is a constant prediction
        of the prevalence.

    Raises
    ------
    LearningError
        On invalid labels or probabilities.

    References
    ----------
    Brier GW. Verification of forecasts expressed in terms of probability. Mon Weather Rev
    1950;78:1-3.
    """
    y = _labels_any(y_true, where="brier_score")
    p = _probabilities(y_prob, y.size, where="brier_score")
    return float(np.mean((p - y) ** 2))


@dataclass(frozen=True)
class Calibration:
    """Logistic recalibration of predicted probabilities.

    Attributes
    ----------
    slope : float
        ``b`` in ``logit P(y=1) = a + b * logit(p)``; 1 is ideal, < 1 means overfitting
        (predictions too extreme).
    intercept : float
        ``a`` of that same fit (both estimated together).
    citl : float
        Calibration-in-the-large: ``a`` in ``logit P(y=1) = a + logit(p)`` (slope fixed at
        1, ``logit(p)`` as offset); 0 is ideal, > 0 means risks are underestimated on average.
    """

    slope: float
    intercept: float
    citl: float


def _logit(p: NDArray[np.float64]) -> NDArray[np.float64]:
    q = np.clip(p, _EPS, 1.0 - _EPS)
    return np.asarray(np.log(q) - np.log1p(-q))


def _newton_logistic(
    X: NDArray[np.float64], y: NDArray[np.float64], offset: NDArray[np.float64], *, where: str
) -> NDArray[np.float64]:
    """Unpenalised maximum-likelihood logistic regression by Newton-Raphson (few columns)."""
    beta = np.zeros(X.shape[1])
    for _ in range(100):
        eta = offset + X @ beta
        mu = 1.0 / (1.0 + np.exp(-eta))
        w = mu * (1.0 - mu)
        grad = X.T @ (y - mu)
        hess = (X * w[:, None]).T @ X
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            raise LearningError(
                f"{where}: the recalibration model is singular (e.g. all probabilities equal, or perfect "
                "separation); calibration slope/intercept cannot be estimated on these predictions."
            ) from None
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            return beta
    raise LearningError(
        f"{where}: the recalibration model did not converge (probably perfect separation of the outcome by "
        "the predictions); report the calibration curve instead."
    )


def calibration_slope_intercept(y_true: ArrayLike, y_prob: ArrayLike) -> Calibration:
    """Calibration slope, intercept and calibration-in-the-large by logistic recalibration.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        0/1 outcome.
    y_prob : array_like of shape (n,)
        Predicted probabilities (clipped to [1e-12, 1 - 1e-12] before the logit).

    Returns
    -------
    Calibration

    Raises
    ------
    LearningError
        On invalid inputs, a single outcome class, or a non-estimable fit.

    References
    ----------
    Cox DR. Two further applications of a model for binary regression. Biometrika
    1958;45:562-565. Van Calster B et al. Calibration: the Achilles heel of predictive
    analytics. BMC Med 2019;17:230.
    """
    y = _binary_labels(y_true, where="calibration_slope_intercept").astype(float)
    p = _probabilities(y_prob, y.size, where="calibration_slope_intercept")
    lp = _logit(p)
    ab = _newton_logistic(
        np.column_stack([np.ones_like(lp), lp]), y, np.zeros_like(lp), where="calibration_slope_intercept"
    )
    citl = _newton_logistic(np.ones((lp.size, 1)), y, lp, where="calibration_slope_intercept")
    return Calibration(slope=float(ab[1]), intercept=float(ab[0]), citl=float(citl[0]))


def _bins(p: NDArray[np.float64], n_bins: int, strategy: str, where: str) -> NDArray[np.intp]:
    if not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise LearningError(f"{where}: n_bins must be a positive integer, got {n_bins!r}.")
    if strategy not in BIN_STRATEGIES:
        raise LearningError(
            f"{where}: unknown strategy {strategy!r}; valid values are {list(BIN_STRATEGIES)}."
        )
    if strategy == "uniform":
        return np.minimum((p * n_bins).astype(np.intp), n_bins - 1)
    # quantile: equal-sized groups of patients sorted by predicted risk (stable on ties)
    groups = np.empty(p.size, dtype=np.intp)
    for g, idx in enumerate(np.array_split(np.argsort(p, kind="stable"), min(n_bins, p.size))):
        groups[idx] = g
    return groups


def calibration_curve(
    y_true: ArrayLike, y_prob: ArrayLike, *, n_bins: int = 10, strategy: BinStrategy = "quantile"
) -> pd.DataFrame:
    """Observed event rate against mean predicted probability, per bin of predicted risk.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        0/1 outcome.
    y_prob : array_like of shape (n,)
        Predicted probabilities.
    n_bins : int, default 10
        Number of bins.
    strategy : {'quantile', 'uniform'}, default 'quantile'
        ``'quantile'``: equal numbers of patients per bin (sorted by risk); ``'uniform'``:
        equal-width bins on [0, 1] (empty bins are omitted).

    Returns
    -------
    DataFrame
        Columns ``bin, n, mean_predicted, observed, observed_lo, observed_hi`` (Wilson 95 %
        interval of the observed rate), one row per non-empty bin, ordered by risk.

    Raises
    ------
    LearningError
        On invalid inputs or options.
    """
    y = _labels_any(y_true, where="calibration_curve")
    p = _probabilities(y_prob, y.size, where="calibration_curve")
    g = _bins(p, n_bins, strategy, "calibration_curve")
    rows = []
    for b in np.unique(g):
        m = g == b
        k, n = int(y[m].sum()), int(m.sum())
        ci = wilson_interval(k, n)
        assert ci is not None
        rows.append((int(b), n, float(p[m].mean()), k / n, ci[0], ci[1]))
    return pd.DataFrame(
        rows, columns=["bin", "n", "mean_predicted", "observed", "observed_lo", "observed_hi"]
    )


@dataclass(frozen=True)
class HosmerLemeshow:
    """Hosmer-Lemeshow goodness-of-fit test.

    Attributes
    ----------
    statistic : float
        ``sum_g (O_g - E_g)^2 / (E_g (1 - E_g / n_g))``.
    dof : int
        Number of groups minus 2.
    p_value : float
        Upper tail of chi-square with ``dof`` degrees of freedom; small values indicate
        miscalibration.
    table : DataFrame
        Per group: ``n, observed, expected``.
    """

    statistic: float
    dof: int
    p_value: float
    table: pd.DataFrame


def hosmer_lemeshow(y_true: ArrayLike, y_prob: ArrayLike, *, n_groups: int = 10) -> HosmerLemeshow:
    """Hosmer-Lemeshow test over groups of predicted risk ("deciles of risk").

    Patients are sorted by predicted probability and split into ``n_groups`` groups of
    (nearly) equal size.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        0/1 outcome.
    y_prob : array_like of shape (n,)
        Predicted probabilities, strictly between 0 and 1 within every group's mean.
    n_groups : int, default 10
        Number of groups, at least 3.

    Returns
    -------
    HosmerLemeshow

    Raises
    ------
    LearningError
        On invalid inputs, fewer than 3 groups or fewer patients than groups.

    References
    ----------
    Hosmer DW, Lemeshow S. Goodness of fit tests for the multiple logistic regression model.
    Commun Stat Theory Methods 1980;9:1043-1069.
    """
    y = _labels_any(y_true, where="hosmer_lemeshow")
    p = _probabilities(y_prob, y.size, where="hosmer_lemeshow")
    if not isinstance(n_groups, int | np.integer) or n_groups < 3:
        raise LearningError(f"hosmer_lemeshow: n_groups must be an integer >= 3, got {n_groups!r}.")
    if y.size < n_groups:
        raise LearningError(f"hosmer_lemeshow: {y.size} patients cannot form {n_groups} groups.")
    g = _bins(p, n_groups, "quantile", "hosmer_lemeshow")
    n_g = np.bincount(g, minlength=n_groups).astype(float)
    o_g = np.bincount(g, weights=y.astype(float), minlength=n_groups)
    e_g = np.bincount(g, weights=p, minlength=n_groups)
    pbar = e_g / n_g
    if ((pbar <= 0) | (pbar >= 1)).any():
        raise LearningError(
            "hosmer_lemeshow: a risk group has mean predicted probability 0 or 1; the statistic is undefined."
        )
    stat = float(np.sum((o_g - e_g) ** 2 / (e_g * (1.0 - pbar))))
    dof = n_groups - 2
    table = pd.DataFrame({"n": n_g.astype(int), "observed": o_g, "expected": e_g})
    return HosmerLemeshow(statistic=stat, dof=dof, p_value=float(chi2.sf(stat, dof)), table=table)


def decision_curve(
    y_true: ArrayLike, y_prob: ArrayLike, *, thresholds: ArrayLike | None = None
) -> pd.DataFrame:
    """Decision-curve analysis: net benefit of the model, of treating all and of treating none.

    At threshold probability ``pt`` a patient is treated if ``p >= pt``;
    ``net benefit = TP/n - FP/n * pt / (1 - pt)``. Treat-all has
    ``prevalence - (1 - prevalence) * pt / (1 - pt)``; treat-none has 0.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        0/1 outcome.
    y_prob : array_like of shape (n,)
        Predicted probabilities.
    thresholds : array_like, optional
        Threshold probabilities in [0, 1); default 0.01, 0.02, ..., 0.99.

    Returns
    -------
    DataFrame
        Columns ``threshold, net_benefit_model, net_benefit_all, net_benefit_none``.

    Raises
    ------
    LearningError
        On invalid inputs or thresholds outside [0, 1).

    References
    ----------
    Vickers AJ, Elkin EB. Decision curve analysis: a novel method for evaluating prediction
    models. Med Decis Making 2006;26:565-574.
    """
    y = _labels_any(y_true, where="decision_curve")
    p = _probabilities(y_prob, y.size, where="decision_curve")
    pt = np.round(np.arange(1, 100) / 100, 2) if thresholds is None else np.asarray(thresholds, dtype=float)
    if pt.ndim != 1 or pt.size == 0 or not np.isfinite(pt).all() or (pt < 0).any() or (pt >= 1).any():
        raise LearningError("decision_curve: thresholds must be a non-empty 1-D array of values in [0, 1).")
    n = y.size
    treat = p[None, :] >= pt[:, None]
    tp = (treat & (y[None, :] == 1)).sum(axis=1)
    fp = (treat & (y[None, :] == 0)).sum(axis=1)
    odds = pt / (1.0 - pt)
    prev = y.mean()
    return pd.DataFrame(
        {
            "threshold": pt,
            "net_benefit_model": tp / n - fp / n * odds,
            "net_benefit_all": prev - (1.0 - prev) * odds,
            "net_benefit_none": np.zeros_like(pt),
        }
    )


def plot_calibration(curve: pd.DataFrame, *, title: str = "") -> Any:
    """Calibration plot of a :func:`calibration_curve` table.

    Parameters
    ----------
    curve : DataFrame
        Output of :func:`calibration_curve`.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Observed rate (with Wilson 95 % bars) against mean predicted probability, and the
        diagonal of perfect calibration.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="ideal")
    err = np.vstack([curve["observed"] - curve["observed_lo"], curve["observed_hi"] - curve["observed"]])
    ax.errorbar(curve["mean_predicted"], curve["observed"], yerr=err, fmt="o-", capsize=3, label="model")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed event rate")
    ax.legend(loc="upper left")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_decision_curve(curve: pd.DataFrame, *, title: str = "") -> Any:
    """Decision-curve plot of a :func:`decision_curve` table.

    Parameters
    ----------
    curve : DataFrame
        Output of :func:`decision_curve`.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Net benefit of the model, treat-all and treat-none against threshold probability.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    ax.plot(curve["threshold"], curve["net_benefit_model"], label="model")
    ax.plot(curve["threshold"], curve["net_benefit_all"], color="grey", label="treat all")
    ax.plot(curve["threshold"], curve["net_benefit_none"], color="black", ls="--", label="treat none")
    top = float(max(curve["net_benefit_model"].max(), curve["net_benefit_all"].max(), 0.01))
    ax.set_ylim(-0.05 * top - 0.01, top * 1.1)
    ax.set_xlabel("threshold probability")
    ax.set_ylabel("net benefit")
    ax.legend(loc="upper right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
