"""Seeds: where a semi-automatic method starts (a point, a box or a rough contour).

Every seed is resolved to the same thing, a :class:`SeedRegion`: the hottest voxel near the seed
(the lesion maximum) and the region in which the lesion may be delineated.

* a point (voxel index ``(i, j, k)`` in x, y, z order, or ``(x, y, z)`` in mm, patient
  coordinates): the maximum is sought within ``search_radius_mm`` of it; the region is the whole
  image unless a ``within`` mask is given;
* a box (two opposite corners in mm, or a box mask): the maximum and the region are the box;
* a contour (a rough manual ROI): the maximum is the hottest voxel inside the contour (so hotter
  uptake nearby cannot capture it); the region is the contour's bounding box enlarged by
  ``margin_mm``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smartimaging.exceptions import SegmentationError
from smartimaging.image import Image, Mask, check_same_geometry

__all__ = ["STRUCTURE_26", "SeedRegion", "box_mask", "component_at", "resolve_seed"]


@dataclass(frozen=True)
class SeedRegion:
    """A resolved seed.

    Attributes
    ----------
    centre : tuple of int
        Array index ``(z, y, x)`` of the lesion maximum.
    region : numpy.ndarray
        Boolean array (z, y, x): where the lesion may lie.
    suv_max : float
        SUV at ``centre``.
    """

    centre: tuple[int, int, int]
    region: np.ndarray
    suv_max: float


def _as_mask(image: Image, array: np.ndarray) -> Mask:
    return Mask(array, image.spacing, image.origin, image.direction.copy())


def box_mask(suv: Image, *, corner_a_mm: Sequence[float], corner_b_mm: Sequence[float]) -> Mask:
    """Mask of the voxels whose centres lie in the axis-aligned box between two points (mm).

    Raises
    ------
    SegmentationError
        If the box holds no voxel centre of the image.
    """
    a = suv.physical_to_index(np.asarray(corner_a_mm, dtype=float))
    b = suv.physical_to_index(np.asarray(corner_b_mm, dtype=float))
    lo = np.ceil(np.minimum(a, b) - 1e-6).astype(int)
    hi = np.floor(np.maximum(a, b) + 1e-6).astype(int)
    nx, ny, nz = suv.shape[2], suv.shape[1], suv.shape[0]
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.array([nx - 1, ny - 1, nz - 1]))
    if np.any(hi < lo):
        raise SegmentationError(
            f"the box from {tuple(corner_a_mm)} to {tuple(corner_b_mm)} mm holds no voxel of the image; "
            "check the coordinates (patient LPS, mm) against the image extent"
        )
    arr = np.zeros(suv.shape, dtype=bool)
    arr[lo[2] : hi[2] + 1, lo[1] : hi[1] + 1, lo[0] : hi[0] + 1] = True
    return _as_mask(suv, arr)


def _bbox(array: np.ndarray, spacing_zyx: Sequence[float], margin_mm: float) -> np.ndarray:
    idx = np.nonzero(array)
    pad = [int(np.ceil(margin_mm / s)) for s in spacing_zyx]
    lo = [max(0, int(a.min()) - p) for a, p in zip(idx, pad, strict=True)]
    hi = [min(n, int(a.max()) + p + 1) for a, n, p in zip(idx, array.shape, pad, strict=True)]
    out = np.zeros(array.shape, dtype=bool)
    out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return out


def _hottest(values: np.ndarray, where: np.ndarray, what: str) -> tuple[tuple[int, int, int], float]:
    masked = np.where(where & np.isfinite(values), values, -np.inf)
    flat = int(np.argmax(masked))
    best = float(masked.flat[flat])
    if not np.isfinite(best):
        raise SegmentationError(f"{what} holds no finite SUV value: check the image and the seed")
    z, y, x = np.unravel_index(flat, values.shape)
    return (int(z), int(y), int(x)), best


def resolve_seed(
    suv: Image,
    *,
    seed_voxel: Sequence[int] | None = None,
    seed_mm: Sequence[float] | None = None,
    box: Mask | None = None,
    contour: Mask | None = None,
    within: Mask | None = None,
    search_radius_mm: float = 15.0,
    margin_mm: float = 10.0,
) -> SeedRegion:
    """Resolve one seed (point, box or contour) to the lesion maximum and its region.

    Give at most one of ``seed_voxel``, ``seed_mm``, ``box`` and ``contour``; with none, the
    maximum is the hottest voxel of ``within`` (or of the image).

    Parameters
    ----------
    suv : Image
        SUV image.
    seed_voxel : sequence of int, optional
        Voxel index ``(i, j, k)`` (x, y, z order, 0-based, as in SimpleITK / 3D Slicer's IJK).
    seed_mm : sequence of float, optional
        Point ``(x, y, z)`` in mm, patient coordinates (DICOM LPS).
    box : Mask, optional
        Box (or any region) on the SUV grid, e.g. from :func:`box_mask`.
    contour : Mask, optional
        Rough contour on the SUV grid (manual ROI, RTSTRUCT, SEG).
    within : Mask, optional
        Restrict the region further (same grid).
    search_radius_mm : float
        Radius around a point seed in which the maximum is sought.
    margin_mm : float
        Enlargement of a contour's bounding box.

    Returns
    -------
    SeedRegion

    Raises
    ------
    ValueError
        If more than one seed is given, a point lies outside the image or a radius is invalid.
    SegmentationError
        If the seed region holds no finite value.
    GeometryMismatchError
        If a mask is not on the SUV grid.
    EmptyMaskError
        If a box or contour is empty.
    """
    given = [n for n, v in (("seed_voxel", seed_voxel), ("seed_mm", seed_mm), ("box", box), ("contour", contour))
             if v is not None]  # fmt: skip
    if len(given) > 1:
        raise ValueError(f"give one seed (seed_voxel, seed_mm, box or contour), got {given}")
    if not search_radius_mm > 0:
        raise ValueError(f"search_radius_mm must be positive, got {search_radius_mm}")
    if margin_mm < 0:
        raise ValueError(f"margin_mm must be >= 0, got {margin_mm}")
    values = np.asarray(suv.array, dtype=np.float64)
    region = np.ones(suv.shape, dtype=bool)
    if within is not None:
        check_same_geometry(suv, within, what="SUV image and 'within' mask")
        within.require_nonempty("'within' region")
        region = np.asarray(within.array).copy()
    if seed_voxel is not None or seed_mm is not None:
        if seed_voxel is not None:
            ijk = np.asarray(seed_voxel, dtype=float)
            if ijk.shape != (3,):
                raise ValueError(f"seed_voxel must be 3 indices (i, j, k), got {list(seed_voxel)}")
            what = f"voxel {tuple(int(v) for v in ijk)}"
        else:
            assert seed_mm is not None
            point = np.asarray(seed_mm, dtype=float)
            if point.shape != (3,):
                raise ValueError(f"seed_mm must be 3 coordinates (x, y, z), got {list(seed_mm)}")
            ijk = suv.physical_to_index(point)
            what = f"point {tuple(float(v) for v in point)} mm"
        dims = np.array([suv.shape[2], suv.shape[1], suv.shape[0]])
        if np.any(ijk < -0.5) or np.any(ijk > dims - 0.5):
            raise ValueError(
                f"the seed {what} lies outside the image (voxel index {tuple(np.round(ijk, 1))}, "
                f"image size {tuple(int(d) for d in dims)} in x, y, z)"
            )
        zyx = ijk[::-1]
        grids = np.ogrid[: suv.shape[0], : suv.shape[1], : suv.shape[2]]
        d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, zyx, suv.spacing_zyx, strict=True))
        search = region & (d2 <= search_radius_mm**2)
        if not search.any():
            raise SegmentationError(
                f"no voxel within {search_radius_mm:g} mm of the seed {what} lies in the region; "
                "move the seed or enlarge search_radius_mm"
            )
        centre, top = _hottest(
            values, search, f"the sphere of {search_radius_mm:g} mm around the seed {what}"
        )
        return SeedRegion(centre, region, top)
    for name, m in (("box", box), ("contour", contour)):
        if m is None:
            continue
        check_same_geometry(suv, m, what=f"SUV image and seed {name}")
        m.require_nonempty(f"seed {name}")
        centre, top = _hottest(values, np.asarray(m.array) & region, f"the seed {name}")
        if name == "box":
            return SeedRegion(centre, np.asarray(m.array) & region, top)
        box_arr = _bbox(np.asarray(m.array), suv.spacing_zyx, margin_mm)
        return SeedRegion(centre, box_arr & region, top)
    centre, top = _hottest(values, region, "the image (or 'within' region)")
    return SeedRegion(centre, region, top)


#: 26-connectivity (faces, edges and corners) in 3D.
STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)


def component_at(array: np.ndarray, centre: tuple[int, int, int]) -> np.ndarray:
    """The 26-connected component of a boolean array that holds ``centre`` (empty if it is off)."""
    from scipy import ndimage

    if not array[centre]:
        return np.zeros(array.shape, dtype=bool)
    labels, _ = ndimage.label(array, structure=STRUCTURE_26)
    return np.asarray(labels == labels[centre])
