"""Unit tests of the filters: validation, conventions, invariances, labels, extraction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from smartimaging.exceptions import ConfigError
from smartimaging.features.pipeline import extract_with_processing
from smartimaging.features.settings import ExtractionSettings
from smartimaging.filters import (
    FilterSettings,
    apply_filter,
    gabor,
    image_type,
    laplacian_of_gaussian,
    laws,
    mean,
    riesz_log,
    separable_wavelet,
    simoncelli,
)
from smartimaging.image import Image, Mask

ADAPTER: TypeAdapter[FilterSettings] = TypeAdapter(FilterSettings)


def _noise(shape: tuple[int, int, int] = (12, 14, 16), seed: int = 0) -> Image:
    rng = np.random.default_rng(seed)
    return Image(rng.normal(size=shape), spacing=(1.0, 1.0, 1.0))


def test_mean_matches_brute_force_with_zero_padding() -> None:
    img = _noise((7, 8, 9))
    out = mean(img, support=3, boundary="constant").array
    padded = np.pad(img.array, 1)
    brute = np.zeros_like(img.array)
    for dz in range(3):
        for dy in range(3):
            for dx in range(3):
                brute += padded[dz : dz + 7, dy : dy + 8, dx : dx + 9]
    np.testing.assert_allclose(out, brute / 27.0, atol=1e-12)


def test_2d_filters_leave_slices_independent() -> None:
    img = _noise()
    one = img.array.copy()
    one[3] += 100.0 * np.random.default_rng(1).normal(size=one[3].shape)
    for f in (
        lambda i: mean(i, support=5, dimensions="2D"),
        lambda i: laplacian_of_gaussian(i, sigma=1.5, dimensions="2D"),
        lambda i: laws(i, kernel="L5E5", dimensions="2D", rotation_invariance=True),
        lambda i: separable_wavelet(i, wavelet="db3", sub_band="LH", dimensions="2D"),
        lambda i: simoncelli(i, level=1, dimensions="2D"),
    ):
        a, b = f(img).array, f(img.with_array(one)).array
        changed = np.nonzero(np.abs(a - b).max(axis=(1, 2)) > 1e-9)[0]
        assert changed.tolist() == [3]


def test_rotation_invariant_laws_is_invariant_to_right_angle_rotation() -> None:
    img = _noise((10, 10, 10))
    rotated = img.with_array(np.ascontiguousarray(np.rot90(img.array, 1, axes=(0, 2))))
    a = laws(img, kernel="E5L5S5", rotation_invariance=True, boundary="periodic").array
    b = laws(rotated, kernel="E5L5S5", rotation_invariance=True, boundary="periodic").array
    np.testing.assert_allclose(np.rot90(a, 1, axes=(0, 2)), b, atol=1e-10)
    plain = laws(img, kernel="E5L5S5", boundary="periodic").array
    assert np.all(a >= plain - 1e-12)


def test_log_uses_sigma_in_mm() -> None:
    arr = np.zeros((21, 21, 21))
    arr[10, 10, 10] = 1.0
    a = laplacian_of_gaussian(Image(arr, (1.0, 1.0, 1.0)), sigma=2.0, boundary="constant").array
    b = laplacian_of_gaussian(Image(arr, (2.0, 2.0, 2.0)), sigma=4.0, boundary="constant").array
    np.testing.assert_allclose(a, b, atol=1e-12)
    assert a[10, 10, 10] < 0  # LoG of a bright spot is negative at its centre


def test_gabor_modulus_is_non_negative_and_theta_periodic() -> None:
    img = _noise((3, 24, 24))
    a = gabor(img, sigma=2.0, wavelength=3.0, gamma=1.0, theta=0.3).array
    b = gabor(img, sigma=2.0, wavelength=3.0, gamma=1.0, theta=0.3 + math.pi).array
    assert a.min() >= 0
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_undecimated_haar_low_pass_preserves_constant_and_high_pass_kills_it() -> None:
    img = Image(np.full((8, 8, 8), 5.0), (1.0, 1.0, 1.0))
    low = separable_wavelet(img, wavelet="haar", sub_band="LLL", level=2).array
    high = separable_wavelet(img, wavelet="haar", sub_band="HHL").array
    np.testing.assert_allclose(low, 5.0 * 2.0**3, atol=1e-9)  # each level gains sqrt(2) per axis
    np.testing.assert_allclose(high, 0.0, atol=1e-12)


def test_decimated_wavelet_halves_the_grid() -> None:
    img = _noise((8, 8, 8))
    out = separable_wavelet(img, wavelet="haar", sub_band="LLL", decimated=True, boundary="periodic")
    assert out.shape == (4, 4, 4) and out.spacing == (2.0, 2.0, 2.0)
    np.testing.assert_allclose(out.array.sum(), img.array.sum() * 2**-1.5, rtol=1e-9)


def test_riesz_first_order_is_odd() -> None:
    arr = np.zeros((17, 17, 17))
    arr[8, 8, 8] = 1.0
    out = riesz_log(Image(arr, (1.0, 1.0, 1.0)), sigma=2.0, order=[1, 0, 0], boundary="constant").array
    np.testing.assert_allclose(out[8, 8, :], -out[8, 8, ::-1], atol=1e-9)
    assert np.abs(out).max() > 0


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda i: mean(i, support=4), "odd"),
        (lambda i: mean(i, support=3, boundary="zero"), "'periodic', 'mirror'"),
        (lambda i: laws(i, kernel="L5X5E5"), "'L3'"),
        (lambda i: laws(i, kernel="L5E5"), "needs 3"),
        (lambda i: laplacian_of_gaussian(i, sigma=-1.0), "positive"),
        (lambda i: separable_wavelet(i, wavelet="db99", sub_band="LLH"), "haar"),
        (lambda i: separable_wavelet(i, wavelet="db2", sub_band="LXH"), "'L' (low-pass)"),
        (lambda i: gabor(i, sigma=1.0, wavelength=2.0, theta_step=1.0), "divide 2 pi"),
        (lambda i: gabor(i, sigma=1.0, wavelength=2.0, pooling_method="mean"), "'max', 'average'"),
        (lambda i: riesz_log(i, sigma=1.0, order=[1, 0]), "3 non-negative integers"),
    ],
)
def test_invalid_options_raise_config_error_listing_valid_values(call: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        call(_noise((4, 4, 4)))  # type: ignore[operator]


def test_image_type_labels() -> None:
    cases = {
        "log_sigma1.5": {"filter": "log", "sigma": 1.5},
        "wavelet_db3_LLH_level1": {"filter": "wavelet", "wavelet": "db3", "sub_band": "LLH"},
        "laws_L5E5E5_energy7_max": {
            "filter": "laws",
            "kernel": "L5E5E5",
            "rotation_invariance": True,
            "energy_distance": 7,
        },
        "mean_support5_2D": {"filter": "mean", "support": 5, "dimensions": "2D"},
        "gabor_sigma5_lambda2_gamma1.5_thetastep22.5_avg_2D": {
            "filter": "gabor",
            "sigma": 5,
            "wavelength": 2,
            "gamma": 1.5,
            "theta_step": "pi/8",
        },
        "log_sigma3_riesz100": {"filter": "riesz_log", "sigma": 3, "order": [1, 0, 0]},
    }
    for label, params in cases.items():
        assert image_type(ADAPTER.validate_python(params)) == label


def test_settings_reject_unknown_filter_and_duplicates() -> None:
    with pytest.raises(ValidationError, match="'mean', 'log', 'laws'"):
        ExtractionSettings.model_validate({"filters": [{"filter": "sobel"}]})
    with pytest.raises(ValidationError, match="twice"):
        ExtractionSettings.model_validate({"filters": [{"filter": "log", "sigma": 1}] * 2})
    with pytest.raises(ValidationError, match="filter_families"):
        ExtractionSettings.model_validate({"filter_families": ["morphology"]})


def test_extraction_adds_filtered_rows_with_mask_from_unfiltered_image() -> None:
    img = _noise((10, 12, 12), seed=3)
    mask = Mask(np.zeros(img.shape, dtype=bool), img.spacing)
    mask.array[3:7, 3:9, 3:9] = True
    settings = ExtractionSettings.model_validate(
        {
            "families": ["intensity statistics"],
            "resegmentation_range": [-1.0, None],
            "filters": [{"filter": "mean", "support": 3}, {"filter": "log", "sigma": 1.0}],
        }
    )
    table = extract_with_processing(img, mask, processing=None, settings=settings, case="c1")
    assert list(dict.fromkeys(table["image_type"])) == ["original", "mean_support3", "log_sigma1"]
    assert (table.groupby("image_type")["key"].count() == 18).all()
    # the filtered statistics use the voxels the unfiltered range kept, with filtered values
    keep = mask.array & (img.array >= -1.0)
    filtered = apply_filter(img, ADAPTER.validate_python({"filter": "mean", "support": 3})).array[keep]
    row = table[(table["image_type"] == "mean_support3") & (table["key"] == "stat.mean")]
    assert float(row["value"].iloc[0]) == pytest.approx(filtered.mean(), rel=1e-12)
    assert float(row["value"].iloc[0]) != pytest.approx(img.array[keep].mean(), rel=1e-6)
