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

import numpy as np
import numpy.typing as npt

from smartimaging.exceptions import EmptyMaskError, FeatureError
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
    if not np.all(np.isfinite(x)) or not np.all(x == np.round(x)):
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
    xf = x.astype(float)
    n_v = x.size
    counts = np.bincount(x - 1, minlength=n_levels)
    p = counts / n_v
    g = np.arange(1, n_levels + 1, dtype=float)

    mu = float(np.sum(g * p))
    var = float(np.sum((g - mu) ** 2 * p))
    sigma = np.sqrt(var)
    if var > 0.0:
        skew = float(np.sum((g - mu) ** 3 * p) / sigma**3)
        kurt = float(np.sum((g - mu) ** 4 * p) / var**2 - 3.0)
    else:
        skew = 0.0
        kurt = 0.0

    p10, p25, median, p75, p90 = (float(v) for v in np.percentile(xf, [10, 25, 50, 75, 90]))

    modes = np.flatnonzero(counts == counts.max()) + 1
    mode = float(modes[np.argmin(np.abs(modes - mu))])

    robust = xf[(xf >= p10) & (xf <= p90)]
    # no value between P10 and P90 (a ROI of two or three voxels): the robust set is empty and the
    # feature undefined, reported as NaN (not a numpy empty-mean warning)
    rmad = float(np.mean(np.abs(robust - robust.mean()))) if robust.size else float("nan")

    nz = p[p > 0]
    grad = _histogram_gradient(counts)
    i_max = int(np.argmax(grad))
    i_min = int(np.argmin(grad))

    return {
        "ih.mean": mu,
        "ih.var": var,
        "ih.skew": skew,
        "ih.kurt": kurt,
        "ih.median": median,
        "ih.min": float(x.min()),
        "ih.p10": p10,
        "ih.p90": p90,
        "ih.max": float(x.max()),
        "ih.mode": mode,
        "ih.iqr": p75 - p25,
        "ih.range": float(x.max() - x.min()),
        "ih.mad": float(np.mean(np.abs(xf - mu))),
        "ih.rmad": rmad,
        "ih.medad": float(np.mean(np.abs(xf - median))),
        # levels are >= 1, so mean and P75 + P25 are positive
        "ih.cov": float(sigma / mu),
        "ih.qcod": (p75 - p25) / (p75 + p25),
        "ih.entropy": float(-np.sum(nz * np.log2(nz))),
        "ih.uniformity": float(np.sum(p**2)),
        "ih.max.grad": float(grad[i_max]),
        "ih.max.grad.gl": float(i_max + 1),
        "ih.min.grad": float(grad[i_min]),
        "ih.min.grad.gl": float(i_min + 1),
    }
