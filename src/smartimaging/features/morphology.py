"""Morphological features (IBSI 1 family ``HCUG``).

Three representations of the ROI are used, as the IBSI prescribes:

* a triangle mesh of the morphological mask (marching cubes on the mask padded by one empty
  voxel, iso-level 0.5, in mm): volume, surface area and everything derived from them, the
  maximum 3D diameter, bounding box and convex hull;
* the voxel-centre point set of the morphological mask (mm): centre of mass and the principal
  component analysis (axis lengths, elongation, flatness, approximate enclosing ellipsoid);
  the covariance matrix uses the ``n - 1`` normalisation, which reproduces the IBSI reference;
* the voxel-centre point set and intensities of the intensity mask: intensity-weighted centre
  of mass, integrated intensity, Moran's I and Geary's C.

Distances are computed from voxel indices times the voxel spacing, so they are in mm and do not
depend on the image orientation (the direction matrix is a rotation).

How it is computed (everything but Moran's I and Geary's C in one compiled pass over the mask
and two small compiled steps; no value differs from the former scikit-image + Qhull + NumPy
implementation by more than rounding, ``tests/features/test_morphology_fast.py``):

* **Mesh.** scikit-image's Lewiner marching cubes triangulates each cube from its 8 corner values
  alone (ambiguous faces and interiors included), and on a binary mask at level 0.5 a cube has
  one of 256 configurations. :func:`_mc_tables` runs scikit-image once on every configuration
  of a single cube to get its triangles; :func:`_shape_kernel` walks the cubes of the padded
  bounding box in scikit-image's order and adds the same per-face volume and area terms in
  the same blocks of 128 faces, so the volume and area equal those of the scikit-image mesh.
  No vertex or face array is built.
* **Convex hull.** Every mesh vertex lies half-way along a voxel edge: the midpoint of a voxel
  face between the mask and its outside (scikit-image also puts a vertex at the centre of some
  ambiguous cubes; it lies between two edge midpoints of that cube, so it is no hull corner).
  The kernel keeps the first and last of these on each line along the last axis,
  :func:`_hull_candidates` the corners of the 2D hulls of each axis-aligned plane, and
  :func:`_hull_kernel` builds the hull (Quickhull) with exact integer orientation tests in
  half-voxel units: no tolerance, coplanar and collinear points are handled exactly. Its
  volume and area (:func:`_hull_measures`) are exact up to the final rounding; the maximum
  diameter and the bounding box come from its vertices.
* **Moments.** The same pass counts the voxels and sums their indices exactly (integers): the
  centre of mass, and the covariance matrix centred on the exact mean index, so an axis on
  which all voxels share one index has variance exactly 0 (a line or a plane of voxels gets
  the documented zero axes at any spacing). One more pass gives the intensity-weighted centre
  of mass (intensity sums per index along each axis, then compensated index-weighted sums).

Not implemented: the oriented minimum bounding box and the minimum-volume enclosing ellipsoid
densities (IBSI gives no reliable reference value for them on the digital phantom).

Conventions for degenerate ROIs (documented, never NaN):

* one voxel: the principal axes are all 0; elongation and flatness are 1 (no axis is longer
  than another); the approximate enclosing ellipsoid has zero volume and area and its densities
  are reported as 0.
* voxels on a line or in a plane: the missing axes are 0, flatness (and elongation on a line)
  is 0, and the ellipsoid volume density is 0 (zero comparison volume).
* constant intensities, or a single voxel in the intensity mask: Moran's I = 0 and Geary's C =
  1, the values of no spatial autocorrelation; when the intensities sum to 0 the
  intensity-weighted centre of mass is undefined and the centre of mass shift is 0.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numba
import numpy as np
from scipy import fft as sp_fft
from skimage.measure import marching_cubes

from smartimaging.exceptions import EmptyMaskError, FeatureError
from smartimaging.features.registry import FeatureDef
from smartimaging.image import Image, Mask, check_same_geometry

__all__ = ["FEATURES", "compute", "spatial_autocorrelation", "spatial_autocorrelation_grid"]

_FAMILY = "morphology"

#: Feature definitions, keys and identifiers as in the IBSI reference table.
FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("morph.vol", "Volume (mesh)", _FAMILY, "RNU0", "mm^3"),
    FeatureDef("morph.approx.vol", "Volume (voxel counting)", _FAMILY, "YEKZ", "mm^3"),
    FeatureDef("morph.area", "Surface area (mesh)", _FAMILY, "C0JK", "mm^2"),
    FeatureDef("morph.av", "Surface to volume ratio", _FAMILY, "2PR5", "1/mm"),
    FeatureDef("morph.comp.1", "Compactness 1", _FAMILY, "SKGS"),
    FeatureDef("morph.comp.2", "Compactness 2", _FAMILY, "BQWJ"),
    FeatureDef("morph.sph.dispr", "Spherical disproportion", _FAMILY, "KRCK"),
    FeatureDef("morph.sphericity", "Sphericity", _FAMILY, "QCFX"),
    FeatureDef("morph.asphericity", "Asphericity", _FAMILY, "25C7"),
    FeatureDef("morph.com", "Centre of mass shift", _FAMILY, "KLMA", "mm"),
    FeatureDef("morph.diam", "Maximum 3D diameter", _FAMILY, "L0JK", "mm"),
    FeatureDef("morph.pca.major", "Major axis length", _FAMILY, "TDIC", "mm"),
    FeatureDef("morph.pca.minor", "Minor axis length", _FAMILY, "P9VJ", "mm"),
    FeatureDef("morph.pca.least", "Least axis length", _FAMILY, "7J51", "mm"),
    FeatureDef("morph.pca.elongation", "Elongation", _FAMILY, "Q3CK"),
    FeatureDef("morph.pca.flatness", "Flatness", _FAMILY, "N17B"),
    FeatureDef("morph.v.dens.aabb", "Volume density (axis-aligned bounding box)", _FAMILY, "PBX1"),
    FeatureDef("morph.a.dens.aabb", "Area density (axis-aligned bounding box)", _FAMILY, "R59B"),
    FeatureDef("morph.v.dens.aee", "Volume density (approximate enclosing ellipsoid)", _FAMILY, "6BDE"),
    FeatureDef("morph.a.dens.aee", "Area density (approximate enclosing ellipsoid)", _FAMILY, "RDD2"),
    FeatureDef("morph.v.dens.conv.hull", "Volume density (convex hull)", _FAMILY, "R3ER"),
    FeatureDef("morph.a.dens.conv.hull", "Area density (convex hull)", _FAMILY, "7T7F"),
    FeatureDef("morph.integ.int", "Integrated intensity", _FAMILY, "99N0"),
    FeatureDef("morph.moran.i", "Moran's I index", _FAMILY, "N365"),
    FeatureDef("morph.geary.c", "Geary's C measure", _FAMILY, "NPT7"),
)

_LEGENDRE_TERMS = 20  # IBSI: stop the ellipsoid area series after nu = 20
# Moran's I / Geary's C: rough costs (ns, one core) of one pair of the direct loop, one element
# times log2(length) of an FFT line, and one element of the Toeplitz pass; they choose the
# cheapest exact path. _FFT_COST_FACTOR scales the FFT side (0 forces it, inf forces the pairs),
# _TOEPLITZ_COST = 0 (inf) forces the Toeplitz pass (the three-axis FFT) on the FFT side.
_PAIR_COST = 2.2
_FFT_LINE_COST = 0.7
_TOEPLITZ_COST = 0.4
_FFT_COST_FACTOR = 1.0
# weight spectra up to this many elements (8 MiB) are cached; larger ones are recomputed
_CACHE_MAX_ELEMENTS = 2**20


@functools.cache
def _mc_tables() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's Lewiner marching-cubes triangles of one cube, for each of its 256 configurations.

    Configuration ``c`` sets corner ``(dz, dy, dx)`` inside when bit ``4 dz + 2 dy + dx`` of ``c``
    is set. Returns the number of triangles per configuration ``(256,)`` and the triangles
    ``(256, 12, 3, 3)``: three vertices in half-voxel units ``(z, y, x)`` relative to the cube's
    first corner (each coordinate 0, 1 or 2), in scikit-image's order (faces and vertices within a
    face). Lewiner's method triangulates each cube from its 8 values alone (ambiguous faces and
    interiors included), so running it on every configuration of a single cube gives its exact
    lookup table; computed once per process.
    """
    counts = np.zeros(256, dtype=np.int64)
    tris = np.zeros((256, 12, 3, 3), dtype=np.int64)
    cube = np.zeros((2, 2, 2), dtype=np.float32)
    for c in range(1, 255):
        for bit in range(8):
            cube[bit >> 2 & 1, bit >> 1 & 1, bit & 1] = c >> bit & 1
        verts, faces, _normals, _values = marching_cubes(cube, level=0.5)
        counts[c] = faces.shape[0]
        tris[c, : faces.shape[0]] = np.rint(2.0 * verts).astype(np.int64)[faces]
    return counts, tris


@numba.njit(cache=True, nogil=True)
def _shape_kernel(
    mask: np.ndarray, spacing: np.ndarray, counts: np.ndarray, tris: np.ndarray
) -> tuple[int, float, float, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """One pass over a non-empty boolean mask for everything its shape features need.

    Returns the voxel count; six times the signed volume and twice the area of the
    marching-cubes mesh (the mask cropped to its bounding box and padded by one empty voxel,
    iso-level 0.5, exactly the mesh of :func:`skimage.measure.marching_cubes`: the triangles of
    each cube come from :func:`_mc_tables` in scikit-image's cube and face order, and the
    per-face terms are added in blocks of 128 faces); the mesh vertices that can be corners of
    its convex hull (midpoints of the voxel faces between the mask and its outside, the first
    and last on each line along the last axis, in half-voxel units of the padded box, ``(m, 3)``);
    the voxel-centre mean (mm, axis order of the array, indices of ``mask``; from the exact sums
    of the indices) and the covariance matrix of the voxel centres (``n - 1`` normalisation).
    """
    nz, ny, nx = mask.shape
    sz, sy, sx = spacing[0], spacing[1], spacing[2]
    lo0, lo1, lo2 = nz, ny, nx
    hi0, hi1, hi2 = -1, -1, -1
    n = 0
    i0 = 0
    i1 = 0
    i2 = 0
    for i in range(nz):
        for j in range(ny):
            for k in range(nx):
                if mask[i, j, k]:
                    n += 1
                    lo0 = min(lo0, i)
                    hi0 = max(hi0, i)
                    lo1 = min(lo1, j)
                    hi1 = max(hi1, j)
                    lo2 = min(lo2, k)
                    hi2 = max(hi2, k)
                    i0 += i
                    i1 += j
                    i2 += k
    mean = np.array([(i0 / n) * sz, (i1 / n) * sy, (i2 / n) * sx])  # from exact index sums
    # covariance (second pass) and the padded bounding box; the centring uses the exact index
    # sums, so that an axis on which every voxel has the same index has variance exactly 0
    c_0, c_1, c_2 = i0 / n, i1 / n, i2 / n
    pz, py, px = hi0 - lo0 + 3, hi1 - lo1 + 3, hi2 - lo2 + 3
    padded = np.zeros((pz, py, px), dtype=np.uint8)
    c00 = c01 = c02 = c11 = c12 = c22 = 0.0
    for i in range(lo0, hi0 + 1):
        for j in range(lo1, hi1 + 1):
            for k in range(lo2, hi2 + 1):
                if mask[i, j, k]:
                    padded[i - lo0 + 1, j - lo1 + 1, k - lo2 + 1] = 1
                    d0 = (i - c_0) * sz
                    d1 = (j - c_1) * sy
                    d2 = (k - c_2) * sx
                    c00 += d0 * d0
                    c01 += d0 * d1
                    c02 += d0 * d2
                    c11 += d1 * d1
                    c12 += d1 * d2
                    c22 += d2 * d2
    cov = np.zeros((3, 3))
    if n > 1:
        f = 1.0 / (n - 1)
        cov[0, 0] = c00 * f
        cov[1, 1] = c11 * f
        cov[2, 2] = c22 * f
        cov[0, 1] = cov[1, 0] = c01 * f
        cov[0, 2] = cov[2, 0] = c02 * f
        cov[1, 2] = cov[2, 1] = c12 * f
    # marching cubes over the padded box, cubes in scikit-image's order (z, y, x)
    vol = 0.0
    area = 0.0
    vol_blk = 0.0
    area_blk = 0.0
    face = 0
    for z in range(pz - 1):
        for y in range(py - 1):
            c = (np.int64(padded[z, y, 0]) << 1) | (np.int64(padded[z, y + 1, 0]) << 3)
            c |= (np.int64(padded[z + 1, y, 0]) << 5) | (np.int64(padded[z + 1, y + 1, 0]) << 7)
            for x in range(px - 1):
                c = (
                    ((c >> 1) & 0x55)
                    | (np.int64(padded[z, y, x + 1]) << 1)
                    | (np.int64(padded[z, y + 1, x + 1]) << 3)
                )
                c |= (np.int64(padded[z + 1, y, x + 1]) << 5) | (np.int64(padded[z + 1, y + 1, x + 1]) << 7)
                for t in range(counts[c]):
                    a0 = (2 * z + tris[c, t, 0, 0]) * 0.5 * sz
                    a1 = (2 * y + tris[c, t, 0, 1]) * 0.5 * sy
                    a2 = (2 * x + tris[c, t, 0, 2]) * 0.5 * sx
                    b0 = (2 * z + tris[c, t, 1, 0]) * 0.5 * sz
                    b1 = (2 * y + tris[c, t, 1, 1]) * 0.5 * sy
                    b2 = (2 * x + tris[c, t, 1, 2]) * 0.5 * sx
                    e0 = (2 * z + tris[c, t, 2, 0]) * 0.5 * sz
                    e1 = (2 * y + tris[c, t, 2, 1]) * 0.5 * sy
                    e2 = (2 * x + tris[c, t, 2, 2]) * 0.5 * sx
                    # a . (b x e), as the former per-face kernel
                    vol_blk += a0 * (b1 * e2 - b2 * e1) + a1 * (b2 * e0 - b0 * e2) + a2 * (b0 * e1 - b1 * e0)
                    u0, u1, u2 = b0 - a0, b1 - a1, b2 - a2
                    v0, v1, v2 = e0 - a0, e1 - a1, e2 - a2
                    x0 = u1 * v2 - u2 * v1
                    x1 = u2 * v0 - u0 * v2
                    x2 = u0 * v1 - u1 * v0
                    area_blk += np.sqrt(x0 * x0 + x1 * x1 + x2 * x2)
                    if face % 128 == 127:
                        vol += vol_blk
                        area += area_blk
                        vol_blk = 0.0
                        area_blk = 0.0
                    face += 1
    # mesh vertices (one per voxel face between the mask and its outside) that can be hull
    # corners: of those on one line along the last axis, only the first and the last
    lo = np.full((2 * pz, 2 * py), 2 * px, dtype=np.int64)
    hi = np.full((2 * pz, 2 * py), -1, dtype=np.int64)
    for z in range(1, pz - 1):
        for y in range(1, py - 1):
            for x in range(1, px - 1):
                if padded[z, y, x]:
                    for ax in range(3):
                        for step in (-1, 1):
                            nb_z = z + step if ax == 0 else z
                            nb_y = y + step if ax == 1 else y
                            nb_x = x + step if ax == 2 else x
                            if not padded[nb_z, nb_y, nb_x]:
                                hz = 2 * z + (step if ax == 0 else 0)
                                hy = 2 * y + (step if ax == 1 else 0)
                                hx = 2 * x + (step if ax == 2 else 0)
                                lo[hz, hy] = min(lo[hz, hy], hx)
                                hi[hz, hy] = max(hi[hz, hy], hx)
    m = 0
    for hz in range(2 * pz):
        for hy in range(2 * py):
            if hi[hz, hy] >= 0:
                m += 1 if hi[hz, hy] == lo[hz, hy] else 2
    verts = np.empty((m, 3), dtype=np.int64)
    m = 0
    for hz in range(2 * pz):
        for hy in range(2 * py):
            if hi[hz, hy] >= 0:
                verts[m, 0], verts[m, 1], verts[m, 2] = hz, hy, lo[hz, hy]
                m += 1
                if hi[hz, hy] != lo[hz, hy]:
                    verts[m, 0], verts[m, 1], verts[m, 2] = hz, hy, hi[hz, hy]
                    m += 1
    return n, vol + vol_blk, area + area_blk, verts, mean, cov


@numba.njit(cache=True, nogil=True)
def _plane_hull_kernel(q: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Mask of the points that are corners of the 2D convex hull of their plane, on every axis.

    ``q`` holds non-negative integer coordinates. For each axis, the points sharing a
    coordinate on that axis form a plane; a point that is not a corner of its plane's convex
    hull is a convex combination of other points and cannot be a corner of the 3D hull. Per
    plane, only the first and last point of each row can be corners; the rows come in order
    of their coordinate, so Andrew's monotone chain (collinear points dropped) runs on them
    without sorting.
    """
    n = q.shape[0]
    keep = np.ones(n, dtype=np.bool_)
    span = np.zeros(3, dtype=np.int64)
    for i in range(n):
        for ax in range(3):
            span[ax] = max(span[ax], q[i, ax] + 1)
    big = np.iinfo(np.int64).max
    for ax in range(3):
        a = 1 if ax == 0 else 0
        b = 1 if ax == 2 else 2
        lo = np.full((span[ax], span[a]), big, dtype=np.int64)
        hi = np.full((span[ax], span[a]), -1, dtype=np.int64)
        for i in range(n):
            pl, r, v = q[i, ax], q[i, a], q[i, b]
            if v < lo[pl, r]:
                lo[pl, r] = v
            if v > hi[pl, r]:
                hi[pl, r] = v
        corner_lo = np.zeros((span[ax], span[a]), dtype=np.bool_)
        corner_hi = np.zeros((span[ax], span[a]), dtype=np.bool_)
        # candidate points of one plane in (row, value) order, flagged low (0) or high (1)
        ca = np.empty(2 * span[a], dtype=np.int64)
        cb = np.empty(2 * span[a], dtype=np.int64)
        cf = np.empty(2 * span[a], dtype=np.int64)
        stack = np.empty(4 * span[a] + 2, dtype=np.int64)
        for pl in range(span[ax]):
            m = 0
            for r in range(span[a]):
                if hi[pl, r] < 0:
                    continue
                ca[m] = r
                cb[m] = lo[pl, r]
                cf[m] = 0
                m += 1
                if hi[pl, r] != lo[pl, r]:
                    ca[m] = r
                    cb[m] = hi[pl, r]
                    cf[m] = 1
                    m += 1
            if m == 0:
                continue
            if m <= 2:
                for t in range(m):
                    if cf[t] == 0:
                        corner_lo[pl, ca[t]] = True
                    else:
                        corner_hi[pl, ca[t]] = True
                continue
            k = 0
            for t in range(m):  # lower chain
                while k >= 2:
                    o, e = stack[k - 2], stack[k - 1]
                    if (ca[e] - ca[o]) * (cb[t] - cb[o]) - (cb[e] - cb[o]) * (ca[t] - ca[o]) <= 0:
                        k -= 1
                    else:
                        break
                stack[k] = t
                k += 1
            lower = k + 1
            for t in range(m - 2, -1, -1):  # upper chain
                while k >= lower:
                    o, e = stack[k - 2], stack[k - 1]
                    if (ca[e] - ca[o]) * (cb[t] - cb[o]) - (cb[e] - cb[o]) * (ca[t] - ca[o]) <= 0:
                        k -= 1
                    else:
                        break
                stack[k] = t
                k += 1
            for u in range(k):
                t = stack[u]
                if cf[t] == 0:
                    corner_lo[pl, ca[t]] = True
                else:
                    corner_hi[pl, ca[t]] = True
        for i in range(n):
            pl, r, v = q[i, ax], q[i, a], q[i, b]
            if not ((v == lo[pl, r] and corner_lo[pl, r]) or (v == hi[pl, r] and corner_hi[pl, r])):
                keep[i] = False
    return keep


def _hull_candidates(verts: np.ndarray) -> np.ndarray:
    """The mesh vertices that can be corners of the convex hull (half-voxel units, ``(m, 3)``).

    Marching cubes on a binary mask puts every vertex half-way along a voxel edge, so the
    vertices lie on a half-voxel grid and fall into axis-aligned planes. A vertex that is not
    a corner of the 2D convex hull of its plane (for any of the three axes) is a convex
    combination of other vertices, so it is no corner of the 3D hull: dropping those leaves
    the hull (its volume, area, corners, diameter and extent) unchanged and gives Qhull a
    fraction of the points.
    """
    if verts.shape[0] < 4:
        return verts
    keep = _plane_hull_kernel(verts)
    return verts[keep] if int(np.count_nonzero(keep)) >= 4 else verts


@numba.njit(cache=True, nogil=True)
def _orient(pts: np.ndarray, a: int, b: int, c: int, q: int) -> int:  # pragma: no cover - compiled
    """``((b - a) x (c - a)) . (q - a)`` in exact integers: > 0 when ``q`` is above face ``abc``."""
    u0, u1, u2 = pts[b, 0] - pts[a, 0], pts[b, 1] - pts[a, 1], pts[b, 2] - pts[a, 2]
    v0, v1, v2 = pts[c, 0] - pts[a, 0], pts[c, 1] - pts[a, 1], pts[c, 2] - pts[a, 2]
    w0, w1, w2 = pts[q, 0] - pts[a, 0], pts[q, 1] - pts[a, 1], pts[q, 2] - pts[a, 2]
    return (u1 * v2 - u2 * v1) * w0 + (u2 * v0 - u0 * v2) * w1 + (u0 * v1 - u1 * v0) * w2


@numba.njit(cache=True, nogil=True)
def _hull_kernel(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Exact 3D convex hull of integer points (Quickhull with integer orientation tests).

    ``pts`` is ``(n, 3)`` int64, not all in one plane. Returns the hull's triangles ``(f, 3)``
    (point indices, counter-clockwise seen from outside; coplanar facets come as several
    triangles) and a mask of the points that are vertices of those triangles. Every predicate is
    an exact integer determinant, so no tolerance is involved: a point in the plane of a face is
    not above it, and points on the hull that are no corner may or may not be returned as
    vertices (they change no volume, area, extent or diameter).

    Face slots of removed faces are reused: a closed triangulated surface on ``v <= n`` vertices
    has ``2 v - 4`` triangles, and one step adds at most ``n`` before it removes the visible
    ones, so ``3 n + 8`` slots always suffice.
    """
    n = pts.shape[0]
    # initial tetrahedron: a point of minimal first coordinate, the farthest point from it, the
    # largest triangle, the largest volume
    i0 = 0
    for i in range(1, n):
        if pts[i, 0] < pts[i0, 0]:
            i0 = i
    i1, best = i0, -1
    for i in range(n):
        d0, d1, d2 = pts[i, 0] - pts[i0, 0], pts[i, 1] - pts[i0, 1], pts[i, 2] - pts[i0, 2]
        d = d0 * d0 + d1 * d1 + d2 * d2
        if d > best:
            i1, best = i, d
    i2, best = i0, -1
    for i in range(n):
        u0, u1, u2 = pts[i1, 0] - pts[i0, 0], pts[i1, 1] - pts[i0, 1], pts[i1, 2] - pts[i0, 2]
        v0, v1, v2 = pts[i, 0] - pts[i0, 0], pts[i, 1] - pts[i0, 1], pts[i, 2] - pts[i0, 2]
        c0, c1, c2 = u1 * v2 - u2 * v1, u2 * v0 - u0 * v2, u0 * v1 - u1 * v0
        d = c0 * c0 + c1 * c1 + c2 * c2
        if d > best:
            i2, best = i, d
    i3, best = i0, -1
    for i in range(n):
        d = abs(_orient(pts, i0, i1, i2, i))
        if d > best:
            i3, best = i, d
    if _orient(pts, i0, i1, i2, i3) > 0:
        i1, i2 = i2, i1
    cap = 3 * n + 8
    fv = np.empty((cap, 3), dtype=np.int64)
    fn = np.empty((cap, 3), dtype=np.int64)
    alive = np.zeros(cap, dtype=np.bool_)
    head = np.full(cap, -1, dtype=np.int64)
    mark = np.full(cap, -1, dtype=np.int64)
    vis = np.zeros(cap, dtype=np.bool_)
    queued = np.zeros(cap, dtype=np.bool_)
    nxt = np.full(n, -1, dtype=np.int64)
    # faces of the tetrahedron (i3 lies below i0 i1 i2), outward orientation
    fv[0, 0], fv[0, 1], fv[0, 2] = i0, i1, i2
    fv[1, 0], fv[1, 1], fv[1, 2] = i0, i3, i1
    fv[2, 0], fv[2, 1], fv[2, 2] = i1, i3, i2
    fv[3, 0], fv[3, 1], fv[3, 2] = i2, i3, i0
    for f in range(4):
        alive[f] = True
        for k in range(3):
            a, b = fv[f, k], fv[f, (k + 1) % 3]
            for g in range(4):
                for j in range(3):
                    if fv[g, j] == b and fv[g, (j + 1) % 3] == a:
                        fn[f, k] = g
    nf = 4  # slots used so far
    for i in range(n):
        if i == i0 or i == i1 or i == i2 or i == i3:
            continue
        for f in range(4):
            if _orient(pts, fv[f, 0], fv[f, 1], fv[f, 2], i) > 0:
                nxt[i] = head[f]
                head[f] = i
                break
    todo = np.empty(cap, dtype=np.int64)  # faces that may have points above them (one entry per slot)
    n_todo = 0
    for f in range(4):
        if head[f] >= 0:
            todo[n_todo] = f
            n_todo += 1
            queued[f] = True
    free = np.empty(cap, dtype=np.int64)  # slots of removed faces
    n_free = 0
    start_of = np.full(n, -1, dtype=np.int64)
    end_of = np.full(n, -1, dtype=np.int64)
    stack = np.empty(cap, dtype=np.int64)
    visible = np.empty(cap, dtype=np.int64)
    hor_f = np.empty(n, dtype=np.int64)
    hor_k = np.empty(n, dtype=np.int64)
    new = np.empty(n, dtype=np.int64)
    it = 0
    while n_todo > 0:
        n_todo -= 1
        f = todo[n_todo]
        queued[f] = False
        if not alive[f] or head[f] < 0:
            continue
        # farthest point above f
        p, best = -1, -1
        q = head[f]
        while q >= 0:
            d = _orient(pts, fv[f, 0], fv[f, 1], fv[f, 2], q)
            if d > best:
                p, best = q, d
            q = nxt[q]
        # faces visible from p (a connected set) and the horizon edges around them
        it += 1
        mark[f] = it
        vis[f] = True
        stack[0] = f
        ns, nv, nh = 1, 0, 0
        while ns > 0:
            ns -= 1
            g = stack[ns]
            visible[nv] = g
            nv += 1
            for k in range(3):
                h = fn[g, k]
                if mark[h] != it:
                    mark[h] = it
                    vis[h] = _orient(pts, fv[h, 0], fv[h, 1], fv[h, 2], p) > 0
                    if vis[h]:
                        stack[ns] = h
                        ns += 1
                if not vis[h]:
                    hor_f[nh] = g
                    hor_k[nh] = k
                    nh += 1
        # one new face per horizon edge, from the edge to p
        for e in range(nh):
            g, k = hor_f[e], hor_k[e]
            a, b, h = fv[g, k], fv[g, (k + 1) % 3], fn[g, k]
            if n_free > 0:
                n_free -= 1
                nw = free[n_free]
            else:
                nw = nf
                nf += 1
            new[e] = nw
            fv[nw, 0], fv[nw, 1], fv[nw, 2] = a, b, p
            fn[nw, 0] = h
            for j in range(3):
                if fn[h, j] == g and fv[h, j] == b:
                    fn[h, j] = nw
            alive[nw] = True
            head[nw] = -1
            mark[nw] = -1
            start_of[a] = nw
            end_of[b] = nw
        for e in range(nh):
            nw = new[e]
            fn[nw, 1] = start_of[fv[nw, 1]]
            fn[nw, 2] = end_of[fv[nw, 0]]
        # points above the removed faces go to the first new face they are above (or are inside)
        for v in range(nv):
            g = visible[v]
            q = head[g]
            while q >= 0:
                q_next = nxt[q]
                if q != p:
                    for e in range(nh):
                        h = new[e]
                        if _orient(pts, fv[h, 0], fv[h, 1], fv[h, 2], q) > 0:
                            nxt[q] = head[h]
                            head[h] = q
                            break
                q = q_next
            head[g] = -1
            alive[g] = False
            free[n_free] = g
            n_free += 1
        for e in range(nh):
            h = new[e]
            if head[h] >= 0 and not queued[h]:
                todo[n_todo] = h
                n_todo += 1
                queued[h] = True
    m = 0
    for g in range(nf):
        if alive[g]:
            m += 1
    faces = np.empty((m, 3), dtype=np.int64)
    is_vertex = np.zeros(n, dtype=np.bool_)
    m = 0
    for g in range(nf):
        if alive[g]:
            for j in range(3):
                faces[m, j] = fv[g, j]
                is_vertex[fv[g, j]] = True
            m += 1
    return faces, is_vertex


@numba.njit(cache=True, nogil=True)
def _hull_measures(
    pts: np.ndarray, faces: np.ndarray, spacing: np.ndarray
) -> tuple[float, float]:  # pragma: no cover
    """Volume and area (mm) of the hull triangles of half-voxel integer points."""
    vol6 = 0
    f0 = spacing[1] * spacing[2] * 0.25
    f1 = spacing[0] * spacing[2] * 0.25
    f2 = spacing[0] * spacing[1] * 0.25
    area2 = 0.0
    o0, o1, o2 = pts[faces[0, 0], 0], pts[faces[0, 0], 1], pts[faces[0, 0], 2]
    for g in range(faces.shape[0]):
        a, b, c = faces[g, 0], faces[g, 1], faces[g, 2]
        u0, u1, u2 = pts[b, 0] - pts[a, 0], pts[b, 1] - pts[a, 1], pts[b, 2] - pts[a, 2]
        v0, v1, v2 = pts[c, 0] - pts[a, 0], pts[c, 1] - pts[a, 1], pts[c, 2] - pts[a, 2]
        c0, c1, c2 = u1 * v2 - u2 * v1, u2 * v0 - u0 * v2, u0 * v1 - u1 * v0
        vol6 += c0 * (pts[a, 0] - o0) + c1 * (pts[a, 1] - o1) + c2 * (pts[a, 2] - o2)
        x0, x1, x2 = c0 * f0, c1 * f1, c2 * f2
        area2 += np.sqrt(x0 * x0 + x1 * x1 + x2 * x2)
    volume = vol6 * (spacing[0] * spacing[1] * spacing[2] * 0.125) / 6.0
    return volume, area2 * 0.5


@numba.njit(cache=True, nogil=True)
def _max_distance_kernel(points: np.ndarray) -> float:  # pragma: no cover - compiled
    """Largest distance between two of the ``(n, 3)`` points (all pairs, no stored matrix)."""
    n = points.shape[0]
    best = 0.0
    for i in range(n - 1):
        p0, p1, p2 = points[i, 0], points[i, 1], points[i, 2]
        for j in range(i + 1, n):
            d0 = p0 - points[j, 0]
            d1 = p1 - points[j, 1]
            d2 = p2 - points[j, 2]
            d = d0 * d0 + d1 * d1 + d2 * d2
            if d > best:
                best = d
    return np.sqrt(best)


@numba.njit(cache=True, nogil=True)
def _weighted_sums_kernel(
    mask: np.ndarray, values: np.ndarray, spacing: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """``sum_i v_i p_i`` over the voxels of ``mask`` (C order, ``values`` in that order), in mm.

    The intensities are first summed per index along each axis (one array per axis), then those
    sums weighted by their index with Neumaier's compensated summation and scaled by the
    spacing: few roundings per voxel, and the rounding does not grow with the voxel count.
    """
    nz, ny, nx = mask.shape
    per_z = np.zeros(nz)
    per_y = np.zeros(ny)
    per_x = np.zeros(nx)
    t = 0
    for i in range(nz):
        plane = 0.0
        for j in range(ny):
            row = 0.0
            for k in range(nx):
                if mask[i, j, k]:
                    v = values[t]
                    t += 1
                    row += v
                    per_x[k] += v
            plane += row
            per_y[j] += row
        per_z[i] = plane
    out = np.empty(3)
    for ax in range(3):
        sums = per_z if ax == 0 else (per_y if ax == 1 else per_x)
        tot = 0.0
        comp = 0.0
        for idx in range(sums.shape[0]):
            x = idx * sums[idx]
            s = tot + x
            if abs(tot) >= abs(x):
                comp += (tot - s) + x
            else:
                comp += (x - s) + tot
            tot = s
        out[ax] = (tot + comp) * spacing[ax]
    return out


def _ellipsoid_area(a: float, b: float, c: float) -> float:
    """IBSI approximation of the area of an ellipsoid with semi-axes a >= b >= c.

    This is the Legendre series of the IBSI manual, cut after nu = 20, exactly as published:
    the IBSI reference values are computed with it. It equals the true area for a sphere but
    falls below it for eccentric ellipsoids (3, 2, 1: 52.8 vs 48.9 exact; 2, 1, 1: 17.3 vs
    21.5), so treat the area density (AEE) as the IBSI-defined quantity, not a geometric ratio.

    The series terms ``(alpha beta)^nu P_nu((alpha^2 + beta^2) / (2 alpha beta))`` are evaluated
    with the Legendre recurrence multiplied through by ``(alpha beta)^nu``, which stays finite
    when an eccentricity is 0 (spheroids, spheres).
    """
    if a <= 0.0:
        return 0.0
    alpha = np.sqrt(max(0.0, 1.0 - (b / a) ** 2))
    beta = np.sqrt(max(0.0, 1.0 - (c / a) ** 2))
    half_sum = (alpha**2 + beta**2) / 2.0  # = z * alpha * beta
    prod2 = (alpha * beta) ** 2
    q_prev, q = 1.0, half_sum  # Q_0, Q_1 with Q_nu = (alpha beta)^nu P_nu(z)
    total = 1.0 + q / (1.0 - 4.0)
    for nu in range(1, _LEGENDRE_TERMS):
        q_next = ((2 * nu + 1) * half_sum * q - nu * prod2 * q_prev) / (nu + 1)
        q_prev, q = q, q_next
        total += q / (1.0 - 4.0 * (nu + 1) ** 2)
    return float(4.0 * np.pi * a * b * total)


def _even_fast_len(n: int) -> int:
    """The smallest even FFT-friendly length ``>= n`` (even, so the weights fold onto a DCT-I)."""
    m = sp_fft.next_fast_len(n, real=True)
    while m % 2:
        m = sp_fft.next_fast_len(m + 1, real=True)
    return int(m)


def _inverse_distances(
    rows: np.ndarray, shape: tuple[int, int, int], spacing: tuple[float, ...]
) -> np.ndarray:
    """``1 / distance`` of the offsets ``(rows[a], b, c)`` voxels (0 for the zero offset)."""
    oz = rows[:, None, None] * spacing[0]
    oy = np.arange(shape[1], dtype=np.float64)[None, :, None] * spacing[1]
    ox = np.arange(shape[2], dtype=np.float64)[None, None, :] * spacing[2]
    r2 = oz**2 + oy**2 + ox**2
    if rows[0] == 0:
        r2[0, 0, 0] = np.inf
    return 1.0 / np.sqrt(r2)


@functools.lru_cache(maxsize=8)
def _weight_spectrum_octant(padded: tuple[int, ...], spacing: tuple[float, ...]) -> np.ndarray:
    """Spectrum of the inverse-distance weights on the circular offset grid, one octant.

    Index ``k`` along an axis of (even) length ``P`` stands for the offset ``k`` (``k <= P / 2``)
    or ``k - P``; the weight of offset 0 (a voxel with itself) is 0. The weights are even
    along every axis (``w[k] = w[P - k]``), so their discrete Fourier transform is real, even,
    and equal to the type-I DCT of the octant ``0 <= k <= P / 2``: one transform of an eighth
    of the grid instead of a real FFT of all of it. ``W[k] = octant[min(k, P - k)]`` per axis.
    The result is divided by the number of grid points, so that Parseval sums need no further
    scaling. Cached (read-only) per padded shape and spacing.
    """
    shape = (padded[0] // 2 + 1, padded[1] // 2 + 1, padded[2] // 2 + 1)
    octant = sp_fft.dctn(
        _inverse_distances(np.arange(shape[0], dtype=np.float64), shape, spacing), type=1, axes=(0, 1, 2)
    )
    octant /= float(np.prod(padded))
    octant = np.ascontiguousarray(octant)
    octant.flags.writeable = False
    return octant


@functools.lru_cache(maxsize=8)
def _weight_spectrum_planes(
    n_planes: int, padded: tuple[int, int], spacing: tuple[float, float, float]
) -> np.ndarray:
    """Per plane offset ``o`` (``0 <= o < n_planes``), the 2D spectrum of the weights ``w(o, ., .)``.

    Shape ``(n_planes, P1, 2 (P2 / 2 + 1))``: for every ``(k1, k2)`` of the half spectrum the
    real 2D DFT over the circular in-plane offsets (a DCT-I of the quadrant, as in
    :func:`_weight_spectrum_octant`), repeated for the real and imaginary parts of the spectra
    it multiplies, times 2 for the bins that stand for a mirrored pair (Hermitian symmetry of
    the real FFT) and divided by ``P1 P2``. Cached (read-only) per shape and spacing.
    """
    p1, p2 = padded
    quad = sp_fft.dctn(
        _inverse_distances(
            np.arange(n_planes, dtype=np.float64), (n_planes, p1 // 2 + 1, p2 // 2 + 1), spacing
        ),
        type=1,
        axes=(1, 2),
    )
    k1 = np.arange(p1)
    mult = np.full(p2 // 2 + 1, 2.0 / (p1 * p2))
    mult[0] = mult[-1] = 1.0 / (p1 * p2)
    planes = np.repeat(quad[:, np.minimum(k1, p1 - k1), :] * mult, 2, axis=2)
    planes = np.ascontiguousarray(planes)
    planes.flags.writeable = False
    return planes


@numba.njit(cache=True, nogil=True)
def _parseval_sums(
    spectra: np.ndarray, octant: np.ndarray
) -> tuple[float, float, float]:  # pragma: no cover - compiled
    """Weighted sums over the half spectrum of the mask (0), centred (1) and squared (2) fields.

    Returns ``sum W |M|^2``, ``sum W |D|^2`` and ``sum W Re(conj(M) G)`` over the full
    spectrum: the real FFTs hold half of the last axis, the other half mirrors it
    (Hermitian), so interior bins of the last axis count twice. Sums are accumulated per row,
    then per plane, then over planes (rounding like a pairwise sum, not a running one).
    """
    p0, p1, nh = spectra.shape[1], spectra.shape[2], spectra.shape[3]
    h0, h1 = p0 // 2, p1 // 2
    p_last = 2 * (octant.shape[2] - 1)
    mult = np.full(nh, 2.0)
    mult[0] = 1.0
    if p_last % 2 == 0:
        mult[nh - 1] = 1.0
    tot_w = 0.0
    tot_c = 0.0
    tot_g = 0.0
    for a in range(p0):
        ia = a if a <= h0 else p0 - a
        pl_w = 0.0
        pl_c = 0.0
        pl_g = 0.0
        for b in range(p1):
            ib = b if b <= h1 else p1 - b
            r_w = 0.0
            r_c = 0.0
            r_g = 0.0
            for c in range(nh):
                w = octant[ia, ib, c] * mult[c]
                m = spectra[0, a, b, c]
                d = spectra[1, a, b, c]
                g = spectra[2, a, b, c]
                r_w += w * (m.real * m.real + m.imag * m.imag)
                r_c += w * (d.real * d.real + d.imag * d.imag)
                r_g += w * (g.real * m.real + g.imag * m.imag)
            pl_w += r_w
            pl_c += r_c
            pl_g += r_g
        tot_w += pl_w
        tot_c += pl_c
        tot_g += pl_g
    return tot_w, tot_c, tot_g


@numba.njit(cache=True, nogil=True, fastmath=True)
def _toeplitz_self_pair(
    spectra: np.ndarray, planes: np.ndarray, k1: int, z: int
) -> tuple[float, float, float]:  # pragma: no cover
    """The plane pair ``(z, z)`` of :func:`_toeplitz_sums` (cross term doubled, as there)."""
    sw = 0.0
    sc = 0.0
    sg = 0.0
    for c in range(spectra.shape[3]):
        t = planes[0, k1, c]
        m = spectra[0, z, k1, c]
        d = spectra[1, z, k1, c]
        sw += t * (m * m)
        sc += t * (d * d)
        sg += 2.0 * t * (m * spectra[2, z, k1, c])
    return sw, sc, sg


@numba.njit(cache=True, nogil=True, fastmath=True)
def _toeplitz_sums(spectra: np.ndarray, planes: np.ndarray) -> tuple[float, float, float]:  # pragma: no cover
    """The three weighted sums from spectra transformed along the last two axes only.

    ``spectra`` is ``(3, B0, P1, 2 K)``: the 2D half spectra (real and imaginary parts
    interleaved) of the mask, centred and squared fields in each of the ``B0`` planes along
    the untransformed axis; ``planes`` comes from :func:`_weight_spectrum_planes`. Along that
    axis the weighted sum is a symmetric Toeplitz form, evaluated directly: for every plane
    pair ``z <= z2``, ``Re(conj(A_z) B_z2)`` weighted by the plane spectrum of ``w(z2 - z, ., .)``,
    pairs ``z < z2`` counting for both orders. Planes go two at a time (``z``, ``z + 1``), so
    that each plane ``z2`` is read once per two planes ``z``.
    """
    b0, p1, k2 = spectra.shape[1], spectra.shape[2], spectra.shape[3]
    tot_w = 0.0
    tot_c = 0.0
    tot_g = 0.0  # twice the cross sum until the end
    for k1 in range(p1):
        for za in range(0, b0 - 1, 2):
            zb = za + 1
            for z2 in range(zb, b0):
                oa = z2 - za
                fb = 1.0 if z2 == zb else 2.0
                sw = 0.0
                sc = 0.0
                sg = 0.0
                for c in range(k2):
                    ta = 2.0 * planes[oa, k1, c]
                    tb = fb * planes[oa - 1, k1, c]
                    m2 = spectra[0, z2, k1, c]
                    g2 = spectra[2, z2, k1, c]
                    ma = spectra[0, za, k1, c]
                    mb = spectra[0, zb, k1, c]
                    sw += m2 * (ta * ma + tb * mb)
                    sc += spectra[1, z2, k1, c] * (ta * spectra[1, za, k1, c] + tb * spectra[1, zb, k1, c])
                    sg += ta * (ma * g2 + m2 * spectra[2, za, k1, c]) + tb * (
                        mb * g2 + m2 * spectra[2, zb, k1, c]
                    )
                tot_w += sw
                tot_c += sc
                tot_g += sg
            sw, sc, sg = _toeplitz_self_pair(spectra, planes, k1, za)
            tot_w += sw
            tot_c += sc
            tot_g += sg
        if b0 % 2 == 1:
            sw, sc, sg = _toeplitz_self_pair(spectra, planes, k1, b0 - 1)
            tot_w += sw
            tot_c += sc
            tot_g += sg
    return tot_w, tot_c, 0.5 * tot_g


@numba.njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _pair_sums(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, d: np.ndarray
) -> tuple[float, float, float]:  # pragma: no cover - compiled
    """Sums over ordered pairs ``i != j`` of ``w``, ``w d_i d_j`` and ``w (d_i - d_j)^2``.

    ``w = 1 / distance``. Row ``i`` accumulates over ``j > i`` only and the totals are doubled,
    so each unordered pair is evaluated once. The points must be distinct: with NumPy's error
    model (no zero-division check, which lets the row loop run on SIMD lanes) a repeated point
    would give an infinite weight. Single-threaded on purpose: Numba's OpenMP threading layer
    aborts a process that forks after using it, and batch extraction forks worker processes.
    """
    n = x.shape[0]
    total_w = 0.0
    cross = 0.0
    sq = 0.0
    for i in range(n - 1):
        xi = x[i]
        yi = y[i]
        zi = z[i]
        di = d[i]
        w_tot = 0.0
        wd_tot = 0.0
        wd2_tot = 0.0
        for j in range(i + 1, n):
            dx = x[j] - xi
            dy = y[j] - yi
            dz = z[j] - zi
            w = 1.0 / np.sqrt(dx * dx + dy * dy + dz * dz)
            dj = d[j]
            w_tot += w
            wd_tot += w * dj
            wd2_tot += w * dj * dj
        total_w += w_tot
        cross += di * wd_tot
        sq += di * di * w_tot - 2.0 * di * wd_tot + wd2_tot
    return 2.0 * total_w, 2.0 * cross, 2.0 * sq


@numba.njit(cache=True, nogil=True)
def _roi_voxels(
    values: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:  # pragma: no cover - compiled
    """Voxel indices relative to the ROI's bounding box, intensities (C order), box size, and
    whether the intensities are all equal."""
    s0, s1, s2 = mask.shape
    n = 0
    lo0, lo1, lo2 = s0, s1, s2
    hi0, hi1, hi2 = -1, -1, -1
    for a in range(s0):
        for b in range(s1):
            first = -1
            last = -1
            for c in range(s2):
                if mask[a, b, c]:
                    n += 1
                    if first < 0:
                        first = c
                    last = c
            if first >= 0:
                lo0 = min(lo0, a)
                hi0 = max(hi0, a)
                lo1 = min(lo1, b)
                hi1 = max(hi1, b)
                lo2 = min(lo2, first)
                hi2 = max(hi2, last)
    idx = np.empty((n, 3), dtype=np.int64)
    vals = np.empty(n, dtype=np.float64)
    k = 0
    constant = True
    for a in range(lo0, hi0 + 1):
        for b in range(lo1, hi1 + 1):
            for c in range(lo2, hi2 + 1):
                if mask[a, b, c]:
                    idx[k, 0] = a - lo0
                    idx[k, 1] = b - lo1
                    idx[k, 2] = c - lo2
                    vals[k] = values[a, b, c]
                    constant = constant and vals[k] == vals[0]
                    k += 1
    box = np.array([hi0 - lo0 + 1, hi1 - lo1 + 1, hi2 - lo2 + 1], dtype=np.int64)
    return idx, vals, box, constant


@numba.njit(cache=True, nogil=True)
def _scatter_fields(
    fields: np.ndarray, idx: np.ndarray, d: np.ndarray, axes: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Write the mask (1), centred intensity and its square of voxel ``v`` at ``idx[v, axes]``."""
    a0, a1, a2 = axes[0], axes[1], axes[2]
    for v in range(d.shape[0]):
        i, j, k = idx[v, a0], idx[v, a1], idx[v, a2]
        fields[0, i, j, k] = 1.0
        fields[1, i, j, k] = d[v]
        fields[2, i, j, k] = d[v] * d[v]


def _sum_of_squares(d: np.ndarray) -> float:
    """``sum(d**2)`` by NumPy's pairwise summation.

    Not ``np.dot(d, d)``: OpenBLAS splits a dot product of more than about 10,000 values over
    its threads, whose idle workers then spin on the other cores for a while, slowing every
    thread that runs next (the second thread of :func:`smartimaging.features.extract.extract`
    ran 1.7x slower after a Moran's I of 40k voxels on the 2-core benchmark machine); its
    result also depended on the number of threads.
    """
    return float(np.add.reduce(d * d))


def _moran_geary(n: int, ss: float, total_w: float, cross: float, sq: float) -> tuple[float, float]:
    """Moran's I and Geary's C from the ordered-pair sums (each unordered pair counted twice)."""
    moran = n / total_w * cross / ss
    geary = (n - 1) / (2.0 * total_w) * sq / ss
    return float(moran), float(geary)


def spatial_autocorrelation(points: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Moran's I and Geary's C with inverse-distance weights over all voxel pairs.

    Exact (no sub-sampling): a compiled loop over the ``n (n - 1) / 2`` pairs
    that never stores a pairwise matrix (memory ``O(n)``, time ``O(n^2)``). For voxels on a
    grid, :func:`spatial_autocorrelation_grid` gives the same values much faster for large ROIs.

    Parameters
    ----------
    points : numpy.ndarray
        ``(n, 3)`` voxel-centre coordinates in mm, all distinct.
    values : numpy.ndarray
        ``(n,)`` intensities.

    Returns
    -------
    moran_i, geary_c : float
        See the module docstring for the constant-intensity convention.

    Raises
    ------
    FeatureError
        If two points coincide, or a coordinate or value is not finite.

    References
    ----------
    IBSI 1 manual: Moran's I index (N365), Geary's C measure (NPT7).
    """
    vals = np.asarray(values, dtype=np.float64)
    n = vals.size
    if n < 2 or float(vals.max()) == float(vals.min()):
        return 0.0, 1.0
    d = vals - float(np.mean(vals))
    ss = _sum_of_squares(d)
    pts = np.asarray(points, dtype=np.float64)
    total_w, cross, sq = _pair_sums(
        np.ascontiguousarray(pts[:, 0]),
        np.ascontiguousarray(pts[:, 1]),
        np.ascontiguousarray(pts[:, 2]),
        d,
    )
    if not (np.isfinite(total_w) and np.isfinite(cross) and np.isfinite(sq)):
        raise FeatureError(
            "Moran's I / Geary's C: two points coincide (infinite inverse-distance weight) or a "
            "coordinate or value is not finite; pass distinct, finite voxel centres and intensities"
        )
    return _moran_geary(n, ss, total_w, cross, sq)


def spatial_autocorrelation_grid(
    values: np.ndarray, mask: np.ndarray, *, spacing: tuple[float, float, float]
) -> tuple[float, float]:
    """Moran's I and Geary's C of the voxels of a mask, exploiting the regular voxel grid.

    On a grid the inverse-distance weight depends only on the offset between two voxels, so
    every all-pairs sum is a sum over offsets of a weight times a correlation of two fields
    (mask, centred intensity, squared centred intensity) over the ROI's bounding box. The
    axes are ordered shortest first. The fields are zero-padded to twice the box along the
    two longer axes (so nothing wraps around) and Fourier transformed along them (one real
    FFT, one complex FFT); by Parseval's theorem each in-plane weighted correlation is a sum
    over those 2D spectra weighted by the (real, even) 2D spectrum of the weights, a DCT-I of
    a quadrant, cached per shape and spacing. Along the shortest axis, of ``B0`` planes, the
    sum over plane pairs is a symmetric Toeplitz form evaluated directly in one compiled pass
    (``B0 (B0 + 1) / 2`` plane pairs per frequency): cheaper than padding and transforming a
    third axis while ``B0`` is small; beyond that (a cost model decides) the third axis is
    transformed as well and one compiled pass weights the 3D spectra (weights from a DCT-I of
    one octant). Time ``O(B log B)`` (``O(B B0)``) for a box of ``B`` voxels instead of
    ``O(n^2)``. Small ROIs, and ROIs that fill little of their box, use the direct pair loop
    of :func:`spatial_autocorrelation` (vectorised ``1 / sqrt``), whichever is cheaper.

    Every path sums the same terms exactly (no truncation, sub-sampling or cut-off): they
    agree with the exact pair sums up to floating-point rounding (about ``1e-13`` relative,
    asserted to ``1e-10`` in the tests). An ROI of constant intensity (or of one voxel) gives
    the no-autocorrelation values ``(0, 1)``.

    Parameters
    ----------
    values : numpy.ndarray
        Intensity array, axis order (z, y, x).
    mask : numpy.ndarray
        Boolean array of the same shape: the voxels taken into account.
    spacing : tuple of float
        Voxel spacing in mm in array axis order (z, y, x).

    Returns
    -------
    moran_i, geary_c : float

    References
    ----------
    IBSI 1 manual: Moran's I index (N365), Geary's C measure (NPT7).
    """
    idx, vals, box_arr, constant = _roi_voxels(
        np.ascontiguousarray(values, dtype=np.float64), np.ascontiguousarray(mask, dtype=np.bool_)
    )
    n = vals.size
    if n < 2 or constant:
        return 0.0, 1.0
    d = vals - float(np.mean(vals))
    ss = _sum_of_squares(d)
    box = [int(b) for b in box_arr]
    # axes shortest first: the shortest one is not transformed (Toeplitz pass), the longest
    # gets the real FFT
    axes = sorted(range(3), key=lambda a: (box[a], a))
    b0, b1, b2 = (box[a] for a in axes)
    sp = tuple(float(spacing[a]) for a in axes)
    p1, p2 = _even_fast_len(2 * b1 - 1), _even_fast_len(2 * b2 - 1)
    # rough costs in ns (measured on one core): the pair loop, the two FFT stages, and
    # either the Toeplitz pass or the third FFT stage plus the 3D weighting pass
    lines = 3.0 * b0 * (b1 * p2 * np.log2(p2) / 2.0 + (p2 // 2 + 1) * p1 * np.log2(p1))
    toeplitz = _TOEPLITZ_COST * p1 * p2 * b0 * (b0 + 1) / 2.0
    p0 = _even_fast_len(2 * b0 - 1)
    third = _FFT_LINE_COST * 3.0 * p1 * (p2 // 2 + 1) * p0 * (np.log2(p0) + 1.0)
    fft_cost = _FFT_COST_FACTOR * (_FFT_LINE_COST * lines + min(toeplitz, third) + 20_000.0)
    if _PAIR_COST * n * (n - 1) / 2.0 <= fft_cost:
        pts = idx * np.asarray(spacing, dtype=np.float64)
        total_w, cross, sq = _pair_sums(
            np.ascontiguousarray(pts[:, 0]),
            np.ascontiguousarray(pts[:, 1]),
            np.ascontiguousarray(pts[:, 2]),
            d,
        )
        return _moran_geary(n, ss, total_w, cross, sq)
    fields = np.zeros((3, b0, b1, b2), dtype=np.float64)
    _scatter_fields(fields, idx, d, np.array(axes, dtype=np.int64))
    spectra = sp_fft.rfft(fields, n=p2, axis=3)
    spectra = sp_fft.fft(spectra, n=p1, axis=2, overwrite_x=True)
    if toeplitz <= third:
        planes_fn: Callable[..., np.ndarray] = _weight_spectrum_planes
        if b0 * p1 * (p2 + 2) > _CACHE_MAX_ELEMENTS:
            planes_fn = _weight_spectrum_planes.__wrapped__
        planes = planes_fn(b0, (p1, p2), sp)
        total_w, cross, gm = _toeplitz_sums(spectra.view(np.float64), planes)
    else:
        spectra = sp_fft.fft(spectra, n=p0, axis=1, overwrite_x=True)
        # Parseval: sum_o w(o) corr_ab(o) = (1/N) sum_k W(k) conj(A(k)) B(k), W real (w is even).
        octant_fn: Callable[..., np.ndarray] = _weight_spectrum_octant
        if (p0 // 2 + 1) * (p1 // 2 + 1) * (p2 // 2 + 1) > _CACHE_MAX_ELEMENTS:
            octant_fn = _weight_spectrum_octant.__wrapped__
        total_w, cross, gm = _parseval_sums(spectra, octant_fn((p0, p1, p2), sp))
    return _moran_geary(n, ss, total_w, cross, 2.0 * gm - 2.0 * cross)


def _same_grid(image: Image, mask: Image) -> bool:
    """Whether two images have exactly the same grid (a cheap test; False means "check properly")."""
    if image is mask:
        return True
    a, b = image.spacing + image.origin, mask.spacing + mask.origin
    return (
        image.array.shape == mask.array.shape
        and all(u == v for u, v in zip(a, b, strict=True))
        and bool(np.array_equal(image.direction, mask.direction))
    )


def compute(
    image: Image,
    morph_mask: Mask,
    intensity_mask: Mask | None = None,
    *,
    autocorrelation: bool = True,
) -> dict[str, float]:
    """Compute all morphological features of a region of interest.

    Parameters
    ----------
    image : Image
        Intensity image (used for the centre of mass shift, integrated intensity, Moran's I and
        Geary's C).
    morph_mask : Mask
        Morphological mask: mesh, volumes and shape.
    intensity_mask : Mask, optional
        Intensity mask (after re-segmentation); the morphological mask when omitted.
    autocorrelation : bool
        Compute Moran's I and Geary's C (the costliest morphological features for large ROIs);
        when False they are left out of the result.

    Returns
    -------
    dict of str to float
        One value per key of :data:`FEATURES` (without ``morph.moran.i`` and
        ``morph.geary.c`` when ``autocorrelation`` is False), lengths in mm.

    Raises
    ------
    GeometryMismatchError
        If the image and masks do not share a voxel grid.
    EmptyMaskError
        If a mask holds no voxel.
    FeatureError
        If intensities in the intensity mask are not finite.

    References
    ----------
    IBSI 1 reference manual, "Morphological features" (HCUG), arXiv:1612.07003; identifiers
    in :data:`FEATURES`.

    Examples
    --------
    >>> import numpy as np
    >>> arr = np.zeros((4, 4, 4), dtype=bool)
    >>> arr[1:3, 1:3, 1:3] = True
    >>> m = Mask(arr, spacing=(1.0, 1.0, 1.0))
    >>> compute(Image(arr.astype(float), spacing=(1.0, 1.0, 1.0)), m)["morph.approx.vol"]
    8.0
    """
    if not _same_grid(image, morph_mask):
        check_same_geometry(image, morph_mask, what="image and morphological mask")
    if intensity_mask is None:
        intensity_mask = morph_mask
    elif not _same_grid(image, intensity_mask):
        check_same_geometry(image, intensity_mask, what="image and intensity mask")
    morph_mask.require_nonempty("morphological mask")
    intensity_mask.require_nonempty("intensity mask")
    spacing = image.spacing_zyx
    morph = np.ascontiguousarray(morph_mask.array)
    inten = intensity_mask.array
    values = np.asarray(image.array[inten], dtype=float)
    if not np.all(np.isfinite(values)):
        raise FeatureError(
            "the intensity mask covers NaN or infinite voxels; restrict the intensity mask to "
            "finite values (re-segmentation) before computing morphological features"
        )

    spacing_arr = np.array(spacing, dtype=np.float64)
    counts, tris = _mc_tables()
    n_voxels, vol6, area2, verts, com_geom, cov = _shape_kernel(morph, spacing_arr, counts, tris)
    volume, area = abs(vol6) / 6.0, area2 / 2.0
    if volume <= 0.0 or area <= 0.0:  # cannot happen for a non-empty mask; guard the ratios
        raise EmptyMaskError("the ROI mesh has no volume: the morphological mask is empty or degenerate")
    approx_volume = n_voxels * image.voxel_volume

    cand = _hull_candidates(verts)
    hull_faces, is_vertex = _hull_kernel(cand)
    hull_volume, hull_area = _hull_measures(cand, hull_faces, spacing_arr)
    hull_points = (cand[is_vertex] * 0.5) * spacing_arr
    diameter = float(_max_distance_kernel(hull_points))
    extent = hull_points.max(axis=0) - hull_points.min(axis=0)
    aabb_volume = float(extent[0] * extent[1] * extent[2])
    aabb_area = float(2.0 * (extent[0] * extent[1] + extent[1] * extent[2] + extent[0] * extent[2]))

    total_intensity = float(values.sum())
    if total_intensity != 0.0:
        com_gl = _weighted_sums_kernel(np.ascontiguousarray(inten), values, spacing_arr) / total_intensity
        com_shift = float(np.linalg.norm(com_geom - com_gl))
    else:
        com_shift = 0.0

    eigenvalues = np.linalg.eigvalsh(cov) if n_voxels > 1 else np.zeros(3)
    lam_least, lam_minor, lam_major = (max(0.0, float(v)) for v in np.sort(eigenvalues))
    a, b, c = 2.0 * np.sqrt(lam_major), 2.0 * np.sqrt(lam_minor), 2.0 * np.sqrt(lam_least)
    if lam_major > 0.0:
        elongation = float(np.sqrt(lam_minor / lam_major))
        flatness = float(np.sqrt(lam_least / lam_major))
    else:
        elongation = flatness = 1.0
    aee_volume = 4.0 * np.pi * a * b * c / 3.0
    aee_area = _ellipsoid_area(a, b, c)

    comp2 = 36.0 * np.pi * volume**2 / area**3

    out = {
        "morph.vol": volume,
        "morph.approx.vol": float(approx_volume),
        "morph.area": area,
        "morph.av": area / volume,
        "morph.comp.1": float(volume / (np.sqrt(np.pi) * area**1.5)),
        "morph.comp.2": float(comp2),
        "morph.sph.dispr": float(area / (36.0 * np.pi * volume**2) ** (1.0 / 3.0)),
        "morph.sphericity": float((36.0 * np.pi * volume**2) ** (1.0 / 3.0) / area),
        "morph.asphericity": float((area**3 / (36.0 * np.pi * volume**2)) ** (1.0 / 3.0) - 1.0),
        "morph.com": com_shift,
        "morph.diam": diameter,
        "morph.pca.major": float(2.0 * a),
        "morph.pca.minor": float(2.0 * b),
        "morph.pca.least": float(2.0 * c),
        "morph.pca.elongation": elongation,
        "morph.pca.flatness": flatness,
        "morph.v.dens.aabb": volume / aabb_volume,
        "morph.a.dens.aabb": area / aabb_area,
        "morph.v.dens.aee": float(volume / aee_volume) if aee_volume > 0 else 0.0,
        "morph.a.dens.aee": float(area / aee_area) if aee_area > 0 else 0.0,
        "morph.v.dens.conv.hull": volume / hull_volume,
        "morph.a.dens.conv.hull": area / hull_area,
        "morph.integ.int": float(volume * values.mean()),
    }
    if autocorrelation:
        out["morph.moran.i"], out["morph.geary.c"] = spatial_autocorrelation_grid(
            image.array, inten, spacing=spacing
        )
    return out
