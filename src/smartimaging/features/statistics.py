"""IBSI 1 intensity statistics (family "intensity statistics", IBSI section 3.3).

The 18 first-order statistics of the intensities inside the region of interest, computed from
the raw (not discretised) values of the intensity mask.

Conventions (as the IBSI defines them):

* variance, skewness and kurtosis are the biased (population, ``1/N``) moments;
* percentiles use linear interpolation between order statistics (NumPy's default
  ``method='linear'``); the IBSI does not fix an interpolation rule and its reference values
  do not depend on it;
* when the variance is 0 (flat ROI) skewness and kurtosis are 0, as the IBSI prescribes;
* the coefficient of variation and the quartile coefficient of dispersion are 0 when their
  numerator is 0; they are undefined (``nan``) only when the numerator is non-zero and the
  denominator is 0 (e.g. a mean of exactly 0 with spread), which is a property of the data,
  not an error;
* energy is the plain sum of squared intensities (no voxel volume);
* the robust mean absolute deviation uses the values in ``[P10, P90]`` (inclusive); in the rare
  case that no value lies there (two-voxel ROIs) it uses all values.

References
----------
Zwanenburg A. et al., "The Image Biomarker Standardization Initiative", Radiology 2020;
295:328-338. IBSI 1 reference manual, arXiv:1612.07003, section "Intensity-based statistical
features" (UHIW).
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

from smartimaging.exceptions import EmptyMaskError, FeatureError
from smartimaging.features.order_statistics import IBSI_PERCENTILES, percentiles
from smartimaging.features.registry import FeatureDef
from smartimaging.image import Image, Mask, check_same_geometry

__all__ = ["FAMILY", "FEATURES", "compute", "compute_image"]

FAMILY = "intensity statistics"

FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("stat.mean", "Mean intensity", FAMILY, "Q4LE"),
    FeatureDef("stat.var", "Intensity variance", FAMILY, "ECT3"),
    FeatureDef("stat.skew", "Intensity skewness", FAMILY, "KE2A"),
    FeatureDef("stat.kurt", "(Excess) intensity kurtosis", FAMILY, "IPH6"),
    FeatureDef("stat.median", "Median intensity", FAMILY, "Y12H"),
    FeatureDef("stat.min", "Minimum intensity", FAMILY, "1GSF"),
    FeatureDef("stat.p10", "10th intensity percentile", FAMILY, "QG58"),
    FeatureDef("stat.p90", "90th intensity percentile", FAMILY, "8DWT"),
    FeatureDef("stat.max", "Maximum intensity", FAMILY, "84IY"),
    FeatureDef("stat.iqr", "Intensity interquartile range", FAMILY, "SALO"),
    FeatureDef("stat.range", "Intensity range", FAMILY, "2OJQ"),
    FeatureDef("stat.mad", "Intensity-based mean absolute deviation", FAMILY, "4FUA"),
    FeatureDef("stat.rmad", "Intensity-based robust mean absolute deviation", FAMILY, "1128"),
    FeatureDef("stat.medad", "Intensity-based median absolute deviation", FAMILY, "N72L"),
    FeatureDef("stat.cov", "Intensity-based coefficient of variation", FAMILY, "7TET"),
    FeatureDef("stat.qcod", "Intensity-based quartile coefficient of dispersion", FAMILY, "9S40"),
    FeatureDef("stat.energy", "Intensity-based energy", FAMILY, "N8CA"),
    FeatureDef("stat.rms", "Root mean square intensity", FAMILY, "5ZWQ"),
)


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; 0 when both are 0, nan when only the denominator is."""
    if denominator != 0.0:
        return numerator / denominator
    return 0.0 if numerator == 0.0 else float("nan")


def compute(values: npt.ArrayLike) -> dict[str, float]:
    """Compute the 18 IBSI intensity statistics of the ROI intensities.

    Parameters
    ----------
    values : array_like
        Intensities of the voxels of the intensity mask (any shape; flattened).

    Returns
    -------
    dict of str to float
        One value per key of :data:`FEATURES`, in that order.

    Raises
    ------
    EmptyMaskError
        If ``values`` is empty.
    FeatureError
        If ``values`` holds NaN or infinite values.

    References
    ----------
    IBSI 1: Q4LE, ECT3, KE2A, IPH6, Y12H, 1GSF, QG58, 8DWT, 84IY, SALO, 2OJQ, 4FUA, 1128,
    N72L, 7TET, 9S40, N8CA, 5ZWQ.

    Examples
    --------
    >>> out = compute([1.0, 2.0, 3.0, 4.0])
    >>> out["stat.mean"], out["stat.var"], out["stat.median"]
    (2.5, 1.25, 2.5)
    """
    x = np.ascontiguousarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise EmptyMaskError("intensity statistics need at least one voxel; the ROI is empty")
    if not np.isfinite(x).all():
        n_bad = int(np.count_nonzero(~np.isfinite(x)))
        raise FeatureError(
            f"intensity statistics got {n_bad} non-finite (NaN or infinite) value(s) out of {x.size}; "
            "remove those voxels from the ROI or fill them before extraction"
        )
    p10, p25, median, p75, p90 = (float(v) for v in percentiles(x, IBSI_PERCENTILES))
    mean, m2, m3, m4, x_min, x_max, mad, rmad, medad, energy = (float(v) for v in _sums(x, p10, p90, median))
    if m2 > 0.0:
        skew = m3 / m2**1.5
        kurt = m4 / m2**2 - 3.0
    else:  # IBSI: skewness and kurtosis of a flat ROI are 0
        skew = 0.0
        kurt = 0.0
    return {
        "stat.mean": mean,
        "stat.var": m2,
        "stat.skew": skew,
        "stat.kurt": kurt,
        "stat.median": median,
        "stat.min": x_min,
        "stat.p10": p10,
        "stat.p90": p90,
        "stat.max": x_max,
        "stat.iqr": p75 - p25,
        "stat.range": x_max - x_min,
        "stat.mad": mad,
        "stat.rmad": rmad,
        "stat.medad": medad,
        "stat.cov": _ratio(float(np.sqrt(m2)), mean),
        "stat.qcod": _ratio(p75 - p25, p75 + p25),
        "stat.energy": energy,
        "stat.rms": float(np.sqrt(energy / x.size)),
    }


@numba.njit(cache=True, nogil=True)
def _sums(x: np.ndarray, p10: float, p90: float, median: float) -> np.ndarray:  # pragma: no cover
    """Mean, central moments 2-4, min, max, MAD, robust MAD, median AD and energy of finite ``x``.

    Three passes (the sums; a correction of the mean that removes the running sum's rounding;
    the deviations from the mean) and one more over the values between P10 and P90. With no value between them (only possible for tiny ROIs, e.g. two
    distinct values both outside the interpolated [P10, P90]) the IBSI leaves the robust MAD
    undefined; all values are used instead.
    """
    n = x.size
    out = np.zeros(10)
    total = 0.0
    energy = 0.0
    lo = x[0]
    hi = x[0]
    for v in x:
        total += v
        energy += v * v
        lo = min(lo, v)
        hi = max(hi, v)
    mean = total / n
    # corrected two-pass mean: the running sum's rounding (n values of similar magnitude)
    # is removed by adding the mean deviation, which is exact to first order
    correction = 0.0
    for v in x:
        correction += v - mean
    mean += correction / n
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    mad = 0.0
    medad = 0.0
    r_sum = 0.0
    r_n = 0
    for v in x:
        d = v - mean
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        m4 += d2 * d2
        mad += abs(d)
        medad += abs(v - median)
        if p10 <= v <= p90:
            r_sum += v
            r_n += 1
    use_all = r_n == 0
    r_mean = mean if use_all else r_sum / r_n
    rmad = 0.0
    for v in x:
        if use_all or p10 <= v <= p90:
            rmad += abs(v - r_mean)
    out[0] = mean
    out[1] = m2 / n
    out[2] = m3 / n
    out[3] = m4 / n
    out[4] = lo
    out[5] = hi
    out[6] = mad / n
    out[7] = rmad / (n if use_all else r_n)
    out[8] = medad / n
    out[9] = energy
    return out


def compute_image(image: Image, mask: Mask) -> dict[str, float]:
    """Intensity statistics of ``image`` inside ``mask``.

    Parameters
    ----------
    image : Image
        Intensity image.
    mask : Mask
        Intensity mask on the same grid.

    Returns
    -------
    dict of str to float
        See :func:`compute`.

    Raises
    ------
    GeometryMismatchError
        If image and mask grids differ.
    EmptyMaskError
        If the mask is empty.
    FeatureError
        If the image holds non-finite values inside the mask.
    """
    check_same_geometry(image, mask)
    mask.require_nonempty("intensity statistics")
    return compute(image.array[mask.array])
