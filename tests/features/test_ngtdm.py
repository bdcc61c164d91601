"""NGTDM: hand-computed matrices, brute-force cross-check, degenerate ROIs, IBSI phantom rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _ibsi import matches, phantom_levels, reference_rows

from smartimaging.exceptions import ConfigError
from smartimaging.features import ngtdm
from smartimaging.features.texture_common import prepare_levels


def _brute_force(levels: np.ndarray, mask: np.ndarray, n_levels: int, three_d: bool) -> tuple:
    s = np.zeros(n_levels)
    n = np.zeros(n_levels, dtype=int)
    nz, ny, nx = levels.shape
    for z, y, x in zip(*np.nonzero(mask), strict=True):
        vals = []
        for dz in (-1, 0, 1) if three_d else (0,):
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    zz, yy, xx = z + dz, y + dy, x + dx
                    if (dz, dy, dx) == (0, 0, 0) or not (0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx):
                        continue
                    if mask[zz, yy, xx]:
                        vals.append(levels[zz, yy, xx])
        if vals:
            g = levels[z, y, x]
            s[g - 1] += abs(g - np.mean(vals))
            n[g - 1] += 1
    return s, n


def test_hand_computed_matrix() -> None:
    # the 4 x 4 example of the PyRadiomics / IBSI NGTDM documentation (level 4 absent)
    img = np.array([[1, 2, 5, 2], [3, 5, 1, 3], [1, 3, 5, 5], [3, 1, 1, 1]], dtype=np.int32)[None]
    padded = prepare_levels(img, np.ones(img.shape, bool), n_levels=5)
    s, n = ngtdm.ngtdm_per_slice(padded, n_levels=5, three_d=False)
    s, n = s.sum(axis=0), n.sum(axis=0)
    assert n.tolist() == [6, 2, 4, 0, 4]
    # s_1 = |1-10/3| + |1-30/8| + |1-15/5| + |1-13/5| + |1-15/5| + |1-11/3|
    assert s[0] == pytest.approx(7 / 3 + 22 / 8 + 2 + 8 / 5 + 2 + 8 / 3)
    assert s[1] == pytest.approx(2.0)  # |2-15/5| + |2-9/3|
    assert s[3] == 0.0


def test_hand_computed_features() -> None:
    levels = np.array([[[1, 2]]], dtype=np.int32)
    f = ngtdm.compute(levels, levels > 0, n_levels=2, aggregations=["2D"])["2D"]
    # s = [1, 1], n = [1, 1], p = [0.5, 0.5]
    assert f["ngt.coarseness"] == pytest.approx(1.0)
    assert f["ngt.contrast"] == pytest.approx(0.25)
    assert f["ngt.busyness"] == pytest.approx(1.0)
    assert f["ngt.complexity"] == pytest.approx(1.0)
    assert f["ngt.strength"] == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    levels = rng.integers(1, 5, size=(4, 6, 7)).astype(np.int32)
    mask = rng.random(levels.shape) < 0.7
    padded = prepare_levels(levels, mask, n_levels=4)
    for three_d in (False, True):
        s, n = ngtdm.ngtdm_per_slice(padded, n_levels=4, three_d=three_d)
        s_ref, n_ref = _brute_force(levels, mask, 4, three_d)
        assert np.array_equal(n.sum(axis=0), n_ref)
        assert np.allclose(s.sum(axis=0), s_ref)


def test_voxels_without_neighbours_are_left_out() -> None:
    levels = np.zeros((1, 3, 4), dtype=np.int32)
    levels[0, 0, 0] = 3  # isolated
    levels[0, 2, 2], levels[0, 2, 3] = 1, 2
    padded = prepare_levels(levels, levels > 0, n_levels=3)
    _, n = ngtdm.ngtdm_per_slice(padded, n_levels=3, three_d=False)
    assert n.sum(axis=0).tolist() == [1, 1, 0]


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 3, 3)])
def test_degenerate_one_voxel_and_flat_roi(shape: tuple[int, int, int]) -> None:
    levels = np.full(shape, 2, dtype=np.int32)
    res = ngtdm.compute(levels, np.ones(shape, bool), n_levels=2)
    for feats in res.values():
        assert feats == {
            "ngt.coarseness": ngtdm.MAX_COARSENESS,
            "ngt.contrast": 0.0,
            "ngt.busyness": 0.0,
            "ngt.complexity": 0.0,
            "ngt.strength": 0.0,
        }


def test_slices_with_lone_voxels_do_not_crash() -> None:
    levels = np.zeros((3, 3, 3), dtype=np.int32)
    levels[0, 0, 0] = 1
    levels[1, 1, 1], levels[1, 1, 2] = 1, 2
    levels[2, 2, 2] = 2
    res = ngtdm.compute(levels, levels > 0, n_levels=2)
    # 2D: only slice 1 has voxels with neighbours: the [1, 2] pair
    assert res["2D"]["ngt.coarseness"] == pytest.approx(1.0)
    assert all(np.isfinite(v) for f in res.values() for v in f.values())


def test_errors() -> None:
    lv = np.ones((1, 2, 2), dtype=np.int32)
    with pytest.raises(ConfigError, match=r"2\.5D"):
        ngtdm.compute(lv, lv > 0, n_levels=1, aggregations=["3D_vmrg"])
    with pytest.raises(ConfigError, match="distance"):
        ngtdm.compute(lv, lv > 0, n_levels=1, distance=-1)


def test_feature_definitions() -> None:
    assert len(ngtdm.FEATURES) == 5
    assert all(len(f.ibsi_id) == 4 and f.family == "NGTDM" for f in ngtdm.FEATURES)


@pytest.fixture(scope="module")
def phantom_result(shared_dir: Path) -> dict[str, dict[str, float]]:
    levels, mask, ng = phantom_levels(shared_dir)
    return ngtdm.compute(levels, mask, n_levels=ng)


CASES = [(f.key, a) for f in ngtdm.FEATURES for a in ngtdm.AGGREGATIONS]


@pytest.mark.shared
@pytest.mark.parametrize(("key", "aggregation"), CASES, ids=[f"{k}_{a}" for k, a in CASES])
def test_ibsi_phantom_row(key: str, aggregation: str, shared_dir: Path, phantom_result: dict) -> None:
    rows = [r for r in reference_rows(shared_dir, "NGTDM") if r.key == key and r.aggregation == aggregation]
    assert len(rows) == 1, f"no reference row for {key}_{aggregation}"
    value = phantom_result[aggregation][key]
    assert matches(value, rows[0]), (
        f"{key}_{aggregation}: {value} vs reference {rows[0].value} ± {rows[0].allowed}"
    )


@pytest.mark.shared
def test_ibsi_phantom_all_rows_count(shared_dir: Path, phantom_result: dict) -> None:
    rows = reference_rows(shared_dir, "NGTDM")
    passed = sum(matches(phantom_result[r.aggregation][r.key], r) for r in rows)
    print(f"NGTDM: {passed}/{len(rows)} IBSI digital-phantom reference rows match")
    assert len(rows) == 15
    assert passed == len(rows)
