"""Intensity discretisation (IBSI 1, section "Intensity discretisation").

Two methods:

* fixed bin number (FBN, IBSI id K15C): ``floor(Nb * (x - min) / (max - min)) + 1`` where min
  and max are taken over the ROI; the ROI maximum goes to bin ``Nb``. A flat ROI (max == min)
  puts every voxel in bin 1.
* fixed bin size (FBS, IBSI id Q3RU): ``floor((x - lower) / w) + 1`` with ``lower`` the lower
  bound of the re-segmentation range, or the ROI minimum when not given.

Levels are returned as ``int32`` with 0 outside the mask, together with the number of levels
``Ng`` that texture matrices must be sized by (``Nb`` for FBN; the highest level in the ROI for
FBS).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from smartimaging.exceptions import ConfigError, EmptyMaskError, FeatureError, GeometryMismatchError
from smartimaging.image import Image, check_same_geometry

__all__ = ["METHODS", "discretise"]

#: Valid values of ``method``.
METHODS: tuple[str, ...] = ("fixed_bin_number", "fixed_bin_size")


def discretise(
    values_or_image: np.ndarray | Image,
    mask: np.ndarray | Image,
    *,
    method: Literal["fixed_bin_number", "fixed_bin_size"],
    n_bins: int | None = None,
    bin_width: float | None = None,
    lower_bound: float | None = None,
) -> tuple[np.ndarray, int]:
    """Discretise the intensities inside a ROI into grey levels ``1..Ng``.

    Parameters
    ----------
    values_or_image : numpy.ndarray or Image
        Intensities (any shape; ``(z, y, x)`` for images).
    mask : numpy.ndarray or Mask
        ROI of the same shape (non-zero inside). Given two :class:`~smartimaging.image.Image`
        objects, their grids must match.
    method : {'fixed_bin_number', 'fixed_bin_size'}
        Discretisation method.
    n_bins : int, optional
        Number of bins ``Nb`` (fixed bin number only), at least 1.
    bin_width : float, optional
        Bin width ``w`` in intensity units (fixed bin size only), positive.
    lower_bound : float, optional
        Lower edge of the first bin for fixed bin size (normally the lower bound of the
        re-segmentation range); defaults to the ROI minimum. Rejected for fixed bin number.

    Returns
    -------
    levels : numpy.ndarray
        int32 array of the input's shape: grey levels ``>= 1`` inside the mask, 0 outside.
    n_levels : int
        Number of grey levels ``Ng``: ``n_bins`` for FBN, the highest level in the ROI for FBS.

    Raises
    ------
    ConfigError
        Unknown ``method`` (the message lists the valid ones), a missing or invalid parameter,
        or a parameter that does not belong to the method.
    GeometryMismatchError
        Values and mask differ in shape or grid.
    EmptyMaskError
        The mask contains no voxel.
    FeatureError
        Non-finite intensities inside the ROI, or ROI intensities below ``lower_bound``
        (re-segment to the range first).

    References
    ----------
    IBSI 1 (arXiv:1612.07003): fixed bin number K15C, fixed bin size Q3RU.

    Examples
    --------
    >>> import numpy as np
    >>> levels, ng = discretise(np.array([0.0, 1.0, 2.0, 4.0]), np.ones(4, bool),
    ...                         method="fixed_bin_number", n_bins=2)
    >>> levels.tolist(), ng
    ([1, 1, 2, 2], 2)
    """
    if method not in METHODS:
        raise ConfigError(f"discretise: method must be one of {list(METHODS)}, got {method!r}")
    if isinstance(values_or_image, Image) and isinstance(mask, Image):
        check_same_geometry(values_or_image, mask, what="discretise: image and mask")
    values = np.asarray(values_or_image.array if isinstance(values_or_image, Image) else values_or_image)
    roi = np.asarray(mask.array if isinstance(mask, Image) else mask).astype(bool)
    if values.shape != roi.shape:
        raise GeometryMismatchError(
            f"discretise: values shape {values.shape} differs from mask shape {roi.shape}"
        )
    if not roi.any():
        raise EmptyMaskError("discretise: the mask contains no voxel; nothing to discretise")
    x = values[roi].astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise FeatureError(
            f"discretise: {int(np.count_nonzero(~np.isfinite(x)))} ROI voxel(s) are NaN or infinite; "
            "exclude them from the mask (re-segmentation) first"
        )
    levels = np.zeros(values.shape, dtype=np.int32)
    if method == "fixed_bin_number":
        if bin_width is not None or lower_bound is not None:
            raise ConfigError(
                "discretise: bin_width and lower_bound belong to method='fixed_bin_size', not "
                "'fixed_bin_number'"
            )
        if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
            raise ConfigError(
                f"discretise: method='fixed_bin_number' needs n_bins, a positive integer, got {n_bins!r}"
            )
        lo, hi = float(x.min()), float(x.max())
        if hi > lo:
            lv = np.floor(n_bins * (x - lo) / (hi - lo)).astype(np.int64) + 1
            lv = np.minimum(lv, n_bins)  # x == max falls in the last bin
        else:
            lv = np.ones(x.shape, dtype=np.int64)
        levels[roi] = lv
        return levels, int(n_bins)

    if n_bins is not None:
        raise ConfigError("discretise: n_bins belongs to method='fixed_bin_number', not 'fixed_bin_size'")
    if bin_width is None or not np.isfinite(bin_width) or bin_width <= 0:
        raise ConfigError(
            f"discretise: method='fixed_bin_size' needs bin_width, a positive number, got {bin_width!r}"
        )
    if lower_bound is None:
        lower = float(x.min())
    elif not np.isfinite(lower_bound):
        raise ConfigError(f"discretise: lower_bound must be a finite number, got {lower_bound!r}")
    else:
        lower = float(lower_bound)
    if x.min() < lower:
        raise FeatureError(
            f"discretise: ROI intensities go down to {x.min():g}, below lower_bound={lower:g}; "
            "re-segment the ROI to the intensity range first or lower the bound"
        )
    lv = np.floor((x - lower) / float(bin_width)).astype(np.int64) + 1
    levels[roi] = lv
    return levels, int(lv.max())
