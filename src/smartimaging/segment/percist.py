"""PERCIST liver reference and the threshold derived from it.

The liver reference is the SUV mean and SD in a 3 cm diameter sphere in the right liver lobe
(given as a mask, or as a centre point in mm). The PERCIST threshold for measurable disease is
``1.5 x liver SUVmean + 2 x liver SD``.

References
----------
Wahl R.L., Jacene H., Kasamon Y., Lodge M.A., "From RECIST to PERCIST: evolving considerations
for PET response criteria in solid tumors", J Nucl Med 2009;50(Suppl 1):122S-150S.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smartimaging.exceptions import SegmentationError
from smartimaging.image import Image, Mask, check_same_geometry
from smartimaging.segment.seeds import component_at, resolve_seed

__all__ = ["LiverReference", "liver_reference", "percist_threshold"]

#: Radius (mm) of the PERCIST liver sphere (3 cm diameter).
LIVER_SPHERE_RADIUS_MM = 15.0


@dataclass(frozen=True)
class LiverReference:
    """SUV statistics of the liver reference region and the PERCIST threshold."""

    mean: float
    sd: float
    n_voxels: int

    @property
    def threshold(self) -> float:
        """``1.5 x mean + 2 x sd`` (PERCIST)."""
        return 1.5 * self.mean + 2.0 * self.sd


def liver_reference(
    suv: Image,
    *,
    liver: Mask | None = None,
    liver_point_mm: Sequence[float] | None = None,
    radius_mm: float = LIVER_SPHERE_RADIUS_MM,
) -> LiverReference:
    """SUV mean and SD (ddof 1) of the liver reference region.

    Parameters
    ----------
    suv : Image
        SUV image.
    liver : Mask, optional
        The reference region (e.g. a 3 cm sphere drawn in the right lobe) on the SUV grid.
    liver_point_mm : sequence of float, optional
        Centre ``(x, y, z)`` in mm of a sphere of ``radius_mm`` (used when ``liver`` is None).
    radius_mm : float
        Sphere radius (PERCIST: 15 mm).

    Returns
    -------
    LiverReference

    Raises
    ------
    ValueError
        If neither or both of ``liver`` and ``liver_point_mm`` are given.
    SegmentationError
        If the region holds fewer than 2 finite voxels.
    """
    if (liver is None) == (liver_point_mm is None):
        raise ValueError("give exactly one of liver (a mask) and liver_point_mm (a sphere centre in mm)")
    values = np.asarray(suv.array, dtype=np.float64)
    if liver is not None:
        check_same_geometry(suv, liver, what="SUV image and liver reference region")
        region = np.asarray(liver.array)
        where = "the liver reference mask"
    else:
        if not radius_mm > 0:
            raise ValueError(f"radius_mm must be positive, got {radius_mm}")
        point = np.asarray(liver_point_mm, dtype=float)
        if point.shape != (3,):
            raise ValueError(
                f"liver_point_mm must be 3 coordinates (x, y, z), got {list(liver_point_mm or [])}"
            )
        zyx = suv.physical_to_index(point)[::-1]
        grids = np.ogrid[: suv.shape[0], : suv.shape[1], : suv.shape[2]]
        d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, zyx, suv.spacing_zyx, strict=True))
        region = np.asarray(d2 <= radius_mm**2)
        where = f"the {radius_mm:g} mm sphere at {tuple(float(v) for v in point)} mm"
    vals = values[region & np.isfinite(values)]
    if vals.size < 2:
        raise SegmentationError(
            f"{where} holds {vals.size} finite voxel(s); the liver reference needs at least 2: "
            "check that the point lies in the liver and inside the image"
        )
    return LiverReference(float(vals.mean()), float(vals.std(ddof=1)), int(vals.size))


def percist_threshold(
    suv: Image,
    *,
    liver: Mask | None = None,
    liver_point_mm: Sequence[float] | None = None,
    radius_mm: float = LIVER_SPHERE_RADIUS_MM,
    seed_voxel: Sequence[int] | None = None,
    seed_mm: Sequence[float] | None = None,
    box: Mask | None = None,
    contour: Mask | None = None,
    within: Mask | None = None,
    search_radius_mm: float = 15.0,
    margin_mm: float = 10.0,
) -> Mask:
    """Lesion at the PERCIST threshold (1.5 x liver SUVmean + 2 SD), connected to the lesion maximum.

    Parameters
    ----------
    suv : Image
        SUV image.
    liver, liver_point_mm, radius_mm
        The liver reference, see :func:`liver_reference`.
    seed_voxel, seed_mm, box, contour, within, search_radius_mm, margin_mm
        The seed, see :func:`smartimaging.segment.seeds.resolve_seed`.

    Returns
    -------
    Mask
        The lesion; ``meta['threshold_suv']`` holds the threshold.

    Raises
    ------
    SegmentationError
        If the lesion maximum does not reach the threshold (not PERCIST-measurable).
    """
    ref = liver_reference(suv, liver=liver, liver_point_mm=liver_point_mm, radius_mm=radius_mm)
    seed = resolve_seed(
        suv, seed_voxel=seed_voxel, seed_mm=seed_mm, box=box, contour=contour, within=within,
        search_radius_mm=search_radius_mm, margin_mm=margin_mm,
    )  # fmt: skip
    level = ref.threshold
    if seed.suv_max < level:
        raise SegmentationError(
            f"the lesion SUVmax {seed.suv_max:.3g} is below the PERCIST threshold {level:.3g} "
            f"(1.5 x liver mean {ref.mean:.3g} + 2 x SD {ref.sd:.3g}): not measurable by PERCIST"
        )
    values = np.asarray(suv.array, dtype=np.float64)
    keep = component_at(seed.region & np.isfinite(values) & (values >= level), seed.centre)
    return Mask(keep, suv.spacing, suv.origin, suv.direction.copy(), {"threshold_suv": level})
