"""Threshold segmentation of PET (SUV) images.

* :func:`fixed_threshold`: every voxel with SUV >= a fixed value (e.g. SUV 2.5);
* :func:`relative_threshold`: the connected region, around the hottest voxel, of voxels with
  SUV >= a fraction (e.g. 40 %) of the SUVmax (or SUVpeak) of a region or of the
  neighbourhood of a seed point;
* :func:`connected_components`: split a mask into 26-connected lesions, largest first.

References
----------
Boellaard R. et al., "FDG PET/CT: EANM procedure guidelines for tumour imaging: version 2.0",
Eur J Nucl Med Mol Imaging 2015;42:328-354 (41 % SUVmax and SUV 2.5 thresholds).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

from smartimaging.exceptions import SegmentationError
from smartimaging.image import Image, Mask, check_same_geometry
from smartimaging.preprocess.sphere import sphere_means

__all__ = ["bounding_box", "connected_components", "fixed_threshold", "refine_contour", "relative_threshold"]

#: 26-connectivity (faces, edges and corners) in 3D.
_STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)

_REFERENCES = ("max", "peak")


def _as_mask(image: Image, array: np.ndarray) -> Mask:
    return Mask(array, image.spacing, image.origin, image.direction.copy())


def _region(suv: Image, within: Mask | None) -> np.ndarray:
    if within is None:
        return np.ones(suv.shape, dtype=bool)
    check_same_geometry(suv, within, what="SUV image and 'within' mask")
    within.require_nonempty("'within' region of the threshold segmentation")
    return np.asarray(within.array)


def _finite_max(values: np.ndarray, what: str) -> float:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise SegmentationError(f"{what} holds no finite SUV value: check the image and the region")
    return float(finite.max())


def fixed_threshold(suv: Image, *, threshold: float = 2.5, within: Mask | None = None) -> Mask:
    """Voxels with SUV at or above a fixed threshold.

    Parameters
    ----------
    suv : Image
        PET image in SUV units.
    threshold : float
        SUV threshold (voxels ``>= threshold`` are kept).
    within : Mask, optional
        Restrict the segmentation to this region (same grid).

    Returns
    -------
    Mask
        All voxels at or above the threshold (not split into lesions; see
        :func:`connected_components`).

    Raises
    ------
    SegmentationError
        If no voxel reaches the threshold (the message gives the highest SUV found).
    GeometryMismatchError
        If ``within`` is not on the SUV grid.

    Examples
    --------
    >>> import numpy as np
    >>> suv = Image(np.array([[[1.0, 2.5, 4.0]]]), spacing=(4.0, 4.0, 4.0))
    >>> fixed_threshold(suv, threshold=2.5).array.astype(int).tolist()
    [[[0, 1, 1]]]
    """
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite SUV value, got {threshold}")
    region = _region(suv, within)
    values = np.asarray(suv.array, dtype=np.float64)
    keep = region & (values >= threshold)  # NaN compares False
    if not keep.any():
        found = _finite_max(values[region], "the region")
        raise SegmentationError(
            f"no voxel reaches SUV {threshold:g} (highest SUV in the region: {found:.4g}); "
            "lower the threshold or check the SUV conversion and the region"
        )
    return _as_mask(suv, keep)


def _peak_at(suv: Image, centre: tuple[int, ...]) -> float:
    """Mean of the finite values in the 1 cm³ sphere around ``centre`` (IBSI local peak)."""
    voxel = np.zeros(suv.shape, dtype=bool)
    voxel[centre] = True
    return float(sphere_means(suv, _as_mask(suv, voxel))[0])


def relative_threshold(
    suv: Image,
    *,
    fraction: float = 0.4,
    within: Mask | None = None,
    seed_mm: tuple[float, float, float] | None = None,
    search_radius_mm: float = 15.0,
    reference: Literal["max", "peak"] = "max",
) -> Mask:
    """Connected region of voxels at or above a fraction of the local SUVmax (or SUVpeak).

    The reference voxel is the hottest voxel of ``within`` (or of the whole image), or, when
    ``seed_mm`` is given, the hottest voxel within ``search_radius_mm`` of the seed (and inside
    ``within`` if given). Voxels with ``SUV >= fraction * reference`` (inside ``within`` if
    given) are kept, then only the 26-connected component holding the reference voxel.

    Parameters
    ----------
    suv : Image
        PET image in SUV units.
    fraction : float
        Fraction of the reference SUV, in ``(0, 1]`` (EANM: 0.41 of SUVmax).
    within : Mask, optional
        Region to search and to segment in (same grid), e.g. a bounding box around a lesion.
    seed_mm : tuple of float, optional
        Physical point ``(x, y, z)`` in mm (patient coordinates) near the lesion.
    search_radius_mm : float
        Radius around ``seed_mm`` in which the hottest voxel is sought.
    reference : {'max', 'peak'}
        ``'max'``: the SUV of the hottest voxel; ``'peak'``: the mean SUV in the 1 cm³ sphere
        around it (IBSI local intensity peak), which is less noise-sensitive.

    Returns
    -------
    Mask
        The segmented lesion (never empty).

    Raises
    ------
    SegmentationError
        If the search region holds no finite voxel, or the reference SUV is not positive.
    GeometryMismatchError
        If ``within`` is not on the SUV grid.
    ValueError
        If ``fraction``, ``reference`` or ``search_radius_mm`` is invalid, or the seed lies
        outside the image.
    """
    if reference not in _REFERENCES:
        raise ValueError(f"reference must be one of {list(_REFERENCES)}, got {reference!r}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    region = _region(suv, within)
    values = np.asarray(suv.array, dtype=np.float64)
    search = region
    if seed_mm is not None:
        if not search_radius_mm > 0:
            raise ValueError(f"search_radius_mm must be positive, got {search_radius_mm}")
        seed_idx = suv.physical_to_index(np.asarray(seed_mm, dtype=float))[::-1]  # z, y, x
        if np.any(seed_idx < -0.5) or np.any(seed_idx > np.asarray(suv.shape) - 0.5):
            raise ValueError(
                f"seed_mm {tuple(seed_mm)} lies outside the image (voxel index {seed_idx[::-1]})"
            )
        zyx = np.indices(suv.shape, dtype=np.float64)
        offsets = [(zyx[a] - seed_idx[a]) * suv.spacing_zyx[a] for a in range(3)]
        # distances along voxel axes (the direction matrix is orthonormal)
        near = sum(o**2 for o in offsets) <= search_radius_mm**2
        search = region & near
        if not search.any():
            raise SegmentationError(
                f"no voxel within {search_radius_mm:g} mm of seed {tuple(seed_mm)} lies in the region; "
                "move the seed or enlarge search_radius_mm"
            )
    masked = np.where(search & np.isfinite(values), values, -np.inf)
    flat_idx = int(np.argmax(masked))
    if not np.isfinite(masked.flat[flat_idx]):
        raise SegmentationError("the search region holds no finite SUV value: check the image and the region")
    centre = np.unravel_index(flat_idx, suv.shape)
    suv_max = float(masked.flat[flat_idx])
    ref = suv_max if reference == "max" else _peak_at(suv, tuple(int(c) for c in centre))
    if not ref > 0:
        raise SegmentationError(
            f"the reference SUV{reference} is {ref:.4g} (not positive): a relative threshold is meaningless; "
            "check the SUV conversion or the seed"
        )
    level = fraction * ref
    candidate = region & (values >= level)
    labels, _ = ndimage.label(candidate, structure=_STRUCTURE_26)
    keep = labels == labels[centre]
    return _as_mask(suv, keep)


def connected_components(mask: Mask, *, min_volume_ml: float = 0.0) -> list[Mask]:
    """Split a mask into 26-connected components, largest first.

    Parameters
    ----------
    mask : Mask
        Binary mask (e.g. from :func:`fixed_threshold`).
    min_volume_ml : float
        Drop components smaller than this volume (ml).

    Returns
    -------
    list of Mask
        One mask per component on the input grid, by decreasing volume (ties in scan order);
        empty when no component is left.

    Examples
    --------
    >>> import numpy as np
    >>> m = Mask(np.array([[[1, 0, 1, 1]]], bool), spacing=(1.0, 1.0, 1.0))
    >>> [c.n_voxels for c in connected_components(m)]
    [2, 1]
    """
    if min_volume_ml < 0:
        raise ValueError(f"min_volume_ml must be >= 0, got {min_volume_ml}")
    labels, n = ndimage.label(mask.array, structure=_STRUCTURE_26)
    if n == 0:
        return []
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    order = np.argsort(-counts, kind="stable")
    voxel_ml = mask.voxel_volume / 1000.0
    return [_as_mask(mask, labels == (i + 1)) for i in order if counts[i] * voxel_ml >= min_volume_ml]


def bounding_box(mask: Mask, *, margin_mm: float = 0.0) -> Mask:
    """Axis-aligned box around a mask, enlarged by ``margin_mm`` on every side (clipped to the grid).

    Raises
    ------
    EmptyMaskError
        If ``mask`` has no voxel.
    """
    mask.require_nonempty("bounding_box")
    if margin_mm < 0:
        raise ValueError(f"margin_mm must be >= 0, got {margin_mm}")
    idx = np.nonzero(mask.array)
    pad = [int(np.ceil(margin_mm / s)) for s in mask.spacing_zyx]
    lo = [max(0, int(a.min()) - p) for a, p in zip(idx, pad, strict=True)]
    hi = [min(n, int(a.max()) + p + 1) for a, n, p in zip(idx, mask.shape, pad, strict=True)]
    box = np.zeros(mask.shape, dtype=bool)
    box[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return mask.with_array(box)


def refine_contour(suv: Image, contour: Mask, *, fraction: float = 0.4, margin_mm: float = 10.0) -> Mask:
    """Delineate a lesion at ``fraction`` of its SUVmax, starting from a rough contour.

    The reference is the hottest voxel *inside the contour* (so hotter physiological uptake
    nearby cannot capture it); the region is the connected component of that voxel among the
    voxels at or above ``fraction x SUVmax`` inside the contour's bounding box enlarged by
    ``margin_mm`` (so the method may grow beyond a tight contour, or shrink a generous one).

    Parameters
    ----------
    suv : Image
        SUV image.
    contour : Mask
        Rough lesion contour on the SUV grid (e.g. a manual ROI, RTSTRUCT or SEG).
    fraction : float
        Fraction of SUVmax (0.4 for 40 %; EANM uses 0.41).
    margin_mm : float
        Enlargement of the contour's bounding box in which the region may grow.

    Raises
    ------
    EmptyMaskError
        If the contour is empty.
    GeometryMismatchError
        If the contour is not on the SUV grid.
    """
    check_same_geometry(suv, contour, what="SUV image and contour")
    contour.require_nonempty("refine_contour")
    values = np.where(contour.array, suv.array, -np.inf)
    k, j, i = np.unravel_index(int(np.argmax(values)), suv.shape)
    seed = tuple(float(v) for v in suv.index_to_physical([i, j, k]))
    return relative_threshold(
        suv,
        fraction=fraction,
        within=bounding_box(contour, margin_mm=margin_mm),
        seed_mm=seed,  # type: ignore[arg-type]
        search_radius_mm=0.5 * min(suv.spacing),
    )
