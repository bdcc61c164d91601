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


# texture-b: GLSZM and GLDZM as computed before the one-pass zone kernels (zones labelled by
# texture_common.label_zones, border distances by scipy's chamfer transform of the padded
# morphological mask, features by texture_common.size_features_pairs, one call per matrix).
def _zone_rows_per_slice(z_level, z_j, z_slice, per_slice_nv):  # type: ignore[no-untyped-def]
    from smartimaging.features.texture_common import size_features_pairs

    order = np.argsort(z_slice, kind="stable")
    bounds = np.flatnonzero(np.diff(z_slice[order])) + 1
    return np.stack(
        [
            size_features_pairs(z_level[sel], z_j[sel], float(per_slice_nv[z_slice[sel[0]]]))
            for sel in np.split(order, bounds)
        ]
    )


def glszm_reference(levels: np.ndarray, mask: np.ndarray, *, n_levels: int) -> dict[str, np.ndarray]:
    """Generic 17-feature rows of the GLSZM for ``2D`` (mean of slices), ``2.5D`` and ``3D``."""
    from smartimaging.features.texture_common import (
        label_zones,
        mean_rows,
        prepare_levels,
        size_features_pairs,
    )

    padded = prepare_levels(levels, mask, n_levels=n_levels, pad=1, family="GLSZM")
    out = {}
    _, z_level, z_size, z_slice = label_zones(padded, three_d=False)
    out["2D"] = mean_rows(
        _zone_rows_per_slice(z_level, z_size, z_slice, np.count_nonzero(padded, axis=(1, 2)))
    )
    out["2.5D"] = size_features_pairs(z_level, z_size, float(np.sum(z_size)))
    _, z_level, z_size, _ = label_zones(padded, three_d=True)
    out["3D"] = size_features_pairs(z_level, z_size, float(np.sum(z_size)))
    return out


def border_distance_reference(mask: np.ndarray, *, three_d: bool) -> np.ndarray:
    """City-block distance of each mask voxel to the nearest voxel outside (scipy chamfer)."""
    from scipy import ndimage

    padded = np.pad(np.asarray(mask, dtype=bool), 1)
    if three_d:
        structure = ndimage.generate_binary_structure(3, 1)
    else:
        structure = np.zeros((3, 3, 3), dtype=bool)
        structure[1] = ndimage.generate_binary_structure(2, 1)
    dist = ndimage.distance_transform_cdt(padded, metric=structure)
    return np.asarray(dist[1:-1, 1:-1, 1:-1], dtype=np.int64)


def gldzm_reference(
    levels: np.ndarray, mask: np.ndarray, *, n_levels: int, morphological_mask: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Generic 17-feature rows of the GLDZM for ``2D`` (mean of slices), ``2.5D`` and ``3D``."""
    from smartimaging.features.texture_common import (
        bounding_box,
        label_zones,
        mean_rows,
        prepare_levels,
        size_features_pairs,
    )

    padded = prepare_levels(levels, mask, n_levels=n_levels, pad=1, family="GLDZM")
    from smartimaging.exceptions import GeometryMismatchError

    roi = np.asarray(mask, dtype=bool)
    morph = roi if morphological_mask is None else np.asarray(morphological_mask, dtype=bool)
    if morph.shape != roi.shape:
        raise GeometryMismatchError(
            f"GLDZM: morphological_mask shape {morph.shape} differs from mask shape {roi.shape}"
        )
    if np.any(roi & ~morph):
        raise GeometryMismatchError(
            "GLDZM: the intensity mask has voxels outside morphological_mask; re-segmentation only "
            "removes voxels, so pass the mask before re-segmentation as morphological_mask"
        )
    box = bounding_box(roi)
    out = {}
    for three_d in (False, True):
        dist = np.pad(border_distance_reference(morph, three_d=three_d)[box], 1)
        labels, z_level, _, z_slice = label_zones(padded, three_d=three_d)
        inside = labels > 0
        z_dist = np.full(z_level.size, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(z_dist, labels[inside] - 1, dist[inside])
        if not three_d:
            per_slice_nv = np.count_nonzero(padded, axis=(1, 2))
            out["2D"] = mean_rows(_zone_rows_per_slice(z_level, z_dist, z_slice, per_slice_nv))
        out["3D" if three_d else "2.5D"] = size_features_pairs(
            z_level, z_dist, float(np.count_nonzero(padded))
        )
    return out


# spatial-speed: the former implementations of Moran's I / Geary's C (exact pair sums and the
# three-transform FFT path) and of the 1 cm³ sphere means (correlation over the whole box)


def moran_geary_pairs(
    idx: np.ndarray, values: np.ndarray, spacing: tuple[float, float, float]
) -> tuple[float, float]:
    """Moran's I and Geary's C from the exact all-pairs sums (NumPy, blocked; constant -> (0, 1))."""
    vals = np.asarray(values, dtype=np.float64)
    n = vals.size
    if n < 2 or float(vals.max()) == float(vals.min()):
        return 0.0, 1.0
    d = vals - vals.mean()
    ss = float(np.sum(d**2))
    pts = np.asarray(idx, dtype=np.float64) * np.asarray(spacing, dtype=np.float64)
    total_w = cross = sq = 0.0
    for start in range(0, n, 512):
        diff = pts[start : start + 512, None, :] - pts[None, :, :]
        r = np.sqrt(np.sum(diff**2, axis=-1))
        with np.errstate(divide="ignore"):
            w = np.where(r > 0, 1.0 / np.where(r > 0, r, 1.0), 0.0)
        di = d[start : start + 512]
        total_w += float(w.sum())
        cross += float(di @ w @ d)
        sq += float(np.sum(w * (di[:, None] - d[None, :]) ** 2))
    moran = n / total_w * cross / ss
    geary = (n - 1) / (2.0 * total_w) * sq / ss
    return float(moran), float(geary)


def moran_geary_fft(
    values: np.ndarray, mask: np.ndarray, spacing: tuple[float, float, float]
) -> tuple[float, float]:
    """The former FFT path: mask, centred and squared fields zero-padded to twice the box, three
    3D real FFTs, the (even) weights' spectrum from a DCT-I of one octant, Parseval sums (NumPy)."""
    from scipy import fft as sp_fft

    idx = np.argwhere(mask)
    vals = np.asarray(values[mask], dtype=np.float64)
    n = vals.size
    d = vals - vals.mean()
    ss = float(np.sum(d**2))
    if n < 2 or ss <= 0.0:
        return 0.0, 1.0
    lo = idx.min(axis=0)
    box = idx.max(axis=0) - lo + 1
    padded = [int(sp_fft.next_fast_len(int(2 * b), real=True)) for b in box]
    padded = [p + (p % 2) for p in padded]
    fields = np.zeros((3, *(int(b) for b in box)))
    where = tuple((idx - lo).T)
    fields[(0, *where)] = 1.0
    fields[(1, *where)] = d
    fields[(2, *where)] = d * d
    spectra = sp_fft.rfftn(fields, s=padded, axes=(1, 2, 3))
    offs = [np.arange(p // 2 + 1, dtype=np.float64) * s for p, s in zip(padded, spacing, strict=True)]
    r2 = offs[0][:, None, None] ** 2 + offs[1][None, :, None] ** 2 + offs[2][None, None, :] ** 2
    r2[0, 0, 0] = np.inf
    octant = sp_fft.dctn(1.0 / np.sqrt(r2), type=1) / float(np.prod(padded))
    fold = [np.minimum(np.arange(p), p - np.arange(p)) for p in padded[:2]]
    w = octant[fold[0][:, None], fold[1][None, :], :]
    mult = np.full(spectra.shape[3], 2.0)
    mult[0] = 1.0
    mult[-1] = 1.0
    w = w * mult
    m, dd, g = spectra
    total_w = float(np.sum(w * np.abs(m) ** 2))
    cross = float(np.sum(w * np.abs(dd) ** 2))
    gm = float(np.sum(w * (g.real * m.real + g.imag * m.imag)))
    sq = 2.0 * gm - 2.0 * cross
    moran = n / total_w * cross / ss
    geary = (n - 1) / (2.0 * total_w) * sq / ss
    return float(moran), float(geary)


def sphere_means_correlate(
    values: np.ndarray, mask: np.ndarray, spacing_zyx: tuple[float, float, float], radius_mm: float
) -> np.ndarray:
    """Sphere means at every ROI voxel (C order) by correlating the whole image with the sphere
    kernel (non-finite voxels and voxels beyond the border not counted)."""
    from scipy import ndimage

    sp = np.asarray(spacing_zyx, dtype=np.float64)
    half = np.floor(radius_mm / sp + 1e-9).astype(int)
    grids = np.meshgrid(*(np.arange(-h, h + 1) * s for h, s in zip(half, sp, strict=True)), indexing="ij")
    kern = (sum(g**2 for g in grids) <= radius_mm**2 * (1 + 1e-12)).astype(np.float64)
    finite = np.isfinite(values)
    sums = ndimage.correlate(np.where(finite, values, 0.0), kern, mode="constant", cval=0.0)
    counts = ndimage.correlate(finite.astype(np.float64), kern, mode="constant", cval=0.0)
    return np.asarray(sums[mask] / counts[mask])


def local_global_peaks(
    values: np.ndarray, mask: np.ndarray, spacing_zyx: tuple[float, float, float], radius_mm: float
) -> tuple[float, float]:
    """Former local (sphere on the maximum voxel(s), highest of their means) and global peaks."""
    means = sphere_means_correlate(values, mask, spacing_zyx, radius_mm)
    roi = np.asarray(values[mask], dtype=np.float64)
    return float(means[roi == roi.max()].max()), float(means.max())


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
