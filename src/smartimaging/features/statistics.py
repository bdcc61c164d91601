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

import numpy as np
import numpy.typing as npt

from smartimaging.exceptions import EmptyMaskError, FeatureError
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
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise EmptyMaskError("intensity statistics need at least one voxel; the ROI is empty")
    n_bad = int(np.count_nonzero(~np.isfinite(x)))
    if n_bad:
        raise FeatureError(
            f"intensity statistics got {n_bad} non-finite (NaN or infinite) value(s) out of {x.size}; "
            "remove those voxels from the ROI or fill them before extraction"
        )
    mean = float(x.mean())
    dev = x - mean
    dev2 = dev * dev  # products, not np.power: 10x faster for the cube and fourth power
    m2 = float(np.mean(dev2))
    if m2 > 0.0:
        skew = float(np.mean(dev2 * dev)) / m2**1.5
        kurt = float(np.mean(dev2 * dev2)) / m2**2 - 3.0
    else:  # IBSI: skewness and kurtosis of a flat ROI are 0
        skew = 0.0
        kurt = 0.0
    p10, p25, median, p75, p90 = (float(v) for v in np.percentile(x, [10, 25, 50, 75, 90]))
    x_min, x_max = float(x.min()), float(x.max())
    robust = x[(x >= p10) & (x <= p90)]
    if robust.size == 0:
        # only possible for tiny ROIs (e.g. two distinct values, both outside the interpolated
        # [P10, P90]); the IBSI does not define this case, so fall back to all values
        robust = x
    energy = float(np.sum(x * x))
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
        "stat.mad": float(np.mean(np.abs(dev))),
        # undefined (NaN) when no value lies between P10 and P90, e.g. a two-voxel ROI
        "stat.rmad": float(np.mean(np.abs(robust - robust.mean()))) if robust.size else float("nan"),
        "stat.medad": float(np.mean(np.abs(x - median))),
        "stat.cov": _ratio(float(np.sqrt(m2)), mean),
        "stat.qcod": _ratio(p75 - p25, p75 + p25),
        "stat.energy": energy,
        "stat.rms": float(np.sqrt(energy / x.size)),
    }


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
