"""Intensity histogram features: IBSI digital phantom reference rows and hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _ibsi import ReferenceRow, load_digital_phantom, reference_by_key

from smartimaging.exceptions import EmptyMaskError, FeatureError
from smartimaging.features import histogram

FAMILY = "intensity histogram"
KEYS = [f.key for f in histogram.FEATURES]


@pytest.fixture(scope="module")
def rows(shared_dir: Path) -> dict[str, ReferenceRow]:
    return reference_by_key(shared_dir, FAMILY)


@pytest.fixture(scope="module")
def phantom_values(shared_dir: Path) -> dict[str, float]:
    image, mask = load_digital_phantom(shared_dir)
    # no discretisation for the phantom: levels 1..6 are the grey levels (fixed bin number 6)
    return histogram.compute(image.array[mask.array], n_levels=6)


def test_registry_matches_reference_table(rows: dict[str, ReferenceRow]) -> None:
    assert len(rows) == 23
    assert set(rows) == set(KEYS)
    for f in histogram.FEATURES:
        assert f.family == FAMILY
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
    print(f"intensity histogram: {passed}/{len(rows)} IBSI digital-phantom rows within tolerance")
    assert passed == len(rows) == 23


def test_hand_computed_small_array() -> None:
    # levels 1,1,1,2,4 on 5 levels: histogram [3,1,0,1,0]
    f = histogram.compute(np.array([1, 1, 1, 2, 4]), n_levels=5)
    assert f["ih.mean"] == pytest.approx(9 / 5)
    assert f["ih.var"] == pytest.approx(((0.8**2) * 3 + 0.2**2 + 2.2**2) / 5)
    assert f["ih.mode"] == 1.0
    p = np.array([3, 1, 1]) / 5
    assert f["ih.entropy"] == pytest.approx(-np.sum(p * np.log2(p)))
    assert f["ih.uniformity"] == pytest.approx(np.sum(p**2))
    assert f["ih.median"] == 1.0
    assert f["ih.range"] == 3.0
    # gradient [1-3, (0-3)/2, (1-1)/2, (0-0)/2, 0-1] = [-2, -1.5, 0, 0, -1]
    assert f["ih.max.grad"] == 0.0 and f["ih.max.grad.gl"] == 3.0
    assert f["ih.min.grad"] == -2.0 and f["ih.min.grad.gl"] == 1.0


def test_mode_tie_goes_to_level_closest_to_mean() -> None:
    # counts: level 1 -> 2, level 4 -> 2, level 5 -> 1; mean 3 => 4 is closer than 1
    f = histogram.compute(np.array([1, 1, 4, 4, 5]), n_levels=5)
    assert f["ih.mode"] == 4.0


def test_one_voxel_and_flat_roi_are_finite() -> None:
    for levels in (np.array([3]), np.full(50, 2)):
        f = histogram.compute(levels, n_levels=4)
        assert all(np.isfinite(v) for v in f.values())
        assert f["ih.var"] == 0.0 and f["ih.skew"] == 0.0 and f["ih.kurt"] == 0.0
        assert f["ih.entropy"] == 0.0 and f["ih.uniformity"] == 1.0
        assert f["ih.iqr"] == 0.0 and f["ih.qcod"] == 0.0
    single = histogram.compute(np.array([1, 1]), n_levels=1)
    assert single["ih.max.grad"] == 0.0 and single["ih.min.grad"] == 0.0


@pytest.mark.parametrize(
    ("levels", "n_levels", "error"),
    [
        (np.array([], dtype=int), 4, EmptyMaskError),
        (np.array([0, 1]), 4, FeatureError),
        (np.array([1, 5]), 4, FeatureError),
        (np.array([1.5, 2.0]), 4, FeatureError),
        (np.ones((2, 2), dtype=int), 4, FeatureError),
        (np.array([1, 2]), 0, FeatureError),
    ],
)
def test_invalid_input_raises(levels: np.ndarray, n_levels: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        histogram.compute(levels, n_levels=n_levels)


def test_robust_mad_of_a_two_voxel_roi_is_undefined_without_warnings() -> None:
    """Two voxels of different grey levels: no grey level lies between the histogram's P10 and P90, so
    its robust mean absolute deviation (WRZB) is undefined (NaN) and no numpy warning escapes (warnings
    are errors in the tests)."""
    import math

    from smartimaging.features.extract import extract
    from smartimaging.features.settings import ExtractionSettings
    from smartimaging.image import Image, Mask

    array = np.zeros((3, 3, 3), dtype=np.float32)
    array[1, 1, 1], array[1, 1, 2] = 1.0, 5.0
    mask = np.zeros(array.shape, dtype=bool)
    mask[1, 1, 1:3] = True
    settings = ExtractionSettings(families=("intensity statistics", "intensity histogram"))
    image = Image(array, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))
    table = extract(image, Mask(mask, spacing=image.spacing, origin=image.origin), settings=settings)
    values = dict(zip(table["key"], table["value"], strict=True))
    assert math.isnan(values["ih.rmad"])
    # the intensity statistics' percentiles keep both voxels: defined there
    assert values["stat.rmad"] == 2.0 and values["stat.mad"] == 2.0
