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
from scipy.spatial import ConvexHull
from scipy.spatial.distance import cdist
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

# Pairwise work is split into blocks of at most this many distances (8 bytes each): 2**22 -> 32 MiB
# per block array, a few such arrays alive at once.
_BLOCK_ELEMENTS = 2**22
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


def _mesh(mask: np.ndarray, spacing_zyx: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Marching-cubes mesh (vertices in mm, array axis order; faces) of a boolean mask.

    The mask is cropped to its bounding box first (mesh measures do not depend on where the
    mesh sits), then padded by one empty voxel so that the surface closes at the border.
    """
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    cropped = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    padded = np.pad(cropped, 1).astype(np.float32)
    verts, faces, _normals, _values = marching_cubes(padded, level=0.5, spacing=spacing_zyx)
    return verts.astype(float), faces


@numba.njit(cache=True)
def _mesh_volume_area_kernel(verts: np.ndarray, faces: np.ndarray) -> tuple[float, float]:  # pragma: no cover
    """Signed volume sum (six times the volume) and twice the area of a triangle mesh.

    Per-face terms are added in blocks of 128 and the block sums added up, which keeps the
    rounding close to NumPy's pairwise sums.
    """
    vol = 0.0
    area = 0.0
    vol_blk = 0.0
    area_blk = 0.0
    for f in range(faces.shape[0]):
        a = verts[faces[f, 0]]
        b = verts[faces[f, 1]]
        c = verts[faces[f, 2]]
        # a . (b x c)
        vol_blk += (
            a[0] * (b[1] * c[2] - b[2] * c[1])
            + a[1] * (b[2] * c[0] - b[0] * c[2])
            + a[2] * (b[0] * c[1] - b[1] * c[0])
        )
        u0, u1, u2 = b[0] - a[0], b[1] - a[1], b[2] - a[2]
        v0, v1, v2 = c[0] - a[0], c[1] - a[1], c[2] - a[2]
        x0 = u1 * v2 - u2 * v1
        x1 = u2 * v0 - u0 * v2
        x2 = u0 * v1 - u1 * v0
        area_blk += np.sqrt(x0 * x0 + x1 * x1 + x2 * x2)
        if f % 128 == 127:
            vol += vol_blk
            area += area_blk
            vol_blk = 0.0
            area_blk = 0.0
    return vol + vol_blk, area + area_blk


def _mesh_volume_area(verts: np.ndarray, faces: np.ndarray) -> tuple[float, float]:
    vol6, area2 = _mesh_volume_area_kernel(
        np.ascontiguousarray(verts, dtype=np.float64), np.ascontiguousarray(faces, dtype=np.int64)
    )
    return abs(float(vol6)) / 6.0, float(area2) / 2.0


@numba.njit(cache=True)
def _cross2(o0: int, o1: int, a0: int, a1: int, b0: int, b1: int) -> int:  # pragma: no cover
    return (a0 - o0) * (b1 - o1) - (a1 - o1) * (b0 - o0)


@numba.njit(cache=True)
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


def _hull_candidates(verts: np.ndarray, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    """The mesh vertices that can be corners of the convex hull.

    Marching cubes on a binary mask puts every vertex half-way along a voxel edge, so the
    vertices lie on a half-voxel grid and fall into axis-aligned planes. A vertex that is not
    a corner of the 2D convex hull of its plane (for any of the three axes) is a convex
    combination of other vertices, so it is no corner of the 3D hull: dropping those leaves
    the hull (its volume, area, corners, diameter and extent) unchanged and gives Qhull a
    fraction of the points. Vertices off the half-voxel grid (not expected) make this return
    all vertices.
    """
    if verts.shape[0] < 4:
        return verts
    half = verts * (2.0 / np.asarray(spacing_zyx, dtype=np.float64))
    q = np.rint(half)
    if float(np.max(np.abs(half - q))) > 1e-6:
        return verts
    qi = q.astype(np.int64)
    qi -= qi.min(axis=0)
    keep = _plane_hull_kernel(qi)
    return verts[keep] if int(keep.sum()) >= 4 else verts


def _max_pairwise_distance(points: np.ndarray) -> float:
    """Largest distance between two points, in blocks so memory stays bounded."""
    n = points.shape[0]
    if n < 2:
        return 0.0
    rows = max(1, _BLOCK_ELEMENTS // n)
    best = 0.0
    for start in range(0, n, rows):
        block = cdist(points[start : start + rows], points[start:], "sqeuclidean")
        best = max(best, float(block.max()))
    return float(np.sqrt(best))


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
    ss = float(np.dot(d, d))
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
    ss = float(np.dot(d, d))
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


def _voxel_points(mask: np.ndarray, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    return np.argwhere(mask).astype(float) * np.asarray(spacing_zyx)


def compute(image: Image, morph_mask: Mask, intensity_mask: Mask | None = None) -> dict[str, float]:
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

    Returns
    -------
    dict of str to float
        One value per key of :data:`FEATURES`, lengths in mm.

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
    check_same_geometry(image, morph_mask, what="image and morphological mask")
    if intensity_mask is None:
        intensity_mask = morph_mask
    else:
        check_same_geometry(image, intensity_mask, what="image and intensity mask")
    morph_mask.require_nonempty("morphological mask")
    intensity_mask.require_nonempty("intensity mask")
    spacing = image.spacing_zyx
    morph = morph_mask.array
    inten = intensity_mask.array
    values = np.asarray(image.array[inten], dtype=float)
    if not np.all(np.isfinite(values)):
        raise FeatureError(
            "the intensity mask covers NaN or infinite voxels; restrict the intensity mask to "
            "finite values (re-segmentation) before computing morphological features"
        )

    verts, faces = _mesh(morph, spacing)
    volume, area = _mesh_volume_area(verts, faces)
    if volume <= 0.0 or area <= 0.0:  # cannot happen for a non-empty mask; guard the ratios
        raise EmptyMaskError("the ROI mesh has no volume: the morphological mask is empty or degenerate")
    approx_volume = morph_mask.n_voxels * image.voxel_volume

    hull_input = _hull_candidates(verts, spacing)
    hull = ConvexHull(hull_input)
    hull_points = hull_input[hull.vertices]
    diameter = _max_pairwise_distance(hull_points)
    extent = np.ptp(hull_points, axis=0)
    aabb_volume = float(np.prod(extent))
    aabb_area = float(2.0 * (extent[0] * extent[1] + extent[1] * extent[2] + extent[0] * extent[2]))

    points = _voxel_points(morph, spacing)
    com_geom = points.mean(axis=0)
    inten_points = points if inten is morph else _voxel_points(inten, spacing)
    total_intensity = float(values.sum())
    if total_intensity != 0.0:
        com_gl = (values[:, None] * inten_points).sum(axis=0) / total_intensity
        com_shift = float(np.linalg.norm(com_geom - com_gl))
    else:
        com_shift = 0.0

    if points.shape[0] > 1:
        eigenvalues = np.linalg.eigvalsh(np.cov(points, rowvar=False))
    else:
        eigenvalues = np.zeros(3)
    lam_least, lam_minor, lam_major = (max(0.0, float(v)) for v in np.sort(eigenvalues))
    a, b, c = 2.0 * np.sqrt(lam_major), 2.0 * np.sqrt(lam_minor), 2.0 * np.sqrt(lam_least)
    if lam_major > 0.0:
        elongation = float(np.sqrt(lam_minor / lam_major))
        flatness = float(np.sqrt(lam_least / lam_major))
    else:
        elongation = flatness = 1.0
    aee_volume = 4.0 * np.pi * a * b * c / 3.0
    aee_area = _ellipsoid_area(a, b, c)

    moran, geary = spatial_autocorrelation_grid(image.array, inten, spacing=spacing)
    comp2 = 36.0 * np.pi * volume**2 / area**3

    return {
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
        "morph.v.dens.conv.hull": volume / float(hull.volume),
        "morph.a.dens.conv.hull": area / float(hull.area),
        "morph.integ.int": float(volume * values.mean()),
        "morph.moran.i": moran,
        "morph.geary.c": geary,
    }
