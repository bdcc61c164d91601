"""Adaptive, background-corrected threshold (source-to-background; Nestle et al. 2005).

``T = beta * mean(SUV of the voxels >= 70 % of SUVmax) + background``; the lesion is the
connected region of voxels ``>= T`` that holds the maximum. The background is the mean SUV in a
shell around the lesion (between ``shell_inner_mm`` and ``shell_outer_mm`` outside the 70 %
region), or in a given region.

References
----------
Nestle U. et al., "Comparison of different methods for delineation of 18F-FDG PET-positive
tissue for target volume definition in radiotherapy of patients with non-small cell lung
cancer", J Nucl Med 2005;46:1342-1348 (beta = 0.15 for their scanner; beta depends on the scanner
and reconstruction and should be calibrated on a phantom).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from smartimaging.exceptions import SegmentationError
from smartimaging.image import Image, Mask, check_same_geometry
from smartimaging.segment.seeds import component_at, resolve_seed

__all__ = ["adaptive_threshold"]


def _ball(spacing_zyx: Sequence[float], radius_mm: float) -> np.ndarray:
    half = [int(np.floor(radius_mm / s)) for s in spacing_zyx]
    g = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    d2 = sum((gi * s) ** 2 for gi, s in zip(g, spacing_zyx, strict=True))
    return np.asarray(d2 <= radius_mm**2)


def adaptive_threshold(
    suv: Image,
    *,
    beta: float = 0.15,
    background: Mask | float | None = None,
    shell_inner_mm: float = 10.0,
    shell_outer_mm: float = 20.0,
    seed_voxel: Sequence[int] | None = None,
    seed_mm: Sequence[float] | None = None,
    box: Mask | None = None,
    contour: Mask | None = None,
    within: Mask | None = None,
    search_radius_mm: float = 15.0,
    margin_mm: float = 10.0,
) -> Mask:
    """Source-to-background adaptive threshold (Nestle et al. 2005).

    Parameters
    ----------
    suv : Image
        SUV image.
    beta : float
        Weight of the mean source SUV (``> 0``; Nestle: 0.15).
    background : Mask or float, optional
        Background region (its mean SUV is used) or a background SUV. Default: the mean SUV in
        a shell from ``shell_inner_mm`` to ``shell_outer_mm`` around the 70 % region.
    shell_inner_mm, shell_outer_mm : float
        Shell distances (mm) from the 70 % region.
    seed_voxel, seed_mm, box, contour, within, search_radius_mm, margin_mm
        The seed, see :func:`smartimaging.segment.seeds.resolve_seed`.

    Returns
    -------
    Mask
        The lesion (never empty).

    Raises
    ------
    SegmentationError
        If the threshold exceeds SUVmax (background hotter than the lesion) or the shell is empty.
    ValueError
        If a parameter is out of range.

    References
    ----------
    Nestle U. et al., J Nucl Med 2005;46:1342-1348.
    """
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta}")
    if not 0 <= shell_inner_mm < shell_outer_mm:
        raise ValueError(
            f"need 0 <= shell_inner_mm < shell_outer_mm, got {shell_inner_mm} and {shell_outer_mm}"
        )
    seed = resolve_seed(
        suv, seed_voxel=seed_voxel, seed_mm=seed_mm, box=box, contour=contour, within=within,
        search_radius_mm=search_radius_mm, margin_mm=margin_mm,
    )  # fmt: skip
    values = np.asarray(suv.array, dtype=np.float64)
    finite = np.isfinite(values)
    source = component_at(seed.region & finite & (values >= 0.7 * seed.suv_max), seed.centre)
    source_mean = float(values[source].mean())
    if isinstance(background, Mask):
        check_same_geometry(suv, background, what="SUV image and background region")
        background.require_nonempty("background region")
        bg = float(np.nanmean(np.where(background.array, values, np.nan)))
        where = "the given background region"
    elif background is not None:
        bg = float(background)
        where = "the given background value"
    else:
        outer = ndimage.binary_dilation(source, structure=_ball(suv.spacing_zyx, shell_outer_mm))
        inner = (
            ndimage.binary_dilation(source, structure=_ball(suv.spacing_zyx, shell_inner_mm))
            if shell_inner_mm > 0
            else source
        )
        shell = outer & ~inner & finite
        if not shell.any():
            raise SegmentationError(
                f"the background shell ({shell_inner_mm:g}-{shell_outer_mm:g} mm around the lesion) holds no "
                "voxel: the image is too small; give a background region or value"
            )
        bg = float(values[shell].mean())
        where = f"the {shell_inner_mm:g}-{shell_outer_mm:g} mm shell"
    if not np.isfinite(bg):
        raise SegmentationError(f"the background SUV from {where} is not finite; check the region")
    level = beta * source_mean + bg
    if level > seed.suv_max:
        raise SegmentationError(
            f"the adaptive threshold {level:.3g} (beta {beta:g} x source {source_mean:.3g} + background {bg:.3g} "
            f"from {where}) exceeds SUVmax {seed.suv_max:.3g}: the lesion does not stand out from its "
            "background; check the seed and the background region"
        )
    keep = component_at(seed.region & finite & (values >= level), seed.centre)
    return Mask(
        keep, suv.spacing, suv.origin, suv.direction.copy(), {"threshold_suv": level, "background_suv": bg}
    )
