"""Intensity histogram features (IBSI 1 family ``ZVCW``), computed from discretised levels.

All 23 features are computed at once from the discretised grey levels of the voxels in the
ROI intensity mask. The histogram runs over every level ``1 .. n_levels`` (bins that are empty
are kept, as the IBSI requires for the histogram gradient).

Conventions
-----------
* Percentiles (``P10``, ``P25``, ``P75``, ``P90``, median) use linear interpolation between
  order statistics (NumPy's default, Hyndman & Fan type 7); this reproduces the IBSI digital
  phantom values (``P90 = 4``, not 4.2).
* Variance, skewness and kurtosis carry no bias correction (IBSI definition).
* A constant ROI (zero variance) has skewness and excess kurtosis 0.
* When several levels share the highest count, the mode is the one closest to the mean;
  a remaining tie goes to the lower level.
* With a single level (``n_levels == 1``) the histogram gradient is 0.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

from smartimaging.exceptions import EmptyMaskError, FeatureError
from smartimaging.features.order_statistics import IBSI_PERCENTILES, percentiles_from_counts
from smartimaging.features.registry import FeatureDef

__all__ = ["FEATURES", "compute"]

_FAMILY = "intensity histogram"

#: Feature definitions, keys and identifiers as in the IBSI reference table.
FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("ih.mean", "Mean discretised intensity", _FAMILY, "X6K6"),
    FeatureDef("ih.var", "Discretised intensity variance", _FAMILY, "CH89"),
    FeatureDef("ih.skew", "Discretised intensity skewness", _FAMILY, "88K1"),
    FeatureDef("ih.kurt", "(Excess) discretised intensity kurtosis", _FAMILY, "C3I7"),
    FeatureDef("ih.median", "Median discretised intensity", _FAMILY, "WIFQ"),
    FeatureDef("ih.min", "Minimum discretised intensity", _FAMILY, "1PR8"),
    FeatureDef("ih.p10", "10th discretised intensity percentile", _FAMILY, "GPMT"),
    FeatureDef("ih.p90", "90th discretised intensity percentile", _FAMILY, "OZ0C"),
    FeatureDef("ih.max", "Maximum discretised intensity", _FAMILY, "3NCY"),
    FeatureDef("ih.mode", "Intensity histogram mode", _FAMILY, "AMMC"),
    FeatureDef("ih.iqr", "Discretised intensity interquartile range", _FAMILY, "WR0O"),
    FeatureDef("ih.range", "Discretised intensity range", _FAMILY, "5Z3W"),
    FeatureDef("ih.mad", "Intensity histogram mean absolute deviation", _FAMILY, "D2ZX"),
    FeatureDef("ih.rmad", "Intensity histogram robust mean absolute deviation", _FAMILY, "WRZB"),
    FeatureDef("ih.medad", "Intensity histogram median absolute deviation", _FAMILY, "4RNL"),
    FeatureDef("ih.cov", "Intensity histogram coefficient of variation", _FAMILY, "CWYJ"),
    FeatureDef("ih.qcod", "Intensity histogram quartile coefficient of dispersion", _FAMILY, "SLWD"),
    FeatureDef("ih.entropy", "Discretised intensity entropy", _FAMILY, "TLU2", "bit"),
    FeatureDef("ih.uniformity", "Discretised intensity uniformity", _FAMILY, "BJ5W"),
    FeatureDef("ih.max.grad", "Maximum histogram gradient", _FAMILY, "12CE"),
    FeatureDef("ih.max.grad.gl", "Maximum histogram gradient intensity", _FAMILY, "8E6O"),
    FeatureDef("ih.min.grad", "Minimum histogram gradient", _FAMILY, "VQB3"),
    FeatureDef("ih.min.grad.gl", "Minimum histogram gradient intensity", _FAMILY, "RHQZ"),
)


def _validate_levels(levels: npt.ArrayLike, n_levels: int) -> np.ndarray:
    if isinstance(n_levels, bool) or not isinstance(n_levels, int | np.integer) or n_levels < 1:
        raise FeatureError(f"n_levels must be a positive integer, got {n_levels!r}")
    x = np.asarray(levels)
    if x.ndim != 1:
        raise FeatureError(
            f"levels must be a 1-D array of the discretised ROI voxels, got shape {x.shape}; "
            "pass image[mask] of the discretised image"
        )
    if x.size == 0:
        raise EmptyMaskError("no voxel in the ROI intensity mask: the intensity histogram needs at least one")
    if x.dtype.kind not in "iu" and (not np.all(np.isfinite(x)) or not np.all(x == np.round(x))):
        raise FeatureError(
            "levels must be whole discretised grey levels 1..n_levels; discretise the intensities "
            "first (fixed bin number or fixed bin size)"
        )
    lo, hi = float(x.min()), float(x.max())
    if lo < 1 or hi > n_levels:
        raise FeatureError(
            f"levels span {lo:g}..{hi:g} but must lie in 1..n_levels={n_levels}; check the "
            "discretisation settings or pass the right n_levels"
        )
    return x.astype(np.int64)


def _histogram_gradient(counts: np.ndarray) -> np.ndarray:
    """IBSI histogram gradient: one-sided at both ends, central differences inside."""
    n = counts.size
    grad = np.zeros(n, dtype=float)
    if n == 1:
        return grad
    c = counts.astype(float)
    grad[0] = c[1] - c[0]
    grad[-1] = c[-1] - c[-2]
    if n > 2:
        grad[1:-1] = (c[2:] - c[:-2]) / 2.0
    return grad


@numba.njit(cache=True, nogil=True)
def _count_sums(
    counts: np.ndarray, n_v: int, p10: float, p90: float, median: float
) -> np.ndarray:  # pragma: no cover - compiled
    """Mean, central moments 2-4, MAD, robust MAD, median AD, entropy and uniformity from the counts.

    Every sum over voxels is a sum over levels weighted by their counts. With no level between
    P10 and P90 (a ROI of two or three voxels) the robust MAD is undefined: NaN.
    """
    n_g = counts.size
    mu = 0.0
    for g in range(n_g):
        mu += (g + 1.0) * (counts[g] / n_v)
    var = 0.0
    m3 = 0.0
    m4 = 0.0
    mad = 0.0
    medad = 0.0
    entropy = 0.0
    uniformity = 0.0
    r_sum = 0.0
    r_n = 0
    for g in range(n_g):
        c = counts[g]
        if c == 0:
            continue
        level = g + 1.0
        p = c / n_v
        d = level - mu
        var += d * d * p
        m3 += d * d * d * p
        m4 += d * d * d * d * p
        mad += abs(d) * c
        medad += abs(level - median) * c
        entropy -= p * np.log2(p)
        uniformity += p * p
        if p10 <= level <= p90:
            r_sum += level * c
            r_n += c
    rmad = np.nan
    if r_n > 0:
        r_mean = r_sum / r_n
        rmad = 0.0
        for g in range(n_g):
            level = g + 1.0
            if counts[g] > 0 and p10 <= level <= p90:
                rmad += abs(level - r_mean) * counts[g]
        rmad /= r_n
    out = np.empty(9)
    out[0] = mu
    out[1] = var
    out[2] = m3
    out[3] = m4
    out[4] = mad / n_v
    out[5] = rmad
    out[6] = medad / n_v
    out[7] = entropy
    out[8] = uniformity
    return out


def compute(levels: npt.ArrayLike, *, n_levels: int) -> dict[str, float]:
    """Compute all intensity histogram features.

    Parameters
    ----------
    levels : array_like of int
        1-D discretised grey levels (``1 .. n_levels``) of the voxels in the ROI intensity mask.
    n_levels : int
        Number of grey levels ``N_g`` of the discretisation; the histogram covers ``1..N_g``,
        including levels absent from the ROI.

    Returns
    -------
    dict of str to float
        One value per key of :data:`FEATURES`.

    Raises
    ------
    EmptyMaskError
        If ``levels`` is empty.
    FeatureError
        If ``levels`` is not 1-D, holds non-integer values or values outside ``1..n_levels``,
        or ``n_levels`` is not a positive integer.

    References
    ----------
    IBSI 1 reference manual, section "Intensity histogram features" (family ZVCW),
    arXiv:1612.07003. Feature identifiers are listed in :data:`FEATURES`.

    Examples
    --------
    >>> import numpy as np
    >>> f = compute(np.array([1, 1, 2, 4]), n_levels=4)
    >>> f["ih.mode"], f["ih.entropy"]
    (1.0, 1.5)
    """
    x = _validate_levels(levels, n_levels)
    n_v = x.size
    counts = np.bincount(x - 1, minlength=n_levels)
    p10, p25, median, p75, p90 = (float(v) for v in percentiles_from_counts(counts, IBSI_PERCENTILES))
    mu, var, m3, m4, mad, rmad, medad, entropy, uniformity = (
        float(v) for v in _count_sums(counts, n_v, p10, p90, median)
    )
    sigma = float(np.sqrt(var))
    if var > 0.0:
        skew = m3 / sigma**3
        kurt = m4 / var**2 - 3.0
    else:
        skew = 0.0
        kurt = 0.0
    modes = np.flatnonzero(counts == counts.max()) + 1
    mode = float(modes[np.argmin(np.abs(modes - mu))])
    present = np.flatnonzero(counts)
    x_min, x_max = float(present[0] + 1), float(present[-1] + 1)
    grad = _histogram_gradient(counts)
    i_max = int(np.argmax(grad))
    i_min = int(np.argmin(grad))

    return {
        "ih.mean": mu,
        "ih.var": var,
        "ih.skew": skew,
        "ih.kurt": kurt,
        "ih.median": median,
        "ih.min": x_min,
        "ih.p10": p10,
        "ih.p90": p90,
        "ih.max": x_max,
        "ih.mode": mode,
        "ih.iqr": p75 - p25,
        "ih.range": x_max - x_min,
        "ih.mad": mad,
        "ih.rmad": rmad,
        "ih.medad": medad,
        # levels are >= 1, so mean and P75 + P25 are positive
        "ih.cov": float(sigma / mu),
        "ih.qcod": (p75 - p25) / (p75 + p25),
        "ih.entropy": entropy,
        "ih.uniformity": uniformity,
        "ih.max.grad": float(grad[i_max]),
        "ih.max.grad.gl": float(i_max + 1),
        "ih.min.grad": float(grad[i_min]),
        "ih.min.grad.gl": float(i_min + 1),
    }
