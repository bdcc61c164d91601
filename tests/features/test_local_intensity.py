"""Tests of the IBSI local intensity peaks (features/local_intensity.py)."""

from __future__ import annotations

import numpy as np
import pytest
from _ibsi import load_digital_phantom, reference_rows

from smartimaging.exceptions import EmptyMaskError, FeatureError, GeometryMismatchError
from smartimaging.features import local_intensity
from smartimaging.image import Image, Mask
from smartimaging.preprocess import sphere


def _img(arr, spacing=(1.0, 1.0, 1.0)):
    return Image(np.asarray(arr, dtype=float), spacing=spacing)


def _mask(arr, spacing=(1.0, 1.0, 1.0)):
    return Mask(np.asarray(arr, dtype=bool), spacing=spacing)


def test_sphere_kernel_voxel_counts():
    # radius 1 voxel: centre + 6 faces; radius sqrt(2): + 12 edges; radius sqrt(3): full 3x3x3
    assert local_intensity.sphere_kernel((1.0, 1.0, 1.0), 1.0).sum() == 7
    assert local_intensity.sphere_kernel((1.0, 1.0, 1.0), 2**0.5).sum() == 19
    assert local_intensity.sphere_kernel((1.0, 1.0, 1.0), 3**0.5).sum() == 27
    # anisotropic: 6.2 mm with 4 x 4 x 5 mm voxels (z, y, x order given as 5, 4, 4)
    k = local_intensity.sphere_kernel((5.0, 4.0, 4.0), 6.2)
    assert k.shape == (3, 3, 3)
    # offsets (dz, dy, dx) kept when (5dz)^2 + (4dy)^2 + (4dx)^2 <= 38.44: dz=0 -> 9, dz=±1 -> 1 each
    assert k.sum() == 11


def test_hand_computed_peaks_with_face_neighbour_sphere():
    arr = np.zeros((3, 3, 5))
    arr[1, 1, 1] = 9.0  # hottest voxel, neighbours 0 -> sphere mean 9/7
    arr[1, 1, 3] = 8.0
    arr[0, 1, 3] = arr[2, 1, 3] = arr[1, 0, 3] = 7.0  # neighbours of the 8: mean (8 + 21) / 7
    mask = np.zeros_like(arr, bool)
    mask[1, 1, 1] = mask[1, 1, 3] = True
    out = local_intensity.compute_image(_img(arr), _mask(mask), radius_mm=1.0)
    assert out["loc.peak.local"] == pytest.approx(9 / 7)
    assert out["loc.peak.global"] == pytest.approx(29 / 7)


def test_sphere_uses_voxels_outside_the_roi_and_stops_at_the_image_border():
    arr = np.zeros((1, 1, 3))
    arr[0, 0] = [5.0, 1.0, 3.0]
    mask = np.zeros_like(arr, bool)
    mask[0, 0, 0] = True
    # sphere around the corner voxel holds itself and its one in-image neighbour
    out = local_intensity.compute_image(_img(arr), _mask(mask), radius_mm=1.0)
    assert out["loc.peak.local"] == pytest.approx(3.0)
    assert out["loc.peak.global"] == pytest.approx(3.0)


def test_several_maxima_take_the_highest_peak():
    arr = np.zeros((1, 1, 7))
    arr[0, 0] = [0.0, 4.0, 0.0, 0.0, 3.0, 4.0, 3.0]
    mask = np.ones_like(arr, bool)
    out = local_intensity.compute_image(_img(arr), _mask(mask), radius_mm=1.0)
    assert out["loc.peak.local"] == pytest.approx(10 / 3)  # the maximum at index 5, not 1 (4/3)
    # the last voxel sits on the image border: its sphere holds only (4 + 3) / 2
    assert out["loc.peak.global"] == pytest.approx(3.5)


def test_nan_outside_roi_is_skipped_inside_is_an_error():
    arr = np.array([[[np.nan, 2.0, 4.0]]])
    mask = np.array([[[False, True, False]]])
    out = local_intensity.compute_image(_img(arr), _mask(mask), radius_mm=1.0)
    assert out["loc.peak.local"] == pytest.approx(3.0)
    with pytest.raises(FeatureError, match="1 non-finite"):
        local_intensity.compute_image(_img(arr), _mask([[[True, True, False]]]), radius_mm=1.0)


def test_fft_path_equals_direct_path(monkeypatch):
    rng = np.random.default_rng(3)
    arr = rng.normal(size=(12, 14, 16))
    mask = np.zeros_like(arr, bool)
    mask[3:9, 4:10, 5:12] = True
    img, m = _img(arr, (2.0, 2.5, 3.0)), _mask(mask, (2.0, 2.5, 3.0))
    direct = local_intensity.sphere_means(img, m)
    monkeypatch.setattr(sphere, "_DIRECT_MAX_OPS", 0)
    fft = local_intensity.sphere_means(img, m)
    np.testing.assert_allclose(fft, direct, rtol=0, atol=1e-12)
    # brute force at one voxel (z=3, y=4, x=5)
    zz, yy, xx = np.indices(arr.shape)
    d2 = ((zz - 3) * 3.0) ** 2 + ((yy - 4) * 2.5) ** 2 + ((xx - 5) * 2.0) ** 2
    assert direct[0] == pytest.approx(arr[d2 <= 6.2**2].mean())


def test_errors():
    img = _img(np.ones((2, 2, 2)))
    with pytest.raises(GeometryMismatchError):
        local_intensity.compute_image(img, _mask(np.ones((2, 2, 2)), (1.0, 1.0, 2.0)))
    with pytest.raises(EmptyMaskError):
        local_intensity.compute_image(img, _mask(np.zeros((2, 2, 2))))
    with pytest.raises(ValueError, match="radius_mm"):
        local_intensity.sphere_kernel((1.0, 1.0, 1.0), 0.0)


@pytest.mark.shared
def test_digital_phantom_reference(shared_dir, capsys):
    image, mask = load_digital_phantom(shared_dir)
    out = local_intensity.compute_image(image, mask)
    rows = reference_rows(shared_dir, "local intensity")
    assert len(rows) == 2
    assert {(f.key, f.name, f.ibsi_id) for f in local_intensity.FEATURES} == {
        (r.key, r.feature, r.ibsi_id) for r in rows
    }
    ok = 0
    for r in rows:
        assert r.matches(out[r.key]), r.describe(out[r.key])
        ok += 1
    with capsys.disabled():
        print(f"\nIBSI digital phantom, local intensity: {ok}/{len(rows)} match")
