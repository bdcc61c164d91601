"""Means over spheres of fixed physical radius, centred on voxels (spacing-aware, NaN-safe).

The 1 cm³ sphere (radius 6.2 mm) gives the IBSI local intensity peak (features) and SUVpeak as a
threshold reference (segment); both use these functions.

A sphere holds every image voxel whose centre lies within the radius of the centre voxel
(:func:`sphere_kernel`); voxels beyond the image border and non-finite voxels are not counted.

Method: a compiled kernel sums each sphere directly, voxel by voxel, and only where a mean is
needed: at every ROI voxel (:func:`sphere_means`, the global peak), or, for the local peak
alone, at the voxels that equal the running maximum of the ROI when they are reached (a higher
voxel restarts the local peak, an equal one competes, so ties are resolved exactly as by taking
the highest mean among all voxels of maximum intensity). A sphere that lies inside the image is
summed over the kernel's flat offsets without bounds checks; when that sum is not finite (a
non-finite voxel in the sphere), or the sphere crosses the image border, it is summed again
voxel by voxel, skipping non-finite and out-of-image voxels. The kernel (and its offsets) is
built once per spacing and radius. Every sum is exact up to floating-point rounding: only the
order of the additions differs from a correlation with the kernel (about ``1e-16`` relative;
the tests assert ``1e-12``). ROIs so large that ``voxels x kernel size`` exceeds
:data:`_DIRECT_MAX_OPS` are correlated over their bounding box instead (FFT), faster there.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from scipy import ndimage, signal

from smartimaging.image import Image, Mask, check_same_geometry

__all__ = ["RADIUS_MM", "sphere_kernel", "sphere_means"]

#: Radius (mm) of a 1 cm³ sphere, as the IBSI rounds it: (3 * 1000 / (4 pi))^(1/3) = 6.2035.
RADIUS_MM = 6.2

# above this many voxel reads (ROI voxels x kernel voxels) the box correlation (FFT) is used
_DIRECT_MAX_OPS = 100_000_000
# within the box correlation: above this many multiply-adds the FFT is faster than direct correlation
_CORRELATE_MAX_OPS = 20_000_000


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

    Raises
    ------
    ValueError
        If ``radius_mm`` is not positive.

    Examples
    --------
    >>> int(sphere_kernel((2.0, 2.0, 2.0), 2.0).sum())  # centre plus its 6 face neighbours
    7
    """
    return _cached_kernel(tuple(float(s) for s in spacing_zyx), float(radius_mm)).copy()


@functools.lru_cache(maxsize=16)
def _cached_kernel(spacing_zyx: tuple[float, ...], radius_mm: float) -> np.ndarray:
    """:func:`sphere_kernel`, computed once per spacing and radius (read-only)."""
    if not radius_mm > 0:
        raise ValueError(f"radius_mm must be positive, got {radius_mm}")
    sp = np.asarray(spacing_zyx, dtype=float)
    half = np.floor(radius_mm / sp + 1e-9).astype(int)
    grids = np.meshgrid(*(np.arange(-h, h + 1) * s for h, s in zip(half, sp, strict=True)), indexing="ij")
    dist2 = sum(g**2 for g in grids)
    kernel = np.asarray(dist2 <= radius_mm**2 * (1 + 1e-12))
    kernel.flags.writeable = False
    return kernel


@functools.lru_cache(maxsize=16)
def _kernel_offsets(spacing_zyx: tuple[float, ...], radius_mm: float) -> np.ndarray:
    """Offsets ``(dz, dy, dx)`` (int64, C order) of the voxels of :func:`sphere_kernel` (read-only)."""
    kernel = _cached_kernel(spacing_zyx, radius_mm)
    offs = np.ascontiguousarray(np.argwhere(kernel) - np.array(kernel.shape) // 2, dtype=np.int64)
    offs.flags.writeable = False
    return offs


@numba.njit(cache=True, nogil=True)
def _flat_offsets(offs: np.ndarray, ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Offsets in a C-ordered ``(., ny, nx)`` array, and the kernel's half-widths per axis."""
    flat = np.empty(offs.shape[0], dtype=np.int64)
    half = np.zeros(3, dtype=np.int64)
    for k in range(offs.shape[0]):
        flat[k] = (offs[k, 0] * ny + offs[k, 1]) * nx + offs[k, 2]
        for ax in range(3):
            half[ax] = max(half[ax], abs(offs[k, ax]))
    return flat, half


@numba.njit(cache=True, nogil=True)
def _sphere_mean_checked(
    v: np.ndarray, shape: tuple[int, int, int], offs: np.ndarray, a: int, b: int, c: int
) -> float:  # pragma: no cover - compiled
    """Mean of the finite in-image values of the sphere around voxel ``(a, b, c)``, summed voxel
    by voxel (spheres crossing the image border, or holding a non-finite voxel).

    The kernels sum a sphere that lies inside the image over the flat offsets instead, with no
    bounds checks (unsigned indices: no negative-index handling), and come here when it
    crosses the border or that sum is not finite.
    """
    ny, nx = shape[1], shape[2]
    s = 0.0
    cnt = 0
    for k in range(offs.shape[0]):
        z = a + offs[k, 0]
        y = b + offs[k, 1]
        x = c + offs[k, 2]
        if 0 <= z < shape[0] and 0 <= y < ny and 0 <= x < nx:
            val = v[(z * ny + y) * nx + x]
            if np.isfinite(val):
                s += val
                cnt += 1
    return s / cnt


@numba.njit(cache=True, nogil=True)
def _peaks_kernel(
    values: np.ndarray, mask: np.ndarray, offs: np.ndarray, want_global: bool
) -> tuple[int, int, float, float]:  # pragma: no cover - compiled
    """ROI voxel count, non-finite ROI voxel count, local peak and global peak, in one pass.

    The local peak is the highest sphere mean among the ROI voxels of maximum intensity (the
    running maximum: a higher voxel restarts it, an equal one competes); the global peak the
    highest over all ROI voxels (NaN unless ``want_global``; without it, only voxels at the
    running maximum get a sphere). The peaks are meaningless when the ROI is empty or holds a
    non-finite value (the counts say so).
    """
    shape = values.shape
    nz, ny, nx = shape
    v = values.ravel()
    m = mask.ravel()
    flat, half = _flat_offsets(offs, ny, nx)
    n = 0
    n_bad = 0
    vmax = -np.inf
    local = -np.inf
    glob = -np.inf
    k_n = flat.shape[0]
    k_f = float(k_n)
    for a in range(nz):
        for b in range(ny):
            row = (a * ny + b) * nx
            inside_ab = half[0] <= a < nz - half[0] and half[1] <= b < ny - half[1]
            for c in range(nx):
                i = row + c
                if not m[i]:
                    continue
                n += 1
                x = v[i]
                if not np.isfinite(x):
                    n_bad += 1
                    continue
                if x < vmax and not want_global:
                    continue
                if inside_ab and half[2] <= c < nx - half[2]:
                    s = 0.0
                    for k in range(k_n):
                        s += v[np.uint64(i + flat[k])]
                    mean = s / k_f
                    if not np.isfinite(mean):
                        mean = _sphere_mean_checked(v, shape, offs, a, b, c)
                else:
                    mean = _sphere_mean_checked(v, shape, offs, a, b, c)
                if mean > glob:
                    glob = mean
                if x > vmax:
                    vmax = x
                    local = mean
                elif x == vmax and mean > local:
                    local = mean
    return n, n_bad, local, glob if want_global else np.nan


@numba.njit(cache=True, nogil=True)
def _means_kernel(values: np.ndarray, mask: np.ndarray, offs: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Sphere mean at every ROI voxel, C order."""
    shape = values.shape
    nz, ny, nx = shape
    v = values.ravel()
    m = mask.ravel()
    n = 0
    for i in range(m.size):
        n += m[i]
    out = np.empty(n, dtype=np.float64)
    flat, half = _flat_offsets(offs, ny, nx)
    k_f = float(flat.shape[0])
    j = 0
    for a in range(nz):
        for b in range(ny):
            row = (a * ny + b) * nx
            inside_ab = half[0] <= a < nz - half[0] and half[1] <= b < ny - half[1]
            for c in range(nx):
                i = row + c
                if not m[i]:
                    continue
                mean = np.nan
                if inside_ab and half[2] <= c < nx - half[2]:
                    s = 0.0
                    for k in range(flat.shape[0]):
                        s += v[np.uint64(i + flat[k])]
                    mean = s / k_f
                if not np.isfinite(mean):
                    mean = _sphere_mean_checked(v, shape, offs, a, b, c)
                out[j] = mean
                j += 1
    return out


def _sphere_peaks(
    array: np.ndarray,
    mask: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    radius_mm: float = RADIUS_MM,
    want_global: bool = True,
) -> tuple[int, int, float, float]:
    """ROI size, number of non-finite ROI values, local and global sphere-mean peaks.

    ``array`` and ``mask`` are the image and ROI arrays of one grid (the caller checks the
    geometry). The local peak is the highest sphere mean among the ROI voxels of maximum
    intensity (every voxel sharing the maximum is a candidate), the global peak the highest
    sphere mean over all ROI voxels (NaN unless ``want_global``). Both peaks are NaN when the
    ROI is empty or holds a non-finite value: callers check the two counts and raise.
    """
    offs = _kernel_offsets(tuple(float(s) for s in spacing_zyx), float(radius_mm))
    values = np.ascontiguousarray(array, dtype=np.float64)
    roi = np.ascontiguousarray(mask, dtype=np.bool_)
    k_n = offs.shape[0]
    big = (
        want_global
        and k_n * roi.size > _DIRECT_MAX_OPS
        and k_n * int(np.count_nonzero(roi)) > _DIRECT_MAX_OPS
    )
    n, n_bad, local, glob = _peaks_kernel(values, roi, offs, want_global and not big)
    if big and n and not n_bad:
        glob = float(_box_sphere_means(values, roi, spacing_zyx, radius_mm).max())
    return int(n), int(n_bad), float(local), float(glob)


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
    offs = _kernel_offsets(image.spacing_zyx, float(radius_mm))
    values = np.ascontiguousarray(image.array, dtype=np.float64)
    roi = np.ascontiguousarray(mask.array, dtype=np.bool_)
    if offs.shape[0] * mask.n_voxels > _DIRECT_MAX_OPS:
        return _box_sphere_means(values, roi, image.spacing_zyx, radius_mm)
    return np.asarray(_means_kernel(values, roi, offs))


def _box_sphere_means(
    array: np.ndarray, mask: np.ndarray, spacing_zyx: tuple[float, float, float], radius_mm: float
) -> np.ndarray:
    """Sphere means at the ROI voxels by correlating the ROI's bounding box, padded by the
    radius, with the kernel (direct correlation for small problems, FFT otherwise)."""
    kernel = _cached_kernel(tuple(float(s) for s in spacing_zyx), float(radius_mm))
    half = np.array(kernel.shape) // 2
    idx = np.nonzero(mask)
    lo = np.maximum(np.array([i.min() for i in idx]) - half, 0)
    hi = np.minimum(np.array([i.max() for i in idx]) + half + 1, array.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    crop = np.asarray(array[box], dtype=np.float64)
    finite = np.isfinite(crop)
    values = np.where(finite, crop, 0.0)
    weights = finite.astype(np.float64)
    kern = kernel.astype(np.float64)
    roi = mask[box]
    # Every ROI voxel's sphere lies inside the box unless the box was clipped at the image
    # border; with no clipping and no non-finite voxel, every sphere holds all kernel voxels.
    unclipped = bool(np.all(lo == np.array([i.min() for i in idx]) - half)) and bool(
        np.all(hi == np.array([i.max() for i in idx]) + half + 1)
    )
    full_count = unclipped and bool(finite.all())
    if crop.size * kernel.sum() <= _CORRELATE_MAX_OPS:
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
