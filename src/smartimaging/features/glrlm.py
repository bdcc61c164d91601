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
    mean_rows,
    prepare_levels,
    resolve_aggregations,
    size_features_dense,
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


@numba.njit(cache=True)
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
    padded = prepare_levels(levels, mask, n_levels=n_levels, pad=1, family="GLRLM")
    ng = int(n_levels)
    out: dict[str, dict[str, float]] = {}

    if any(a.startswith("2") for a in aggs):
        rows_avg: list[np.ndarray] = []
        merged: list[np.ndarray] = []
        max_len = max(padded.shape[1:])
        dir_sum = np.zeros((4, ng, max_len), dtype=np.int64)
        for z in range(1, padded.shape[0] - 1):
            sl = padded[z : z + 1]  # in-plane directions never leave the slice
            if not sl.any():
                continue
            mats = run_length_matrices(sl, n_levels=ng, three_d=False)[:, :, :max_len]
            dir_sum += mats
            if "2D_avg" in aggs:
                rows_avg.append(_rows(mats))
            if "2D_smrg" in aggs:
                merged.append(_rows(mats.sum(axis=0)[None]))
        if "2D_avg" in aggs:
            out["2D_avg"] = _as_dict(mean_rows(np.concatenate(rows_avg)))
        if "2D_smrg" in aggs:
            out["2D_smrg"] = _as_dict(mean_rows(np.concatenate(merged)))
        if "2.5D_dmrg" in aggs:
            out["2.5D_dmrg"] = _as_dict(mean_rows(_rows(dir_sum)))
        if "2.5D_vmrg" in aggs:
            out["2.5D_vmrg"] = _as_dict(_rows(dir_sum.sum(axis=0)[None])[0])
    if any(a.startswith("3") for a in aggs):
        mats3 = run_length_matrices(padded, n_levels=ng, three_d=True)
        if "3D_avg" in aggs:
            out["3D_avg"] = _as_dict(mean_rows(_rows(mats3)))
        if "3D_vmrg" in aggs:
            out["3D_vmrg"] = _as_dict(_rows(mats3.sum(axis=0)[None])[0])
    return {a: out[a] for a in aggs}
