"""Neighbouring grey level dependence matrix (NGLDM) features, IBSI 1 section "Neighbouring grey level dependence based features" (REK0).

For each ROI voxel of level ``i`` the dependence count ``k`` is 1 plus the number of its
neighbours within Chebyshev ``distance`` (8 in-plane in 2D, 26 in 3D at distance 1) that lie
inside the ROI and whose level differs by at most the coarseness ``alpha`` (IBSI default 0);
``s_ik`` counts the voxels of level ``i`` with dependence ``k``. Every ROI voxel counts, so the
dependence count percentage is 1 unless matrices are merged over different voxel sets.

Aggregations: ``2D`` (per slice, averaged over the slices holding ROI voxels), ``2.5D`` (slice
matrices merged), ``3D``.

Degenerate input: a non-empty ROI always gives a non-empty matrix (a one-voxel ROI has one voxel
of dependence 1), so every value is finite.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from smartimaging.exceptions import ConfigError
from smartimaging.features.registry import FeatureDef
from smartimaging.features.texture_common import (
    MatrixFeatureNames,
    chebyshev_neighbourhood,
    check_distance,
    mean_rows_into,
    prepare_roi,
    resolve_aggregations,
    size_features_dense,
    size_row_dense,
)

__all__ = ["AGGREGATIONS", "FEATURES", "compute", "dependence_matrices", "features_from_matrix"]

AGGREGATIONS: tuple[str, ...] = ("2D", "2.5D", "3D")

# (key, IBSI name, IBSI id, generic quantity of size_matrix_features)
_SPEC = (
    ("ngl.lde", "Low dependence emphasis", "SODN", "sje"),
    ("ngl.hde", "High dependence emphasis", "IMOQ", "lje"),
    ("ngl.lgce", "Low grey level count emphasis", "TL9H", "lge"),
    ("ngl.hgce", "High grey level count emphasis", "OAE7", "hge"),
    ("ngl.ldlge", "Low dependence low grey level emphasis", "EQ3F", "sjlge"),
    ("ngl.ldhge", "Low dependence high grey level emphasis", "JA6D", "sjhge"),
    ("ngl.hdlge", "High dependence low grey level emphasis", "NBZI", "ljlge"),
    ("ngl.hdhge", "High dependence high grey level emphasis", "9QMG", "ljhge"),
    ("ngl.glnu", "Grey level non-uniformity", "FP8K", "glnu"),
    ("ngl.glnu.norm", "Normalised grey level non-uniformity", "5SPA", "glnu_norm"),
    ("ngl.dcnu", "Dependence count non-uniformity", "Z87G", "jnu"),
    ("ngl.dcnu.norm", "Normalised dependence count non-uniformity", "OKJI", "jnu_norm"),
    ("ngl.dc.perc", "Dependence count percentage", "6XV8", "perc"),
    ("ngl.gl.var", "Grey level variance", "1PFV", "gl_var"),
    ("ngl.dc.var", "Dependence count variance", "DNX2", "j_var"),
    ("ngl.dc.entr", "Dependence count entropy", "FCBV", "entr"),
    ("ngl.dc.energy", "Dependence count energy", "CAS9", "energy"),
)

#: The 17 NGLDM features.
FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(k, n, "NGLDM", i) for k, n, i, _ in _SPEC)


@numba.njit(cache=True, nogil=True)
def _dependence_kernel(levels: np.ndarray, offsets: np.ndarray, n_levels: int, alpha: int) -> np.ndarray:
    nz, ny, nx = levels.shape
    out = np.zeros((nz, n_levels, offsets.shape[0] + 1), dtype=np.int64)
    flat = levels.ravel()
    flat_off = np.empty(offsets.shape[0], dtype=np.int64)
    for k in range(offsets.shape[0]):
        flat_off[k] = (offsets[k, 0] * ny + offsets[k, 1]) * nx + offsets[k, 2]
    # flat indices: the background frame keeps every neighbour of a ROI voxel inside the array
    for z in range(nz):
        for y in range(ny):
            row = (z * ny + y) * nx
            for x in range(nx):
                p = row + x
                a = flat[p]
                if a == 0:
                    continue
                count = 1
                for k in range(flat_off.shape[0]):
                    b = flat[p + flat_off[k]]
                    if b > 0 and abs(b - a) <= alpha:
                        count += 1
                out[z, a - 1, count - 1] += 1
    return out


def dependence_matrices(
    padded: np.ndarray, *, n_levels: int, three_d: bool, distance: int = 1, alpha: int = 0
) -> np.ndarray:
    """Dependence counts per slice of ``padded``: ``(n_slices, Ng, n_neighbours + 1)`` int64.

    With ``three_d`` the neighbourhood spans slices; sum over slices for the volume matrix.
    """
    offs = chebyshev_neighbourhood(three_d=three_d, distance=distance)
    return _dependence_kernel(np.ascontiguousarray(padded, dtype=np.int32), offs, int(n_levels), int(alpha))


def features_from_matrix(counts: np.ndarray) -> dict[str, float]:
    """The 17 NGLDM features of one non-empty dependence matrix ``(Ng, K)``.

    ``Nv`` (dependence count percentage) is the number of voxels the matrix covers.
    """
    return _as_dict(_rows(np.asarray(counts)[None])[0])


_COLUMN = {name: c for c, name in enumerate(MatrixFeatureNames)}


def _rows(mats: np.ndarray) -> np.ndarray:
    """Generic feature rows of a stack of dependence matrices; ``Nv`` is each matrix's count."""
    return size_features_dense(mats, mats.sum(axis=(1, 2)).astype(np.float64))


def _as_dict(generic: np.ndarray) -> dict[str, float]:
    return {key: float(generic[_COLUMN[g]]) for key, _, _, g in _SPEC}


@numba.njit(cache=True, nogil=True)
def _ngldm_kernel_all(
    padded: np.ndarray, n_levels: int, distance: int, alpha: int, planar: bool
) -> np.ndarray:  # pragma: no cover - compiled
    """Feature rows of one ROI in one call: ``(2, 17)`` generic rows, 2D and 2.5D when
    ``planar``, else 3D in row 0.

    Dependence counts are accumulated one neighbour offset at a time over whole slices
    (shifted views, so the comparisons vectorise), then counted per slice into the matrix.
    """
    nz, ny, nx = padded.shape
    ng = n_levels
    plane = ny * nx
    flat = padded.ravel()
    span = 0 if planar else distance
    n_off = (2 * distance + 1) ** 2 * (2 * span + 1) - 1
    offs = np.empty(n_off, dtype=np.int64)
    k = 0
    for dz in range(-span, span + 1):
        for dy in range(-distance, distance + 1):
            for dx in range(-distance, distance + 1):
                if dz != 0 or dy != 0 or dx != 0:
                    offs[k] = (dz * ny + dy) * nx + dx
                    k += 1
    width = n_off + 1
    mat = np.zeros((ng, width), dtype=np.int64)
    total = np.zeros((ng, width), dtype=np.int64)
    dep = np.empty(plane, dtype=np.int32)
    res = np.zeros((2, 17))
    rows = np.empty((max(nz, 1), 17))
    n_rows = 0
    # every ROI voxel of a slice lies in [q0, q1), whose neighbours all lie inside the array
    q0 = distance * nx + distance
    q1 = plane - q0
    n_q = max(q1 - q0, 0)
    for z in range(distance, nz - distance):
        lo = z * plane + q0
        lv = flat[lo : lo + n_q]
        dep[:] = 1
        for k in range(n_off):
            nb = flat[lo + offs[k] : lo + offs[k] + n_q]
            if alpha == 0:
                for q in range(n_q):
                    dep[q] += nb[q] == lv[q]
            else:
                for q in range(n_q):
                    b = nb[q]
                    dep[q] += (b > 0) & (abs(b - lv[q]) <= alpha)
        n_voxels = 0
        for q in range(n_q):
            a = lv[q]
            if a > 0:
                mat[a - 1, dep[q] - 1] += 1
                n_voxels += 1
        if n_voxels == 0:
            continue
        total += mat
        if planar:
            size_row_dense(mat, float(n_voxels), rows[n_rows])
            n_rows += 1
        mat[:, :] = 0
    n_all = 0
    for i in range(ng):
        for j in range(width):
            n_all += total[i, j]
    if planar:
        mean_rows_into(rows, n_rows, res[0])
        size_row_dense(total, float(n_all), res[1])
    else:
        size_row_dense(total, float(n_all), res[0])
    return res


_KEY_COLUMNS = tuple((key, MatrixFeatureNames.index(g)) for key, _, _, g in _SPEC)


def _row_dict(row: list[float]) -> dict[str, float]:
    return {key: row[c] for key, c in _KEY_COLUMNS}


def compute(
    levels: np.ndarray,
    mask: np.ndarray,
    *,
    n_levels: int,
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0),
    aggregations: Sequence[str] | None = None,
    distance: int = 1,
    alpha: int = 0,
) -> dict[str, dict[str, float]]:
    """Compute the NGLDM features for the requested aggregations.

    One compiled call per dimensionality (2D/2.5D, 3D) counts the dependences (one neighbour
    offset at a time over whole slices) and computes the feature rows; the values are those of
    :func:`features_from_matrix` on :func:`dependence_matrices`, bit for bit.

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
        Chebyshev radius of the neighbourhood (IBSI default 1).
    alpha : int
        Coarseness: the largest grey-level difference for a neighbour to be dependent (IBSI
        default 0).

    Returns
    -------
    dict
        ``{aggregation: {feature_key: value}}``.

    Raises
    ------
    ConfigError
        Unknown aggregation, invalid distance or negative ``alpha``.
    EmptyMaskError, FeatureError, GeometryMismatchError
        See :func:`~smartimaging.features.texture_common.prepare_levels`.

    References
    ----------
    IBSI 1, NGLDM features (REK0).
    """
    aggs = resolve_aggregations(aggregations, AGGREGATIONS, "NGLDM")
    d = check_distance(distance, "NGLDM")
    if isinstance(alpha, bool) or not isinstance(alpha, int | np.integer) or alpha < 0:
        raise ConfigError(f"NGLDM: alpha (coarseness) must be a non-negative integer, got {alpha!r}")
    padded = prepare_roi(levels, mask, n_levels=n_levels, pad=d, family="NGLDM")
    ng = int(n_levels)
    out: dict[str, dict[str, float]] = {}
    if "2D" in aggs or "2.5D" in aggs:
        rows = _ngldm_kernel_all(padded, ng, d, int(alpha), True).tolist()
        out["2D"] = _row_dict(rows[0])
        out["2.5D"] = _row_dict(rows[1])
    if "3D" in aggs:
        out["3D"] = _row_dict(_ngldm_kernel_all(padded, ng, d, int(alpha), False)[0].tolist())
    return {a: out[a] for a in aggs}
