"""GLRLM: hand-computed run length matrices, degenerate ROIs and every IBSI phantom reference row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _ibsi import matches, phantom_levels, reference_rows

from smartimaging.exceptions import ConfigError
from smartimaging.features import glrlm
from smartimaging.features.texture_common import directions, prepare_levels


def _direction_index(vec: tuple[int, int, int]) -> int:
    return [tuple(int(v) for v in d) for d in directions(three_d=False)].index(vec)


def test_hand_computed_runs() -> None:
    sl = np.array([[1, 1, 2], [1, 2, 2]], dtype=np.int32)[None]
    padded = prepare_levels(sl, np.ones(sl.shape, bool), n_levels=2)
    mats = glrlm.run_length_matrices(padded, n_levels=2, three_d=False)
    # rows: (1, length 2) (2, length 1) | (1, 1) (2, 2)
    horiz = mats[_direction_index((0, 0, 1))]
    assert horiz[:, :3].tolist() == [[1, 1, 0], [1, 1, 0]]
    # columns: (1, 2) | (1, 1) (2, 1) | (2, 2)
    vert = mats[_direction_index((0, 1, 0))]
    assert vert[:, :3].tolist() == [[1, 1, 0], [1, 1, 0]]
    # diagonal (dy=1, dx=1): (0,0)->(1,1) is 1,2: runs (1,1),(2,1); (0,1)->(1,2) is 1,2; (0,2); (1,0)
    diag = mats[_direction_index((0, 1, 1))]
    assert diag[:, :2].tolist() == [[3, 0], [3, 0]]
    # every direction covers every voxel once
    assert all(int((m * np.arange(1, m.shape[1] + 1)).sum()) == 6 for m in mats)


def test_mask_hole_breaks_runs() -> None:
    levels = np.array([[[1, 1, 1]]], dtype=np.int32)
    mask = np.array([[[True, False, True]]])
    padded = prepare_levels(levels, mask, n_levels=1)
    horiz = glrlm.run_length_matrices(padded, n_levels=1, three_d=False)[_direction_index((0, 0, 1))]
    assert horiz[0, :3].tolist() == [2, 0, 0]


def test_hand_computed_features_and_merged_run_percentage() -> None:
    levels = np.array([[[1, 1, 2]]], dtype=np.int32)
    res = glrlm.compute(levels, levels > 0, n_levels=2, aggregations=["2D_avg", "2D_smrg"])
    merged = res["2D_smrg"]
    # horizontal: runs (1, 2), (2, 1); the three other directions: 3 runs of length 1
    # merged: (1,1) x6, (1,2) x1, (2,1) x4 -> 11 runs covering 4 directions x 3 voxels = 12
    assert merged["rlm.r.perc"] == pytest.approx(11 / 12)
    assert merged["rlm.sre"] == pytest.approx((6 + 1 / 4 + 4) / 11)
    assert merged["rlm.lre"] == pytest.approx((6 + 4 + 4) / 11)
    # averaged: horizontal sre = (1/4 + 1)/2, others 1
    assert res["2D_avg"]["rlm.sre"] == pytest.approx((0.625 + 3) / 4)


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 3)])
def test_degenerate_one_voxel_and_flat_roi(shape: tuple[int, int, int]) -> None:
    levels = np.full(shape, 2, dtype=np.int32)
    res = glrlm.compute(levels, np.ones(shape, bool), n_levels=3)
    for feats in res.values():
        assert set(feats) == {f.key for f in glrlm.FEATURES}
        assert all(np.isfinite(v) for v in feats.values())
        assert feats["rlm.gl.var"] == 0.0
        assert feats["rlm.lgre"] == pytest.approx(0.25)
    if shape == (1, 1, 1):
        assert res["3D_vmrg"]["rlm.r.perc"] == 1.0
        assert res["3D_avg"]["rlm.rl.entr"] == 0.0


def test_slices_with_lone_voxels_do_not_crash() -> None:
    levels = np.zeros((3, 3, 3), dtype=np.int32)
    levels[0, 0, 0] = 1
    levels[2, 1, 1] = 2
    res = glrlm.compute(levels, levels > 0, n_levels=2)
    assert res["2D_avg"]["rlm.sre"] == 1.0
    assert all(np.isfinite(v) for f in res.values() for v in f.values())


def test_errors() -> None:
    lv = np.ones((1, 2, 2), dtype=np.int32)
    with pytest.raises(ConfigError, match="3D_vmrg"):
        glrlm.compute(lv, lv > 0, n_levels=1, aggregations=["3D"])
    with pytest.raises(ConfigError, match="distance"):
        glrlm.compute(lv, lv > 0, n_levels=1, distance=2)


def test_feature_definitions() -> None:
    assert len(glrlm.FEATURES) == 16
    assert all(len(f.ibsi_id) == 4 and f.family == "GLRLM" for f in glrlm.FEATURES)


@pytest.fixture(scope="module")
def phantom_result(shared_dir: Path) -> dict[str, dict[str, float]]:
    levels, mask, ng = phantom_levels(shared_dir)
    return glrlm.compute(levels, mask, n_levels=ng)


CASES = [(f.key, a) for f in glrlm.FEATURES for a in glrlm.AGGREGATIONS]


@pytest.mark.shared
@pytest.mark.parametrize(("key", "aggregation"), CASES, ids=[f"{k}_{a}" for k, a in CASES])
def test_ibsi_phantom_row(key: str, aggregation: str, shared_dir: Path, phantom_result: dict) -> None:
    rows = [r for r in reference_rows(shared_dir, "GLRLM") if r.key == key and r.aggregation == aggregation]
    assert len(rows) == 1, f"no reference row for {key}_{aggregation}"
    value = phantom_result[aggregation][key]
    assert matches(value, rows[0]), (
        f"{key}_{aggregation}: {value} vs reference {rows[0].value} ± {rows[0].allowed}"
    )


@pytest.mark.shared
def test_ibsi_phantom_all_rows_count(shared_dir: Path, phantom_result: dict) -> None:
    rows = reference_rows(shared_dir, "GLRLM")
    passed = sum(matches(phantom_result[r.aggregation][r.key], r) for r in rows)
    print(f"GLRLM: {passed}/{len(rows)} IBSI digital-phantom reference rows match")
    assert len(rows) == 96
    assert passed == len(rows)


@pytest.mark.parametrize("seed", [0, 1])
def test_runs_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    levels = rng.integers(1, 3, size=(4, 5, 6)).astype(np.int32)
    mask = rng.random(levels.shape) < 0.8
    padded = prepare_levels(levels, mask, n_levels=2)
    mats = glrlm.run_length_matrices(padded, n_levels=2, three_d=True)

    def inside(z: int, y: int, x: int) -> bool:
        return 0 <= z < 4 and 0 <= y < 5 and 0 <= x < 6 and bool(mask[z, y, x])

    for k, (dz, dy, dx) in enumerate(directions(three_d=True)):
        expected = np.zeros_like(mats[k])
        for z, y, x in zip(*np.nonzero(mask), strict=True):
            g = levels[z, y, x]
            pz, py, px = z - dz, y - dy, x - dx
            if inside(pz, py, px) and levels[pz, py, px] == g:
                continue  # not a run start
            length = 1
            while inside(z + length * dz, y + length * dy, x + length * dx) and (
                levels[z + length * dz, y + length * dy, x + length * dx] == g
            ):
                length += 1
            expected[g - 1, length - 1] += 1
        assert np.array_equal(mats[k], expected)
