"""Re-segmentation of a region of interest by intensity (IBSI 1, section "Re-segmentation").

IBSI keeps two masks once re-segmentation is used:

* the **morphological mask**: the (interpolated) ROI as delineated, used for morphological
  features (volume, surface, shape);
* the **intensity mask**: the morphological mask minus voxels removed by re-segmentation, used
  for every intensity-based family (statistics, histograms, IVH, texture).

Two rules exist:

* range re-segmentation: keep voxels with ``lower <= I <= upper`` (either bound may be open);
* outlier filtering: keep voxels within ``mean ± n_sd * SD`` of the ROI intensities, with the
  population standard deviation (``ddof=0``).

When both are used (IBSI configuration E) the intensity mask keeps only voxels that pass both
rules, and the outlier statistics are computed on the voxels of the **range-re-segmented** ROI
(range first, then outlier filtering, as MIRP's ``range`` + ``outlier`` re-segmentation does).
On the IBSI CT phantom, configuration E, computing mean and SD on the whole ROI instead gives
the same intensity mask (the range removes 4 of 45,985 voxels), so the reference values cannot
tell the two readings apart; both reproduce them (``tests/preprocess/test_ct_phantom_configs.py``).
"""

from __future__ import annotations

import math

import numpy as np

from smartimaging.exceptions import ConfigError
from smartimaging.image import Image, Mask, check_same_geometry

__all__ = ["intensity_and_morphological_masks", "resegment_outliers", "resegment_range"]


def _as_mask(mask: Image) -> Mask:
    return mask if isinstance(mask, Mask) else Mask.from_image(mask)


def _check_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ConfigError(f"{name} must be a number or None, got {value!r}")
    v = float(value)
    if math.isnan(v):
        raise ConfigError(f"{name} must be a number or None, got NaN")
    return v


def resegment_range(image: Image, mask: Mask, *, lower: float | None, upper: float | None) -> Mask:
    """Keep the ROI voxels whose intensity lies in ``[lower, upper]`` (the intensity mask).

    Parameters
    ----------
    image : Image
        Intensity image.
    mask : Mask
        Region of interest on the image's grid.
    lower, upper : float or None
        Inclusive bounds; ``None`` leaves that side open (at least one must be given).

    Returns
    -------
    Mask
        The re-segmented mask; voxels with non-finite intensities are removed.

    Raises
    ------
    ConfigError
        Both bounds ``None``, a bound that is not a number, or ``lower > upper``.
    GeometryMismatchError
        Image and mask are not on the same grid.

    References
    ----------
    IBSI 1 reference manual, section "Re-segmentation" (range re-segmentation).

    Examples
    --------
    >>> import numpy as np
    >>> from smartimaging.image import Image, Mask
    >>> img = Image(np.array([[[-600.0, 0.0, 500.0]]]), spacing=(1, 1, 1))
    >>> resegment_range(img, Mask(np.ones((1, 1, 3)), spacing=(1, 1, 1)), lower=-500, upper=400).array
    array([[[False,  True, False]]])
    """
    if lower is None and upper is None:
        raise ConfigError("range re-segmentation needs a lower or an upper bound (or both); both are None")
    lo = -math.inf if lower is None else _check_number(lower, "lower")
    hi = math.inf if upper is None else _check_number(upper, "upper")
    if lo > hi:
        raise ConfigError(f"range re-segmentation: lower bound {lo} is above upper bound {hi}")
    check_same_geometry(image, mask, what="image and mask for re-segmentation")
    m = _as_mask(mask)
    values = np.asarray(image.array)
    keep = m.array & (values >= lo) & (values <= hi)
    return m.with_array(keep)


def _outlier_bounds(values: np.ndarray, n_sd: float) -> tuple[float, float]:
    mean = float(np.mean(values, dtype=np.float64))
    sd = float(np.std(values, dtype=np.float64))
    return mean - n_sd * sd, mean + n_sd * sd


def _check_n_sd(n_sd: float) -> float:
    v = _check_number(n_sd, "n_sd")
    if not (math.isfinite(v) and v > 0):
        raise ConfigError(
            f"n_sd must be a positive number of standard deviations (IBSI uses 3), got {n_sd!r}"
        )
    return v


def resegment_outliers(image: Image, mask: Mask, *, n_sd: float = 3.0) -> Mask:
    """Keep the ROI voxels within ``mean ± n_sd * SD`` of the ROI intensities.

    Parameters
    ----------
    image : Image
        Intensity image.
    mask : Mask
        Region of interest on the image's grid; mean and SD are taken over its voxels.
    n_sd : float
        Half-width of the kept interval in standard deviations (population SD), positive.

    Returns
    -------
    Mask
        The re-segmented mask (bounds inclusive).

    Raises
    ------
    ConfigError
        ``n_sd`` not a positive number.
    GeometryMismatchError
        Image and mask are not on the same grid.
    EmptyMaskError
        The mask has no voxel (the statistics are undefined).

    References
    ----------
    IBSI 1 reference manual, section "Re-segmentation" (intensity outlier filtering).
    """
    k = _check_n_sd(n_sd)
    check_same_geometry(image, mask, what="image and mask for outlier re-segmentation")
    m = _as_mask(mask).require_nonempty("outlier re-segmentation")
    values = np.asarray(image.array, dtype=np.float64)
    roi_values = values[m.array]
    if not np.all(np.isfinite(roi_values)):
        raise ConfigError(
            "outlier re-segmentation: the ROI holds non-finite intensities (NaN or inf); "
            "remove them (e.g. range re-segmentation) first"
        )
    lo, hi = _outlier_bounds(roi_values, k)
    return m.with_array(m.array & (values >= lo) & (values <= hi))


def intensity_and_morphological_masks(
    image: Image,
    mask: Mask,
    *,
    range: tuple[float | None, float | None] | None = None,
    outliers: float | None = None,
) -> tuple[Mask, Mask]:
    """Split a ROI into the IBSI intensity mask and morphological mask.

    Parameters
    ----------
    image : Image
        Intensity image (already interpolated and rounded where that applies).
    mask : Mask
        Region of interest on the image's grid.
    range : tuple of (float or None, float or None), optional
        Range re-segmentation bounds ``(lower, upper)``; ``None`` skips it.
    outliers : float, optional
        Outlier filtering with this many standard deviations (IBSI: 3); ``None`` skips it.
        Applied after range re-segmentation, with mean and SD of the range-re-segmented ROI.

    Returns
    -------
    intensity_mask : Mask
        Voxels that pass every re-segmentation rule.
    morphological_mask : Mask
        The ROI unchanged.

    Raises
    ------
    ConfigError
        Invalid bounds or ``outliers``.
    GeometryMismatchError
        Image and mask are not on the same grid.
    EmptyMaskError
        The mask (or, before outlier filtering, the range-re-segmented mask) is empty.

    References
    ----------
    IBSI 1 reference manual, section "Re-segmentation"; CT phantom configuration E.
    """
    check_same_geometry(image, mask, what="image and mask for re-segmentation")
    morphological = _as_mask(mask).require_nonempty("before re-segmentation")
    intensity = morphological
    if range is not None:
        try:
            lower, upper = range
        except (TypeError, ValueError):
            raise ConfigError(f"range must be a pair (lower, upper), got {range!r}") from None
        intensity = resegment_range(image, intensity, lower=lower, upper=upper)
    if outliers is not None:
        intensity = resegment_outliers(image, intensity, n_sd=outliers)
    return intensity, morphological
