"""Intraclass correlation for feature reliability, vectorised over features.

Two-way models, single measures (Shrout & Fleiss 1979; McGraw & Wong 1996), for ``n``
targets (patients, lesions) each rated by the same ``k`` raters (segmentations,
perturbations), from the mean squares of a two-way ANOVA without replication:

* ``MSR`` (rows = targets, ``n - 1`` df), ``MSC`` (columns = raters, ``k - 1`` df) and
  ``MSE`` (residual, ``(n - 1)(k - 1)`` df);
* ICC(2,1), absolute agreement (McGraw & Wong ICC(A,1)):
  ``(MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n)``;
* ICC(3,1), consistency (McGraw & Wong ICC(C,1)): ``(MSR - MSE) / (MSR + (k - 1) MSE)``.

Confidence intervals are those of McGraw & Wong (1996): F-based for ICC(3,1), with the
Satterthwaite approximation of the denominator degrees of freedom for ICC(2,1). Values and
intervals equal ``pingouin.intraclass_corr`` (rows ``ICC(A,1)`` and ``ICC(C,1)``).

References
----------
Shrout P. E., Fleiss J. L., "Intraclass correlations: uses in assessing rater reliability",
Psychol Bull 1979;86:420-428.

McGraw K. O., Wong S. P., "Forming inferences about some intraclass correlation
coefficients", Psychol Methods 1996;1:30-46.

Koo T. K., Li M. Y., "A guideline of selecting and reporting intraclass correlation
coefficients for reliability research", J Chiropr Med 2016;15:155-163 (0.75: good).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["ICCResult", "intraclass_correlation"]


@dataclass(frozen=True)
class ICCResult:
    """ICC(2,1) and ICC(3,1) of each feature, with their confidence intervals.

    Every attribute is a 1-D float array with one value per feature. A feature whose ICC is
    undefined (no variance at all: every rating equal) has NaN in every attribute; use
    :attr:`defined` to tell.

    Attributes
    ----------
    icc2, icc2_low, icc2_high : numpy.ndarray
        ICC(2,1) (absolute agreement) and its confidence interval.
    icc3, icc3_low, icc3_high : numpy.ndarray
        ICC(3,1) (consistency) and its confidence interval.
    f : numpy.ndarray
        ``MSR / MSE``, the F statistic of both.
    n_targets, n_raters : int
        Size of the design.
    confidence : float
        Level of the intervals.
    """

    icc2: np.ndarray
    icc2_low: np.ndarray
    icc2_high: np.ndarray
    icc3: np.ndarray
    icc3_low: np.ndarray
    icc3_high: np.ndarray
    f: np.ndarray
    n_targets: int
    n_raters: int
    confidence: float

    @property
    def defined(self) -> np.ndarray:
        """Boolean array: the ICCs of this feature are defined."""
        return np.isfinite(self.icc3)


def intraclass_correlation(ratings: np.ndarray, *, confidence: float = 0.95) -> ICCResult:
    """ICC(2,1) and ICC(3,1) with confidence intervals, for one or many features at once.

    Parameters
    ----------
    ratings : numpy.ndarray
        Shape ``(n_targets, n_raters)`` for one feature or ``(n_targets, n_raters, n_features)``;
        complete (no NaN), at least 2 targets and 2 raters.
    confidence : float
        Level of the confidence intervals, in ``(0, 1)``.

    Returns
    -------
    ICCResult
        One value per feature (arrays of length 1 for a 2-D input).

    Raises
    ------
    ValueError
        If the array has the wrong shape, fewer than 2 targets or raters, a non-finite
        value, or ``confidence`` is outside ``(0, 1)``.

    Examples
    --------
    Shrout & Fleiss (1979), Table 2: 6 targets, 4 judges; ICC(2,1) = 0.29, ICC(3,1) = 0.71.

    >>> import numpy as np
    >>> x = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
    >>> r = intraclass_correlation(x.astype(float))
    >>> round(float(r.icc2[0]), 2), round(float(r.icc3[0]), 2)
    (0.29, 0.71)
    """
    x = np.asarray(ratings, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise ValueError(f"ratings must be (targets, raters[, features]), got shape {x.shape}")
    n, k, _ = x.shape
    if n < 2 or k < 2:
        raise ValueError(f"an ICC needs at least 2 targets and 2 raters, got {n} target(s) and {k} rater(s)")
    if not np.all(np.isfinite(x)):
        raise ValueError("ratings hold NaN or infinite values; drop the incomplete targets first")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    grand = x.mean(axis=(0, 1))
    row = x.mean(axis=1)  # (n, F)
    col = x.mean(axis=0)  # (k, F)
    ss_rows = k * np.sum((row - grand) ** 2, axis=0)
    ss_cols = n * np.sum((col - grand) ** 2, axis=0)
    # residuals computed directly rather than by subtraction, for precision
    resid = x - row[:, None, :] - col[None, :, :] + grand
    ss_err = np.sum(resid**2, axis=(0, 1))
    df_r, df_c, df_e = n - 1, k - 1, (n - 1) * (k - 1)
    msr, msc, mse = ss_rows / df_r, ss_cols / df_c, ss_err / df_e
    # mean squares that are round-off of an exact zero (e.g. a shape feature under image noise,
    # identical for every rater) are set to zero, so that the limits below apply
    scale = msr + msc + mse
    tiny = 1e-12 * scale
    msr, msc, mse = (np.where(m <= tiny, 0.0, m) for m in (msr, msc, mse))
    undefined = ~(scale > 0)  # every rating equal: every ICC is 0/0
    exact = (mse == 0) & (msr > 0)  # no interaction: ICC(3,1) = 1 exactly
    alpha = 1.0 - confidence
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        icc2 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
        icc3 = (msr - mse) / (msr + (k - 1) * mse)
        f = msr / mse
        # ICC(3,1): F-based interval
        f_low = f / stats.f.ppf(1 - alpha / 2, df_r, df_e)
        f_high = f * stats.f.ppf(1 - alpha / 2, df_e, df_r)
        icc3_low = np.where(exact, 1.0, (f_low - 1) / (f_low + (k - 1)))
        icc3_high = np.where(exact, 1.0, (f_high - 1) / (f_high + (k - 1)))
        # ICC(2,1): Satterthwaite degrees of freedom (McGraw & Wong 1996, Table 7); its limit
        # for MSE -> 0 is k - 1
        fj = msc / mse
        vn = df_e * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        vd = df_r * k**2 * icc2**2 * fj**2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        v = np.where(exact, float(k - 1), vn / vd)
        fu = stats.f.ppf(1 - alpha / 2, df_r, v)
        fl = stats.f.ppf(1 - alpha / 2, v, df_r)
        icc2_low = n * (msr - fu * mse) / (fu * (k * msc + (k * n - k - n) * mse) + n * msr)
        icc2_high = n * (fl * msr - mse) / (k * msc + (k * n - k - n) * mse + n * fl * msr)
    arrays = [icc2, icc2_low, icc2_high, icc3, icc3_low, icc3_high, f]
    i2, i2l, i2h, i3, i3l, i3h, fv = (np.where(undefined, np.nan, a).astype(np.float64) for a in arrays)
    return ICCResult(i2, i2l, i2h, i3, i3l, i3h, fv, n_targets=n, n_raters=k, confidence=confidence)
