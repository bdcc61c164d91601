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
    prepare_levels,
    resolve_aggregations,
)

__all__ = [
    "AGGREGATIONS",
    "FEATURES",
    "compute",
    "cooccurrence_matrices",
    "features_from_matrix",
    "features_of_matrices",
]

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
    ny, nx = levels.shape[1], levels.shape[2]
    nd = offsets.shape[0]
    out = np.zeros((nd, n_levels, n_levels), dtype=np.int64)
    flat = levels.ravel()
    flat_off = np.empty(offsets.shape[0], dtype=np.int64)
    for k in range(offsets.shape[0]):
        flat_off[k] = (offsets[k, 0] * ny + offsets[k, 1]) * nx + offsets[k, 2]
    # flat indices: the background frame keeps every neighbour of a ROI voxel inside the array
    for p in range(flat.size):
        a = flat[p]
        if a == 0:
            continue
        for k in range(nd):
            b = flat[p + flat_off[k]]
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


_KEYS: tuple[str, ...] = tuple(k for k, _, _ in _SPEC)


@numba.njit(cache=True)
def _features_kernel(mats: np.ndarray, n_levels: int) -> np.ndarray:  # pragma: no cover - compiled
    """The 25 features (columns in :data:`_SPEC` order) of each non-empty matrix of a stack.

    One compiled pass per matrix over its non-zero cells accumulates every marginal and
    moment, a second pass the moments about the means; zero cells contribute nothing to any
    sum, so skipping them changes no value.
    """
    n_mats, ng = mats.shape[0], mats.shape[1]
    out = np.empty((n_mats, 25))
    pi = np.empty(ng)
    pj = np.empty(ng)
    p_diff = np.empty(ng)
    p_sum = np.empty(2 * ng + 1)
    fng = float(n_levels)
    for k in range(n_mats):
        m = mats[k]
        total = 0.0
        for i in range(ng):
            for j in range(ng):
                total += m[i, j]
        pi[:] = 0.0
        pj[:] = 0.0
        p_diff[:] = 0.0
        p_sum[:] = 0.0
        mu = 0.0
        auto = 0.0
        hxy = 0.0
        pmax = 0.0
        energy = 0.0
        contrast = 0.0
        dissim = 0.0
        inv_diff = 0.0
        inv_diff_norm = 0.0
        inv_diff_mom = 0.0
        inv_diff_mom_norm = 0.0
        nnz = 0
        for i in range(ng):
            fi = i + 1.0
            for j in range(ng):
                c = m[i, j]
                if c == 0:
                    continue
                p = c / total
                fj = j + 1.0
                nnz += 1
                pi[i] += p
                pj[j] += p
                d = abs(i - j)
                fd = float(d)
                p_diff[d] += p
                p_sum[i + j + 2] += p
                mu += fi * p
                auto += fi * fj * p
                hxy -= p * np.log2(p)
                if p > pmax:
                    pmax = p
                energy += p * p
                contrast += fd * fd * p
                dissim += fd * p
                inv_diff += p / (1.0 + fd)
                inv_diff_norm += p / (1.0 + fd / fng)
                inv_diff_mom += p / (1.0 + fd * fd)
                inv_diff_mom_norm += p / (1.0 + fd * fd / (fng * fng))
        mu_i = 0.0
        mu_j = 0.0
        hx = 0.0
        hy = 0.0
        for i in range(ng):
            mu_i += (i + 1.0) * pi[i]
            mu_j += (i + 1.0) * pj[i]
            if pi[i] > 0:
                hx -= pi[i] * np.log2(pi[i])
            if pj[i] > 0:
                hy -= pj[i] * np.log2(pj[i])
        var_i = 0.0
        var_j = 0.0
        for i in range(ng):
            var_i += (i + 1.0 - mu_i) ** 2 * pi[i]
            var_j += (i + 1.0 - mu_j) ** 2 * pj[i]
        diff_avg = 0.0
        diff_entr = 0.0
        inv_var = 0.0
        for d in range(ng):
            q = p_diff[d]
            diff_avg += d * q
            if q > 0:
                diff_entr -= q * np.log2(q)
                if d > 0:
                    inv_var += q / float(d) ** 2
        diff_var = 0.0
        for d in range(ng):
            diff_var += (d - diff_avg) ** 2 * p_diff[d]
        sum_avg = 0.0
        sum_entr = 0.0
        for s in range(2 * ng + 1):
            q = p_sum[s]
            sum_avg += s * q
            if q > 0:
                sum_entr -= q * np.log2(q)
        sum_var = 0.0
        for s in range(2 * ng + 1):
            sum_var += (s - sum_avg) ** 2 * p_sum[s]
        joint_var = 0.0
        tend = 0.0
        shade = 0.0
        prom = 0.0
        for i in range(ng):
            fi = i + 1.0
            for j in range(ng):
                c = m[i, j]
                if c == 0:
                    continue
                p = c / total
                joint_var += (fi - mu) ** 2 * p
                cl = fi + (j + 1.0) - mu_i - mu_j
                cl2 = cl * cl
                tend += cl2 * p
                shade += cl2 * cl * p
                prom += cl2 * cl2 * p
        mutual = max(hx + hy - hxy, 0.0)
        hmax = max(hx, hy)
        if var_i > 0 and var_j > 0:
            corr = (auto - mu_i * mu_j) / np.sqrt(var_i * var_j)
        else:
            corr = 1.0
        info1 = 1.0 if (hmax == 0.0 or nnz == 1) else -mutual / hmax
        row = out[k]
        row[0] = pmax
        row[1] = mu
        row[2] = joint_var
        row[3] = hxy
        row[4] = diff_avg
        row[5] = diff_var
        row[6] = diff_entr
        row[7] = sum_avg
        row[8] = sum_var
        row[9] = sum_entr
        row[10] = energy
        row[11] = contrast
        row[12] = dissim
        row[13] = inv_diff
        row[14] = inv_diff_norm
        row[15] = inv_diff_mom
        row[16] = inv_diff_mom_norm
        row[17] = inv_var
        row[18] = corr
        row[19] = auto
        row[20] = tend
        row[21] = shade
        row[22] = prom
        row[23] = info1
        row[24] = np.sqrt(1.0 - np.exp(-2.0 * mutual))
    return out


def features_of_matrices(counts: np.ndarray, *, n_levels: int) -> np.ndarray:
    """The 25 GLCM features of each matrix of a stack, in one compiled pass.

    Parameters
    ----------
    counts : numpy.ndarray
        Co-occurrence counts ``(n_matrices, Ng, Ng)``, each matrix non-empty; each is
        normalised to joint probabilities.
    n_levels : int
        ``Ng``, used by the normalised inverse difference (moment).

    Returns
    -------
    numpy.ndarray
        ``(n_matrices, 25)`` float64, columns in the order of :data:`FEATURES`.

    References
    ----------
    IBSI 1 ids in :data:`FEATURES`.
    """
    stack = np.ascontiguousarray(counts, dtype=np.int64)
    if stack.ndim != 3 or stack.shape[1] != stack.shape[2]:
        raise ValueError(f"counts must be a (n, Ng, Ng) stack, got shape {stack.shape}")
    if stack.shape[0] and not np.all(stack.sum(axis=(1, 2)) > 0):
        raise ValueError("every co-occurrence matrix of the stack must hold at least one pair")
    return np.asarray(_features_kernel(stack, int(n_levels)))


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
    row = features_of_matrices(np.asarray(counts)[None], n_levels=n_levels)[0]
    return dict(zip(_KEYS, (float(v) for v in row), strict=True))


def _as_dict(row: np.ndarray) -> dict[str, float]:
    return dict(zip(_KEYS, (float(v) for v in row), strict=True))


def _mean_rows(rows: np.ndarray) -> dict[str, float]:
    """Column means of feature rows (each column reduced contiguously, as ``np.mean`` of a list)."""
    return _as_dict(np.ascontiguousarray(rows.T).mean(axis=1))


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
        return np.diag(hist).astype(np.int64)[None]

    empty = np.zeros((0, ng, ng), dtype=np.int64)

    def rows_of(mats: np.ndarray) -> np.ndarray:
        """Feature rows of the non-empty matrices of a stack."""
        keep = mats[mats.sum(axis=(1, 2)) > 0]
        return features_of_matrices(keep, n_levels=ng)

    def averaged(mats: np.ndarray) -> dict[str, float]:
        """IBSI averaging: the mean feature row of the non-empty matrices (fallback if none)."""
        rows = rows_of(mats)
        if rows.shape[0] == 0:
            rows = features_of_matrices(fallback(), n_levels=ng)
        return _mean_rows(rows)

    if any(a.startswith("2") for a in aggs):
        # slice by slice, so memory stays at a few Ng x Ng matrices whatever the slice count
        rows_avg: list[np.ndarray] = []
        merged: list[np.ndarray] = []
        dir_sum = np.zeros((4, ng, ng), dtype=np.int64)
        for z in range(d, padded.shape[0] - d):
            mats = cooccurrence_matrices(padded[z : z + 1], n_levels=ng, three_d=False, distance=d)
            dir_sum += mats
            if "2D_avg" in aggs:
                rows_avg.append(rows_of(mats))
            if "2D_smrg" in aggs:
                merged.append(mats.sum(axis=0))
        if "2D_avg" in aggs:
            avg = np.concatenate(rows_avg) if rows_avg else np.zeros((0, 25))
            out["2D_avg"] = _mean_rows(avg) if avg.shape[0] else averaged(empty)
        if "2D_smrg" in aggs:
            out["2D_smrg"] = averaged(np.stack(merged) if merged else empty)
        if "2.5D_dmrg" in aggs:
            out["2.5D_dmrg"] = averaged(dir_sum)
        if "2.5D_vmrg" in aggs:
            out["2.5D_vmrg"] = averaged(dir_sum.sum(axis=0)[None])
    if any(a.startswith("3") for a in aggs):
        mats3 = cooccurrence_matrices(padded, n_levels=ng, three_d=True, distance=d)
        if "3D_avg" in aggs:
            out["3D_avg"] = averaged(mats3)
        if "3D_vmrg" in aggs:
            out["3D_vmrg"] = averaged(mats3.sum(axis=0)[None])
    return {a: out[a] for a in aggs}
