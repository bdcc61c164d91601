"""Region growing from a seed with an intensity criterion.

Starting at the lesion maximum, the region takes every voxel connected to it (6- or
26-connectivity) whose SUV lies in ``[lower, upper]``. ``lower`` is an SUV, or ``fraction`` of the
seed's SUVmax; with ``criterion='confidence'`` the interval is instead re-estimated from the
region itself (mean +/- ``multiplier`` x SD, ``iterations`` times; SimpleITK's
ConfidenceConnected filter).

References
----------
Adams R., Bischof L., "Seeded region growing", IEEE Trans Pattern Anal Mach Intell
1994;16:641-647. Yoo T.S. (ed.), Insight into Images, 2004 (confidence connected).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from smartimaging.exceptions import SegmentationError
from smartimaging.image import Image, Mask
from smartimaging.segment.seeds import component_at, resolve_seed

__all__ = ["CRITERIA", "region_growing"]

CRITERIA = ("range", "confidence")


def region_growing(
    suv: Image,
    *,
    criterion: Literal["range", "confidence"] = "range",
    lower: float | None = None,
    fraction: float | None = 0.5,
    upper: float | None = None,
    connectivity: Literal[6, 26] = 6,
    multiplier: float = 2.5,
    iterations: int = 3,
    seed_voxel: Sequence[int] | None = None,
    seed_mm: Sequence[float] | None = None,
    box: Mask | None = None,
    contour: Mask | None = None,
    within: Mask | None = None,
    search_radius_mm: float = 15.0,
    margin_mm: float = 10.0,
) -> Mask:
    """Grow a region from the lesion maximum.

    Parameters
    ----------
    suv : Image
        SUV image.
    criterion : {'range', 'confidence'}
        ``'range'``: SUV in ``[lower, upper]``; ``'confidence'``: mean +/- multiplier x SD of the
        growing region.
    lower : float, optional
        Lowest SUV accepted (``'range'``); overrides ``fraction``.
    fraction : float, optional
        Lowest SUV as a fraction of the seed's SUVmax, in (0, 1] (``'range'``, when ``lower`` is None).
    upper : float, optional
        Highest SUV accepted (default: no limit).
    connectivity : {6, 26}
        Voxel neighbourhood.
    multiplier, iterations
        Confidence-connected settings.
    seed_voxel, seed_mm, box, contour, within, search_radius_mm, margin_mm
        The seed, see :func:`smartimaging.segment.seeds.resolve_seed`.

    Returns
    -------
    Mask
        The grown region (never empty).

    Raises
    ------
    ValueError
        If an option is invalid.
    SegmentationError
        If the seed value lies outside the accepted interval.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {list(CRITERIA)}, got {criterion!r}")
    if connectivity not in (6, 26):
        raise ValueError(f"connectivity must be 6 or 26, got {connectivity!r}")
    seed = resolve_seed(
        suv, seed_voxel=seed_voxel, seed_mm=seed_mm, box=box, contour=contour, within=within,
        search_radius_mm=search_radius_mm, margin_mm=margin_mm,
    )  # fmt: skip
    values = np.asarray(suv.array, dtype=np.float64)
    finite = np.isfinite(values)
    if criterion == "range":
        if lower is None:
            if fraction is None or not 0 < fraction <= 1:
                raise ValueError(f"fraction must be in (0, 1] when lower is not given, got {fraction}")
            lower = fraction * seed.suv_max
        hi = np.inf if upper is None else float(upper)
        if not lower <= seed.suv_max <= hi:
            raise SegmentationError(
                f"the seed SUV {seed.suv_max:.3g} lies outside the growing interval [{lower:.3g}, {hi:.3g}]"
            )
        accept = seed.region & finite & (values >= lower) & (values <= hi)
        if connectivity == 26:
            keep = component_at(accept, seed.centre)
        else:
            labels, _ = ndimage.label(accept)
            keep = labels == labels[seed.centre]
        return Mask(keep, suv.spacing, suv.origin, suv.direction.copy(), {"threshold_suv": float(lower)})
    if not multiplier > 0 or iterations < 0:
        raise ValueError(f"need multiplier > 0 and iterations >= 0, got {multiplier} and {iterations}")
    img = sitk.GetImageFromArray(
        np.where(seed.region & finite, values, np.nanmin(values[finite])).astype(np.float32)
    )
    z, y, x = seed.centre
    out = sitk.ConfidenceConnected(
        img, seedList=[(int(x), int(y), int(z))], numberOfIterations=int(iterations), multiplier=float(multiplier),
        initialNeighborhoodRadius=1, replaceValue=1,
    )  # fmt: skip
    arr = sitk.GetArrayFromImage(out).astype(bool) & seed.region
    structure = None if connectivity == 6 else np.ones((3, 3, 3), dtype=bool)
    labels, _ = ndimage.label(arr, structure=structure)
    if not arr[seed.centre]:
        raise SegmentationError("confidence-connected growing excluded its own seed; raise the multiplier")
    keep = labels == labels[seed.centre]
    return Mask(keep, suv.spacing, suv.origin, suv.direction.copy())
