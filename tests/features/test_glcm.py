"""GLCM: hand-computed matrices, degenerate ROIs and every IBSI digital-phantom reference row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _ibsi import matches, phantom_levels, reference_rows

from smartimaging.exceptions import ConfigError, EmptyMaskError, FeatureError
from smartimaging.features import glcm
from smartimaging.features.texture_common import directions, prepare_levels

SLICE = np.array([[1, 1, 2], [1, 2, 2], [3, 3, 1]], dtype=np.int32)


def _direction_index(vec: tuple[int, int, int]) -> int:
    return [tuple(int(v) for v in d) for d in directions(three_d=False)].index(vec)


def test_hand_computed_horizontal_matrix() -> None:
    padded = prepare_levels(SLICE[None], np.ones((1, 3, 3), bool), n_levels=3)
    mats = glcm.cooccurrence_matrices(padded, n_levels=3, three_d=False)
    # horizontal pairs: (1,1) (1,2) | (1,2) (2,2) | (3,3) (3,1), each counted both ways
    expected = np.array([[2, 2, 1], [2, 2, 0], [1, 0, 2]])
    assert np.array_equal(mats[_direction_index((0, 0, 1))], expected)
    # vertical pairs: (1,1) (1,3) | (1,2) (2,3) | (2,2) (2,1)
    expected_v = np.array([[2, 2, 1], [2, 2, 1], [1, 1, 0]])
    assert np.array_equal(mats[_direction_index((0, 1, 0))], expected_v)
    # diagonal directions: 2 x 2 pairs each in a 3 x 3 slice, counted both ways
    assert [int(m.sum()) for m in mats] == [12, 8, 12, 8] or sorted(int(m.sum()) for m in mats) == [
        8,
        8,
        12,
        12,
    ]


def test_hand_computed_features() -> None:
    m = np.array([[2, 2, 1], [2, 2, 0], [1, 0, 2]])
    f = glcm.features_from_matrix(m, n_levels=3)
    assert f["cm.joint.max"] == pytest.approx(2 / 12)
    assert f["cm.joint.avg"] == pytest.approx((1 * 5 + 2 * 4 + 3 * 3) / 12)
    # |i - j| = 1 for counts 2 + 2 (cells (1,2), (2,1)); |i - j| = 2 for counts 1 + 1 ((1,3), (3,1))
    assert f["cm.contrast"] == pytest.approx((2 + 2 + 4 + 4) / 12)
    assert f["cm.dissimilarity"] == pytest.approx((2 + 2 + 2 + 2) / 12)
    assert f["cm.energy"] == pytest.approx((4 * 5 + 1 + 1) / 144)
    assert f["cm.inv.var"] == pytest.approx(4 / 12 + (2 / 12) / 4)


def test_two_voxel_roi_only_one_direction_has_pairs() -> None:
    levels = np.array([[[1, 2]]], dtype=np.int32)
    res = glcm.compute(levels, levels > 0, n_levels=2, aggregations=["2D_avg", "3D_vmrg"])
    for agg in ("2D_avg", "3D_vmrg"):
        f = res[agg]
        assert f["cm.contrast"] == pytest.approx(1.0)
        assert f["cm.joint.max"] == pytest.approx(0.5)
        assert f["cm.corr"] == pytest.approx(-1.0)


def test_mask_hole_breaks_pairs() -> None:
    levels = np.array([[[1, 2, 1]]], dtype=np.int32)
    mask = np.array([[[True, False, True]]])
    # no pair of ROI voxels at distance 1: falls back to the diagonal (texture-less) matrix
    res = glcm.compute(levels, mask, n_levels=2, aggregations=["3D_avg"])
    assert res["3D_avg"]["cm.contrast"] == 0.0
    assert res["3D_avg"]["cm.joint.max"] == 1.0
    # at distance 2 the two voxels pair up
    res2 = glcm.compute(levels, mask, n_levels=2, aggregations=["3D_avg"], distance=2)
    assert res2["3D_avg"]["cm.joint.max"] == 1.0
    assert res2["3D_avg"]["cm.joint.avg"] == 1.0


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 3, 3)])
def test_degenerate_one_voxel_and_flat_roi(shape: tuple[int, int, int]) -> None:
    levels = np.full(shape, 3, dtype=np.int32)
    res = glcm.compute(levels, np.ones(shape, bool), n_levels=4)
    assert set(res) == set(glcm.AGGREGATIONS)
    for feats in res.values():
        assert set(feats) == {f.key for f in glcm.FEATURES}
        assert all(np.isfinite(v) for v in feats.values())
        assert feats["cm.joint.max"] == 1.0
        assert feats["cm.joint.avg"] == 3.0
        assert feats["cm.contrast"] == 0.0
        assert feats["cm.corr"] == 1.0
        assert feats["cm.info.corr.1"] == 1.0
        assert feats["cm.info.corr.2"] == 0.0


def test_slices_with_lone_voxels_do_not_crash() -> None:
    levels = np.zeros((3, 4, 4), dtype=np.int32)
    levels[0, 1, 1] = 2
    levels[1, 2, 2] = 1
    levels[1, 2, 3] = 2
    levels[2, 0, 0] = 1
    res = glcm.compute(levels, levels > 0, n_levels=2)
    # 2D: only slice 1 has a pair (1, 2)
    assert res["2D_smrg"]["cm.contrast"] == pytest.approx(1.0)
    assert all(np.isfinite(v) for f in res.values() for v in f.values())


def test_errors() -> None:
    lv = np.ones((2, 2, 2), dtype=np.int32)
    with pytest.raises(ConfigError, match="2D_avg"):
        glcm.compute(lv, lv > 0, n_levels=1, aggregations=["2D"])
    with pytest.raises(ConfigError, match="distance"):
        glcm.compute(lv, lv > 0, n_levels=1, distance=0)
    with pytest.raises(FeatureError, match="n_levels"):
        glcm.compute(lv * 3, lv > 0, n_levels=2)
    with pytest.raises(EmptyMaskError):
        glcm.compute(lv, lv < 0, n_levels=1)


def test_feature_definitions() -> None:
    assert len(glcm.FEATURES) == 25
    assert len({f.key for f in glcm.FEATURES}) == 25
    assert all(len(f.ibsi_id) == 4 and f.family == "GLCM" for f in glcm.FEATURES)


# ---------------------------------------------------------------------------------------------
# IBSI digital phantom: every GLCM reference row (25 features x 6 aggregations)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def phantom_result(shared_dir: Path) -> dict[str, dict[str, float]]:
    levels, mask, ng = phantom_levels(shared_dir)
    return glcm.compute(levels, mask, n_levels=ng)


CASES = [(f.key, a) for f in glcm.FEATURES for a in glcm.AGGREGATIONS]


@pytest.mark.shared
@pytest.mark.parametrize(("key", "aggregation"), CASES, ids=[f"{k}_{a}" for k, a in CASES])
def test_ibsi_phantom_row(key: str, aggregation: str, shared_dir: Path, phantom_result: dict) -> None:
    rows = [r for r in reference_rows(shared_dir, "GLCM") if r.key == key and r.aggregation == aggregation]
    assert len(rows) == 1, f"no reference row for {key}_{aggregation}"
    value = phantom_result[aggregation][key]
    assert matches(value, rows[0]), (
        f"{key}_{aggregation}: {value} vs reference {rows[0].value} ± {rows[0].allowed}"
    )


@pytest.mark.shared
def test_ibsi_phantom_all_rows_count(shared_dir: Path, phantom_result: dict) -> None:
    rows = reference_rows(shared_dir, "GLCM")
    passed = sum(matches(phantom_result[r.aggregation][r.key], r) for r in rows)
    print(f"GLCM: {passed}/{len(rows)} IBSI digital-phantom reference rows match")
    assert len(rows) == 150
    assert passed == len(rows)


@pytest.mark.parametrize("seed", [0, 1])
def test_counts_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    levels = rng.integers(1, 5, size=(4, 5, 6)).astype(np.int32)
    mask = rng.random(levels.shape) < 0.7
    padded = prepare_levels(levels, mask, n_levels=4, pad=2)
    for distance in (1, 2):
        offsets = directions(three_d=True, distance=distance)
        mats = glcm.cooccurrence_matrices(padded, n_levels=4, three_d=True, distance=distance)
        for k, (dz, dy, dx) in enumerate(offsets):
            expected = np.zeros((4, 4), dtype=np.int64)
            for z, y, x in zip(*np.nonzero(mask), strict=True):
                zz, yy, xx = z + dz, y + dy, x + dx
                if 0 <= zz < 4 and 0 <= yy < 5 and 0 <= xx < 6 and mask[zz, yy, xx]:
                    a, b = levels[z, y, x] - 1, levels[zz, yy, xx] - 1
                    expected[a, b] += 1
                    expected[b, a] += 1
            assert np.array_equal(mats[k], expected)
