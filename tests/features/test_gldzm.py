"""GLDZM: hand-computed border distances and zones, degenerate ROIs, IBSI phantom rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _ibsi import matches, phantom_levels, reference_rows

from smartimaging.exceptions import ConfigError, GeometryMismatchError
from smartimaging.features import gldzm


def test_border_distance_2d_and_3d() -> None:
    mask = np.ones((1, 5, 5), bool)
    d2 = gldzm.border_distance(mask, three_d=False)
    expected = np.array([[1, 1, 1, 1, 1], [1, 2, 2, 2, 1], [1, 2, 3, 2, 1], [1, 2, 2, 2, 1], [1, 1, 1, 1, 1]])
    assert np.array_equal(d2[0], expected)
    # a single slice: in 3D every voxel touches the outside through z
    assert np.all(gldzm.border_distance(mask, three_d=True) == 1)


def test_border_distance_hole_counts_as_border() -> None:
    mask = np.ones((1, 5, 5), bool)
    mask[0, 2, 2] = False
    d2 = gldzm.border_distance(mask, three_d=False)[0]
    assert d2[2, 1] == 1 and d2[1, 2] == 1  # next to the hole
    assert d2[1, 1] == 2  # two steps from the hole and from the edge
    assert d2[2, 2] == 0  # outside


def test_hand_computed_zones() -> None:
    sl = np.ones((1, 3, 3), dtype=np.int32)
    sl[0, 1, 1] = 2
    f = gldzm.compute(sl, np.ones(sl.shape, bool), n_levels=2, aggregations=["2D"])["2D"]
    # zones: ring of 1s at distance 1, centre 2 at distance 2
    assert f["dzm.sde"] == pytest.approx((1 + 1 / 4) / 2)
    assert f["dzm.lde"] == pytest.approx((1 + 4) / 2)
    assert f["dzm.z.perc"] == pytest.approx(2 / 9)
    assert f["dzm.ldhge"] == pytest.approx((1 + 4 * 4) / 2)
    assert f["dzm.zd.var"] == pytest.approx(0.25)


def test_morphological_mask_sets_the_border() -> None:
    levels = np.ones((1, 5, 5), dtype=np.int32)
    roi = np.zeros((1, 5, 5), bool)
    roi[0, 1:4, 1:4] = True
    morph = np.ones((1, 5, 5), bool)
    alone = gldzm.compute(levels, roi, n_levels=1, aggregations=["2D"])["2D"]
    with_morph = gldzm.compute(levels, roi, n_levels=1, aggregations=["2D"], morphological_mask=morph)["2D"]
    assert alone["dzm.lde"] == 1.0  # the 3x3 zone touches its own border
    assert with_morph["dzm.lde"] == 4.0  # inside the 5x5 morphological mask its nearest voxel is at 2
    with pytest.raises(GeometryMismatchError):
        gldzm.compute(levels, morph, n_levels=1, morphological_mask=roi)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 3, 3)])
def test_degenerate_one_voxel_and_flat_roi(shape: tuple[int, int, int]) -> None:
    levels = np.full(shape, 2, dtype=np.int32)
    res = gldzm.compute(levels, np.ones(shape, bool), n_levels=2)
    for feats in res.values():
        assert set(feats) == {f.key for f in gldzm.FEATURES}
        assert all(np.isfinite(v) for v in feats.values())
        assert feats["dzm.sde"] == 1.0  # one zone, touching the border
        assert feats["dzm.gl.var"] == 0.0


def test_slices_with_lone_voxels_do_not_crash() -> None:
    levels = np.zeros((3, 3, 3), dtype=np.int32)
    levels[0, 0, 0] = 1
    levels[2, 1, 1] = 2
    res = gldzm.compute(levels, levels > 0, n_levels=2)
    assert all(np.isfinite(v) for f in res.values() for v in f.values())


def test_errors() -> None:
    lv = np.ones((1, 2, 2), dtype=np.int32)
    with pytest.raises(ConfigError, match="3D"):
        gldzm.compute(lv, lv > 0, n_levels=1, aggregations=["3D_avg"])
    with pytest.raises(ConfigError, match="distance"):
        gldzm.compute(lv, lv > 0, n_levels=1, distance=3)


def test_feature_definitions() -> None:
    assert len(gldzm.FEATURES) == 16
    assert all(len(f.ibsi_id) == 4 and f.family == "GLDZM" for f in gldzm.FEATURES)


@pytest.fixture(scope="module")
def phantom_result(shared_dir: Path) -> dict[str, dict[str, float]]:
    levels, mask, ng = phantom_levels(shared_dir)
    return gldzm.compute(levels, mask, n_levels=ng)


CASES = [(f.key, a) for f in gldzm.FEATURES for a in gldzm.AGGREGATIONS]


@pytest.mark.shared
@pytest.mark.parametrize(("key", "aggregation"), CASES, ids=[f"{k}_{a}" for k, a in CASES])
def test_ibsi_phantom_row(key: str, aggregation: str, shared_dir: Path, phantom_result: dict) -> None:
    rows = [r for r in reference_rows(shared_dir, "GLDZM") if r.key == key and r.aggregation == aggregation]
    assert len(rows) == 1, f"no reference row for {key}_{aggregation}"
    value = phantom_result[aggregation][key]
    assert matches(value, rows[0]), (
        f"{key}_{aggregation}: {value} vs reference {rows[0].value} ± {rows[0].allowed}"
    )


@pytest.mark.shared
def test_ibsi_phantom_all_rows_count(shared_dir: Path, phantom_result: dict) -> None:
    rows = reference_rows(shared_dir, "GLDZM")
    passed = sum(matches(phantom_result[r.aggregation][r.key], r) for r in rows)
    print(f"GLDZM: {passed}/{len(rows)} IBSI digital-phantom reference rows match")
    assert len(rows) == 48
    assert passed == len(rows)
