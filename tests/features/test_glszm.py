"""GLSZM: hand-computed zones, zone labelling against scipy, degenerate ROIs, IBSI phantom rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _ibsi import matches, phantom_levels, reference_rows
from scipy import ndimage

from smartimaging.exceptions import ConfigError
from smartimaging.features import glszm
from smartimaging.features.texture_common import label_zones, prepare_levels


def test_hand_computed_zones_and_features() -> None:
    sl = np.array([[1, 1, 2], [2, 1, 2], [3, 3, 2]], dtype=np.int32)[None]
    padded = prepare_levels(sl, np.ones(sl.shape, bool), n_levels=3)
    _, level, size, _ = label_zones(padded, three_d=False)
    # level 1: 3 voxels; level 2: right column (3) and the lone (1, 0); level 3: 2 voxels
    assert sorted(zip(level.tolist(), size.tolist(), strict=True)) == [(1, 3), (2, 1), (2, 3), (3, 2)]
    f = glszm.compute(sl, np.ones(sl.shape, bool), n_levels=3, aggregations=["2D"])["2D"]
    assert f["szm.sze"] == pytest.approx((1 / 9 + 1 / 9 + 1 + 1 / 4) / 4)
    assert f["szm.lze"] == pytest.approx((9 + 9 + 1 + 4) / 4)
    assert f["szm.z.perc"] == pytest.approx(4 / 9)
    assert f["szm.glnu"] == pytest.approx((1 + 4 + 1) / 4)
    assert f["szm.zsnu"] == pytest.approx((4 + 1 + 1) / 4)
    assert f["szm.hgze"] == pytest.approx((1 + 4 + 4 + 9) / 4)


def test_connectivity_8_in_plane_and_26_in_3d() -> None:
    diag2d = np.array([[[1, 2], [2, 1]]], dtype=np.int32)
    res = glszm.compute(diag2d, diag2d > 0, n_levels=2, aggregations=["2D"])
    assert res["2D"]["szm.z.perc"] == pytest.approx(2 / 4)  # two diagonal zones of 2 voxels
    diag3d = np.zeros((2, 2, 2), dtype=np.int32)
    diag3d[0, 0, 0] = diag3d[1, 1, 1] = 1
    res = glszm.compute(diag3d, diag3d > 0, n_levels=1)
    assert res["3D"]["szm.z.perc"] == pytest.approx(1 / 2)  # one zone across slices
    assert res["2D"]["szm.z.perc"] == 1.0
    assert res["2.5D"]["szm.z.perc"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_zone_labelling_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    levels = rng.integers(1, 4, size=(6, 7, 8)).astype(np.int32)
    mask = rng.random(levels.shape) < 0.8
    padded = prepare_levels(levels, mask, n_levels=3)
    for three_d in (False, True):
        _, level, size, _ = label_zones(padded, three_d=three_d)
        structure = np.ones((3, 3, 3), bool)
        if not three_d:
            structure[0] = structure[2] = False
        expected = []
        for g in (1, 2, 3):
            lab, _ = ndimage.label(padded == g, structure=structure)
            expected += [(g, int(c)) for c in np.bincount(lab.ravel())[1:]]
        assert sorted(zip(level.tolist(), size.tolist(), strict=True)) == sorted(expected)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 3, 3)])
def test_degenerate_one_voxel_and_flat_roi(shape: tuple[int, int, int]) -> None:
    levels = np.full(shape, 2, dtype=np.int32)
    res = glszm.compute(levels, np.ones(shape, bool), n_levels=2)
    n_vox = int(np.prod(shape))
    for feats in res.values():
        assert set(feats) == {f.key for f in glszm.FEATURES}
        assert all(np.isfinite(v) for v in feats.values())
        assert feats["szm.gl.var"] == 0.0
        assert feats["szm.zs.var"] == 0.0
        assert feats["szm.zs.entr"] == 0.0
    assert res["3D"]["szm.lze"] == pytest.approx(n_vox**2)
    assert res["3D"]["szm.z.perc"] == pytest.approx(1 / n_vox)


def test_slices_with_lone_voxels_do_not_crash() -> None:
    levels = np.zeros((3, 3, 3), dtype=np.int32)
    levels[0, 0, 0] = 1
    levels[2, 1, 1] = 2
    res = glszm.compute(levels, levels > 0, n_levels=2)
    assert res["2D"]["szm.sze"] == 1.0
    assert all(np.isfinite(v) for f in res.values() for v in f.values())


def test_errors() -> None:
    lv = np.ones((1, 2, 2), dtype=np.int32)
    with pytest.raises(ConfigError, match=r"2\.5D"):
        glszm.compute(lv, lv > 0, n_levels=1, aggregations=["2D_avg"])
    with pytest.raises(ConfigError, match="distance"):
        glszm.compute(lv, lv > 0, n_levels=1, distance=2)


def test_feature_definitions() -> None:
    assert len(glszm.FEATURES) == 16
    assert all(len(f.ibsi_id) == 4 and f.family == "GLSZM" for f in glszm.FEATURES)


@pytest.fixture(scope="module")
def phantom_result(shared_dir: Path) -> dict[str, dict[str, float]]:
    levels, mask, ng = phantom_levels(shared_dir)
    return glszm.compute(levels, mask, n_levels=ng)


CASES = [(f.key, a) for f in glszm.FEATURES for a in glszm.AGGREGATIONS]


@pytest.mark.shared
@pytest.mark.parametrize(("key", "aggregation"), CASES, ids=[f"{k}_{a}" for k, a in CASES])
def test_ibsi_phantom_row(key: str, aggregation: str, shared_dir: Path, phantom_result: dict) -> None:
    rows = [r for r in reference_rows(shared_dir, "GLSZM") if r.key == key and r.aggregation == aggregation]
    assert len(rows) == 1, f"no reference row for {key}_{aggregation}"
    value = phantom_result[aggregation][key]
    assert matches(value, rows[0]), (
        f"{key}_{aggregation}: {value} vs reference {rows[0].value} ± {rows[0].allowed}"
    )


@pytest.mark.shared
def test_ibsi_phantom_all_rows_count(shared_dir: Path, phantom_result: dict) -> None:
    rows = reference_rows(shared_dir, "GLSZM")
    passed = sum(matches(phantom_result[r.aggregation][r.key], r) for r in rows)
    print(f"GLSZM: {passed}/{len(rows)} IBSI digital-phantom reference rows match")
    assert len(rows) == 48
    assert passed == len(rows)
