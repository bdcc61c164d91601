"""Shared machinery of the IBSI 1 texture families (GLCM, GLRLM, GLSZM, GLDZM, NGTDM, NGLDM).

Conventions used by every texture module:

* ``levels`` is an integer array indexed ``(z, y, x)`` holding discretised grey levels
  ``1..n_levels`` inside the ROI (values outside ``mask`` are ignored). Matrices are sized by
  ``n_levels``, so empty grey levels keep their rows (sums over ``i`` run over ``1..Ng``).
* Only ROI voxels count: a neighbour outside the ROI (or outside the image) is never used.
* Work is done on the ROI bounding box, padded with a frame of background (level 0) so the
  Numba kernels never need bounds checks.
* 2D means per slice (in-plane neighbours only, slices along the array's first axis);
  2.5D merges the per-slice matrices; 3D uses the full 3D neighbourhood.

References
----------
Zwanenburg A. et al., The Image Biomarker Standardisation Initiative (IBSI 1), arXiv:1612.07003,
section "Feature calculation", texture matrix aggregation (2D_avg, 2D_smrg, 2.5D_dmrg, 2.5D_vmrg,
3D_avg, 3D_vmrg; 2D, 2.5D, 3D for the rotation-independent matrices).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NoReturn

import numba
import numpy as np

from smartimaging.exceptions import ConfigError, EmptyMaskError, FeatureError, GeometryMismatchError

__all__ = [
    "ZONE_DISTANCE",
    "ZONE_LEVEL",
    "ZONE_SIZE",
    "ZONE_SLICE",
    "MatrixFeatureNames",
    "Zones",
    "bounding_box",
    "chebyshev_neighbourhood",
    "check_distance",
    "dense_to_triples",
    "directions",
    "label_zones",
    "mask_bounds",
    "mean_features",
    "mean_rows",
    "prepare_levels",
    "resolve_aggregations",
    "size_features_dense",
    "size_features_pairs",
    "size_matrix_features",
    "triples_from_pairs",
    "zone_features",
]


# --------------------------------------------------------------------------------------------
# neighbour offsets
# --------------------------------------------------------------------------------------------
def directions(*, three_d: bool, distance: int = 1) -> np.ndarray:
    """Unique co-occurrence / run directions as ``(n, 3)`` int64 offsets ``(dz, dy, dx)``.

    One direction of each opposite pair is kept: 4 in-plane directions (0°, 45°, 90°, 135°)
    for 2D, 13 for 3D. Offsets are multiplied by ``distance`` (Chebyshev distance).
    """
    offs = []
    for dz in (0, 1) if three_d else (0,):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                vec = (dz, dy, dx)
                # keep the first non-zero component positive: one of each pair
                first = next((v for v in vec if v != 0), 0)
                if first > 0:
                    offs.append(vec)
    arr = np.asarray(offs, dtype=np.int64) * int(distance)
    return arr


def chebyshev_neighbourhood(*, three_d: bool, distance: int = 1) -> np.ndarray:
    """All offsets within Chebyshev ``distance`` except the centre, as ``(n, 3)`` int64 array.

    8 offsets in 2D and 26 in 3D for distance 1.
    """
    d = int(distance)
    rng = range(-d, d + 1)
    offs = [
        (dz, dy, dx)
        for dz in (rng if three_d else (0,))
        for dy in rng
        for dx in rng
        if (dz, dy, dx) != (0, 0, 0)
    ]
    return np.asarray(offs, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# input checks and cropping
# --------------------------------------------------------------------------------------------
def prepare_levels(
    levels: np.ndarray, mask: np.ndarray, *, n_levels: int, pad: int = 1, family: str = "texture"
) -> np.ndarray:
    """Validate inputs and return the padded ROI bounding box as an int32 array (0 outside).

    Parameters
    ----------
    levels : numpy.ndarray
        3D integer grey levels ``(z, y, x)``.
    mask : numpy.ndarray
        3D boolean ROI of the same shape.
    n_levels : int
        Number of grey levels ``Ng``; levels inside the ROI must lie in ``1..n_levels``.
    pad : int
        Width of the background frame added on every side.
    family : str
        Family name used in error messages.

    Raises
    ------
    GeometryMismatchError
        Shapes differ or arrays are not 3D.
    EmptyMaskError
        The mask has no voxel.
    FeatureError
        Levels inside the ROI lie outside ``1..n_levels`` or are not integers.
    ConfigError
        ``n_levels`` is not a positive integer.
    """
    lv = np.asarray(levels)
    mk = np.asarray(mask)
    if lv.ndim != 3 or mk.shape != lv.shape:
        raise GeometryMismatchError(
            f"{family}: levels and mask must be 3D arrays (z, y, x) of the same shape, got "
            f"{lv.shape} and {mk.shape}"
        )
    if isinstance(n_levels, bool) or not isinstance(n_levels, int | np.integer) or n_levels < 1:
        raise ConfigError(f"{family}: n_levels must be a positive integer, got {n_levels!r}")
    mk = mk.astype(bool, copy=False)
    if not mk.any():
        raise EmptyMaskError(f"{family}: the ROI mask contains no voxel; texture features need at least one")
    box = bounding_box(mk)
    sub = lv[box]
    sub_mask = mk[box]
    roi_vals = sub[sub_mask]
    if not np.issubdtype(roi_vals.dtype, np.integer):
        if not np.all(np.isfinite(roi_vals)) or not np.all(roi_vals == np.round(roi_vals)):
            raise FeatureError(
                f"{family}: grey levels inside the ROI must be integers 1..n_levels; discretise the "
                "image first with smartimaging.preprocess.discretise.discretise()"
            )
    vmin, vmax = roi_vals.min(), roi_vals.max()
    if vmin < 1 or vmax > n_levels:
        raise FeatureError(
            f"{family}: grey levels inside the ROI span {vmin}..{vmax} but must lie in 1..{n_levels} "
            "(n_levels); discretise the image first or pass the right n_levels"
        )
    out = np.zeros(tuple(s + 2 * pad for s in sub.shape), dtype=np.int32)
    inner = tuple(slice(pad, pad + s) for s in sub.shape)
    out[inner] = np.where(sub_mask, sub, 0).astype(np.int32)
    return out


@numba.njit(cache=True, nogil=True)
def _bounds_kernel(mask: np.ndarray, rows: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """``[z0, z1, y0, y1, x0, x1]`` (inclusive) of the set voxels; ``z0 = -1`` when none is set.

    ``rows[z, y]`` says whether row ``(z, y)`` holds a set voxel; only those rows are read.
    """
    nz, ny, nx = mask.shape
    out = np.array([-1, -1, ny, -1, nx, -1], dtype=np.int64)
    for z in range(nz):
        for y in range(ny):
            if not rows[z, y]:
                continue
            first = 0
            while not mask[z, y, first]:
                first += 1
            last = nx - 1
            while not mask[z, y, last]:
                last -= 1
            if out[0] < 0:
                out[0] = z
            out[1] = z
            out[2] = min(out[2], y)
            out[3] = max(out[3], y)
            out[4] = min(out[4], first)
            out[5] = max(out[5], last)
    return out


@numba.njit(cache=True, nogil=True)
def _row_any_kernel(mask: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """``mask.any(axis=2)`` of a C-contiguous 3D boolean array: an OR of each row's bytes,
    which vectorises (4x faster than NumPy's reduction over rows of ~100 voxels)."""
    nz, ny, nx = mask.shape
    rows = mask.reshape(nz * ny, nx).view(np.uint8)
    out = np.empty(nz * ny, dtype=np.bool_)
    for r in range(nz * ny):
        acc = np.uint8(0)
        row = rows[r]
        for x in range(nx):
            acc |= row[x]
        out[r] = acc != 0
    return out.reshape(nz, ny)


def mask_bounds(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Slices of the smallest box holding every voxel of a 3D boolean ``mask``; None if it is empty.

    One compiled OR over each row's bytes (the whole-grid pass), then a compiled scan of the
    rows that hold a voxel (for a 12M-voxel mask: 1.7 ms with NumPy's ``any(axis=2)`` for the
    first pass, against 3.0 ms for three projections; 4x less for that pass compiled).
    """
    if mask.dtype == np.bool_ and mask.flags.c_contiguous and mask.shape[2] > 0:
        rows = _row_any_kernel(mask)
    else:
        rows = np.asarray(mask.any(axis=2))
    b = _bounds_kernel(mask, rows)
    if b[0] < 0:
        return None
    return (slice(int(b[0]), int(b[1]) + 1), slice(int(b[2]), int(b[3]) + 1), slice(int(b[4]), int(b[5]) + 1))


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """Slices of the smallest box holding every voxel of a non-empty boolean ``mask``."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim == 3:
        box = mask_bounds(m)
        if box is not None:
            return box
    out = []
    for ax in range(m.ndim):
        # projections onto each axis: a few boolean passes instead of a full nonzero()
        hits = np.flatnonzero(m.any(axis=tuple(a for a in range(m.ndim) if a != ax)))
        out.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(out)


def resolve_aggregations(
    aggregations: Sequence[str] | str | None, supported: tuple[str, ...], family: str
) -> tuple[str, ...]:
    """Validate requested aggregation codes (``None`` means all that ``family`` supports)."""
    if aggregations is None:
        return supported
    if isinstance(aggregations, str):
        aggregations = (aggregations,)
    out = tuple(aggregations)
    bad = [a for a in out if a not in supported]
    if bad or not out:
        raise ConfigError(
            f"{family}: unknown aggregation(s) {bad or out!r}; valid values are {list(supported)}"
        )
    return tuple(dict.fromkeys(out))


def check_distance(distance: int, family: str, *, only_one: bool = False) -> int:
    """Validate a neighbourhood / co-occurrence distance (a positive integer)."""
    if isinstance(distance, bool) or not isinstance(distance, int | np.integer) or distance < 1:
        raise ConfigError(f"{family}: distance must be a positive integer, got {distance!r}")
    if only_one and distance != 1:
        raise ConfigError(
            f"{family}: only distance=1 is defined (IBSI linkage / run adjacency), got {distance}"
        )
    return int(distance)


def mean_features(rows: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Average feature dictionaries key by key (IBSI 'averaged' aggregation)."""
    rows = list(rows)
    keys = rows[0].keys()
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


# --------------------------------------------------------------------------------------------
# zones (GLSZM, GLDZM)
# --------------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _label_zones_kernel(
    levels: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ny, nx = levels.shape[1], levels.shape[2]
    flat = levels.ravel()
    n = flat.size
    labels = np.zeros(n, dtype=np.int32)
    sz = ny * nx
    flat_off = np.empty(offsets.shape[0], dtype=np.int64)
    for k in range(offsets.shape[0]):
        flat_off[k] = offsets[k, 0] * sz + offsets[k, 1] * nx + offsets[k, 2]
    n_roi = 0
    for p in range(n):
        if flat[p] > 0:
            n_roi += 1
    zone_level = np.empty(n_roi, dtype=np.int64)
    zone_size = np.empty(n_roi, dtype=np.int64)
    zone_z = np.empty(n_roi, dtype=np.int64)
    stack = np.empty(n_roi, dtype=np.int64)
    n_zones = 0
    for p in range(n):
        a = flat[p]
        if a == 0 or labels[p] != 0:
            continue
        n_zones += 1
        labels[p] = n_zones
        top = 0
        stack[top] = p
        top += 1
        size = 0
        while top > 0:
            top -= 1
            q = stack[top]
            size += 1
            for k in range(flat_off.shape[0]):
                r = q + flat_off[k]
                if flat[r] == a and labels[r] == 0:
                    labels[r] = n_zones
                    stack[top] = r
                    top += 1
        zone_level[n_zones - 1] = a
        zone_size[n_zones - 1] = size
        zone_z[n_zones - 1] = p // sz
    return (
        labels.reshape(levels.shape),
        zone_level[:n_zones],
        zone_size[:n_zones],
        zone_z[:n_zones],
    )


def label_zones(
    padded: np.ndarray, *, three_d: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Label zones: connected voxels of equal grey level (8-connected in-plane, or 26 in 3D).

    ``padded`` must carry a background frame of at least one voxel (see :func:`prepare_levels`).

    Returns
    -------
    labels : numpy.ndarray
        int32 array of zone labels ``1..n_zones`` (0 outside the ROI).
    zone_level, zone_size, zone_z : numpy.ndarray
        Grey level, voxel count and slice index (of the padded array) of each zone. In 2D a
        zone never crosses slices.
    """
    offs = chebyshev_neighbourhood(three_d=three_d, distance=1)
    return _label_zones_kernel(np.ascontiguousarray(padded, dtype=np.int32), offs)


#: Columns of a zone table (see :class:`Zones`).
ZONE_LEVEL, ZONE_SIZE, ZONE_SLICE, ZONE_DISTANCE = 0, 1, 2, 3

_ZONE_OK, _ZONE_EMPTY, _ZONE_BAD_LEVEL, _ZONE_OUTSIDE_MORPH = 0, 1, 2, 3


#: ``_LOG2_MOD37[(1 << k) % 37] == k``: bit index of a power of two without a loop.
_LOG2_MOD37 = np.zeros(37, dtype=np.int64)
for _k in range(32):
    _LOG2_MOD37[(1 << _k) % 37] = _k

# Backward neighbours of a voxel in raster order, as bits: 0..8 the 9 of the slice below
# (bit (dy + 1) * 3 + dx + 1), 9..11 the row above (bit 10 + dx), 12 the left neighbour.
# Bits to keep once a voxel is linked to its left (12), upper (10) or lower-slice (4)
# neighbour: the rest are backward neighbours of that one too, hence already in its set.
_KEEP_LEFT = (1 << 2) | (1 << 5) | (1 << 8) | (1 << 11)
_KEEP_UP = ~((1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 9))
_KEEP_BELOW = ~((1 << 0) | (1 << 1) | (1 << 2) | (1 << 3))


@numba.njit(cache=True, nogil=True)
def _border_distance_kernel(
    dist: np.ndarray, pz: int, py: int, px: int, three_d: bool, first: np.ndarray, last: np.ndarray
) -> None:  # pragma: no cover - compiled
    """City-block distance to the nearest 0 of ``dist`` (``> 0`` marks the mask), in place.

    ``dist`` is a flat ``(pz, py, px)`` array with a zero frame; ``first`` and ``last`` give
    the x range of the mask voxels of each of the ``pz * py`` rows (``first > last``: none).
    The L1 transform is separable: 1D distances along x (within each row's range), then
    min-plus passes along y (and z in 3D) with the kernel ``|d|``, each of two sweeps; the y
    and z sweeps run over whole rows so that they vectorise.
    """
    plane = py * px
    for row in range(pz * py):
        if first[row] > last[row]:
            continue
        base = row * px
        prev = 0
        for x in range(first[row], last[row] + 1):
            d = dist[base + x]
            if d > 0:
                d = prev + 1
            dist[base + x] = d
            prev = d
        prev = 0
        for x in range(last[row], first[row] - 1, -1):
            d = min(dist[base + x], prev + 1)
            dist[base + x] = d
            prev = d
    for z in range(pz):
        for y in range(1, py):
            cur = dist[z * plane + y * px : z * plane + (y + 1) * px]
            up = dist[z * plane + (y - 1) * px : z * plane + y * px]
            for x in range(px):
                cur[x] = min(cur[x], up[x] + 1)
        for y in range(py - 2, -1, -1):
            cur = dist[z * plane + y * px : z * plane + (y + 1) * px]
            down = dist[z * plane + (y + 1) * px : z * plane + (y + 2) * px]
            for x in range(px):
                cur[x] = min(cur[x], down[x] + 1)
    if three_d:
        for z in range(1, pz):
            cur = dist[z * plane : (z + 1) * plane]
            below = dist[(z - 1) * plane : z * plane]
            for q in range(plane):
                cur[q] = min(cur[q], below[q] + 1)
        for z in range(pz - 2, -1, -1):
            cur = dist[z * plane : (z + 1) * plane]
            above = dist[(z + 1) * plane : (z + 2) * plane]
            for q in range(plane):
                cur[q] = min(cur[q], above[q] + 1)


@numba.njit(cache=True, nogil=True)
def _zone_table_kernel(
    levels: np.ndarray, mask: np.ndarray, morph: np.ndarray, n_levels: int, mode: int
) -> tuple[int, np.ndarray]:  # pragma: no cover - compiled
    """Zones of an ROI in one pass: ``(error code, (n_zones, 4) int64 table)``.

    ``mode`` bit 0: 26-connectivity (else 8-connectivity in-plane); bit 1: border distances in
    ``morph`` (city-block, 6-connectivity, or 4 in-plane). The work arrays cover the bounding
    box of ``morph`` (bit 1) or ``mask`` with a one-voxel background frame. Zones are labelled
    by union-find over the backward neighbours in raster order (equalities found by whole-array
    compares that vectorise), with each set's size and smallest distance kept at its root, the
    set's first voxel; the roots in raster order are the zones.
    """
    three_d = (mode & 1) != 0
    with_dist = (mode & 2) != 0
    nz, ny, nx = levels.shape
    # one pass over the input: checks, bounding box, ROI voxel positions, x range of each row,
    # and the framed work arrays of the input's extent
    fy, fx = ny + 2, nx + 2
    grid = np.zeros((nz + 2) * fy * fx, dtype=np.int32)  # level inside the ROI, 0 elsewhere
    dist = np.zeros(grid.size if with_dist else 1, dtype=np.int32)  # > 0 inside morph
    far = np.int32(min(grid.size, 2**30))
    pos = np.empty(nz * ny * nx, dtype=np.int64)
    first = np.ones((nz + 2) * fy, dtype=np.int64)
    last = np.zeros((nz + 2) * fy, dtype=np.int64)
    z0, y0, x0 = nz, ny, nx
    z1 = y1 = x1 = -1
    n_roi = 0
    for z in range(nz):
        for y in range(ny):
            row = (z + 1) * fy + y + 1
            base = row * fx + 1
            lo_x = nx
            hi_x = -1
            for x in range(nx):
                inside = mask[z, y, x]
                outer = morph[z, y, x] if with_dist else inside
                if inside:
                    v = levels[z, y, x]
                    if not outer:
                        return _ZONE_OUTSIDE_MORPH, np.empty((0, 4), dtype=np.int64)
                    if v < 1 or v > n_levels:
                        return _ZONE_BAD_LEVEL, np.empty((0, 4), dtype=np.int64)
                    grid[base + x] = v
                    pos[n_roi] = base + x
                    n_roi += 1
                if outer:
                    if with_dist:
                        dist[base + x] = far
                    lo_x = min(lo_x, x)
                    hi_x = x
            if hi_x >= 0:
                first[row] = lo_x + 1
                last[row] = hi_x + 1
                z0 = min(z0, z)
                z1 = z
                y0 = min(y0, y)
                y1 = max(y1, y)
                x0 = min(x0, lo_x)
                x1 = max(x1, hi_x)
    if n_roi == 0:
        return _ZONE_EMPTY, np.empty((0, 4), dtype=np.int64)
    pz, py, px = z1 - z0 + 3, y1 - y0 + 3, x1 - x0 + 3
    if pz * py * px < grid.size:  # cut to the bounding box (input not cut to it already)
        cut = np.zeros(pz * py * px, dtype=np.int32)
        cut_dist = np.zeros(cut.size if with_dist else 1, dtype=np.int32)
        cut_first = np.ones(pz * py, dtype=np.int64)
        cut_last = np.zeros(pz * py, dtype=np.int64)
        for z in range(z0, z1 + 1):
            for y in range(y0, y1 + 1):
                src = ((z + 1) * fy + y + 1) * fx + x0 + 1
                dst = ((z - z0 + 1) * py + y - y0 + 1) * px + 1
                cut[dst : dst + px - 2] = grid[src : src + px - 2]
                if with_dist:
                    cut_dist[dst : dst + px - 2] = dist[src : src + px - 2]
                cut_first[(z - z0 + 1) * py + y - y0 + 1] = first[(z + 1) * fy + y + 1] - x0
                cut_last[(z - z0 + 1) * py + y - y0 + 1] = last[(z + 1) * fy + y + 1] - x0
        for t in range(n_roi):
            q = pos[t]
            zf = q // (fy * fx)
            yf = (q // fx) % fy
            xf = q % fx
            pos[t] = ((zf - z0) * py + yf - y0) * px + xf - x0
        grid = cut
        dist = cut_dist
        first = cut_first
        last = cut_last
    plane = py * px
    n = pz * plane
    if with_dist:
        _border_distance_kernel(dist, pz, py, px, three_d, first, last)
    back = np.empty(13, dtype=np.int64)
    for dy in range(-1, 2):
        for dx in range(-1, 2):
            back[(dy + 1) * 3 + dx + 1] = -plane + dy * px + dx
    for dx in range(-1, 2):
        back[10 + dx] = -px + dx
    back[12] = -1
    lo = plane + px + 1
    hi = n - plane - px - 1
    inner = grid[lo:hi]
    bits = np.zeros(hi - lo, dtype=np.int16)
    for k in range(0 if three_d else 9, 13):
        other = grid[lo + back[k] : hi + back[k]]
        b = np.int16(1 << k)
        for i in range(hi - lo):
            if inner[i] == other[i]:
                bits[i] |= b
    log2 = _LOG2_MOD37
    parent = np.empty(n, dtype=np.int32)  # parent[p] < p for every non-root
    size = np.empty(n, dtype=np.int32)  # at roots: voxel count of the set
    near = dist if with_dist else np.zeros(1, dtype=np.int32)  # at roots: smallest distance
    # every ROI voxel starts as a set of its own; those with an equal backward neighbour are
    # linked below (never to become roots again), the others are the candidate zones
    linked = np.empty(n_roi, dtype=np.int64)
    firsts = np.empty(n_roi + 1, dtype=np.int64)
    n_linked = 0
    n_firsts = 0
    for t in range(n_roi):
        p = pos[t]
        some = bits[p - lo] != 0
        linked[n_linked] = p
        n_linked += some
        firsts[n_firsts] = p
        n_firsts += not some
    for t in range(n_firsts):
        p = firsts[t]
        parent[p] = p
        size[p] = 1
    for t in range(n_linked):
        p = linked[t]
        parent[p] = p
        size[p] = 1
        m = np.int64(bits[p - lo])
        m &= (_KEEP_LEFT | (1 << 12)) if m & (1 << 12) else -1
        m &= _KEEP_UP if m & (1 << 10) else -1
        m &= _KEEP_BELOW if m & (1 << 4) else -1
        root = p
        while True:
            low = m & -m
            m ^= low
            r = p + back[log2[low % 37]]
            # find: two hops cover almost every set of these small zones; the loop is rare
            r2 = parent[parent[r]]
            parent[r] = r2
            r = r2
            while parent[r] != r:
                parent[r] = parent[parent[r]]
                r = parent[r]
            top = min(r, root)
            other = max(r, root)
            parent[other] = top
            size[top] += size[other] if other != top else 0
            if with_dist:
                near[top] = min(near[top], near[other])
            root = top
            if m == 0:
                break
    # the zones: the candidates still roots, in raster order
    n_zones = 0
    for t in range(n_firsts):
        p = firsts[t]
        firsts[n_zones] = p
        n_zones += parent[p] == p
    table = np.empty((n_zones, 4), dtype=np.int64)
    for t in range(n_zones):
        p = firsts[t]
        table[t, 0] = grid[p]
        table[t, 1] = size[p]
        table[t, 2] = p // plane
        table[t, 3] = near[p] if with_dist else 0
    return _ZONE_OK, table


class Zones:
    """The zones of one ROI, labelled once per connectivity and shared by GLSZM and GLDZM.

    A zone is a set of connected ROI voxels of one grey level: 8-connected in-plane (``2D``
    and ``2.5D`` aggregations, zones never cross slices) or 26-connected (``3D``). Each zone's
    table row holds its grey level, its voxel count, the index of its first slice (in an
    internal frame: only the order of slices is meaningful) and, when distances are asked
    for, its GLDZM distance: the smallest city-block distance of its voxels to the nearest
    voxel outside the morphological mask (4-connectivity in-plane, 6 in 3D; beyond the array
    counts as outside, so a voxel on the border has distance 1).

    Parameters
    ----------
    levels : numpy.ndarray
        Discretised grey levels ``(z, y, x)``, ``1..n_levels`` inside ``mask``.
    mask : numpy.ndarray
        Boolean (intensity) ROI of the same shape.
    n_levels : int
        Number of grey levels ``Ng``.
    morphological_mask : numpy.ndarray, optional
        Mask the border distances are measured in; ``mask`` by default. Must hold ``mask``.
    distances : bool
        Compute the border distances (GLDZM); GLSZM alone needs none.

    Notes
    -----
    Labelling is lazy: :meth:`table` labels on first use for each connectivity and keeps the
    result. Inputs are validated then (the errors of
    :func:`prepare_levels`, and :class:`~smartimaging.exceptions.GeometryMismatchError` for a
    morphological mask of another shape or not holding ``mask``). The arrays are not copied:
    do not modify them while the object is in use. Input already cut to the ROI's bounding
    box is used as it is (int32 levels and boolean masks need no conversion). There is no
    lock: two threads asking for the same table at once may both label it (same result).

    References
    ----------
    IBSI 1, GLSZM (9SAK) and GLDZM (VMDZ): zones with linkage distance 1, distance to the ROI
    border in the morphological mask.
    """

    __slots__ = ("_arrays", "_distances", "_inputs", "_n_levels", "_tables")

    def __init__(
        self,
        levels: np.ndarray,
        mask: np.ndarray,
        *,
        n_levels: int,
        morphological_mask: np.ndarray | None = None,
        distances: bool = True,
    ) -> None:
        self._inputs = (levels, mask, morphological_mask)
        self._n_levels = n_levels
        self._distances = bool(distances)
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._tables: list[np.ndarray | None] = [None, None]

    @property
    def morphological_mask(self) -> np.ndarray | None:
        """The morphological mask given (``None``: distances are measured in ``mask``)."""
        return self._inputs[2]

    @property
    def has_distances(self) -> bool:
        """Whether the tables hold border distances."""
        return self._distances

    def built_from(
        self, levels: np.ndarray, mask: np.ndarray, morphological_mask: np.ndarray | None = None
    ) -> bool:
        """Whether these zones were built from these very arrays (identity, not equality)."""
        lv, mk, mm = self._inputs
        return lv is levels and mk is mask and mm is morphological_mask

    def table(self, *, three_d: bool, family: str = "texture") -> np.ndarray:
        """Zone table ``(n_zones, 4)`` int64 for 2D (in-plane) or 3D connectivity.

        Columns: :data:`ZONE_LEVEL`, :data:`ZONE_SIZE`, :data:`ZONE_SLICE`,
        :data:`ZONE_DISTANCE` (0 when built without distances). Rows follow the raster order
        of each zone's first voxel.

        Raises
        ------
        EmptyMaskError, FeatureError, GeometryMismatchError, ConfigError
            Invalid input (see :class:`Zones`); ``family`` names the caller in the message.
        """
        t = self._tables[three_d]
        if t is None:
            lv, mk, mm = self._checked(family)
            mode = (1 if three_d else 0) | (2 if self._distances else 0)
            code, t = _zone_table_kernel(lv, mk, mm, self._n_levels, mode)
            if code != _ZONE_OK:
                self._raise_invalid(family)
            self._tables[three_d] = t
        return t

    def _checked(self, family: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The kernel's arrays: int32 levels and boolean masks of one 3D shape."""
        if self._arrays is not None:
            return self._arrays
        levels, mask, morph = self._inputs
        levels = levels if isinstance(levels, np.ndarray) else np.asarray(levels)
        mask = mask if isinstance(mask, np.ndarray) else np.asarray(mask)
        if morph is not None and not isinstance(morph, np.ndarray):
            morph = np.asarray(morph)
        n_levels = self._n_levels
        if (
            levels.ndim != 3
            or mask.shape != levels.shape
            or (morph is not None and morph.shape != levels.shape)
            or isinstance(n_levels, bool)
            or not isinstance(n_levels, int | np.integer)
            or n_levels < 1
        ):
            self._raise_invalid(family)
        mk = mask if mask.dtype == np.bool_ else mask.astype(bool)
        mm = mk if morph is None else (morph if morph.dtype == np.bool_ else morph.astype(bool))
        lv = levels
        if lv.dtype != np.int32:
            # validated first: the conversion of levels outside 1..Ng could wrap
            prepare_levels(levels, mask, n_levels=n_levels, pad=0, family=family)
            lv = np.where(mk, levels, 0).astype(np.int32)
        self._n_levels = int(n_levels)
        self._arrays = (lv, mk, mm)
        return self._arrays

    def _raise_invalid(self, family: str) -> NoReturn:
        """Raise the error the input deserves (the checks of the per-family code, in order)."""
        levels, mask, morph = self._inputs
        prepare_levels(levels, mask, n_levels=self._n_levels, pad=0, family=family)
        roi = np.asarray(mask, dtype=bool)
        if morph is not None:
            mm = np.asarray(morph, dtype=bool)
            if mm.shape != roi.shape:
                raise GeometryMismatchError(
                    f"{family}: morphological_mask shape {mm.shape} differs from mask shape {roi.shape}"
                )
            if np.any(roi & ~mm):
                raise GeometryMismatchError(
                    f"{family}: the intensity mask has voxels outside morphological_mask; "
                    "re-segmentation only removes voxels, so pass the mask before re-segmentation "
                    "as morphological_mask"
                )
        raise FeatureError(f"{family}: the zones of this ROI could not be labelled")  # pragma: no cover


# --------------------------------------------------------------------------------------------
# features of (grey level x size) matrices: GLRLM, GLSZM, GLDZM, NGLDM share their formulas
# --------------------------------------------------------------------------------------------
#: Generic names of the quantities returned by :func:`size_matrix_features`; "j" is the second
#: matrix index (run length, zone size, zone distance, dependence count).
MatrixFeatureNames = (
    "sje", "lje", "lge", "hge", "sjlge", "sjhge", "ljlge", "ljhge",
    "glnu", "glnu_norm", "jnu", "jnu_norm", "perc", "gl_var", "j_var", "entr", "energy",
)  # fmt: skip


_N_SIZE_FEATURES = len(MatrixFeatureNames)


@numba.njit(cache=True, nogil=True, inline="always")
def _store_size_row(
    out: np.ndarray,
    sje: float,
    lje: float,
    lge: float,
    hge: float,
    sjlge: float,
    sjhge: float,
    ljlge: float,
    ljhge: float,
    per_i: np.ndarray,
    per_j: np.ndarray,
    ns: float,
    n_voxels: float,
    gl_var: float,
    j_var: float,
    entr: float,
    energy: float,
) -> None:  # pragma: no cover - compiled
    """The 17 generic features (:data:`MatrixFeatureNames` order) into ``out``, from the sums
    over the cells and the counts per grey level (``per_i``) and per size (``per_j``)."""
    sum_i2 = 0.0
    for v in per_i:
        sum_i2 += v * v
    sum_j2 = 0.0
    for v in per_j:
        sum_j2 += v * v
    out[0] = sje
    out[1] = lje
    out[2] = lge
    out[3] = hge
    out[4] = sjlge
    out[5] = sjhge
    out[6] = ljlge
    out[7] = ljhge
    out[8] = sum_i2 / ns
    out[9] = sum_i2 / ns**2
    out[10] = sum_j2 / ns
    out[11] = sum_j2 / ns**2
    out[12] = ns / n_voxels
    out[13] = gl_var
    out[14] = j_var
    out[15] = entr
    out[16] = energy


@numba.njit(cache=True, nogil=True)
def _cell_features(
    ci: np.ndarray, cj: np.ndarray, cm: np.ndarray, n_cells: int, n_voxels: float, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """The 17 generic features of the aggregated non-zero cells ``(ci, cj, cm)[:n_cells]``."""
    ns = 0.0
    max_i = 0
    max_j = 0
    for c in range(n_cells):
        ns += cm[c]
        max_i = max(max_i, ci[c])
        max_j = max(max_j, cj[c])
    per_i = np.zeros(max_i + 1)
    per_j = np.zeros(max_j + 1)
    sje = lje = lge = hge = sjlge = sjhge = ljlge = ljhge = 0.0
    mu_i = mu_j = entr = energy = 0.0
    for c in range(n_cells):
        fi = float(ci[c])
        fj = float(cj[c])
        p = cm[c] / ns
        i2 = fi * fi
        j2 = fj * fj
        per_i[ci[c]] += cm[c]
        per_j[cj[c]] += cm[c]
        sje += p / j2
        lje += p * j2
        lge += p / i2
        hge += p * i2
        sjlge += p / (i2 * j2)
        sjhge += p * i2 / j2
        ljlge += p * j2 / i2
        ljhge += p * i2 * j2
        mu_i += fi * p
        mu_j += fj * p
        entr -= p * np.log2(p)
        energy += p * p
    gl_var = 0.0
    j_var = 0.0
    for c in range(n_cells):
        p = cm[c] / ns
        gl_var += (ci[c] - mu_i) ** 2 * p
        j_var += (cj[c] - mu_j) ** 2 * p
    _store_size_row(
        out, sje, lje, lge, hge, sjlge, sjhge, ljlge, ljhge, per_i, per_j, ns, n_voxels,
        gl_var, j_var, entr, energy,
    )  # fmt: skip


@numba.njit(cache=True, nogil=True)
def _dense_features_kernel(mats: np.ndarray, n_voxels: np.ndarray) -> np.ndarray:  # pragma: no cover
    n_mats, n_i, n_j = mats.shape
    out = np.empty((n_mats, 17))
    ci = np.empty(n_i * n_j, dtype=np.int64)
    cj = np.empty(n_i * n_j, dtype=np.int64)
    cm = np.empty(n_i * n_j)
    for k in range(n_mats):
        n_cells = 0
        for i in range(n_i):
            for j in range(n_j):
                v = mats[k, i, j]
                if v != 0:
                    ci[n_cells] = i + 1
                    cj[n_cells] = j + 1
                    cm[n_cells] = v
                    n_cells += 1
        _cell_features(ci, cj, cm, n_cells, n_voxels[k], out[k])
    return out


@numba.njit(cache=True, nogil=True)
def _pair_features_kernel(
    i: np.ndarray, j: np.ndarray, w: np.ndarray, n_voxels: float
) -> np.ndarray:  # pragma: no cover - compiled
    width = 0
    for v in j:
        width = max(width, v)
    width += 1
    code = i * width + j
    order = np.argsort(code, kind="mergesort")
    n = code.size
    ci = np.empty(n, dtype=np.int64)
    cj = np.empty(n, dtype=np.int64)
    cm = np.empty(n)
    n_cells = 0
    for t in range(n):
        q = order[t]
        if n_cells > 0 and code[q] == code[order[t - 1]]:
            cm[n_cells - 1] += w[q]
        else:
            ci[n_cells] = i[q]
            cj[n_cells] = j[q]
            cm[n_cells] = w[q]
            n_cells += 1
    out = np.empty(17)
    _cell_features(ci, cj, cm, n_cells, n_voxels, out)
    return out


@numba.njit(cache=True, nogil=True)
def _stable_order(key: np.ndarray, order: np.ndarray, max_key: int) -> np.ndarray:  # pragma: no cover
    """``order`` stably re-sorted by ``key[order]`` (counting sort, keys ``0..max_key``)."""
    start = np.zeros(max_key + 2, dtype=np.int64)
    for t in range(order.size):
        start[key[order[t]] + 1] += 1
    for k in range(1, max_key + 2):
        start[k] += start[k - 1]
    out = np.empty_like(order)
    for t in range(order.size):
        q = order[t]
        k = key[q]
        out[start[k]] = q
        start[k] += 1
    return out


@numba.njit(cache=True, nogil=True)
def _zone_features_kernel(table: np.ndarray, column: int, per_slice: bool) -> np.ndarray:  # pragma: no cover
    """Generic features of zone tables: one row per slice (``per_slice``), then all zones."""
    n = table.shape[0]
    level = np.ascontiguousarray(table[:, 0])
    jval = np.ascontiguousarray(table[:, column])
    max_l = max_j = max_z = 0
    for t in range(n):
        max_l = max(max_l, level[t])
        max_j = max(max_j, jval[t])
        max_z = max(max_z, table[t, 2])
    ci = np.empty(n, dtype=np.int64)
    cj = np.empty(n, dtype=np.int64)
    cm = np.empty(n)
    if not per_slice and (max_l + 1) * (max_j + 1) <= 4 * n + 4096:
        # one small dense matrix: its non-zero cells read row by row are in (i, j) order
        width = max_j + 1
        counts = np.zeros((max_l + 1) * width, dtype=np.int64)
        n_voxels = 0
        for t in range(n):
            counts[level[t] * width + jval[t]] += 1
            n_voxels += table[t, 1]
        n_cells = 0
        for c in range(counts.size):
            if counts[c] != 0:
                ci[n_cells] = c // width
                cj[n_cells] = c % width
                cm[n_cells] = counts[c]
                n_cells += 1
        out = np.empty((1, 17))
        _cell_features(ci, cj, cm, n_cells, float(n_voxels), out[0])
        return out
    # cells in (i, j) order, the order in which the per-matrix kernel sums them
    order = _stable_order(jval, np.arange(n), max_j)
    order = _stable_order(level, order, max_l)
    n_slices = 0
    by_slice = order
    if per_slice:
        zkey = np.ascontiguousarray(table[:, 2])
        by_slice = _stable_order(zkey, order, max_z)
        last = -1
        for t in range(n):
            if zkey[by_slice[t]] != last:
                last = zkey[by_slice[t]]
                n_slices += 1
    out = np.empty((n_slices + 1, 17))
    start = 0
    for row in range(n_slices + 1):
        # rows < n_slices: the zones of one slice, in turn; the last row: every zone
        if row < n_slices:
            seq = by_slice
            z = table[seq[start], 2]
            stop = start
            while stop < n and table[seq[stop], 2] == z:
                stop += 1
        else:
            seq = order
            start = 0
            stop = n
        n_cells = 0
        n_voxels = 0
        for t in range(start, stop):
            q = seq[t]
            n_voxels += table[q, 1]
            if n_cells > 0 and ci[n_cells - 1] == level[q] and cj[n_cells - 1] == jval[q]:
                cm[n_cells - 1] += 1.0
            else:
                ci[n_cells] = level[q]
                cj[n_cells] = jval[q]
                cm[n_cells] = 1.0
                n_cells += 1
        _cell_features(ci, cj, cm, n_cells, float(n_voxels), out[row])
        start = stop
    return out


def zone_features(table: np.ndarray, *, column: int, per_slice: bool) -> np.ndarray:
    """Generic size-matrix features of a zone table, in one compiled call.

    Parameters
    ----------
    table : numpy.ndarray
        Non-empty ``(n_zones, 4)`` int64 zone table of :meth:`Zones.table`.
    column : int
        Second matrix index: :data:`ZONE_SIZE` (GLSZM) or :data:`ZONE_DISTANCE` (GLDZM).
    per_slice : bool
        Also compute one row per slice holding zones (2D aggregation of in-plane zones).

    Returns
    -------
    numpy.ndarray
        ``(n_rows, 17)`` float64 in the order of :data:`MatrixFeatureNames`: one row per slice
        in slice order when ``per_slice``, then the row of every zone together. ``Nv`` of a row
        is the voxel count of its zones. Equal to :func:`size_features_pairs` of the same
        (level, size or distance) pairs.
    """
    return np.asarray(_zone_features_kernel(table, int(column), bool(per_slice)))


def size_features_dense(mats: np.ndarray, n_voxels: np.ndarray) -> np.ndarray:
    """Generic features of each dense grey-level x size matrix of a stack, in one compiled pass.

    Parameters
    ----------
    mats : numpy.ndarray
        ``(n_matrices, Ng, Nj)`` counts; cell ``[k, i - 1, j - 1]`` is ``m_ij`` of matrix ``k``.
        Every matrix must hold at least one count.
    n_voxels : numpy.ndarray
        ``Nv`` of each matrix (percentage feature).

    Returns
    -------
    numpy.ndarray
        ``(n_matrices, 17)`` float64, columns in the order of :data:`MatrixFeatureNames`.
    """
    stack = np.ascontiguousarray(mats, dtype=np.float64)
    if stack.ndim != 3:
        raise ValueError(f"mats must be a (n, Ng, Nj) stack, got shape {stack.shape}")
    if stack.shape[0] and not np.all(stack.sum(axis=(1, 2)) > 0):
        raise ValueError("every matrix of the stack must hold at least one count")
    nv = np.ascontiguousarray(n_voxels, dtype=np.float64).reshape(stack.shape[0])
    return np.asarray(_dense_features_kernel(stack, nv))


def size_features_pairs(
    i: np.ndarray, j: np.ndarray, n_voxels: float, weights: np.ndarray | None = None
) -> np.ndarray:
    """Generic features of a grey-level x size matrix given as (possibly repeated) index pairs.

    Parameters
    ----------
    i, j : numpy.ndarray
        Grey level (``1..Ng``) and second index (``>= 1``) of each entry (e.g. one per zone);
        repeated pairs are summed into one cell.
    n_voxels : float
        ``Nv`` for the percentage feature.
    weights : numpy.ndarray, optional
        Count of each entry (default 1).

    Returns
    -------
    numpy.ndarray
        ``(17,)`` float64 in the order of :data:`MatrixFeatureNames`.
    """
    ii = np.ascontiguousarray(i, dtype=np.int64)
    jj = np.ascontiguousarray(j, dtype=np.int64)
    if ii.size == 0:
        raise ValueError("size_features_pairs needs at least one (i, j) entry")
    w = np.ones(ii.size) if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
    return np.asarray(_pair_features_kernel(ii, jj, w, float(n_voxels)))


def size_matrix_features(
    i: np.ndarray, j: np.ndarray, counts: np.ndarray, n_voxels: float
) -> dict[str, float]:
    """Features of a grey-level x size matrix given as sparse triples.

    Parameters
    ----------
    i, j : numpy.ndarray
        Grey level (``1..Ng``) and second index (``>= 1``) of each non-zero cell.
    counts : numpy.ndarray
        Cell counts ``m_ij`` (> 0).
    n_voxels : float
        ``Nv`` for the percentage feature.

    Returns
    -------
    dict
        Keys of :data:`MatrixFeatureNames`: short/long ``j`` emphasis, low/high grey level
        emphasis and their four combinations, grey level and ``j`` non-uniformity (plain and
        normalised), percentage ``Ns / Nv``, grey level and ``j`` variance, entropy (log2) and
        energy (sum of squared probabilities).
    """
    row = size_features_pairs(i, j, n_voxels, weights=counts)
    return dict(zip(MatrixFeatureNames, (float(v) for v in row), strict=True))


def mean_rows(rows: np.ndarray) -> np.ndarray:
    """Column means of a ``(n_rows, n_features)`` array, each column reduced contiguously.

    Reducing each column as one contiguous vector gives exactly ``np.mean`` of the list of
    its values (pairwise summation), the rule of :func:`mean_features`.
    """
    return np.ascontiguousarray(np.asarray(rows, dtype=np.float64).T).mean(axis=1)


def dense_to_triples(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero cells of a dense ``(Ng, Nj)`` matrix as 1-based ``(i, j, count)`` triples."""
    ii, jj = np.nonzero(matrix)
    return ii + 1, jj + 1, matrix[ii, jj]


def triples_from_pairs(
    i: np.ndarray, j: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aggregate repeated ``(i, j)`` pairs into unique cells with summed counts."""
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    if i.size == 0:
        return i, j, np.zeros(0)
    w = np.ones(i.size) if weights is None else np.asarray(weights, dtype=np.float64)
    width = int(j.max()) + 1
    code = i * width + j
    uniq, inv = np.unique(code, return_inverse=True)
    cnt = np.bincount(inv, weights=w)
    return uniq // width, uniq % width, cnt


# --------------------------------------------------------------------------------------------
# texture-a: one-call fast paths of GLCM, GLRLM, NGTDM and NGLDM
# --------------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _pairwise_block(a: np.ndarray, lo: int, n: int) -> float:  # pragma: no cover - compiled
    """NumPy's pairwise sum of a block of at most 128 values (8 interleaved partial sums)."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = 8
    stop = n - (n % 8)
    while i < stop:
        b = lo + i
        r0 += a[b]
        r1 += a[b + 1]
        r2 += a[b + 2]
        r3 += a[b + 3]
        r4 += a[b + 4]
        r5 += a[b + 5]
        r6 += a[b + 6]
        r7 += a[b + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@numba.njit(cache=True, nogil=True)
def pairwise_sum(a: np.ndarray, lo: int, n: int) -> float:  # pragma: no cover - compiled
    """Sum of ``a[lo:lo + n]`` in NumPy's pairwise order, so it equals ``np.sum`` bit for bit.

    NumPy reduces a contiguous float64 vector by blocks of 8 partial sums (up to 128 values)
    and halves longer vectors recursively (the first half a multiple of 8); repeating that
    order makes a compiled mean or sum give exactly the value of the NumPy code it replaces.
    The recursion runs on an explicit stack (Numba's cache cannot reload recursive functions).
    """
    if n <= 128:
        return _pairwise_block(a, lo, n)
    f_lo = np.empty(128, dtype=np.int64)
    f_n = np.empty(128, dtype=np.int64)
    f_state = np.zeros(128, dtype=np.int64)
    vals = np.empty(128)
    top = 0
    n_vals = 0
    f_lo[0] = lo
    f_n[0] = n
    f_state[0] = 0
    while top >= 0:
        m = f_n[top]
        if m <= 128:
            vals[n_vals] = _pairwise_block(a, f_lo[top], m)
            n_vals += 1
            top -= 1
            continue
        half = m // 2
        half -= half % 8
        state = f_state[top]
        if state == 0:
            f_state[top] = 1
            f_lo[top + 1] = f_lo[top]
            f_n[top + 1] = half
            f_state[top + 1] = 0
            top += 1
        elif state == 1:
            f_state[top] = 2
            f_lo[top + 1] = f_lo[top] + half
            f_n[top + 1] = m - half
            f_state[top + 1] = 0
            top += 1
        else:
            vals[n_vals - 2] = vals[n_vals - 2] + vals[n_vals - 1]
            n_vals -= 1
            top -= 1
    return vals[0]


@numba.njit(cache=True, nogil=True)
def mean_rows_into(rows: np.ndarray, n_rows: int, out: np.ndarray) -> None:  # pragma: no cover
    """Column means of ``rows[:n_rows]`` into ``out``, equal bit for bit to :func:`mean_rows`."""
    col = np.empty(n_rows)
    for c in range(rows.shape[1]):
        for r in range(n_rows):
            col[r] = rows[r, c]
        out[c] = pairwise_sum(col, 0, n_rows) / n_rows


@numba.njit(cache=True, nogil=True)
def _pad_roi_kernel(
    levels: np.ndarray, mask: np.ndarray, pad: int
) -> tuple[np.ndarray, int, int, int]:  # pragma: no cover - compiled
    """Bounding box of ``mask`` (uint8), padded by ``pad`` voxels of level 0.

    Returns the padded int32 box (levels inside the mask, 0 elsewhere), the smallest and largest
    level inside the mask and the number of mask voxels (0: empty mask, nothing else is valid).
    Both inputs are C-contiguous; rows are scanned without branches (vectorised), and only rows
    holding mask voxels are searched for the box's x extent.
    """
    nz, ny, nx = levels.shape
    big = np.iinfo(np.int32).max
    small = np.iinfo(np.int32).min
    z0, y0, x0 = nz, ny, nx
    z1 = y1 = x1 = -1
    n_roi = 0
    vmin = big
    vmax = small
    for z in range(nz):
        for y in range(ny):
            lr = levels[z, y]
            mr = mask[z, y]
            c = 0
            lo = big
            hi = small
            for x in range(nx):
                m = mr[x]
                v = lr[x]
                c += m
                lo = min(lo, v if m != 0 else big)
                hi = max(hi, v if m != 0 else small)
            if c == 0:
                continue
            n_roi += c
            vmin = min(vmin, lo)
            vmax = max(vmax, hi)
            z0 = min(z0, z)
            z1 = max(z1, z)
            y0 = min(y0, y)
            y1 = max(y1, y)
            x = 0
            while mr[x] == 0:
                x += 1
            x0 = min(x0, x)
            x = nx - 1
            while mr[x] == 0:
                x -= 1
            x1 = max(x1, x)
    if n_roi == 0:
        return np.zeros((1, 1, 1), dtype=np.int32), 0, 0, 0
    out = np.zeros((z1 - z0 + 1 + 2 * pad, y1 - y0 + 1 + 2 * pad, x1 - x0 + 1 + 2 * pad), dtype=np.int32)
    width = x1 - x0 + 1
    for z in range(z0, z1 + 1):
        for y in range(y0, y1 + 1):
            dst = out[z - z0 + pad, y - y0 + pad, pad : pad + width]
            lr = levels[z, y, x0 : x0 + width]
            mr = mask[z, y, x0 : x0 + width]
            for x in range(width):
                dst[x] = lr[x] if mr[x] != 0 else 0
    return out, int(vmin), int(vmax), n_roi


def prepare_roi(
    levels: np.ndarray, mask: np.ndarray, *, n_levels: int, pad: int = 1, family: str = "texture"
) -> np.ndarray:
    """:func:`prepare_levels` in one compiled call for int32 levels and a boolean mask.

    Same result (a C-contiguous int32 padded box) and the same errors; other dtypes go
    through :func:`prepare_levels`. Views (the ROI box cut from a larger array) are copied to
    contiguous arrays first, which the compiled scan vectorises.

    Raises
    ------
    GeometryMismatchError, EmptyMaskError, FeatureError, ConfigError
        As :func:`prepare_levels`.
    """
    if (
        not isinstance(levels, np.ndarray)
        or not isinstance(mask, np.ndarray)
        or levels.dtype != np.int32
        or mask.dtype != np.bool_
        or levels.ndim != 3
        or mask.shape != levels.shape
        or isinstance(n_levels, bool)
        or not isinstance(n_levels, int | np.integer)
        or n_levels < 1
    ):
        return prepare_levels(levels, mask, n_levels=n_levels, pad=pad, family=family)
    out, vmin, vmax, n_roi = _pad_roi_kernel(
        np.ascontiguousarray(levels), np.ascontiguousarray(mask).view(np.uint8), int(pad)
    )
    if n_roi == 0:
        raise EmptyMaskError(f"{family}: the ROI mask contains no voxel; texture features need at least one")
    if vmin < 1 or vmax > n_levels:
        raise FeatureError(
            f"{family}: grey levels inside the ROI span {vmin}..{vmax} but must lie in 1..{n_levels} "
            "(n_levels); discretise the image first or pass the right n_levels"
        )
    return np.asarray(out)


@numba.njit(cache=True, nogil=True)
def count_memo(cmax: int, n_cells: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Empty memo of ``p = count / total`` and ``log2(p)`` for the counts ``1 .. min(cmax, 4 n_cells + 64)``.

    The fast matrix kernels (:func:`size_row_dense`, the GLCM row) see mostly small counts, so
    they compute ``p`` and ``log2(p)`` once per distinct count (:func:`memo_p_log2`) rather
    than once per cell; the same divisions give the same values bit for bit.
    """
    n_memo = min(cmax, 4 * n_cells + 64) + 1
    memo_p = np.empty(n_memo)
    memo_lg = np.empty(n_memo)
    for c in range(1, n_memo):
        memo_p[c] = -1.0
    return memo_p, memo_lg


@numba.njit(cache=True, nogil=True, inline="always")
def memo_p_log2(
    count: int, total: float, memo_p: np.ndarray, memo_lg: np.ndarray
) -> tuple[float, float]:  # pragma: no cover - compiled
    """``count / total`` and its log2, from the memo of :func:`count_memo` when ``count`` is in it."""
    if count < memo_p.shape[0]:
        uc = np.uint64(count)
        if memo_p[uc] < 0.0:
            memo_p[uc] = count / total
            memo_lg[uc] = np.log2(memo_p[uc])
        return memo_p[uc], memo_lg[uc]
    p = count / total
    return p, np.log2(p)


@numba.njit(cache=True, nogil=True, inline="always")
def memo_p(count: int, total: float, memo: np.ndarray) -> float:  # pragma: no cover - compiled
    """``count / total`` from a memo that :func:`memo_p_log2` has filled for every count it holds."""
    return memo[np.uint64(count)] if count < memo.shape[0] else count / total


@numba.njit(cache=True, nogil=True)
def size_row_dense(mat: np.ndarray, n_voxels: float, out: np.ndarray) -> None:  # pragma: no cover
    """The 17 generic features of one dense ``(Ng, Nj)`` int64 count matrix into ``out``.

    Bit for bit the values of :func:`size_features_dense` (same cells, same summation order):
    the non-zero cells are gathered in row-major order without branches, and ``p`` and
    ``log2(p)`` are computed once per distinct small count instead of once per cell.
    """
    n_i, n_j = mat.shape
    n_all = n_i * n_j
    # unsigned indices: NumPy's negative-index wrap-around costs more than the work itself
    u1 = np.uint64(1)
    cell_i = np.empty(n_all, dtype=np.uint64)
    cell_j = np.empty(n_all, dtype=np.uint64)
    n_cells_u = np.uint64(0)
    ns_int = 0
    cmax = 0
    for i in range(n_i):
        for j in range(n_j):
            v = mat[i, j]
            cell_i[n_cells_u] = i
            cell_j[n_cells_u] = j
            n_cells_u += np.uint64(v != 0)
            ns_int += v
            cmax = max(cmax, v)
    n_cells = int(n_cells_u)
    ns = float(ns_int)
    memo, memo_lg = count_memo(cmax, n_cells)
    per_i = np.zeros(n_i)
    per_j = np.zeros(n_j)
    sje = lje = lge = hge = sjlge = sjhge = ljlge = ljhge = 0.0
    mu_i = mu_j = entr = energy = 0.0
    for t in range(n_cells):
        ii = cell_i[t]
        jj = cell_j[t]
        cnt = mat[ii, jj]
        cm = float(cnt)
        fi = float(ii + u1)
        fj = float(jj + u1)
        p, lg = memo_p_log2(cnt, ns, memo, memo_lg)
        i2 = fi * fi
        j2 = fj * fj
        per_i[ii] += cm
        per_j[jj] += cm
        sje += p / j2
        lje += p * j2
        lge += p / i2
        hge += p * i2
        sjlge += p / (i2 * j2)
        sjhge += p * i2 / j2
        ljlge += p * j2 / i2
        ljhge += p * i2 * j2
        mu_i += fi * p
        mu_j += fj * p
        entr -= p * lg
        energy += p * p
    gl_var = 0.0
    j_var = 0.0
    for t in range(n_cells):
        ii = cell_i[t]
        jj = cell_j[t]
        cnt = mat[ii, jj]
        p = memo_p(cnt, ns, memo)
        gl_var += (np.int64(ii) + 1 - mu_i) ** 2 * p
        j_var += (np.int64(jj) + 1 - mu_j) ** 2 * p
    _store_size_row(
        out, sje, lje, lge, hge, sjlge, sjhge, ljlge, ljhge, per_i, per_j, ns, n_voxels,
        gl_var, j_var, entr, energy,
    )  # fmt: skip
