"""Tests of IBSI re-segmentation (range, outlier filter, intensity vs morphological masks)."""

from __future__ import annotations

import numpy as np
import pytest

from smartimaging.exceptions import ConfigError, EmptyMaskError, GeometryMismatchError
from smartimaging.image import Image, Mask
from smartimaging.preprocess.resegment import (
    intensity_and_morphological_masks,
    resegment_outliers,
    resegment_range,
)


def _pair(values: list[float], roi: list[bool] | None = None) -> tuple[Image, Mask]:
    arr = np.asarray(values, dtype=float)[None, None, :]
    m = np.ones(arr.shape, bool) if roi is None else np.asarray(roi, bool)[None, None, :]
    return Image(arr, spacing=(1, 1, 1)), Mask(m, spacing=(1, 1, 1))


def test_range_is_inclusive_and_respects_the_roi() -> None:
    img, m = _pair([-501.0, -500.0, 0.0, 400.0, 401.0, 10.0], [True, True, True, True, True, False])
    out = resegment_range(img, m, lower=-500, upper=400)
    assert out.array[0, 0].tolist() == [False, True, True, True, False, False]
    assert isinstance(out, Mask) and out.same_geometry(m)


def test_range_with_open_bounds_and_nan() -> None:
    img, m = _pair([-2000.0, 0.0, float("nan"), 3000.0])
    assert resegment_range(img, m, lower=-1000, upper=None).array[0, 0].tolist() == [False, True, False, True]
    assert resegment_range(img, m, lower=None, upper=0).array[0, 0].tolist() == [True, True, False, False]


def test_outlier_filter_hand_computed() -> None:
    # ten zeros and one 100: mean 100/11, population SD sqrt(10000/11 - (100/11)^2) = 28.75
    values = [0.0] * 10 + [100.0]
    img, m = _pair(values)
    mean = 100 / 11
    sd = np.sqrt(10000 / 11 - mean**2)
    assert mean + 3 * sd == pytest.approx(95.34, abs=0.01)
    assert resegment_outliers(img, m, n_sd=3).array[0, 0].tolist() == [True] * 10 + [False]
    # with 4 SD the upper bound is 124.1: the 100 stays
    assert resegment_outliers(img, m, n_sd=4).array.all()


def test_outlier_statistics_come_from_the_roi_only() -> None:
    # the -5000 outside the ROI must not widen the interval
    img, m = _pair([0.0] * 10 + [100.0, -5000.0], [True] * 11 + [False])
    out = resegment_outliers(img, m, n_sd=3)
    assert out.array[0, 0].tolist() == [True] * 10 + [False, False]


def test_intensity_and_morphological_masks_range_then_outlier() -> None:
    # ROI: nine 0, one 10, one -5000. Range [-1000, open) removes -5000 first; the outlier
    # statistics then come from nine 0 and one 10 (mean 1, SD 3): 2 SD keeps [-5, 7], so the 10
    # goes. With statistics over the whole ROI (mean -453.6, SD ~1436) the 10 would stay.
    img, m = _pair([0.0] * 9 + [10.0, -5000.0])
    intensity, morph = intensity_and_morphological_masks(img, m, range=(-1000.0, None), outliers=2.0)
    assert intensity.array[0, 0].tolist() == [True] * 9 + [False, False]
    assert morph.array.all()
    assert morph.n_voxels == 11 and intensity.n_voxels == 9


def test_masks_without_resegmentation_are_identical() -> None:
    img, m = _pair([1.0, 2.0, 3.0], [True, False, True])
    intensity, morph = intensity_and_morphological_masks(img, m)
    assert np.array_equal(intensity.array, morph.array)
    assert np.array_equal(morph.array, m.array)


@pytest.mark.parametrize(
    ("lower", "upper", "match"),
    [
        (None, None, "needs a lower or an upper bound"),
        (400.0, -500.0, "lower bound 400.0 is above upper bound -500.0"),
        ("low", 1.0, "lower must be a number"),
        (0.0, float("nan"), "upper must be a number or None, got NaN"),
    ],
)
def test_range_rejects_bad_bounds(lower: object, upper: object, match: str) -> None:
    img, m = _pair([1.0, 2.0])
    with pytest.raises(ConfigError, match=match):
        resegment_range(img, m, lower=lower, upper=upper)  # type: ignore[arg-type]


@pytest.mark.parametrize("n_sd", [0.0, -3.0, float("inf"), "3"])
def test_outliers_reject_bad_n_sd(n_sd: object) -> None:
    img, m = _pair([1.0, 2.0])
    with pytest.raises(ConfigError, match="n_sd must be"):
        resegment_outliers(img, m, n_sd=n_sd)  # type: ignore[arg-type]


def test_errors_for_empty_mask_geometry_and_bad_pair() -> None:
    img, _ = _pair([1.0, 2.0])
    empty = Mask(np.zeros((1, 1, 2), bool), spacing=(1, 1, 1))
    with pytest.raises(EmptyMaskError, match="outlier re-segmentation"):
        resegment_outliers(img, empty)
    with pytest.raises(EmptyMaskError, match="before re-segmentation"):
        intensity_and_morphological_masks(img, empty, range=(0.0, 1.0))
    other = Mask(np.ones((1, 1, 2), bool), spacing=(2, 1, 1))
    with pytest.raises(GeometryMismatchError, match="re-segmentation"):
        resegment_range(img, other, lower=0, upper=1)
    _, m = _pair([1.0, 2.0])
    with pytest.raises(ConfigError, match="range must be a pair"):
        intensity_and_morphological_masks(img, m, range=(1.0,))  # type: ignore[arg-type]
    nan_img, nan_m = _pair([1.0, float("nan")])
    with pytest.raises(ConfigError, match="non-finite intensities"):
        resegment_outliers(nan_img, nan_m)
