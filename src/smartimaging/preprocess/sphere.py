"""Means over spheres of fixed physical radius, centred on voxels (spacing-aware, NaN-safe).

The 1 cm³ sphere (radius 6.2 mm) gives the IBSI local intensity peak (features) and SUVpeak as a
threshold reference (segment); both use these functions.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

from smartimaging.image import Image, Mask, check_same_geometry

__all__ = ["RADIUS_MM", "sphere_kernel", "sphere_means"]

#: Radius (mm) of a 1 cm³ sphere, as the IBSI rounds it: (3 * 1000 / (4 pi))^(1/3) = 6.2035.
RADIUS_MM = 6.2

# above this many multiply-adds the FFT is faster than direct correlation
_DIRECT_MAX_OPS = 20_000_000


def sphere_kernel(spacing_zyx: tuple[float, float, float], radius_mm: float = RADIUS_MM) -> np.ndarray:
    """Boolean kernel of the voxels whose centres lie within ``radius_mm`` of the central voxel.

    Parameters
    ----------
    spacing_zyx : tuple of float
        Voxel size in mm in array order ``(z, y, x)``.
    radius_mm : float
        Sphere radius in mm.

    Returns
    -------
    numpy.ndarray
        Boolean array of odd shape, centred on the central voxel.

    Examples
    --------
    >>> int(sphere_kernel((2.0, 2.0, 2.0), 2.0).sum())  # centre plus its 6 face neighbours
    7
    """
    if not radius_mm > 0:
        raise ValueError(f"radius_mm must be positive, got {radius_mm}")
    sp = np.asarray(spacing_zyx, dtype=float)
    half = np.floor(radius_mm / sp + 1e-9).astype(int)
    grids = np.meshgrid(*(np.arange(-h, h + 1) * s for h, s in zip(half, sp, strict=True)), indexing="ij")
    dist2 = sum(g**2 for g in grids)
    return np.asarray(dist2 <= radius_mm**2 * (1 + 1e-12))


def sphere_means(image: Image, mask: Mask, *, radius_mm: float = RADIUS_MM) -> np.ndarray:
    """Mean image intensity in a sphere centred on each ROI voxel.

    Parameters
    ----------
    image : Image
        Intensity image.
    mask : Mask
        ROI on the same grid (must not be empty).
    radius_mm : float
        Sphere radius in mm (6.2 mm: 1 cm³).

    Returns
    -------
    numpy.ndarray
        1-D array of sphere means, one per ROI voxel in C order of ``mask.array``
        (the order of ``image.array[mask.array]``).

    Raises
    ------
    GeometryMismatchError
        If image and mask grids differ.
    EmptyMaskError
        If the mask is empty.
    """
    check_same_geometry(image, mask)
    mask.require_nonempty("local intensity")
    kernel = sphere_kernel(image.spacing_zyx, radius_mm)
    half = np.array(kernel.shape) // 2
    idx = np.nonzero(mask.array)
    lo = np.maximum(np.array([i.min() for i in idx]) - half, 0)
    hi = np.minimum(np.array([i.max() for i in idx]) + half + 1, image.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    crop = np.asarray(image.array[box], dtype=np.float64)
    finite = np.isfinite(crop)
    values = np.where(finite, crop, 0.0)
    weights = finite.astype(np.float64)
    kern = kernel.astype(np.float64)
    roi = mask.array[box]
    # Every ROI voxel's sphere lies inside the box unless the box was clipped at the image
    # border; with no clipping and no non-finite voxel, every sphere holds all kernel voxels.
    unclipped = bool(np.all(lo == np.array([i.min() for i in idx]) - half)) and bool(
        np.all(hi == np.array([i.max() for i in idx]) + half + 1)
    )
    full_count = unclipped and bool(finite.all())
    if crop.size * kernel.sum() <= _DIRECT_MAX_OPS:
        sums = ndimage.correlate(values, kern, mode="constant", cval=0.0)
        if full_count:
            return np.asarray(sums[roi] / float(kernel.sum()))
        counts = ndimage.correlate(weights, kern, mode="constant", cval=0.0)
    else:  # the kernel is symmetric, so convolution equals correlation
        sums = signal.fftconvolve(values, kern, mode="same")
        if full_count:
            return np.asarray(sums[roi] / float(kernel.sum()))
        counts = np.rint(signal.fftconvolve(weights, kern, mode="same"))
    return np.asarray(sums[roi] / counts[roi])
