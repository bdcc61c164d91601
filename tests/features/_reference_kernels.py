"""Reference NumPy implementations of formulas that ``src`` now evaluates in compiled kernels.

These are the per-matrix implementations the package used before the batched Numba kernels
(GLCM features, the generic grey-level x size matrix features, mesh volume and area); the
tests check that the kernels reproduce them. They live in the tests only.
"""

from __future__ import annotations

import numpy as np


def glcm_features(counts: np.ndarray, *, n_levels: int) -> dict[str, float]:
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
    fi = i.astype(np.float64)
    fj = j.astype(np.float64)
    m = counts.astype(np.float64)
    ns = m.sum()
    p = m / ns
    i2, j2 = fi * fi, fj * fj
    per_i = np.bincount(i.astype(np.int64), weights=m)
    per_j = np.bincount(j.astype(np.int64), weights=m)
    mu_i = float(np.sum(fi * p))
    mu_j = float(np.sum(fj * p))
    return {
        "sje": float(np.sum(p / j2)),
        "lje": float(np.sum(p * j2)),
        "lge": float(np.sum(p / i2)),
        "hge": float(np.sum(p * i2)),
        "sjlge": float(np.sum(p / (i2 * j2))),
        "sjhge": float(np.sum(p * i2 / j2)),
        "ljlge": float(np.sum(p * j2 / i2)),
        "ljhge": float(np.sum(p * i2 * j2)),
        "glnu": float(np.sum(per_i**2) / ns),
        "glnu_norm": float(np.sum(per_i**2) / ns**2),
        "jnu": float(np.sum(per_j**2) / ns),
        "jnu_norm": float(np.sum(per_j**2) / ns**2),
        "perc": float(ns / n_voxels),
        "gl_var": float(np.sum((fi - mu_i) ** 2 * p)),
        "j_var": float(np.sum((fj - mu_j) ** 2 * p)),
        "entr": float(-np.sum(p * np.log2(p))),
        "energy": float(np.sum(p * p)),
    }


def triples_from_pairs(
    i: np.ndarray, j: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aggregate repeated ``(i, j)`` pairs into unique cells with summed counts."""
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    w = np.ones(i.size) if weights is None else np.asarray(weights, dtype=np.float64)
    width = int(j.max()) + 1
    uniq, inv = np.unique(i * width + j, return_inverse=True)
    return uniq // width, uniq % width, np.bincount(inv, weights=w)


def mesh_volume_area(verts: np.ndarray, faces: np.ndarray) -> tuple[float, float]:
    """Volume (divergence theorem) and area of a closed triangle mesh."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    volume = abs(float(np.sum(np.einsum("ij,ij->i", a, np.cross(b, c)))) / 6.0)
    area = float(np.sum(np.linalg.norm(np.cross(b - a, c - a), axis=1)) / 2.0)
    return volume, area


# --------------------------------------------------------------------------------------------
# texture-a: the GLCM, GLRLM, NGTDM and NGLDM ``compute`` functions before the one-call kernels
# (Python loops over slices and aggregations around the per-matrix kernels, which the package
# still exports).
# --------------------------------------------------------------------------------------------
def _old_keys_dict(keys: tuple[str, ...], row: np.ndarray) -> dict[str, float]:
    return dict(zip(keys, (float(v) for v in row), strict=True))


def _old_mean_rows(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(rows, dtype=np.float64).T).mean(axis=1)


def old_glcm_compute(
    levels: np.ndarray, mask: np.ndarray, *, n_levels: int, aggregations=None, distance: int = 1
) -> dict[str, dict[str, float]]:
    """GLCM ``compute`` as it was: Python loop over slices around the per-matrix kernels."""
    from smartimaging.features import glcm
    from smartimaging.features.texture_common import check_distance, prepare_levels, resolve_aggregations

    keys = tuple(f.key for f in glcm.FEATURES)
    aggs = resolve_aggregations(aggregations, glcm.AGGREGATIONS, "GLCM")
    d = check_distance(distance, "GLCM")
    padded = prepare_levels(levels, mask, n_levels=n_levels, pad=d, family="GLCM")
    ng = int(n_levels)
    out: dict[str, dict[str, float]] = {}

    def fallback() -> np.ndarray:
        hist = np.bincount(padded[padded > 0], minlength=ng + 1)[1:]
        return np.diag(hist).astype(np.int64)[None]

    empty = np.zeros((0, ng, ng), dtype=np.int64)

    def rows_of(mats: np.ndarray) -> np.ndarray:
        keep = mats[mats.sum(axis=(1, 2)) > 0]
        return glcm.features_of_matrices(keep, n_levels=ng)

    def averaged(mats: np.ndarray) -> dict[str, float]:
        rows = rows_of(mats)
        if rows.shape[0] == 0:
            rows = glcm.features_of_matrices(fallback(), n_levels=ng)
        return _old_keys_dict(keys, _old_mean_rows(rows))

    if any(a.startswith("2") for a in aggs):
        rows_avg: list[np.ndarray] = []
        merged: list[np.ndarray] = []
        dir_sum = np.zeros((4, ng, ng), dtype=np.int64)
        for z in range(d, padded.shape[0] - d):
            mats = glcm.cooccurrence_matrices(padded[z : z + 1], n_levels=ng, three_d=False, distance=d)
            dir_sum += mats
            if "2D_avg" in aggs:
                rows_avg.append(rows_of(mats))
            if "2D_smrg" in aggs:
                merged.append(mats.sum(axis=0))
        if "2D_avg" in aggs:
            avg = np.concatenate(rows_avg) if rows_avg else np.zeros((0, 25))
            out["2D_avg"] = _old_keys_dict(keys, _old_mean_rows(avg)) if avg.shape[0] else averaged(empty)
        if "2D_smrg" in aggs:
            out["2D_smrg"] = averaged(np.stack(merged) if merged else empty)
        if "2.5D_dmrg" in aggs:
            out["2.5D_dmrg"] = averaged(dir_sum)
        if "2.5D_vmrg" in aggs:
            out["2.5D_vmrg"] = averaged(dir_sum.sum(axis=0)[None])
    if any(a.startswith("3") for a in aggs):
        mats3 = glcm.cooccurrence_matrices(padded, n_levels=ng, three_d=True, distance=d)
        if "3D_avg" in aggs:
            out["3D_avg"] = averaged(mats3)
        if "3D_vmrg" in aggs:
            out["3D_vmrg"] = averaged(mats3.sum(axis=0)[None])
    return {a: out[a] for a in aggs}


def old_ngtdm_compute(
    levels: np.ndarray, mask: np.ndarray, *, n_levels: int, aggregations=None, distance: int = 1
) -> dict[str, dict[str, float]]:
    """NGTDM ``compute`` as it was: per-slice kernel, NumPy features, dictionaries averaged."""
    from smartimaging.features import ngtdm
    from smartimaging.features.texture_common import (
        check_distance,
        mean_features,
        prepare_levels,
        resolve_aggregations,
    )

    aggs = resolve_aggregations(aggregations, ngtdm.AGGREGATIONS, "NGTDM")
    d = check_distance(distance, "NGTDM")
    padded = prepare_levels(levels, mask, n_levels=n_levels, pad=d, family="NGTDM")
    ng = int(n_levels)
    out: dict[str, dict[str, float]] = {}
    if "2D" in aggs or "2.5D" in aggs:
        s2, n2 = ngtdm.ngtdm_per_slice(padded, n_levels=ng, three_d=False, distance=d)
        if "2D" in aggs:
            rows = [ngtdm.features_from_matrix(s2[z], n2[z]) for z in range(s2.shape[0]) if n2[z].sum() > 0]
            out["2D"] = mean_features(rows) if rows else ngtdm.features_from_matrix(s2[0], n2[0])
        if "2.5D" in aggs:
            out["2.5D"] = ngtdm.features_from_matrix(s2.sum(axis=0), n2.sum(axis=0))
    if "3D" in aggs:
        s3, n3 = ngtdm.ngtdm_per_slice(padded, n_levels=ng, three_d=True, distance=d)
        out["3D"] = ngtdm.features_from_matrix(s3.sum(axis=0), n3.sum(axis=0))
    return {a: out[a] for a in aggs}


def old_ngldm_compute(
    levels: np.ndarray,
    mask: np.ndarray,
    *,
    n_levels: int,
    aggregations=None,
    distance: int = 1,
    alpha: int = 0,
) -> dict[str, dict[str, float]]:
    """NGLDM ``compute`` as it was: per-slice dependence matrices, batched generic features."""
    from smartimaging.features import ngldm
    from smartimaging.features.texture_common import (
        check_distance,
        mean_rows,
        prepare_levels,
        resolve_aggregations,
        size_features_dense,
    )

    def rows_of(mats: np.ndarray) -> np.ndarray:
        return size_features_dense(mats, mats.sum(axis=(1, 2)).astype(np.float64))

    def as_dict(generic: np.ndarray) -> dict[str, float]:
        col = {name: c for c, name in enumerate(_GENERIC)}
        return {key: float(generic[col[g]]) for key, _, _, g in ngldm._SPEC}

    aggs = resolve_aggregations(aggregations, ngldm.AGGREGATIONS, "NGLDM")
    d = check_distance(distance, "NGLDM")
    padded = prepare_levels(levels, mask, n_levels=n_levels, pad=d, family="NGLDM")
    ng = int(n_levels)
    out: dict[str, dict[str, float]] = {}
    if "2D" in aggs or "2.5D" in aggs:
        m2 = ngldm.dependence_matrices(padded, n_levels=ng, three_d=False, distance=d, alpha=alpha)
        if "2D" in aggs:
            out["2D"] = as_dict(mean_rows(rows_of(m2[m2.sum(axis=(1, 2)) > 0])))
        if "2.5D" in aggs:
            out["2.5D"] = as_dict(rows_of(m2.sum(axis=0)[None])[0])
    if "3D" in aggs:
        m3 = ngldm.dependence_matrices(padded, n_levels=ng, three_d=True, distance=d, alpha=alpha)
        out["3D"] = as_dict(rows_of(m3.sum(axis=0)[None])[0])
    return {a: out[a] for a in aggs}


_GENERIC = (
    "sje", "lje", "lge", "hge", "sjlge", "sjhge", "ljlge", "ljhge",
    "glnu", "glnu_norm", "jnu", "jnu_norm", "perc", "gl_var", "j_var", "entr", "energy",
)  # fmt: skip


def old_glrlm_compute(
    levels: np.ndarray, mask: np.ndarray, *, n_levels: int, aggregations=None, distance: int = 1
) -> dict[str, dict[str, float]]:
    """GLRLM ``compute`` as it was: Python loop over slices around the run length kernel."""
    from smartimaging.features import glrlm
    from smartimaging.features.texture_common import (
        check_distance,
        mean_rows,
        prepare_levels,
        resolve_aggregations,
        size_features_dense,
    )

    def rows_of(mats: np.ndarray) -> np.ndarray:
        lengths = np.arange(1, mats.shape[-1] + 1, dtype=np.int64)
        return size_features_dense(mats, (mats * lengths).sum(axis=(1, 2)).astype(np.float64))

    def as_dict(generic: np.ndarray) -> dict[str, float]:
        col = {name: c for c, name in enumerate(_GENERIC)}
        return {key: float(generic[col[g]]) for key, _, _, g in glrlm._SPEC}

    aggs = resolve_aggregations(aggregations, glrlm.AGGREGATIONS, "GLRLM")
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
            sl = padded[z : z + 1]
            if not sl.any():
                continue
            mats = glrlm.run_length_matrices(sl, n_levels=ng, three_d=False)[:, :, :max_len]
            dir_sum += mats
            rows_avg.append(rows_of(mats))
            merged.append(rows_of(mats.sum(axis=0)[None]))
        out["2D_avg"] = as_dict(mean_rows(np.concatenate(rows_avg)))
        out["2D_smrg"] = as_dict(mean_rows(np.concatenate(merged)))
        out["2.5D_dmrg"] = as_dict(mean_rows(rows_of(dir_sum)))
        out["2.5D_vmrg"] = as_dict(rows_of(dir_sum.sum(axis=0)[None])[0])
    if any(a.startswith("3") for a in aggs):
        mats3 = glrlm.run_length_matrices(padded, n_levels=ng, three_d=True)
        out["3D_avg"] = as_dict(mean_rows(rows_of(mats3)))
        out["3D_vmrg"] = as_dict(rows_of(mats3.sum(axis=0)[None])[0])
    return {a: out[a] for a in aggs}
