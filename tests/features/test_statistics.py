"""Tests of the IBSI intensity statistics (features/statistics.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _ibsi import load_digital_phantom, reference_by_key, reference_rows

from smartimaging.exceptions import EmptyMaskError, FeatureError, GeometryMismatchError
from smartimaging.features import statistics
from smartimaging.image import Image, Mask


@pytest.mark.shared
def test_features_match_the_ibsi_reference_table(shared_dir):
    names = {f.key: (f.name, f.ibsi_id) for f in statistics.FEATURES}
    rows = reference_rows(shared_dir, "intensity statistics")
    assert len(rows) == 18
    assert {r.key: (r.feature, r.ibsi_id) for r in rows} == names


def test_hand_computed_values():
    # values 1, 2, 3, 4, 10: mean 4, deviations -3 -2 -1 0 6
    out = statistics.compute(np.array([1.0, 2.0, 3.0, 4.0, 10.0]))
    assert list(out) == [f.key for f in statistics.FEATURES]
    assert out["stat.mean"] == 4.0
    assert out["stat.var"] == pytest.approx(50 / 5)
    assert out["stat.skew"] == pytest.approx((-27 - 8 - 1 + 0 + 216) / 5 / 10**1.5)
    assert out["stat.kurt"] == pytest.approx((81 + 16 + 1 + 0 + 1296) / 5 / 100 - 3)
    assert out["stat.median"] == 3.0
    assert out["stat.min"] == 1.0 and out["stat.max"] == 10.0 and out["stat.range"] == 9.0
    # linear interpolation: P10 at rank 0.4 -> 1.4; P90 at rank 3.6 -> 4 + 0.6 * 6 = 7.6
    assert out["stat.p10"] == pytest.approx(1.4)
    assert out["stat.p90"] == pytest.approx(7.6)
    assert out["stat.iqr"] == pytest.approx(4.0 - 2.0)
    assert out["stat.mad"] == pytest.approx(12 / 5)
    # robust set [1.4, 7.6] holds 2, 3, 4: mean 3, mean |dev| = 2/3
    assert out["stat.rmad"] == pytest.approx(2 / 3)
    assert out["stat.medad"] == pytest.approx((2 + 1 + 0 + 1 + 7) / 5)
    assert out["stat.cov"] == pytest.approx(math.sqrt(10) / 4)
    assert out["stat.qcod"] == pytest.approx(2 / 6)
    assert out["stat.energy"] == 1 + 4 + 9 + 16 + 100
    assert out["stat.rms"] == pytest.approx(math.sqrt(130 / 5))


def test_flat_roi_has_zero_spread_and_defined_moments():
    out = statistics.compute(np.full(7, 3.0))
    assert out["stat.var"] == 0.0
    assert out["stat.skew"] == 0.0 and out["stat.kurt"] == 0.0
    assert out["stat.cov"] == 0.0 and out["stat.qcod"] == 0.0
    assert out["stat.mean"] == 3.0 and out["stat.energy"] == 63.0


def test_one_voxel():
    out = statistics.compute(np.array([-2.0]))
    assert all(math.isfinite(v) for v in out.values())
    assert out["stat.p10"] == out["stat.p90"] == -2.0
    assert out["stat.rms"] == 2.0


def test_two_voxels_robust_set_falls_back_to_all_values():
    out = statistics.compute(np.array([0.0, 10.0]))
    assert out["stat.rmad"] == pytest.approx(5.0)


def test_zero_mean_with_spread_gives_undefined_cov():
    out = statistics.compute(np.array([-1.0, 1.0]))
    assert math.isnan(out["stat.cov"])


def test_errors():
    with pytest.raises(EmptyMaskError):
        statistics.compute(np.array([]))
    with pytest.raises(FeatureError, match="1 non-finite"):
        statistics.compute(np.array([1.0, np.nan, 2.0]))
    img = Image(np.ones((2, 2, 2)), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(GeometryMismatchError):
        statistics.compute_image(img, Mask(np.ones((2, 2, 3), bool), spacing=(1.0, 1.0, 1.0)))
    with pytest.raises(EmptyMaskError):
        statistics.compute_image(img, Mask(np.zeros((2, 2, 2), bool), spacing=(1.0, 1.0, 1.0)))


def _phantom_cases():
    # parametrise by reference row; the ids are read lazily so collection works without data
    return [pytest.param(key, id=key) for key in (f.key for f in statistics.FEATURES)]


@pytest.fixture(scope="module")
def phantom_values(shared_dir):
    image, mask = load_digital_phantom(shared_dir)
    return statistics.compute_image(image, mask)


@pytest.mark.shared
@pytest.mark.parametrize("key", _phantom_cases())
def test_digital_phantom_reference(shared_dir, phantom_values, key):
    ref = reference_by_key(shared_dir, "intensity statistics")[key]
    assert ref.matches(phantom_values[key]), ref.describe(phantom_values[key])


@pytest.mark.shared
def test_digital_phantom_all_rows_match(shared_dir, phantom_values, capsys):
    rows = reference_rows(shared_dir, "intensity statistics")
    ok = [r.matches(phantom_values[r.key]) for r in rows]
    with capsys.disabled():
        print(f"\nIBSI digital phantom, intensity statistics: {sum(ok)}/{len(ok)} match")
    assert all(ok)
