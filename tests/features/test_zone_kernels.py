"""GLSZM and GLDZM from the one-pass zone kernels equal the per-matrix code they replaced.

The reference (``_reference_kernels.glszm_reference`` / ``gldzm_reference``) labels zones with
the former flood fill, measures border distances with scipy's chamfer transform and computes
the features of one matrix per call. Random ROIs of many shapes (one voxel, flat, thin, touching
the array border, with holes, large), ``Ng`` of 1, 2, 64 and 300, every aggregation, and
morphological masks that differ from the intensity mask are compared to 1e-12 (relative).
"""

from __future__ import annotations

import numpy as np
import pytest
from _reference_kernels import border_distance_reference, gldzm_reference, glszm_reference
from scipy import ndimage

from smartimaging.exceptions import ConfigError, EmptyMaskError, FeatureError, GeometryMismatchError
from smartimaging.features import gldzm, glszm
from smartimaging.features.texture_common import (
    ZONE_DISTANCE,
    ZONE_SIZE,
    MatrixFeatureNames,
    Zones,
    _border_distance_kernel,
    bounding_box,
    label_zones,
    prepare_levels,
    size_features_pairs,
    zone_features,
)

RTOL = 1e-12


def _assert_rows(got: dict[str, dict[str, float]], ref: dict[str, np.ndarray], keys: tuple[str, ...]) -> None:
    assert set(got) == set(ref)
    for agg, row in ref.items():
        assert list(got[agg]) == list(keys)
        expected = np.asarray(row[: len(keys)])
        values = np.array([got[agg][k] for k in keys])
        np.testing.assert_allclose(values, expected, rtol=RTOL, atol=0.0, err_msg=agg)


GLSZM_KEYS = tuple(f.key for f in glszm.FEATURES)
GLDZM_KEYS = tuple(f.key for f in gldzm.FEATURES)


def _roi(kind: str, seed: int, n_levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(levels, intensity mask, morphological mask) of one ROI kind."""
    rng = np.random.default_rng(seed)
    shapes = {
        "one_voxel": (1, 1, 1),
        "flat": (1, 9, 11),
        "thin": (7, 1, 9),
        "line": (1, 1, 13),
        "border": (5, 6, 7),
        "holes": (6, 8, 9),
        "large": (14, 17, 19),
    }
    shape = shapes[kind]
    levels = rng.integers(1, n_levels + 1, size=shape).astype(np.int32)
    if n_levels > 2:  # patches of one level so that zones grow beyond a voxel
        patch = rng.random(shape) < 0.5
        levels[patch] = int(rng.integers(1, n_levels + 1))
    if kind == "border" or kind == "one_voxel" or kind == "line":
        mask = np.ones(shape, dtype=bool)
    else:
        mask = rng.random(shape) < 0.8
        mask.flat[int(rng.integers(mask.size))] = True
    if kind == "holes":
        mask[2:4, 3:5, 3:6] = False
    morph = mask | (rng.random(shape) < 0.6)
    return levels, mask, morph


KINDS = ["one_voxel", "flat", "thin", "line", "border", "holes", "large"]
CASES = [(kind, ng, seed) for kind in KINDS for ng in (1, 2, 64, 300) for seed in (0, 1)]


@pytest.mark.parametrize(("kind", "n_levels", "seed"), CASES)
def test_glszm_equals_reference(kind: str, n_levels: int, seed: int) -> None:
    levels, mask, _ = _roi(kind, seed, n_levels)
    _assert_rows(
        glszm.compute(levels, mask, n_levels=n_levels),
        glszm_reference(levels, mask, n_levels=n_levels),
        GLSZM_KEYS,
    )


@pytest.mark.parametrize(("kind", "n_levels", "seed"), CASES)
def test_gldzm_equals_reference(kind: str, n_levels: int, seed: int) -> None:
    levels, mask, morph = _roi(kind, seed, n_levels)
    _assert_rows(
        gldzm.compute(levels, mask, n_levels=n_levels),
        gldzm_reference(levels, mask, n_levels=n_levels),
        GLDZM_KEYS,
    )
    _assert_rows(
        gldzm.compute(levels, mask, n_levels=n_levels, morphological_mask=morph),
        gldzm_reference(levels, mask, n_levels=n_levels, morphological_mask=morph),
        GLDZM_KEYS,
    )


@pytest.mark.parametrize("aggregation", ["2D", "2.5D", "3D"])
def test_each_aggregation_alone_equals_reference(aggregation: str) -> None:
    levels, mask, morph = _roi("holes", 3, 5)
    ref_sz = glszm_reference(levels, mask, n_levels=5)
    ref_dz = gldzm_reference(levels, mask, n_levels=5, morphological_mask=morph)
    got_sz = glszm.compute(levels, mask, n_levels=5, aggregations=[aggregation])
    got_dz = gldzm.compute(levels, mask, n_levels=5, aggregations=[aggregation], morphological_mask=morph)
    _assert_rows(got_sz, {aggregation: ref_sz[aggregation]}, GLSZM_KEYS)
    _assert_rows(got_dz, {aggregation: ref_dz[aggregation]}, GLDZM_KEYS)


def test_morphological_mask_beyond_the_roi_box_and_views() -> None:
    """A morphological mask reaching past the intensity ROI's box; non-contiguous inputs."""
    rng = np.random.default_rng(7)
    shape = (9, 12, 13)
    levels = rng.integers(1, 4, size=shape).astype(np.int32)
    morph = np.zeros(shape, dtype=bool)
    morph[1:8, 1:11, 2:12] = True
    mask = morph & (rng.random(shape) < 0.7)
    mask[:, :, :5] = False  # re-segmentation removed one side: the boxes differ
    ref = gldzm_reference(levels, mask, n_levels=3, morphological_mask=morph)
    _assert_rows(gldzm.compute(levels, mask, n_levels=3, morphological_mask=morph), ref, GLDZM_KEYS)
    big_lv = np.zeros((11, 14, 30), dtype=np.int32)
    big_mk = np.zeros(big_lv.shape, dtype=bool)
    big_mm = np.zeros(big_lv.shape, dtype=bool)
    big_lv[1:10, 1:13, 2:28:2] = levels
    big_mk[1:10, 1:13, 2:28:2] = mask
    big_mm[1:10, 1:13, 2:28:2] = morph
    views = (big_lv[1:10, 1:13, 2:28:2], big_mk[1:10, 1:13, 2:28:2], big_mm[1:10, 1:13, 2:28:2])
    assert not views[0].flags.c_contiguous
    _assert_rows(gldzm.compute(views[0], views[1], n_levels=3, morphological_mask=views[2]), ref, GLDZM_KEYS)
    _assert_rows(
        glszm.compute(views[0], views[1], n_levels=3), glszm_reference(levels, mask, n_levels=3), GLSZM_KEYS
    )


def test_other_dtypes_equal_int32() -> None:
    levels, mask, morph = _roi("holes", 5, 6)
    ref = glszm.compute(levels, mask, n_levels=6)
    outside = np.where(mask, levels, 99)  # values outside the ROI are ignored
    assert glszm.compute(outside.astype(np.int64), mask.astype(np.uint8), n_levels=6) == ref
    assert glszm.compute(outside.astype(np.float64), mask, n_levels=np.int64(6)) == ref
    assert glszm.compute(levels.tolist(), mask.tolist(), n_levels=6) == ref  # type: ignore[arg-type]
    ref_dz = gldzm.compute(levels, mask, n_levels=6, morphological_mask=morph)
    assert gldzm.compute(levels, mask, n_levels=6, morphological_mask=morph.tolist()) == ref_dz  # type: ignore[arg-type]
    assert (
        gldzm.compute(levels.astype(np.int16), mask, n_levels=6, morphological_mask=morph.astype(int))
        == ref_dz
    )


def test_shared_zones_give_the_same_values() -> None:
    levels, mask, morph = _roi("large", 2, 64)
    zones = Zones(levels, mask, n_levels=64, morphological_mask=morph)
    assert glszm.compute(levels, mask, n_levels=64, zones=zones) == glszm.compute(levels, mask, n_levels=64)
    alone = gldzm.compute(levels, mask, n_levels=64, morphological_mask=morph)
    assert gldzm.compute(levels, mask, n_levels=64, morphological_mask=morph, zones=zones) == alone
    with pytest.raises(ConfigError, match="other levels/mask"):
        glszm.compute(levels.copy(), mask, n_levels=64, zones=zones)
    with pytest.raises(ConfigError, match="without distances"):
        gldzm.compute(levels, mask, n_levels=64, zones=zones)  # built with a morphological mask
    plain = Zones(levels, mask, n_levels=64, distances=False)
    with pytest.raises(ConfigError, match="without distances"):
        gldzm.compute(levels, mask, n_levels=64, zones=plain)


@pytest.mark.parametrize("three_d", [False, True])
def test_zone_table_matches_flood_fill_and_scipy_distances(three_d: bool) -> None:
    levels, mask, morph = _roi("large", 4, 3)
    table = Zones(levels, mask, n_levels=3, morphological_mask=morph).table(three_d=three_d)
    padded = prepare_levels(levels, mask, n_levels=3)
    labels, z_level, z_size, _ = label_zones(padded, three_d=three_d)
    # same zones in the same (raster) order
    np.testing.assert_array_equal(table[:, 0], z_level)
    np.testing.assert_array_equal(table[:, 1], z_size)
    dist = np.pad(border_distance_reference(morph, three_d=three_d)[bounding_box(mask)], 1)
    inside = labels > 0
    expected = np.full(z_level.size, np.iinfo(np.int64).max)
    np.minimum.at(expected, labels[inside] - 1, dist[inside])
    np.testing.assert_array_equal(table[:, ZONE_DISTANCE], expected)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("three_d", [False, True])
def test_border_distance_kernel_equals_scipy(seed: int, three_d: bool) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(1, 12, size=3))
    mask = ndimage.binary_opening(rng.random(shape) < 0.85) | (rng.random(shape) < 0.3)
    framed = np.pad(mask, 1).astype(np.int32) * (2**20)
    flat = framed.ravel()
    rows = framed.reshape(-1, framed.shape[2]) > 0
    some = rows.any(axis=1)
    first = np.where(some, rows.argmax(axis=1), 1)
    last = np.where(some, rows.shape[1] - 1 - rows[:, ::-1].argmax(axis=1), 0)
    _border_distance_kernel(flat, *framed.shape, three_d, first.astype(np.int64), last.astype(np.int64))
    np.testing.assert_array_equal(
        flat.reshape(framed.shape)[1:-1, 1:-1, 1:-1], border_distance_reference(mask, three_d=three_d)
    )
    np.testing.assert_array_equal(
        gldzm.border_distance(mask, three_d=three_d), border_distance_reference(mask, three_d=three_d)
    )


def test_zone_features_equal_pair_features_per_slice() -> None:
    levels, mask, morph = _roi("holes", 9, 4)
    table = Zones(levels, mask, n_levels=4, morphological_mask=morph).table(three_d=False)
    for column in (ZONE_SIZE, ZONE_DISTANCE):
        rows = zone_features(table, column=column, per_slice=True)
        slices = np.unique(table[:, 2])
        assert rows.shape == (slices.size + 1, len(MatrixFeatureNames))
        for row, z in zip(rows[:-1], slices, strict=True):
            sel = table[:, 2] == z
            ref = size_features_pairs(table[sel, 0], table[sel, column], float(table[sel, 1].sum()))
            np.testing.assert_array_equal(row, ref)
        whole = size_features_pairs(table[:, 0], table[:, column], float(table[:, 1].sum()))
        np.testing.assert_array_equal(rows[-1], whole)
        np.testing.assert_array_equal(zone_features(table, column=column, per_slice=False)[0], whole)


def _error_of(call) -> tuple[type, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(Exception) as info:  # any error: compared below
        call()
    return type(info.value), str(info.value)


@pytest.mark.parametrize(
    "case",
    ["empty", "too_high", "zero_inside", "not_integer", "shape", "n_levels", "morph_shape", "morph_smaller"],
)
def test_errors_are_those_of_the_former_code(case: str) -> None:
    levels = np.full((2, 3, 3), 2, dtype=np.int32)
    mask = np.ones(levels.shape, dtype=bool)
    morph = None
    n_levels = 2
    if case == "empty":
        mask[:] = False
    elif case == "too_high":
        levels[1, 1, 1] = 3
    elif case == "zero_inside":
        levels[0, 0, 0] = 0
    elif case == "not_integer":
        levels = levels + 0.5
    elif case == "shape":
        mask = mask[0]
    elif case == "n_levels":
        n_levels = 0
    elif case == "morph_shape":
        morph = np.ones((2, 3, 4), dtype=bool)
    elif case == "morph_smaller":
        morph = mask.copy()
        morph[0, 0, 0] = False
        mask = mask.copy()
    got = _error_of(lambda: gldzm.compute(levels, mask, n_levels=n_levels, morphological_mask=morph))
    ref = _error_of(lambda: gldzm_reference(levels, mask, n_levels=n_levels, morphological_mask=morph))
    assert issubclass(got[0], EmptyMaskError | FeatureError | GeometryMismatchError | ConfigError)
    assert got == ref
    if not case.startswith("morph"):
        assert _error_of(lambda: glszm.compute(levels, mask, n_levels=n_levels)) == _error_of(
            lambda: glszm_reference(levels, mask, n_levels=n_levels)
        )
