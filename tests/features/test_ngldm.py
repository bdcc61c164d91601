"""NGLDM: hand-computed dependence counts, coarseness, degenerate ROIs, IBSI phantom rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _ibsi import matches, phantom_levels, reference_rows

from smartimaging.exceptions import ConfigError
from smartimaging.features import ngldm
from smartimaging.features.texture_common import prepare_levels

SLICE = np.array([[[1, 1], [1, 2]]], dtype=np.int32)


def test_hand_computed_dependence_counts() -> None:
    padded = prepare_levels(SLICE, np.ones(SLICE.shape, bool), n_levels=2)
    m = ngldm.dependence_matrices(padded, n_levels=2, three_d=False).sum(axis=0)
    # each 1 has two equal neighbours (k = 3); the 2 has none (k = 1)
    assert m[:, :4].tolist() == [[0, 0, 3, 0], [1, 0, 0, 0]]
    m1 = ngldm.dependence_matrices(padded, n_levels=2, three_d=False, alpha=1).sum(axis=0)
    assert m1[:, :4].tolist() == [[0, 0, 0, 3], [0, 0, 0, 1]]


def test_hand_computed_features() -> None:
    f = ngldm.compute(SLICE, np.ones(SLICE.shape, bool), n_levels=2, aggregations=["2D"])["2D"]
    assert f["ngl.lde"] == pytest.approx((3 / 9 + 1) / 4)
    assert f["ngl.hde"] == pytest.approx((3 * 9 + 1) / 4)
    assert f["ngl.dc.perc"] == 1.0
    assert f["ngl.dc.energy"] == pytest.approx(0.75**2 + 0.25**2)
    assert f["ngl.glnu"] == pytest.approx((9 + 1) / 4)


def test_neighbours_outside_roi_do_not_count() -> None:
    levels = np.ones((1, 1, 3), dtype=np.int32)
    mask = np.array([[[True, False, True]]])
    f = ngldm.compute(levels, mask, n_levels=1, aggregations=["3D"])["3D"]
    assert f["ngl.lde"] == 1.0  # both voxels have dependence 1


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 3, 3)])
def test_degenerate_one_voxel_and_flat_roi(shape: tuple[int, int, int]) -> None:
    levels = np.full(shape, 2, dtype=np.int32)
    res = ngldm.compute(levels, np.ones(shape, bool), n_levels=2)
    for feats in res.values():
        assert set(feats) == {f.key for f in ngldm.FEATURES}
        assert all(np.isfinite(v) for v in feats.values())
        assert feats["ngl.gl.var"] == 0.0
        assert feats["ngl.dc.perc"] == 1.0
    if shape == (1, 1, 1):
        assert res["3D"]["ngl.lde"] == 1.0 and res["3D"]["ngl.dc.entr"] == 0.0


def test_slices_with_lone_voxels_do_not_crash() -> None:
    levels = np.zeros((3, 3, 3), dtype=np.int32)
    levels[0, 0, 0] = 1
    levels[2, 1, 1] = 2
    res = ngldm.compute(levels, levels > 0, n_levels=2)
    assert res["2D"]["ngl.lde"] == 1.0
    assert all(np.isfinite(v) for f in res.values() for v in f.values())


def test_errors() -> None:
    lv = np.ones((1, 2, 2), dtype=np.int32)
    with pytest.raises(ConfigError, match="2D"):
        ngldm.compute(lv, lv > 0, n_levels=1, aggregations=["4D"])
    with pytest.raises(ConfigError, match="alpha"):
        ngldm.compute(lv, lv > 0, n_levels=1, alpha=-1)


def test_feature_definitions() -> None:
    assert len(ngldm.FEATURES) == 17
    assert all(len(f.ibsi_id) == 4 and f.family == "NGLDM" for f in ngldm.FEATURES)


@pytest.fixture(scope="module")
def phantom_result(shared_dir: Path) -> dict[str, dict[str, float]]:
    levels, mask, ng = phantom_levels(shared_dir)
    return ngldm.compute(levels, mask, n_levels=ng)


CASES = [(f.key, a) for f in ngldm.FEATURES for a in ngldm.AGGREGATIONS]


@pytest.mark.shared
@pytest.mark.parametrize(("key", "aggregation"), CASES, ids=[f"{k}_{a}" for k, a in CASES])
def test_ibsi_phantom_row(key: str, aggregation: str, shared_dir: Path, phantom_result: dict) -> None:
    rows = [r for r in reference_rows(shared_dir, "NGLDM") if r.key == key and r.aggregation == aggregation]
    assert len(rows) == 1, f"no reference row for {key}_{aggregation}"
    value = phantom_result[aggregation][key]
    assert matches(value, rows[0]), (
        f"{key}_{aggregation}: {value} vs reference {rows[0].value} ± {rows[0].allowed}"
    )


@pytest.mark.shared
def test_ibsi_phantom_all_rows_count(shared_dir: Path, phantom_result: dict) -> None:
    rows = reference_rows(shared_dir, "NGLDM")
    passed = sum(matches(phantom_result[r.aggregation][r.key], r) for r in rows)
    print(f"NGLDM: {passed}/{len(rows)} IBSI digital-phantom reference rows match")
    assert len(rows) == 51
    assert passed == len(rows)
