"""Intensity-volume histogram features: IBSI digital phantom reference rows and hand cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _ibsi import ReferenceRow, load_digital_phantom, reference_by_key

from smartimaging.exceptions import EmptyMaskError, FeatureError
from smartimaging.features import ivh

FAMILY = "intensity-volume histogram"
# the area under the IVH has no reference value in the table (weak consensus): checked by hand below
KEYS = [f.key for f in ivh.FEATURES if f.key != "ivh.auc"]


@pytest.fixture(scope="module")
def rows(shared_dir: Path) -> dict[str, ReferenceRow]:
    return reference_by_key(shared_dir, FAMILY)


@pytest.fixture(scope="module")
def phantom_levels(shared_dir: Path) -> np.ndarray:
    image, mask = load_digital_phantom(shared_dir)
    return image.array[mask.array]


@pytest.fixture(scope="module")
def phantom_values(phantom_levels: np.ndarray) -> dict[str, float]:
    return ivh.compute(phantom_levels, discrete=True)


def test_registry_matches_reference_table(rows: dict[str, ReferenceRow]) -> None:
    assert len(rows) == 6
    assert set(rows) == set(KEYS)
    for f in ivh.FEATURES:
        assert f.family == FAMILY
        if f.key in rows:
            assert (f.name, f.ibsi_id) == (rows[f.key].feature, rows[f.key].ibsi_id)


@pytest.mark.parametrize("key", KEYS)
def test_phantom_reference_row(
    key: str, rows: dict[str, ReferenceRow], phantom_values: dict[str, float]
) -> None:
    row = rows[key]
    got = phantom_values[key]
    assert row.matches(got), f"{key} ({row.ibsi_id}): got {got!r}, reference {row.value} ± {row.allowed}"


def test_phantom_all_rows_count(rows: dict[str, ReferenceRow], phantom_values: dict[str, float]) -> None:
    passed = sum(rows[k].matches(phantom_values[k]) for k in rows)
    print(f"intensity-volume histogram: {passed}/{len(rows)} IBSI digital-phantom rows within tolerance")
    assert passed == len(rows) == 6


def test_phantom_curve_matches_manual_table(phantom_levels: np.ndarray) -> None:
    # IBSI manual, table "Example intensity-volume histogram ... digital phantom"; AUC 0.32
    i, gamma, nu = ivh.ivh_curve(phantom_levels, discrete=True)
    np.testing.assert_array_equal(i, [1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(gamma, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(nu, [1.0, 0.324, 0.324, 0.311, 0.095, 0.095], atol=5e-4)
    assert ivh.compute(phantom_levels, discrete=True)["ivh.auc"] == pytest.approx(0.32, abs=0.005)


def test_phantom_same_with_fixed_bin_number(phantom_levels: np.ndarray) -> None:
    a = ivh.compute(phantom_levels, discrete=True)
    b = ivh.compute(phantom_levels.astype(float), discrete=False, n_bins=5)
    # 5 bins over 1..6 give bins of width 1 with 6 merged into bin 5: same fractions, shifted levels
    assert b["ivh.V10"] == pytest.approx(a["ivh.V10"])
    assert b["ivh.V90"] == pytest.approx(a["ivh.V90"])


def test_hand_example_discrete() -> None:
    # 10 voxels: 1 x4, 2 x3, 3 x2, 5 x1 ; G = [1, 5]
    x = np.array([1, 1, 1, 1, 2, 2, 2, 3, 3, 5])
    i, gamma, nu = ivh.ivh_curve(x, discrete=True)
    np.testing.assert_array_equal(i, [1, 2, 3, 4, 5])
    np.testing.assert_allclose(gamma, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(nu, [1.0, 0.6, 0.3, 0.1, 0.1])
    f = ivh.compute(x, discrete=True)
    assert f["ivh.V10"] == pytest.approx(0.6)  # gamma >= 0.1 first at i = 2
    assert f["ivh.V90"] == pytest.approx(0.1)  # gamma >= 0.9 only at i = 5
    assert f["ivh.I10"] == 4.0  # smallest i with nu <= 0.1
    assert f["ivh.I90"] == 2.0
    assert f["ivh.I10minusI90"] == 2.0
    assert f["ivh.auc"] == pytest.approx(0.25 * (0.5 + 0.6 + 0.3 + 0.1 + 0.05))


def test_resegmentation_range_sets_total_range() -> None:
    x = np.array([10, 10, 20, 30])
    f = ivh.compute(x, discrete=True, lower=0, upper=40)
    # gamma = i / 40: V10 at i = 4 -> all voxels; V90 at i = 36 -> none
    assert f["ivh.V10"] == 1.0
    assert f["ivh.V90"] == 0.0


def test_continuous_fixed_bin_size_uses_bin_centres() -> None:
    # bins of 2.5 from -1000: -999 -> bin 1 (centre -998.75); -990.1 -> bin 4 (centre -991.25)
    x = np.array([-999.0, -999.0, -990.1, -990.1])
    i, gamma, nu = ivh.ivh_curve(x, discrete=False, bin_width=2.5, lower=-1000.0, upper=-990.0)
    np.testing.assert_allclose(i, [-998.75, -996.25, -993.75, -991.25])
    np.testing.assert_allclose(gamma, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(nu, [1.0, 0.5, 0.5, 0.5])
    f = ivh.compute(x, discrete=False, bin_width=2.5, lower=-1000.0, upper=-990.0)
    assert f["ivh.I90"] == pytest.approx(-996.25)


def test_flat_and_one_voxel_roi_conventions() -> None:
    for x in (np.array([7.0]), np.full(20, 3.0)):
        f = ivh.compute(x, discrete=True)
        assert all(np.isfinite(v) for v in f.values())
        assert f["ivh.V10"] == 1.0 and f["ivh.V90"] == 1.0
        assert f["ivh.I10"] == x[0] + 1  # first level above the range, where nu = 0
        assert f["ivh.auc"] == 0.0
    g = ivh.compute(np.full(5, 2.0), discrete=False, n_bins=1000)
    assert all(np.isfinite(v) for v in g.values())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"discrete": False},
        {"discrete": False, "bin_width": 1.0, "n_bins": 10},
        {"discrete": True, "n_bins": 10},
        {"discrete": False, "n_bins": 10, "lower": 0.0},
        {"discrete": False, "bin_width": -1.0},
        {"discrete": False, "n_bins": 0},
        {"discrete": False, "bin_width": 1.0, "lower": 5.0},
        {"discrete": True, "lower": 2.0},
    ],
)
def test_conflicting_options_raise(kwargs: dict[str, object]) -> None:
    with pytest.raises(FeatureError):
        ivh.compute(np.array([1.0, 2.0, 3.0]), **kwargs)  # type: ignore[arg-type]


def test_empty_raises() -> None:
    with pytest.raises(EmptyMaskError):
        ivh.compute(np.array([]), discrete=True)
