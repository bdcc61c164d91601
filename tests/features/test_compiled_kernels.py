"""The compiled (Numba) fast paths equal the reference NumPy implementations they replaced.

Random small images with random grey levels and ROIs; every feature of every aggregation is
compared with the per-matrix NumPy formulas of ``_reference_kernels`` to 1e-10 (relative).
"""

from __future__ import annotations

import numpy as np
import pytest
from _reference_kernels import (
    glcm_features,
    mesh_volume_area,
    morphology_mesh,
    size_matrix_features,
    triples_from_pairs,
)
from scipy import stats
from scipy.spatial import ConvexHull

from smartimaging.features import glcm, glrlm, glszm, morphology, ngldm, statistics
from smartimaging.features.texture_common import (
    label_zones,
    prepare_levels,
    size_features_dense,
    size_features_pairs,
)
from smartimaging.image import Image, Mask
from smartimaging.preprocess.sphere import sphere_kernel, sphere_means

SEEDS = [0, 1, 2, 3, 4, 5]


def _random_roi(seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 6)), int(rng.integers(2, 8)), int(rng.integers(2, 8)))
    n_levels = int(rng.integers(1, 7))
    mask = rng.random(shape) < 0.75
    mask.flat[int(rng.integers(mask.size))] = True
    levels = rng.integers(1, n_levels + 1, size=shape).astype(np.int32)
    return np.where(mask, levels, 0).astype(np.int32), mask, n_levels


def _close(got: dict[str, float], expected: dict[str, float]) -> None:
    assert got.keys() == expected.keys()
    for k in expected:
        assert got[k] == pytest.approx(expected[k], rel=1e-10, abs=1e-12), k


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


@pytest.mark.parametrize("seed", SEEDS)
def test_glcm_batched_features_equal_reference(seed: int) -> None:
    levels, mask, ng = _random_roi(seed)
    padded = prepare_levels(levels, mask, n_levels=ng)
    mats = glcm.cooccurrence_matrices(padded, n_levels=ng, three_d=True)
    mats = np.concatenate([mats, mats.sum(axis=0)[None], np.diag(np.arange(1, ng + 1))[None]])
    mats = mats[mats.sum(axis=(1, 2)) > 0]
    rows = glcm.features_of_matrices(mats, n_levels=ng)
    keys = [f.key for f in glcm.FEATURES]
    for row, m in zip(rows, mats, strict=True):
        _close(dict(zip(keys, row, strict=True)), glcm_features(m, n_levels=ng))


@pytest.mark.parametrize("seed", SEEDS)
def test_glcm_every_aggregation_equals_reference(seed: int) -> None:
    levels, mask, ng = _random_roi(seed)
    got = glcm.compute(levels, mask, n_levels=ng)
    padded = prepare_levels(levels, mask, n_levels=ng)

    def feats(mats: list[np.ndarray]) -> dict[str, float] | None:
        rows = [glcm_features(m, n_levels=ng) for m in mats if m.sum() > 0]
        return _mean(rows) if rows else None

    hist = np.bincount(padded[padded > 0], minlength=ng + 1)[1:]
    fallback = glcm_features(np.diag(hist), n_levels=ng)
    slices = [
        glcm.cooccurrence_matrices(padded[z : z + 1], n_levels=ng, three_d=False)
        for z in range(1, padded.shape[0] - 1)
    ]
    dir_sum = np.sum(slices, axis=0)
    mats3 = glcm.cooccurrence_matrices(padded, n_levels=ng, three_d=True)
    expected = {
        "2D_avg": feats([m for s in slices for m in s]),
        "2D_smrg": feats([s.sum(axis=0) for s in slices]),
        "2.5D_dmrg": feats(list(dir_sum)),
        "2.5D_vmrg": feats([dir_sum.sum(axis=0)]),
        "3D_avg": feats(list(mats3)),
        "3D_vmrg": feats([mats3.sum(axis=0)]),
    }
    for agg, exp in expected.items():
        _close(got[agg], exp if exp is not None else fallback)


@pytest.mark.parametrize("seed", SEEDS)
def test_size_matrix_features_equal_reference(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 40))
    i = rng.integers(1, 6, size=n)
    j = rng.integers(1, 9, size=n)
    w = rng.integers(1, 5, size=n).astype(float)
    nv = float(rng.integers(n, 3 * n + 1))
    ref = size_matrix_features(*triples_from_pairs(i, j, w), nv)
    got = size_features_pairs(i, j, nv, weights=w)
    _close(dict(zip(ref, got, strict=True)), ref)
    dense = np.zeros((2, 5, 8))
    np.add.at(dense[0], (i - 1, j - 1), w)
    dense[1, 0, 0] = 3.0  # a one-cell matrix
    rows = size_features_dense(dense, np.array([nv, 3.0]))
    _close(dict(zip(ref, rows[0], strict=True)), ref)
    one = size_matrix_features(np.array([1]), np.array([1]), np.array([3.0]), 3.0)
    _close(dict(zip(one, rows[1], strict=True)), one)


def _generic(spec: tuple[tuple[str, str, str, str], ...], generic: dict[str, float]) -> dict[str, float]:
    return {key: generic[g] for key, _, _, g in spec}


@pytest.mark.parametrize("seed", SEEDS)
def test_glrlm_every_aggregation_equals_reference(seed: int) -> None:
    levels, mask, ng = _random_roi(seed)
    got = glrlm.compute(levels, mask, n_levels=ng)
    padded = prepare_levels(levels, mask, n_levels=ng)

    def feats(m: np.ndarray) -> dict[str, float]:
        ii, jj = np.nonzero(m)
        c = m[ii, jj]
        return _generic(glrlm._SPEC, size_matrix_features(ii + 1, jj + 1, c, float(np.sum((jj + 1) * c))))

    max_len = max(padded.shape[1:])
    slices = [
        glrlm.run_length_matrices(padded[z : z + 1], n_levels=ng, three_d=False)[:, :, :max_len]
        for z in range(1, padded.shape[0] - 1)
        if padded[z].any()
    ]
    dir_sum = np.sum(slices, axis=0)
    mats3 = glrlm.run_length_matrices(padded, n_levels=ng, three_d=True)
    expected = {
        "2D_avg": _mean([feats(m) for s in slices for m in s]),
        "2D_smrg": _mean([feats(s.sum(axis=0)) for s in slices]),
        "2.5D_dmrg": _mean([feats(m) for m in dir_sum]),
        "2.5D_vmrg": feats(dir_sum.sum(axis=0)),
        "3D_avg": _mean([feats(m) for m in mats3]),
        "3D_vmrg": feats(mats3.sum(axis=0)),
    }
    for agg, exp in expected.items():
        _close(got[agg], exp)


@pytest.mark.parametrize("seed", SEEDS)
def test_zone_and_dependence_families_equal_reference(seed: int) -> None:
    levels, mask, ng = _random_roi(seed)
    padded = prepare_levels(levels, mask, n_levels=ng)
    got = glszm.compute(levels, mask, n_levels=ng)
    _, z_level, z_size, z_slice = label_zones(padded, three_d=False)

    def zones(lv: np.ndarray, sz: np.ndarray) -> dict[str, float]:
        return _generic(glszm._SPEC, size_matrix_features(*triples_from_pairs(lv, sz), float(sz.sum())))

    per_slice = [zones(z_level[z_slice == z], z_size[z_slice == z]) for z in np.unique(z_slice)]
    _close(got["2D"], _mean(per_slice))
    _close(got["2.5D"], zones(z_level, z_size))
    _, l3, s3, _ = label_zones(padded, three_d=True)
    _close(got["3D"], zones(l3, s3))

    got_dm = ngldm.compute(levels, mask, n_levels=ng)

    def dep(m: np.ndarray) -> dict[str, float]:
        ii, jj = np.nonzero(m)
        c = m[ii, jj]
        return _generic(ngldm._SPEC, size_matrix_features(ii + 1, jj + 1, c, float(c.sum())))

    m2 = ngldm.dependence_matrices(padded, n_levels=ng, three_d=False)
    _close(got_dm["2D"], _mean([dep(m) for m in m2 if m.sum() > 0]))
    _close(got_dm["2.5D"], dep(m2.sum(axis=0)))
    m3 = ngldm.dependence_matrices(padded, n_levels=ng, three_d=True)
    _close(got_dm["3D"], dep(m3.sum(axis=0)))


def _lumpy_mask(seed: int) -> tuple[np.ndarray, tuple[float, float, float]]:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(3, 9)), int(rng.integers(4, 12)), int(rng.integers(4, 12)))
    z, y, x = np.indices(shape)
    c = (np.array(shape) - 1) / 2.0
    r = (
        ((z - c[0]) / (shape[0] / 2)) ** 2
        + ((y - c[1]) / (shape[1] / 2)) ** 2
        + ((x - c[2]) / (shape[2] / 2)) ** 2
    )
    mask = (r < 1.0) & (rng.random(shape) < 0.85)
    mask[tuple(int(v) for v in c)] = True
    spacing = (float(rng.uniform(0.5, 3.0)), float(rng.uniform(0.5, 3.0)), float(rng.uniform(0.5, 3.0)))
    return mask, spacing


@pytest.mark.parametrize("seed", SEEDS)
def test_hull_candidates_and_mesh_kernel_equal_reference(seed: int) -> None:
    mask, spacing = _lumpy_mask(seed)
    verts, faces = morphology_mesh(mask, spacing)
    counts, tris = morphology._mc_tables()
    spacing_arr = np.asarray(spacing)
    _, vol6, area2, q, _, _ = morphology._shape_kernel(mask, spacing_arr, counts, tris)
    ref_vol, ref_area = mesh_volume_area(verts, faces)
    assert (abs(vol6) / 6.0, area2 / 2.0) == pytest.approx((ref_vol, ref_area), rel=1e-12)
    # the kernel's hull candidates are scikit-image's vertices (same floats): edge midpoints, the
    # first and last on each line along x; scikit-image adds the centres of some ambiguous cubes,
    # which lie between two edge midpoints of that cube (checked per configuration in
    # test_morphology_fast), so no hull corner is lost
    assert {tuple(v) for v in (q * 0.5) * spacing_arr} <= {tuple(v) for v in verts}
    cand = morphology._hull_candidates(q)
    assert cand.shape[0] < q.shape[0]
    full = ConvexHull(verts)
    hull_faces, is_vertex = morphology._hull_kernel(cand)
    volume, area = morphology._hull_measures(cand, hull_faces, spacing_arr)
    assert volume == pytest.approx(full.volume, rel=1e-12)
    assert area == pytest.approx(full.area, rel=1e-12)
    corners = {tuple(v) for v in verts[full.vertices]}
    assert corners <= {tuple(v) for v in (cand[is_vertex] * 0.5) * spacing_arr}


@pytest.mark.parametrize("clipped", [False, True])
def test_sphere_means_equal_brute_force(clipped: bool) -> None:
    rng = np.random.default_rng(9)
    shape = (7, 9, 10)
    values = rng.normal(size=shape) + 5.0
    mask = np.zeros(shape, dtype=bool)
    if clipped:
        mask[0:3, 0:3, 7:10] = True  # touches the image border: spheres are cut
        values[6, 8, 0] = np.nan  # a non-finite voxel outside the ROI
    else:
        mask[3:5, 4:6, 4:7] = True  # every sphere lies inside the image
    spacing = (2.0, 1.5, 1.0)  # x, y, z
    image = Image(values, spacing=spacing)
    got = sphere_means(image, Mask(mask, spacing=spacing), radius_mm=2.5)
    kern = sphere_kernel(image.spacing_zyx, 2.5)
    half = np.array(kern.shape) // 2
    expected = []
    for p in np.argwhere(mask):
        vals = []
        for off in np.argwhere(kern) - half:
            q = p + off
            if np.all(q >= 0) and np.all(q < shape) and np.isfinite(values[tuple(q)]):
                vals.append(values[tuple(q)])
        expected.append(np.mean(vals))
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_statistics_moments_equal_scipy() -> None:
    x = np.random.default_rng(4).gamma(2.0, 3.0, size=501)
    out = statistics.compute(x)
    assert out["stat.skew"] == pytest.approx(stats.skew(x, bias=True), rel=1e-12)
    assert out["stat.kurt"] == pytest.approx(stats.kurtosis(x, fisher=True, bias=True), rel=1e-12)
