"""The one-call kernels of GLCM, GLRLM, NGTDM and NGLDM give the values of the code they replaced.

``_reference_kernels.old_*_compute`` are the former ``compute`` functions (Python loops over
slices and aggregations around the per-matrix kernels and NumPy formulas). Every feature of
every aggregation is compared on random ROIs of awkward shapes (one voxel, one grey level, thin
lines and planes, masks touching the array faces, masks with holes, 2D slices, views cut from a
larger array), for Ng 1, 2, 64 and 300 and distances 1 and 2 where the family has a distance.
The tolerance is 1e-12 relative; the new code repeats the old summation orders, so in practice
the values are equal bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from _reference_kernels import old_glcm_compute, old_glrlm_compute, old_ngldm_compute, old_ngtdm_compute

from smartimaging.exceptions import ConfigError, EmptyMaskError, FeatureError, GeometryMismatchError
from smartimaging.features import glcm, glrlm, ngldm, ngtdm
from smartimaging.features.texture_common import (
    mean_rows,
    mean_rows_into,
    pairwise_sum,
    prepare_levels,
    prepare_roi,
    size_features_dense,
    size_row_dense,
)

REL = 1e-12

FAMILIES: dict[
    str, tuple[Callable[..., dict[str, dict[str, float]]], Callable[..., dict[str, dict[str, float]]], bool]
] = {
    # name: (new compute, old compute, has a distance other than 1)
    "GLCM": (glcm.compute, old_glcm_compute, True),
    "GLRLM": (glrlm.compute, old_glrlm_compute, False),
    "NGTDM": (ngtdm.compute, old_ngtdm_compute, True),
    "NGLDM": (ngldm.compute, old_ngldm_compute, True),
}


def _levels(rng: np.random.Generator, shape: tuple[int, ...], ng: int) -> np.ndarray:
    return rng.integers(1, ng + 1, size=shape).astype(np.int32)


def _case(name: str, ng: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Levels (int32, 0 outside the mask) and mask of one named ROI shape."""
    rng = np.random.default_rng(seed)
    if name == "one_voxel":
        levels = np.zeros((3, 4, 5), dtype=np.int32)
        mask = np.zeros(levels.shape, dtype=bool)
        mask[1, 2, 3] = True
        levels[1, 2, 3] = ng
        return levels, mask
    if name == "flat":
        mask = rng.random((4, 6, 5)) < 0.8
        mask[0, 0, 0] = True
        return np.where(mask, int(rng.integers(1, ng + 1)), 0).astype(np.int32), mask
    if name == "line":
        mask = np.ones((1, 1, 9), dtype=bool)
    elif name == "column":
        mask = np.ones((7, 1, 1), dtype=bool)
    elif name == "plane":
        mask = rng.random((1, 6, 8)) < 0.85
    elif name == "border":  # the mask fills the array: every face is touched
        mask = np.ones((4, 5, 6), dtype=bool)
    elif name == "holes":
        mask = np.ones((6, 7, 7), dtype=bool)
        mask[1:5, 2:5, 2:5] = False
        mask[rng.random(mask.shape) < 0.2] = False
        mask[3, 0, 0] = True
    elif name == "sparse":  # mostly isolated voxels
        mask = rng.random((5, 8, 8)) < 0.15
        mask[2, 4, 4] = True
    else:  # "random"
        mask = rng.random((int(rng.integers(2, 8)), int(rng.integers(2, 9)), int(rng.integers(2, 9)))) < 0.7
        mask.flat[0] = True
    levels = _levels(rng, mask.shape, ng)
    return np.where(mask, levels, 0).astype(np.int32), mask


CASES = ["one_voxel", "flat", "line", "column", "plane", "border", "holes", "sparse", "random"]


def _assert_same(got: dict[str, dict[str, float]], expected: dict[str, dict[str, float]]) -> float:
    """Assert every value within ``REL``; return the largest relative difference."""
    assert list(got) == list(expected)
    worst = 0.0
    for agg, features in expected.items():
        assert list(got[agg]) == list(features), agg
        for key, exp in features.items():
            value = got[agg][key]
            assert isinstance(value, float), (agg, key)
            assert value == pytest.approx(exp, rel=REL, abs=1e-300), (agg, key)
            if value != exp:
                worst = max(worst, abs(value - exp) / abs(exp))
    return worst


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("ng", [1, 2, 64, 300])
def test_every_aggregation_equals_the_old_code(family: str, ng: int) -> None:
    new, old, has_distance = FAMILIES[family]
    for seed, name in enumerate(CASES):
        levels, mask = _case(name, ng, 1000 * ng + seed)
        for distance in (1, 2) if has_distance else (1,):
            got = new(levels, mask, n_levels=ng, distance=distance)
            _assert_same(got, old(levels, mask, n_levels=ng, distance=distance))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_aggregation_subsets_and_order(family: str) -> None:
    new, old, _ = FAMILIES[family]
    levels, mask = _case("random", 5, 7)
    aggs = list({"GLCM": glcm, "GLRLM": glrlm, "NGTDM": ngtdm, "NGLDM": ngldm}[family].AGGREGATIONS)
    for subset in (aggs[::-1], aggs[:1], aggs[-1:], [aggs[0], aggs[-1]]):
        got = new(levels, mask, n_levels=5, aggregations=subset)
        assert list(got) == subset
        _assert_same(got, old(levels, mask, n_levels=5, aggregations=subset))


@pytest.mark.parametrize("alpha", [1, 2])
def test_ngldm_coarseness_equals_the_old_code(alpha: int) -> None:
    for seed, name in enumerate(CASES):
        levels, mask = _case(name, 6, 50 + seed)
        for distance in (1, 2):
            got = ngldm.compute(levels, mask, n_levels=6, distance=distance, alpha=alpha)
            _assert_same(got, old_ngldm_compute(levels, mask, n_levels=6, distance=distance, alpha=alpha))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_views_other_dtypes_and_larger_rois(family: str) -> None:
    """A box cut from a larger array (a non-contiguous view), int64 and float levels, and an
    ROI of a few thousand voxels give the old values."""
    new, old, _ = FAMILIES[family]
    rng = np.random.default_rng(3)
    z, y, x = np.indices((14, 18, 20))
    blob = ((z - 7) / 6.0) ** 2 + ((y - 9) / 8.0) ** 2 + ((x - 10) / 9.0) ** 2 < 1.0
    smooth = np.clip((z + y + x) // 3 + rng.integers(-1, 2, blob.shape), 1, 24).astype(np.int32)
    big_levels = np.where(blob, smooth, 0).astype(np.int32)
    expected = old(big_levels, blob, n_levels=24)
    _assert_same(new(big_levels, blob, n_levels=24), expected)
    frame = np.zeros((20, 24, 26), dtype=np.int32)
    frame_mask = np.zeros(frame.shape, dtype=bool)
    frame[3:17, 2:20, 4:24] = big_levels
    frame_mask[3:17, 2:20, 4:24] = blob
    view, view_mask = frame[3:17, 2:20, 4:24], frame_mask[3:17, 2:20, 4:24]
    assert not view.flags.c_contiguous
    _assert_same(new(view, view_mask, n_levels=24), expected)
    _assert_same(new(big_levels.astype(np.int64), blob, n_levels=24), expected)
    _assert_same(new(big_levels.astype(np.float64), blob, n_levels=24), expected)


def test_prepare_roi_equals_prepare_levels() -> None:
    rng = np.random.default_rng(11)
    for seed in range(20):
        shape = tuple(int(v) for v in rng.integers(1, 9, 3))
        mask = rng.random(shape) < rng.uniform(0.05, 1.0)
        mask.flat[int(rng.integers(mask.size))] = True
        levels = rng.integers(-3, 9, size=shape).astype(np.int32)
        levels[mask] = rng.integers(1, 9, size=int(mask.sum()))
        for pad in (1, 2):
            got = prepare_roi(levels, mask, n_levels=8, pad=pad)
            want = prepare_levels(levels, mask, n_levels=8, pad=pad)
            assert got.dtype == np.int32 and got.flags.c_contiguous, seed
            assert np.array_equal(got, want), seed


@pytest.mark.parametrize(
    ("levels", "mask", "n_levels", "error", "match"),
    [
        (np.ones((2, 2, 2), np.int32), np.zeros((2, 2, 2), bool), 2, EmptyMaskError, "no voxel"),
        (np.full((2, 2, 2), 3, np.int32), np.ones((2, 2, 2), bool), 2, FeatureError, "span 3..3"),
        (np.zeros((2, 2, 2), np.int32), np.ones((2, 2, 2), bool), 2, FeatureError, "span 0..0"),
        (np.ones((2, 2, 2), np.int32), np.ones((2, 2, 3), bool), 2, GeometryMismatchError, "same shape"),
        (np.ones((2, 2), np.int32), np.ones((2, 2), bool), 2, GeometryMismatchError, "3D"),
        (np.ones((2, 2, 2), np.int32), np.ones((2, 2, 2), bool), 0, ConfigError, "n_levels"),
        (np.full((2, 2, 2), 1.5), np.ones((2, 2, 2), bool), 2, FeatureError, "integers"),
    ],
)
def test_prepare_roi_errors_match_prepare_levels(
    levels: np.ndarray, mask: np.ndarray, n_levels: int, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        prepare_levels(levels, mask, n_levels=n_levels)
    with pytest.raises(error, match=match):
        prepare_roi(levels, mask, n_levels=n_levels)
    for compute, *_ in FAMILIES.values():
        with pytest.raises(error, match=match):
            compute(levels, mask, n_levels=n_levels)


def test_levels_outside_the_mask_are_ignored() -> None:
    levels, mask = _case("holes", 6, 5)
    noisy = np.where(mask, levels, 99).astype(np.int32)  # out-of-range levels outside the ROI
    for new, old, _ in FAMILIES.values():
        _assert_same(new(noisy, mask, n_levels=6), old(levels, mask, n_levels=6))


def test_pairwise_sum_and_mean_rows_into_equal_numpy_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    for n in [*range(1, 140), 255, 256, 257, 1000, 4097, 30000]:
        a = rng.standard_normal(n) * 10.0 ** rng.integers(-6, 6, n)
        assert pairwise_sum(a, 0, n) == np.sum(a), n
        b = np.concatenate([rng.standard_normal(5), a])
        assert pairwise_sum(b, 5, n) == np.sum(a), n
    for n_rows in (1, 2, 7, 8, 13, 14, 129, 300):
        rows = rng.standard_normal((n_rows, 17)) * 10.0 ** rng.integers(-6, 6, (n_rows, 17))
        out = np.empty(17)
        mean_rows_into(rows, n_rows, out)
        assert np.array_equal(out, mean_rows(rows)), n_rows
        assert np.array_equal(out, [np.mean(list(rows[:, c])) for c in range(17)]), n_rows


def test_size_row_dense_equals_size_features_dense_bit_for_bit() -> None:
    rng = np.random.default_rng(1)
    for trial in range(30):
        n_i, n_j = int(rng.integers(1, 60)), int(rng.integers(1, 40))
        mat = np.where(
            rng.random((n_i, n_j)) < 0.3, rng.integers(1, 1 << int(rng.integers(1, 20)), (n_i, n_j)), 0
        )
        mat[int(rng.integers(n_i)), int(rng.integers(n_j))] += 1
        mat = mat.astype(np.int64)
        nv = float(mat.sum() + trial)
        out = np.empty(17)
        size_row_dense(mat, nv, out)
        assert np.array_equal(out, size_features_dense(mat[None], np.array([nv]))[0]), trial


@pytest.mark.parametrize("ng", [1, 2, 64])
def test_glcm_merged_alone_skips_the_direction_rows_and_keeps_the_values(ng: int) -> None:
    """3D_vmrg without 3D_avg (the per-direction rows are skipped) on every ROI shape."""
    for seed, name in enumerate(CASES):
        levels, mask = _case(name, ng, 77 * ng + seed)
        for distance in (1, 2):
            got = glcm.compute(levels, mask, n_levels=ng, distance=distance, aggregations=["3D_vmrg"])
            _assert_same(
                got, old_glcm_compute(levels, mask, n_levels=ng, distance=distance, aggregations=["3D_vmrg"])
            )


def test_glrlm_merged_alone_keeps_the_values() -> None:
    """3D_vmrg without 3D_avg (the per-direction rows are skipped) on every ROI shape."""
    for seed, name in enumerate(CASES):
        for ng in (1, 2, 64):
            levels, mask = _case(name, ng, 91 * ng + seed)
            got = glrlm.compute(levels, mask, n_levels=ng, aggregations=["3D_vmrg"])
            _assert_same(got, old_glrlm_compute(levels, mask, n_levels=ng, aggregations=["3D_vmrg"]))
