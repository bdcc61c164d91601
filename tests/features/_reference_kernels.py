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


# morph-speed: the morphology family before its single compiled pass (scikit-image marching
# cubes, NumPy voxel points and covariance, Qhull on every mesh vertex, all-pairs distances).


def morphology_mesh(
    mask: np.ndarray, spacing_zyx: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image marching-cubes mesh (vertices in mm, faces) of a boolean mask, cropped and padded."""
    from skimage.measure import marching_cubes

    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    cropped = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    padded = np.pad(cropped, 1).astype(np.float32)
    verts, faces, _normals, _values = marching_cubes(padded, level=0.5, spacing=spacing_zyx)
    return verts.astype(float), faces


def ellipsoid_area(a: float, b: float, c: float) -> float:
    """IBSI Legendre-series area of an ellipsoid with semi-axes a >= b >= c (nu <= 20)."""
    if a <= 0.0:
        return 0.0
    alpha = np.sqrt(max(0.0, 1.0 - (b / a) ** 2))
    beta = np.sqrt(max(0.0, 1.0 - (c / a) ** 2))
    half_sum = (alpha**2 + beta**2) / 2.0
    prod2 = (alpha * beta) ** 2
    q_prev, q = 1.0, half_sum
    total = 1.0 + q / (1.0 - 4.0)
    for nu in range(1, 20):
        q_next = ((2 * nu + 1) * half_sum * q - nu * prod2 * q_prev) / (nu + 1)
        q_prev, q = q, q_next
        total += q / (1.0 - 4.0 * (nu + 1) ** 2)
    return float(4.0 * np.pi * a * b * total)


def morphology_features(
    values_image: np.ndarray,
    morph: np.ndarray,
    inten: np.ndarray,
    spacing_zyx: tuple[float, float, float],
) -> dict[str, float]:
    """The 23 morphology values other than Moran's I and Geary's C, as the family computed them.

    ``values_image`` is the intensity array, ``morph`` and ``inten`` the boolean morphological and
    intensity masks (axis order z, y, x), ``spacing_zyx`` the voxel size in mm.
    """
    from scipy.spatial import ConvexHull
    from scipy.spatial.distance import cdist

    values = np.asarray(values_image[inten], dtype=float)
    verts, faces = morphology_mesh(morph, spacing_zyx)
    volume, area = mesh_volume_area(verts, faces)
    approx_volume = int(np.count_nonzero(morph)) * float(np.prod(spacing_zyx[::-1]))
    hull = ConvexHull(verts)
    hull_points = verts[hull.vertices]
    diameter = float(np.sqrt(cdist(hull_points, hull_points, "sqeuclidean").max()))
    extent = np.ptp(hull_points, axis=0)
    aabb_volume = float(np.prod(extent))
    aabb_area = float(2.0 * (extent[0] * extent[1] + extent[1] * extent[2] + extent[0] * extent[2]))
    points = np.argwhere(morph).astype(float) * np.asarray(spacing_zyx)
    com_geom = points.mean(axis=0)
    inten_points = np.argwhere(inten).astype(float) * np.asarray(spacing_zyx)
    total_intensity = float(values.sum())
    if total_intensity != 0.0:
        com_gl = (values[:, None] * inten_points).sum(axis=0) / total_intensity
        com_shift = float(np.linalg.norm(com_geom - com_gl))
    else:
        com_shift = 0.0
    eigenvalues = np.linalg.eigvalsh(np.cov(points, rowvar=False)) if points.shape[0] > 1 else np.zeros(3)
    lam_least, lam_minor, lam_major = (max(0.0, float(v)) for v in np.sort(eigenvalues))
    a, b, c = 2.0 * np.sqrt(lam_major), 2.0 * np.sqrt(lam_minor), 2.0 * np.sqrt(lam_least)
    if lam_major > 0.0:
        elongation = float(np.sqrt(lam_minor / lam_major))
        flatness = float(np.sqrt(lam_least / lam_major))
    else:
        elongation = flatness = 1.0
    aee_volume = 4.0 * np.pi * a * b * c / 3.0
    aee_area = ellipsoid_area(a, b, c)
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
    }
