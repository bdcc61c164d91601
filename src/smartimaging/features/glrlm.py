"""Grey level run length matrix (GLRLM) features, IBSI 1 section "Grey level run length based features" (TP0I).

A run is a maximal line of consecutive ROI voxels with the same grey level along one direction;
``r_ij`` counts the runs of level ``i`` and length ``j``. Voxels outside the ROI break runs.
Directions: the 4 in-plane directions in 2D, 13 in 3D (one of each opposite pair).

Aggregations are those of the GLCM (``2D_avg``, ``2D_smrg``, ``2.5D_dmrg``, ``2.5D_vmrg``,
``3D_avg``, ``3D_vmrg``). ``Nv`` of the run percentage is the number of voxels the matrix covers:
the ROI voxel count per direction, so a matrix merged over ``n`` directions uses ``n`` times the
voxel count (as the IBSI prescribes for merged matrices).

Degenerate input: every ROI voxel belongs to a run in every direction, so matrices are never
empty for a non-empty ROI and all values are finite (a one-voxel ROI gives one run of length 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from smartimaging.features.registry import FeatureDef
from smartimaging.features.texture_common import (
    MatrixFeatureNames,
    check_distance,
    directions,
    mean_rows_into,
    prepare_roi,
    resolve_aggregations,
    size_features_dense,
    size_row_dense,
)

__all__ = ["AGGREGATIONS", "FEATURES", "compute", "features_from_matrix", "run_length_matrices"]

AGGREGATIONS: tuple[str, ...] = ("2D_avg", "2D_smrg", "2.5D_dmrg", "2.5D_vmrg", "3D_avg", "3D_vmrg")

# (key, IBSI name, IBSI id, generic quantity of size_matrix_features)
_SPEC = (
    ("rlm.sre", "Short runs emphasis", "22OV", "sje"),
    ("rlm.lre", "Long runs emphasis", "W4KF", "lje"),
    ("rlm.lgre", "Low grey level run emphasis", "V3SW", "lge"),
    ("rlm.hgre", "High grey level run emphasis", "G3QZ", "hge"),
    ("rlm.srlge", "Short run low grey level emphasis", "HTZT", "sjlge"),
    ("rlm.srhge", "Short run high grey level emphasis", "GD3A", "sjhge"),
    ("rlm.lrlge", "Long run low grey level emphasis", "IVPO", "ljlge"),
    ("rlm.lrhge", "Long run high grey level emphasis", "3KUM", "ljhge"),
    ("rlm.glnu", "Grey level non-uniformity", "R5YN", "glnu"),
    ("rlm.glnu.norm", "Normalised grey level non-uniformity", "OVBL", "glnu_norm"),
    ("rlm.rlnu", "Run length non-uniformity", "W92Y", "jnu"),
    ("rlm.rlnu.norm", "Normalised run length non-uniformity", "IC23", "jnu_norm"),
    ("rlm.r.perc", "Run percentage", "9ZK5", "perc"),
    ("rlm.gl.var", "Grey level variance", "8CE5", "gl_var"),
    ("rlm.rl.var", "Run length variance", "SXLW", "j_var"),
    ("rlm.rl.entr", "Run entropy", "HJ9O", "entr"),
)

#: The 16 GLRLM features.
FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(k, n, "GLRLM", i) for k, n, i, _ in _SPEC)


@numba.njit(cache=True, nogil=True)
def _run_length_kernel(levels: np.ndarray, offsets: np.ndarray, n_levels: int, max_len: int) -> np.ndarray:
    ny, nx = levels.shape[1], levels.shape[2]
    nd = offsets.shape[0]
    out = np.zeros((nd, n_levels, max_len), dtype=np.int64)
    flat = levels.ravel()
    # flat indices: the background frame ends every run inside the array
    for k in range(nd):
        step = (offsets[k, 0] * ny + offsets[k, 1]) * nx + offsets[k, 2]
        for p in range(flat.size):
            a = flat[p]
            if a == 0 or flat[p - step] == a:
                continue  # not in the ROI, or not the start of a run
            length = 1
            q = p + step
            while flat[q] == a:
                length += 1
                q += step
            out[k, a - 1, length - 1] += 1
    return out


def run_length_matrices(padded: np.ndarray, *, n_levels: int, three_d: bool) -> np.ndarray:
    """Run length counts per direction, ``(n_directions, Ng, max_run)`` int64.

    ``padded`` comes from :func:`~smartimaging.features.texture_common.prepare_levels` (pad 1).
    """
    offs = directions(three_d=three_d, distance=1)
    max_len = max(padded.shape)
    return _run_length_kernel(np.ascontiguousarray(padded, dtype=np.int32), offs, int(n_levels), max_len)


def _rows(mats: np.ndarray) -> np.ndarray:
    """Generic size-matrix feature rows of a stack of run length matrices ``(n, Ng, max_run)``.

    ``Nv`` of each matrix is the number of voxels its runs cover (sum of ``j * r_ij``).
    """
    lengths = np.arange(1, mats.shape[-1] + 1, dtype=np.int64)
    n_voxels = (mats * lengths).sum(axis=(1, 2)).astype(np.float64)
    return size_features_dense(mats, n_voxels)


def _as_dict(generic: np.ndarray) -> dict[str, float]:
    return {key: float(generic[_COLUMN[g]]) for key, _, _, g in _SPEC}


_COLUMN = {name: c for c, name in enumerate(MatrixFeatureNames)}


def features_from_matrix(counts: np.ndarray) -> dict[str, float]:
    """The 16 GLRLM features of one non-empty run length matrix ``(Ng, max_run)``.

    ``Nv`` is the number of voxels covered by the runs (sum of ``j * r_ij``).
    """
    return _as_dict(_rows(np.asarray(counts)[None])[0])


_DIRS_3D = directions(three_d=True)
_DIRS_2D = directions(three_d=False)

#: De Bruijn multiplier and table giving the byte (0..7) of the single set bit of a uint64
#: (its bit index // 8): flagged voxels are found 8 at a time without branches.
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_BYTE = np.zeros(64, dtype=np.int64)
for _b in range(64):
    _DEBRUIJN_BYTE[((1 << _b) * 0x03F79D71B4CB0A89 % (1 << 64)) >> 58] = _b // 8
del _b


@numba.njit(cache=True, nogil=True)
def _glrlm_kernel_all(
    padded: np.ndarray, n_levels: int, planar: bool, averaged: bool
) -> np.ndarray:  # pragma: no cover
    """Generic feature rows of every aggregation of one ROI in one call.

    ``padded`` is C-contiguous int32 with a one-voxel background frame. Returns ``(6, 17)``
    rows: 2D_avg, 2D_smrg, 2.5D_dmrg, 2.5D_vmrg (when ``planar``), 3D_avg, 3D_vmrg
    (otherwise). ``Nv`` of each matrix is the number of voxels its runs cover.

    Most runs are one voxel long, so they are not walked one by one: per direction, a
    vectorised pass flags the last voxel of every run of two or more voxels (same level one
    step back, another level one step ahead); only those runs are walked back to get their
    length (flags are read 8 at a time). Every voxel not covered by them is a run of one:
    ``r_i1 = n_i - sum_{j >= 2} j r_ij``. Without ``averaged`` (3D only), the per-direction
    feature rows of 3D_avg are skipped.
    """
    nz, ny, nx = padded.shape
    ng = n_levels
    flat = padded.ravel()
    size = flat.size
    plane = ny * nx
    width = max(nz, ny, nx)
    dirs = _DIRS_2D if planar else _DIRS_3D
    nd = dirs.shape[0]
    n_blocks = nd * nz if planar else nd
    acc = np.zeros((n_blocks, ng, width), dtype=np.int64)
    # every ROI voxel lies in [q_lo, q_hi), whose neighbours all lie inside the array
    q_lo = plane + nx + 1
    q_hi = max(size - q_lo, q_lo)
    n_q = q_hi - q_lo
    n_words = ((n_q + 31) // 32) * 4
    last = np.zeros(n_words * 8, dtype=np.uint8)
    words = last.view(np.uint64)
    # voxels per level (per slice when planar: block z * nd + k counts slice z)
    n_slice_levels = np.zeros((nz if planar else 1, ng + 1), dtype=np.int64)
    if planar:
        for q in range(q_lo, q_hi):
            n_slice_levels[q // plane, flat[q]] += 1
    else:
        counts = n_slice_levels[0]
        for q in range(q_lo, q_hi):
            a = flat[q]
            if a > 0:  # (counting the background too would chain every increment of cell 0)
                counts[np.uint64(a)] += 1
    cur = flat[q_lo:q_hi]
    # runs of two or more voxels, counted in int32 (a smaller table stays in cache)
    long_runs = np.zeros(n_blocks * ng * width, dtype=np.int32)
    u1 = np.uint64(1)
    u_lo = np.uint64(q_lo)
    u_plane = np.uint64(plane)
    u_nd = np.uint64(nd)
    u_ng = np.uint64(ng)
    u_width = np.uint64(width)
    for k in range(nd):
        step = (dirs[k, 0] * ny + dirs[k, 1]) * nx + dirs[k, 2]
        u_step = np.uint64(step)
        u_k = np.uint64(k)
        prev = flat[q_lo - step : q_hi - step]
        nxt = flat[q_lo + step : q_hi + step]
        # the last voxel of a run of two or more voxels
        for i in range(n_q):
            c = cur[i]
            last[i] = 1 if (c == prev[i]) & (c > 0) & (nxt[i] != c) else 0
        for w4 in range(0, n_words, 4):
            if (words[w4] | words[w4 + 1] | words[w4 + 2] | words[w4 + 3]) == 0:
                continue  # 32 voxels without any flag
            for wd in range(w4, w4 + 4):
                bits = words[wd]
                while bits != 0:
                    low = bits & (~bits + np.uint64(1))  # lowest set bit: the first flagged byte
                    bits ^= low
                    end = (
                        u_lo
                        + np.uint64(wd * 8)
                        + np.uint64(_DEBRUIJN_BYTE[(low * _DEBRUIJN) >> np.uint64(58)])
                    )
                    a = flat[end]
                    # unsigned indices (no wrap-around checks); the voxel one step back is in
                    # the ROI, so walking back never leaves the array
                    length = u1
                    r = end - u_step
                    while flat[r] == a:
                        length += u1
                        r -= u_step
                    block = (end // u_plane) * u_nd + u_k if planar else u_k
                    long_runs[(block * u_ng + np.uint64(a - 1)) * u_width + length - u1] += 1
        # every other voxel is a run of one: r_i1 = n_i - sum over j >= 2 of j * r_ij
        for z in range(n_slice_levels.shape[0]):
            b = z * nd + k if planar else k
            blk = acc[b]
            for g in range(ng):
                src = long_runs[(b * ng + g) * width : (b * ng + g + 1) * width]
                covered = 0
                for j in range(1, width):
                    blk[g, j] = src[j]
                    covered += (j + 1) * src[j]
                blk[g, 0] = n_slice_levels[z, g + 1] - covered
    res = np.zeros((6, 17))
    merged = np.zeros((ng, width), dtype=np.int64)
    if not planar:
        rows = np.empty((nd, 17))
        for k in range(nd):
            if averaged:
                size_row_dense(acc[k], _covered(acc[k]), rows[k])
            merged += acc[k]
        if averaged:
            mean_rows_into(rows, nd, res[4])
        size_row_dense(merged, _covered(merged), res[5])
        mean_rows_into(res[5:6], 1, res[5])
        return res
    rows_avg = np.empty((nd * nz, 17))
    rows_smrg = np.empty((nz, 17))
    n_slices = 0
    dir_sum = np.zeros((nd, ng, width), dtype=np.int64)
    for z in range(nz):
        if acc[z * nd].sum() == 0:
            continue  # no ROI voxel in this slice
        merged[:, :] = 0
        for k in range(nd):
            block = acc[z * nd + k]
            size_row_dense(block, _covered(block), rows_avg[n_slices * nd + k])
            merged += block
            dir_sum[k] += block
        size_row_dense(merged, _covered(merged), rows_smrg[n_slices])
        n_slices += 1
    mean_rows_into(rows_avg, n_slices * nd, res[0])
    mean_rows_into(rows_smrg, n_slices, res[1])
    rows = np.empty((nd, 17))
    merged[:, :] = 0
    for k in range(nd):
        size_row_dense(dir_sum[k], _covered(dir_sum[k]), rows[k])
        merged += dir_sum[k]
    mean_rows_into(rows, nd, res[2])
    size_row_dense(merged, _covered(merged), res[3])
    mean_rows_into(res[3:4], 1, res[3])
    return res


@numba.njit(cache=True, nogil=True)
def _covered(mat: np.ndarray) -> float:  # pragma: no cover - compiled
    """Voxels covered by the runs of a run length matrix: ``sum(j * r_ij)``."""
    n = 0
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            n += (j + 1) * mat[i, j]
    return float(n)


_KEY_COLUMNS = tuple((key, MatrixFeatureNames.index(g)) for key, _, _, g in _SPEC)
_ROW_OF = {"2D_avg": 0, "2D_smrg": 1, "2.5D_dmrg": 2, "2.5D_vmrg": 3, "3D_avg": 4, "3D_vmrg": 5}


def compute(
    levels: np.ndarray,
    mask: np.ndarray,
    *,
    n_levels: int,
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0),
    aggregations: Sequence[str] | None = None,
    distance: int = 1,
) -> dict[str, dict[str, float]]:
    """Compute the GLRLM features for the requested aggregations.

    One compiled call per dimensionality (2D/2.5D, 3D) counts the runs of every direction (and
    slice) and computes the feature rows; the values are those of
    :func:`features_from_matrix` on :func:`run_length_matrices`, averaged or merged as the
    IBSI prescribes, bit for bit.

    Parameters
    ----------
    levels : numpy.ndarray
        Discretised grey levels ``(z, y, x)``, ``1..n_levels`` inside the ROI.
    mask : numpy.ndarray
        Boolean ROI of the same shape.
    n_levels : int
        Number of grey levels ``Ng``.
    spacing_zyx : tuple of float
        Accepted for a uniform family interface; unused.
    aggregations : sequence of str, optional
        Subset of :data:`AGGREGATIONS`; all by default.
    distance : int
        Must be 1 (runs are made of adjacent voxels).

    Returns
    -------
    dict
        ``{aggregation: {feature_key: value}}``.

    Raises
    ------
    ConfigError
        Unknown aggregation or ``distance != 1``.
    EmptyMaskError, FeatureError, GeometryMismatchError
        See :func:`~smartimaging.features.texture_common.prepare_levels`.

    References
    ----------
    IBSI 1, GLRLM features (TP0I).
    """
    aggs = resolve_aggregations(aggregations, AGGREGATIONS, "GLRLM")
    check_distance(distance, "GLRLM", only_one=True)
    padded = prepare_roi(levels, mask, n_levels=n_levels, pad=1, family="GLRLM")
    ng = int(n_levels)
    out: dict[str, dict[str, float]] = {}
    for planar in (True, False):
        if not any((a[0] == "2") == planar for a in aggs):
            continue
        rows = _glrlm_kernel_all(padded, ng, planar, planar or "3D_avg" in aggs).tolist()
        for agg, r in _ROW_OF.items():
            if (r < 4) == planar:
                out[agg] = {key: rows[r][c] for key, c in _KEY_COLUMNS}
    return {a: out[a] for a in aggs}
