"""The compiled sphere sums (local / global intensity peaks, sphere means, SUVpeak) and the
compiled PET lesion statistics against the former implementations (box correlation, NumPy)."""

from __future__ import annotations

import numpy as np
import pytest
from _reference_kernels import local_global_peaks, sphere_means_correlate

from smartimaging.exceptions import EmptyMaskError, FeatureError, GeometryMismatchError
from smartimaging.features import local_intensity, pet
from smartimaging.image import Image, Mask
from smartimaging.preprocess import sphere

CASES = [
    "one voxel",
    "flat",
    "ties",
    "line",
    "slab",
    "2D slice",
    "border",
    "corner voxel",
    "non-finite outside",
    "anisotropic",
    "blob",
    "fine spacing",
]


def _case(name: str) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float], float]:
    """Image array, ROI, spacing (x, y, z) and radius (mm) of one test case."""
    rng = np.random.default_rng(sum(map(ord, name)))
    shape = (9, 12, 14)
    values = rng.gamma(2.0, 2.0, size=shape)
    mask = np.zeros(shape, dtype=bool)
    spacing = (2.0, 2.0, 2.0)
    radius = sphere.RADIUS_MM
    z, y, x = np.indices(shape)
    if name == "one voxel":
        mask[4, 6, 7] = True
    elif name == "flat":
        values = np.full(shape, 0.1)
        mask[2:7, 3:9, 4:11] = True
    elif name == "ties":
        mask[2:7, 3:9, 4:11] = True
        values[3, 4, 5] = values[5, 7, 9] = values[2, 8, 10] = values.max() + 3.0
    elif name == "line":
        mask[4, 6, 1:13] = True
    elif name == "slab":
        mask[4, 2:10, 2:12] = True
    elif name == "2D slice":
        values = values[:1].copy()
        mask = rng.random(values.shape) < 0.5
    elif name == "border":
        mask = rng.random(shape) < 0.4
        mask[0, 0, 0] = mask[-1, -1, -1] = True
    elif name == "corner voxel":
        mask[0, 0, 0] = True
        values[0, 0, 0] = values.max() + 1.0
    elif name == "non-finite outside":
        mask[2:7, 3:9, 4:11] = True
        values[1, 5, 6] = np.nan  # inside spheres, outside the ROI
        values[7, 4, 8] = np.inf
        values[4, 2, 3] = -np.inf
    elif name == "anisotropic":
        mask = ((z - 4) / 3.5) ** 2 + ((y - 6) / 4.5) ** 2 + ((x - 7) / 5.5) ** 2 <= 1.0
        spacing = (0.9, 1.3, 3.0)
    elif name == "blob":
        mask = ((z - 4) / 4.0) ** 2 + ((y - 6) / 5.5) ** 2 + ((x - 7) / 6.5) ** 2 <= 1.0
        spacing = (4.0, 4.0, 4.0)
    elif name == "fine spacing":
        mask = ((z - 4) / 3.0) ** 2 + ((y - 6) / 4.0) ** 2 + ((x - 7) / 4.0) ** 2 <= 1.0
        spacing = (1.0, 1.0, 1.0)
        radius = 3.3
    else:
        raise AssertionError(name)
    return values, mask, spacing, radius


@pytest.mark.parametrize("box_path", [False, True])
@pytest.mark.parametrize("name", CASES)
def test_peaks_and_means_equal_box_correlation(
    name: str, box_path: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if box_path:  # very large ROIs correlate their bounding box instead
        monkeypatch.setattr(sphere, "_DIRECT_MAX_OPS", 0)
    values, mask, spacing, radius = _case(name)
    image, roi = Image(values, spacing=spacing), Mask(mask, spacing=spacing)
    spacing_zyx = image.spacing_zyx
    expected_means = sphere_means_correlate(values, mask, spacing_zyx, radius)
    np.testing.assert_allclose(sphere.sphere_means(image, roi, radius_mm=radius), expected_means, rtol=1e-12)
    local, glob = local_global_peaks(values, mask, spacing_zyx, radius)
    for checked in (False, True):
        out = local_intensity.compute_image(image, roi, radius_mm=radius, _checked=checked)
        assert out["loc.peak.local"] == pytest.approx(local, rel=1e-12)
        assert out["loc.peak.global"] == pytest.approx(glob, rel=1e-12)
    n, n_bad, only_local, nan = sphere._sphere_peaks(values, mask, spacing_zyx, radius, want_global=False)
    assert (n, n_bad) == (int(mask.sum()), 0)
    assert only_local == pytest.approx(local, rel=1e-12)
    assert np.isnan(nan)


def test_ties_take_the_highest_sphere_mean() -> None:
    values, mask, spacing, radius = _case("ties")
    image = Image(values, spacing=spacing)
    means = sphere_means_correlate(values, mask, image.spacing_zyx, radius)
    roi_vals = values[mask]
    tied = means[roi_vals == roi_vals.max()]
    assert tied.size == 3 and len(set(tied.tolist())) == 3  # the three candidates differ
    out = local_intensity.compute_image(image, Mask(mask, spacing=spacing))
    assert out["loc.peak.local"] == pytest.approx(tied.max(), rel=1e-12)


def test_larger_random_rois_and_float32_images() -> None:
    rng = np.random.default_rng(3)
    for trial in range(4):
        shape = tuple(int(v) for v in rng.integers(5, 30, size=3))
        values = rng.normal(size=shape).astype(np.float32 if trial % 2 else np.float64) * 3 + 10
        mask = rng.random(shape) < 0.5
        spacing = tuple(float(v) for v in rng.uniform(1.0, 4.0, size=3))
        image = Image(values, spacing=spacing)
        local, glob = local_global_peaks(values.astype(np.float64), mask, image.spacing_zyx, sphere.RADIUS_MM)
        out = local_intensity.compute_image(image, Mask(mask, spacing=spacing))
        assert out["loc.peak.local"] == pytest.approx(local, rel=1e-12)
        assert out["loc.peak.global"] == pytest.approx(glob, rel=1e-12)


def test_errors_are_unchanged() -> None:
    values, mask, spacing, _ = _case("blob")
    image = Image(values, spacing=spacing)
    with pytest.raises(GeometryMismatchError):
        local_intensity.compute_image(image, Mask(mask, spacing=(1.0, 1.0, 1.0)))
    with pytest.raises(EmptyMaskError):
        local_intensity.compute_image(image, Mask(np.zeros_like(mask), spacing=spacing))
    bad = values.copy()
    bad[tuple(np.argwhere(mask)[3])] = np.nan
    with pytest.raises(FeatureError, match="holds 1 non-finite"):
        local_intensity.compute_image(Image(bad, spacing=spacing), Mask(mask, spacing=spacing))
    with pytest.raises(FeatureError, match="holds 1 non-finite"):
        pet.lesion_metrics(Image(bad, spacing=spacing), Mask(mask, spacing=spacing))
    with pytest.raises(EmptyMaskError):
        pet.lesion_metrics(image, Mask(np.zeros_like(mask), spacing=spacing), _checked=True)
    with pytest.raises(ValueError, match="radius_mm"):
        local_intensity.compute_image(image, Mask(mask, spacing=spacing), radius_mm=0.0)
    # the public kernel is a fresh, writable array (the cached one is read-only)
    k = sphere.sphere_kernel(image.spacing_zyx)
    k[0, 0, 0] = not k[0, 0, 0]
    assert sphere.sphere_kernel(image.spacing_zyx)[0, 0, 0] != k[0, 0, 0]


@pytest.mark.parametrize("name", ["one voxel", "flat", "ties", "2D slice", "border", "anisotropic", "blob"])
def test_lesion_metrics_equal_numpy(name: str) -> None:
    values, mask, spacing, _ = _case(name)
    suv, lesion = Image(values, spacing=spacing), Mask(mask, spacing=spacing)
    vals = values[mask]
    local, _ = local_global_peaks(values, mask, suv.spacing_zyx, sphere.RADIUS_MM)
    for kwargs in ({}, {"_checked": True}, {"local_peak": local}):
        out = pet.lesion_metrics(suv, lesion, **kwargs)  # type: ignore[arg-type]
        assert out["PET.SUVmax"] == vals.max() and out["PET.SUVmin"] == vals.min()
        assert out["PET.SUVmean"] == pytest.approx(vals.mean(), rel=1e-12)
        assert out["PET.SUVsd"] == pytest.approx(vals.std(), rel=1e-12, abs=1e-15 * abs(vals.mean()))
        assert out["PET.SUVpeak"] == pytest.approx(local, rel=1e-12)
        assert out["PET.MTV"] == lesion.volume_ml
        assert out["PET.TLG"] == pytest.approx(vals.mean() * lesion.volume_ml, rel=1e-12)


def test_lesion_statistics_on_a_large_lesion() -> None:
    """Block sums keep the mean and sd as close to NumPy's pairwise sums as 1e-12 on 60k values."""
    rng = np.random.default_rng(11)
    values = 1e3 + rng.gamma(2.0, 5.0, size=(40, 40, 40))
    mask = rng.random(values.shape) < 0.95
    out = pet.lesion_metrics(Image(values, spacing=(4.0, 4.0, 4.0)), Mask(mask, spacing=(4.0, 4.0, 4.0)))
    vals = values[mask]
    assert out["PET.SUVmean"] == pytest.approx(vals.mean(), rel=1e-13)
    assert out["PET.SUVsd"] == pytest.approx(vals.std(), rel=1e-12)
