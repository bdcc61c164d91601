"""Tests of IBSI intensity discretisation (fixed bin number / fixed bin size)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from smartimaging.exceptions import ConfigError, EmptyMaskError, FeatureError, GeometryMismatchError
from smartimaging.image import Image, Mask
from smartimaging.preprocess.discretise import discretise


def test_fixed_bin_number_hand_computed_and_max_edge() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    # floor(4 * (x - 0) / 4) + 1 = 1..5, and the maximum goes to the last bin (4), not 5
    levels, ng = discretise(x, np.ones(5, bool), method="fixed_bin_number", n_bins=4)
    assert levels.tolist() == [1, 2, 3, 4, 4]
    assert ng == 4
    assert levels.dtype == np.int32


def test_fixed_bin_number_ignores_voxels_outside_mask() -> None:
    x = np.array([100.0, 10.0, 20.0, 30.0, -50.0])
    mask = np.array([False, True, True, True, False])
    levels, ng = discretise(x, mask, method="fixed_bin_number", n_bins=2)
    # min 10 and max 30 come from the ROI only: 10 -> 1, 20 -> floor(1) + 1 = 2, 30 -> 2
    assert levels.tolist() == [0, 1, 2, 2, 0]
    assert ng == 2


def test_fixed_bin_number_flat_roi_is_level_one() -> None:
    levels, ng = discretise(
        np.full((2, 2, 2), 7.5), np.ones((2, 2, 2), bool), method="fixed_bin_number", n_bins=8
    )
    assert np.all(levels == 1)
    assert ng == 8


def test_fixed_bin_size_with_lower_bound() -> None:
    x = np.array([-500.0, -476.0, -475.0, -450.1, 400.0])
    levels, ng = discretise(x, np.ones(5, bool), method="fixed_bin_size", bin_width=25.0, lower_bound=-500.0)
    # (x + 500) / 25 = 0, 0.96, 1, 1.996, 36 -> floor + 1
    assert levels.tolist() == [1, 1, 2, 2, 37]
    assert ng == 37


def test_fixed_bin_size_default_lower_bound_is_roi_min() -> None:
    x = np.array([3.0, 5.0, 5.9, 6.0, 0.0])
    mask = np.array([True, True, True, True, False])
    levels, ng = discretise(x, mask, method="fixed_bin_size", bin_width=2.0)
    assert levels.tolist() == [1, 2, 2, 2, 0]
    assert ng == 2


def test_fixed_bin_size_below_lower_bound_raises() -> None:
    with pytest.raises(FeatureError, match="below lower_bound"):
        discretise(
            np.array([-10.0, 5.0]), np.ones(2, bool), method="fixed_bin_size", bin_width=1.0, lower_bound=0.0
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "equal_width", "n_bins": 4}, "fixed_bin_number"),
        ({"method": "fixed_bin_number"}, "n_bins"),
        ({"method": "fixed_bin_number", "n_bins": 0}, "n_bins"),
        ({"method": "fixed_bin_number", "n_bins": 2.5}, "n_bins"),
        ({"method": "fixed_bin_number", "n_bins": 4, "bin_width": 1.0}, "fixed_bin_size"),
        ({"method": "fixed_bin_size"}, "bin_width"),
        ({"method": "fixed_bin_size", "bin_width": -1.0}, "bin_width"),
        ({"method": "fixed_bin_size", "bin_width": 1.0, "n_bins": 3}, "n_bins"),
        ({"method": "fixed_bin_size", "bin_width": 1.0, "lower_bound": float("nan")}, "lower_bound"),
    ],
)
def test_invalid_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        discretise(np.arange(4.0), np.ones(4, bool), **kwargs)


def test_shape_mismatch_empty_mask_and_nan() -> None:
    with pytest.raises(GeometryMismatchError):
        discretise(np.zeros(4), np.ones(3, bool), method="fixed_bin_number", n_bins=2)
    with pytest.raises(EmptyMaskError):
        discretise(np.zeros(4), np.zeros(4, bool), method="fixed_bin_number", n_bins=2)
    with pytest.raises(FeatureError, match="NaN"):
        discretise(np.array([1.0, np.nan]), np.ones(2, bool), method="fixed_bin_number", n_bins=2)


def test_image_and_mask_objects() -> None:
    arr = np.arange(8.0).reshape(2, 2, 2)
    img = Image(arr, spacing=(1.0, 1.0, 2.0))
    mask = Mask(np.ones((2, 2, 2), bool), spacing=(1.0, 1.0, 2.0))
    levels, ng = discretise(img, mask, method="fixed_bin_number", n_bins=8)
    assert levels.ravel().tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert ng == 8
    other = Mask(np.ones((2, 2, 2), bool), spacing=(1.0, 1.0, 3.0))
    with pytest.raises(GeometryMismatchError):
        discretise(img, other, method="fixed_bin_number", n_bins=8)


@pytest.mark.shared
def test_digital_phantom_levels_unchanged(shared_dir: Path) -> None:
    """IBSI: FBN with 6 bins or FBS with width 1 leave the phantom's grey levels as they are."""
    folder = shared_dir / "ibsi" / "ibsi1" / "digital_phantom"
    img = Image.from_sitk(sitk.ReadImage(str(folder / "image.nii.gz")))
    mask = Mask.from_image(Image.from_sitk(sitk.ReadImage(str(folder / "mask.nii.gz"))))
    expected = np.where(mask.array, img.array, 0)
    fbn, ng_fbn = discretise(img, mask, method="fixed_bin_number", n_bins=6)
    fbs, ng_fbs = discretise(img, mask, method="fixed_bin_size", bin_width=1.0)
    assert np.array_equal(fbn, expected) and ng_fbn == 6
    assert np.array_equal(fbs, expected) and ng_fbs == 6
