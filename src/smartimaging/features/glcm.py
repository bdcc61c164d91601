"""Grey level co-occurrence matrix (GLCM) features, IBSI 1 section "Grey level co-occurrence based features" (LFYI).

The matrix counts, for each direction, the pairs of ROI voxels ``(v, v + d)`` at Chebyshev
distance ``distance`` along that direction, symmetrically (each pair adds to ``(i, j)`` and
``(j, i)``). Both voxels must lie inside the ROI. It is sized ``Ng x Ng`` with ``Ng = n_levels``.

Aggregations (IBSI): ``2D_avg`` per slice and direction, features averaged; ``2D_smrg`` per
slice with the 4 directions merged, averaged over slices; ``2.5D_dmrg`` per direction merged
over slices, averaged over directions; ``2.5D_vmrg`` one matrix; ``3D_avg`` 13 directions
averaged; ``3D_vmrg`` 13 directions merged.

Conventions for degenerate input (so every value is finite):

* Matrices without any pair (a slice with a lone voxel, a direction without neighbours) are left
  out of the averages and merges, as MIRP does.
* When an aggregation has no pair at all (for example a one-voxel ROI), the matrix used is the
  diagonal matrix of the ROI grey-level histogram: every voxel co-occurs only with itself. This
  describes texture-less input; for a one-voxel or flat ROI it is the single cell ``(g, g)``.
* Flat matrices (one grey level): correlation is 1, information correlation 1 is 1 and
  information correlation 2 is 0 (MIRP conventions); every other feature follows its formula.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from smartimaging.features.registry import FeatureDef
from smartimaging.features.texture_common import (
    check_distance,
    directions,
    mean_features,
    prepare_levels,
    resolve_aggregations,
)

__all__ = ["AGGREGATIONS", "FEATURES", "compute", "cooccurrence_matrices", "features_from_matrix"]

AGGREGATIONS: tuple[str, ...] = ("2D_avg", "2D_smrg", "2.5D_dmrg", "2.5D_vmrg", "3D_avg", "3D_vmrg")

_SPEC = (
    ("cm.joint.max", "Joint maximum", "GYBY"),
    ("cm.joint.avg", "Joint average", "60VM"),
    ("cm.joint.var", "Joint variance", "UR99"),
    ("cm.joint.entr", "Joint entropy", "TU9B"),
    ("cm.diff.avg", "Difference average", "TF7R"),
    ("cm.diff.var", "Difference variance", "D3YU"),
    ("cm.diff.entr", "Difference entropy", "NTRS"),
    ("cm.sum.avg", "Sum average", "ZGXS"),
    ("cm.sum.var", "Sum variance", "OEEB"),
    ("cm.sum.entr", "Sum entropy", "P6QZ"),
    ("cm.energy", "Angular second moment", "8ZQL"),
    ("cm.contrast", "Contrast", "ACUI"),
    ("cm.dissimilarity", "Dissimilarity", "8S9J"),
    ("cm.inv.diff", "Inverse difference", "IB1Z"),
    ("cm.inv.diff.norm", "Normalised inverse difference", "NDRX"),
    ("cm.inv.diff.mom", "Inverse difference moment", "WF0Z"),
    ("cm.inv.diff.mom.norm", "Normalised inverse difference moment", "1QCO"),
    ("cm.inv.var", "Inverse variance", "E8JP"),
    ("cm.corr", "Correlation", "NI2N"),
    ("cm.auto.corr", "Autocorrelation", "QWB0"),
    ("cm.clust.tend", "Cluster tendency", "DG8W"),
    ("cm.clust.shade", "Cluster shade", "7NFM"),
    ("cm.clust.prom", "Cluster prominence", "AE86"),
    ("cm.info.corr.1", "Information correlation 1", "R8DG"),
    ("cm.info.corr.2", "Information correlation 2", "JN9H"),
)

#: The 25 GLCM features.
FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(k, n, "GLCM", i) for k, n, i in _SPEC)


@numba.njit(cache=True)
def _cooccurrence_kernel(levels: np.ndarray, offsets: np.ndarray, n_levels: int) -> np.ndarray:
    nz, ny, nx = levels.shape
    nd = offsets.shape[0]
    out = np.zeros((nd, n_levels, n_levels), dtype=np.int64)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                a = levels[z, y, x]
                if a == 0:
                    continue
                for k in range(nd):
                    b = levels[z + offsets[k, 0], y + offsets[k, 1], x + offsets[k, 2]]
                    if b > 0:
                        out[k, a - 1, b - 1] += 1
                        out[k, b - 1, a - 1] += 1
    return out


def cooccurrence_matrices(
    padded: np.ndarray, *, n_levels: int, three_d: bool, distance: int = 1
) -> np.ndarray:
    """Symmetric co-occurrence counts per direction, ``(n_directions, Ng, Ng)`` int64.

    ``padded`` is the output of :func:`~smartimaging.features.texture_common.prepare_levels`
    with ``pad >= distance``. In 2D only in-plane directions are used (pass one slice, or a
    block: pairs never cross slices).
    """
    offs = directions(three_d=three_d, distance=distance)
    return _cooccurrence_kernel(np.ascontiguousarray(padded, dtype=np.int32), offs, int(n_levels))


def features_from_matrix(counts: np.ndarray, *, n_levels: int) -> dict[str, float]:
    """All 25 GLCM features of one (non-empty) co-occurrence count matrix ``(Ng, Ng)``.

    Parameters
    ----------
    counts : numpy.ndarray
        Co-occurrence counts; normalised here to joint probabilities.
    n_levels : int
        ``Ng``, used by the normalised inverse difference (moment).

    Returns
    -------
    dict
        Feature key (``'cm.contrast'`` ...) to value.

    References
    ----------
    IBSI 1 ids in :data:`FEATURES`.
    """
    p = counts.astype(np.float64)
    p /= p.sum()
    ng = p.shape[0]
    lv = np.arange(1, ng + 1, dtype=np.float64)
    ii, jj = lv[:, None], lv[None, :]
    pi = p.sum(axis=1)
    pj = p.sum(axis=0)
    nz = p > 0
    pnz = p[nz]
    # diagonal (k = |i - j|) and cross-diagonal (k = i + j) marginals
    kd = np.abs(ii - jj).astype(np.int64)
    ks = (ii + jj).astype(np.int64)
    p_diff = np.bincount(kd.ravel(), weights=p.ravel(), minlength=ng)
    p_sum = np.bincount(ks.ravel(), weights=p.ravel(), minlength=2 * ng + 1)
    k_diff = np.arange(p_diff.size, dtype=np.float64)
    k_sum = np.arange(p_sum.size, dtype=np.float64)

    def entropy(q: np.ndarray) -> float:
        q = q[q > 0]
        return float(-np.sum(q * np.log2(q)))

    mu = float(np.sum(ii * p))
    mu_i = float(np.sum(lv * pi))
    mu_j = float(np.sum(lv * pj))
    var_i = float(np.sum((lv - mu_i) ** 2 * pi))
    var_j = float(np.sum((lv - mu_j) ** 2 * pj))
    diff_avg = float(np.sum(k_diff * p_diff))
    sum_avg = float(np.sum(k_sum * p_sum))
    dij = np.abs(ii - jj)
    auto = float(np.sum(ii * jj * p))
    hxy = entropy(pnz)
    hx, hy = entropy(pi), entropy(pj)
    # HXY1 = HXY2 = HX + HY for a joint distribution with marginals pi, pj
    mutual = max(hx + hy - hxy, 0.0)
    hmax = max(hx, hy)
    if var_i > 0 and var_j > 0:
        corr = (auto - mu_i * mu_j) / np.sqrt(var_i * var_j)
    else:
        corr = 1.0
    info1 = 1.0 if (hmax == 0.0 or pnz.size == 1) else -mutual / hmax
    info2 = float(np.sqrt(1.0 - np.exp(-2.0 * mutual)))
    off = k_diff > 0
    clust = ii + jj - mu_i - mu_j
    return {
        "cm.joint.max": float(pnz.max()),
        "cm.joint.avg": mu,
        "cm.joint.var": float(np.sum((ii - mu) ** 2 * p)),
        "cm.joint.entr": hxy,
        "cm.diff.avg": diff_avg,
        "cm.diff.var": float(np.sum((k_diff - diff_avg) ** 2 * p_diff)),
        "cm.diff.entr": entropy(p_diff),
        "cm.sum.avg": sum_avg,
        "cm.sum.var": float(np.sum((k_sum - sum_avg) ** 2 * p_sum)),
        "cm.sum.entr": entropy(p_sum),
        "cm.energy": float(np.sum(pnz**2)),
        "cm.contrast": float(np.sum(dij**2 * p)),
        "cm.dissimilarity": float(np.sum(dij * p)),
        "cm.inv.diff": float(np.sum(p / (1.0 + dij))),
        "cm.inv.diff.norm": float(np.sum(p / (1.0 + dij / n_levels))),
        "cm.inv.diff.mom": float(np.sum(p / (1.0 + dij**2))),
        "cm.inv.diff.mom.norm": float(np.sum(p / (1.0 + dij**2 / float(n_levels) ** 2))),
        "cm.inv.var": float(np.sum(p_diff[off] / k_diff[off] ** 2)),
        "cm.corr": float(corr),
        "cm.auto.corr": auto,
        "cm.clust.tend": float(np.sum(clust**2 * p)),
        "cm.clust.shade": float(np.sum(clust**3 * p)),
        "cm.clust.prom": float(np.sum(clust**4 * p)),
        "cm.info.corr.1": float(info1),
        "cm.info.corr.2": info2,
    }


def compute(
    levels: np.ndarray,
    mask: np.ndarray,
    *,
    n_levels: int,
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0),
    aggregations: Sequence[str] | None = None,
    distance: int = 1,
) -> dict[str, dict[str, float]]:
    """Compute the GLCM features for the requested aggregations.

    Parameters
    ----------
    levels : numpy.ndarray
        Discretised grey levels ``(z, y, x)``, ``1..n_levels`` inside the ROI.
    mask : numpy.ndarray
        Boolean ROI of the same shape.
    n_levels : int
        Number of grey levels ``Ng`` (matrix size).
    spacing_zyx : tuple of float
        Voxel spacing; accepted for a uniform family interface, unused (IBSI GLCMs are defined
        on the voxel grid).
    aggregations : sequence of str, optional
        Subset of :data:`AGGREGATIONS`; all by default.
    distance : int
        Chebyshev distance between paired voxels (IBSI default 1).

    Returns
    -------
    dict
        ``{aggregation: {feature_key: value}}``.

    Raises
    ------
    ConfigError
        Unknown aggregation or invalid distance.
    EmptyMaskError, FeatureError, GeometryMismatchError
        See :func:`~smartimaging.features.texture_common.prepare_levels`.

    References
    ----------
    IBSI 1, GLCM features (LFYI) and texture aggregation methods.
    """
    aggs = resolve_aggregations(aggregations, AGGREGATIONS, "GLCM")
    d = check_distance(distance, "GLCM")
    padded = prepare_levels(levels, mask, n_levels=n_levels, pad=d, family="GLCM")
    ng = int(n_levels)
    out: dict[str, dict[str, float]] = {}

    def fallback() -> np.ndarray:
        hist = np.bincount(padded[padded > 0], minlength=ng + 1)[1:]
        return np.diag(hist).astype(np.int64)

    def feats(m: np.ndarray) -> dict[str, float]:
        return features_from_matrix(m, n_levels=ng)

    def averaged(mats: list[np.ndarray]) -> dict[str, float]:
        mats = [m for m in mats if m.sum() > 0]
        if not mats:
            return feats(fallback())
        return mean_features(feats(m) for m in mats)

    if any(a.startswith("2") for a in aggs):
        # slice by slice, so memory stays at a few Ng x Ng matrices whatever the slice count
        rows_avg: list[dict[str, float]] = []
        rows_smrg: list[dict[str, float]] = []
        dir_sum = np.zeros((4, ng, ng), dtype=np.int64)
        for z in range(d, padded.shape[0] - d):
            mats = cooccurrence_matrices(padded[z : z + 1], n_levels=ng, three_d=False, distance=d)
            dir_sum += mats
            if "2D_avg" in aggs:
                rows_avg += [feats(m) for m in mats if m.sum() > 0]
            if "2D_smrg" in aggs and mats.sum() > 0:
                rows_smrg.append(feats(mats.sum(axis=0)))
        if "2D_avg" in aggs:
            out["2D_avg"] = mean_features(rows_avg) if rows_avg else feats(fallback())
        if "2D_smrg" in aggs:
            out["2D_smrg"] = mean_features(rows_smrg) if rows_smrg else feats(fallback())
        if "2.5D_dmrg" in aggs:
            out["2.5D_dmrg"] = averaged(list(dir_sum))
        if "2.5D_vmrg" in aggs:
            out["2.5D_vmrg"] = averaged([dir_sum.sum(axis=0)])
    if any(a.startswith("3") for a in aggs):
        mats3 = cooccurrence_matrices(padded, n_levels=ng, three_d=True, distance=d)
        if "3D_avg" in aggs:
            out["3D_avg"] = averaged(list(mats3))
        if "3D_vmrg" in aggs:
            out["3D_vmrg"] = averaged([mats3.sum(axis=0)])
    return {a: out[a] for a in aggs}
