"""Geometry of Image/Mask, checked against SimpleITK and by hand."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from smartimaging.exceptions import EmptyMaskError, GeometryMismatchError
from smartimaging.image import Image, Mask, check_same_geometry, resample_to


def _oblique() -> np.ndarray:
    c, s = np.cos(0.3), np.sin(0.3)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_index_to_physical_matches_simpleitk_for_an_oblique_grid() -> None:
    img = Image(
        np.zeros((4, 5, 6), np.float32), spacing=(0.8, 1.2, 3.0), origin=(-10, 5, 30), direction=_oblique()
    )
    ref = img.to_sitk()
    for idx in [(0, 0, 0), (5, 4, 3), (2, 1, 0)]:
        assert np.allclose(img.index_to_physical(idx), ref.TransformIndexToPhysicalPoint(idx))
        assert np.allclose(img.physical_to_index(ref.TransformIndexToPhysicalPoint(idx)), idx)


def test_sitk_round_trip_keeps_values_and_geometry() -> None:
    arr = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    img = Image(arr, spacing=(1, 2, 3), origin=(4, 5, 6), direction=_oblique(), meta={"modality": "CT"})
    back = Image.from_sitk(img.to_sitk())
    assert back.same_geometry(img)
    assert np.array_equal(back.array, arr)
    assert back.shape == (3, 4, 5)
    assert back.spacing_zyx == (3.0, 2.0, 1.0)


def test_invalid_inputs_are_rejected_with_the_parameter_named() -> None:
    with pytest.raises(ValueError, match="3D"):
        Image(np.zeros((3, 3)), spacing=(1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        Image(np.zeros((3, 3, 3)), spacing=(1, 0, 1))
    with pytest.raises(ValueError, match="direction"):
        Image(np.zeros((3, 3, 3)), spacing=(1, 1, 1), direction=np.eye(2))


def test_mask_volume_and_empty_error() -> None:
    m = Mask(np.zeros((2, 3, 4)), spacing=(2, 2, 2))
    assert m.array.dtype == bool and m.n_voxels == 0
    with pytest.raises(EmptyMaskError, match="patient X"):
        m.require_nonempty("patient X")
    m2 = m.with_array(np.ones((2, 3, 4), bool))
    assert isinstance(m2, Mask)
    assert m2.volume_ml == pytest.approx(24 * 8 / 1000)


def test_geometry_mismatch_names_both_grids() -> None:
    a = Image(np.zeros((2, 2, 2)), spacing=(1, 1, 1))
    b = Image(np.zeros((2, 2, 2)), spacing=(1, 1, 1), origin=(0, 0, 0.5))
    with pytest.raises(GeometryMismatchError, match=r"origin .* vs .*resample_to"):
        check_same_geometry(a, b)
    with pytest.raises(GeometryMismatchError):
        a.with_array(np.zeros((2, 2, 3)))


def test_resample_mask_to_coarser_grid_keeps_the_volume() -> None:
    # a sphere of radius 10 mm on a 1 mm grid, carried to a 2 mm grid shifted by half a voxel
    zz, yy, xx = np.mgrid[:40, :40, :40]
    sphere = (zz - 19.5) ** 2 + (yy - 19.5) ** 2 + (xx - 19.5) ** 2 <= 10.0**2
    fine = Mask(sphere, spacing=(1, 1, 1))
    coarse = Image(np.zeros((20, 20, 20)), spacing=(2, 2, 2), origin=(0.5, 0.5, 0.5))
    out = resample_to(fine, coarse)
    assert isinstance(out, Mask) and out.same_geometry(coarse)
    analytic = 4 / 3 * np.pi * 10**3 / 1000
    assert out.volume_ml == pytest.approx(analytic, rel=0.06)


def test_resample_intensity_linear_is_exact_for_a_linear_ramp() -> None:
    zz, yy, xx = np.mgrid[:10, :10, :10].astype(np.float32)
    img = Image(xx + 2 * yy + 3 * zz, spacing=(1, 1, 1))
    ref = Image(np.zeros((4, 4, 4)), spacing=(1.5, 1.5, 1.5), origin=(1, 1, 1))
    out = resample_to(img, ref, interpolator="linear")
    z, y, x = np.mgrid[:4, :4, :4] * 1.5 + 1
    assert np.allclose(out.array, x + 2 * y + 3 * z, atol=1e-4)
    with pytest.raises(ValueError, match="interpolator"):
        resample_to(img, ref, interpolator="cubic")  # type: ignore[arg-type]


def test_sitk_2d_is_rejected() -> None:
    with pytest.raises(ValueError, match="3D"):
        Image.from_sitk(sitk.Image(4, 4, sitk.sitkFloat32))


def test_same_geometry_follows_numpy_allclose() -> None:
    """The plain-float comparison decides exactly as np.allclose (default rtol 1e-5) would."""
    rng = np.random.default_rng(3)
    base = Image(np.zeros((2, 3, 4)), spacing=(0.98, 1.5, 3.27), origin=(-250.0, 12.5, 1000.0))
    tol = 1e-4  # the geometry tolerance in mm
    n_same = 0
    for _ in range(400):
        # perturbations straddling the tolerance, incl. exactly-on-the-boundary multiples
        scale = rng.choice([0.0, 1e-6, 5e-5, 1e-4, 2e-3, 0.02])
        sp = tuple(float(v) for v in np.asarray(base.spacing) + scale * rng.standard_normal(3))
        org = tuple(float(v) for v in np.asarray(base.origin) + scale * rng.standard_normal(3))
        direction = np.eye(3) + rng.choice([0.0, 1e-7, 1e-5]) * rng.standard_normal((3, 3))
        other = Image(np.zeros((2, 3, 4)), spacing=sp, origin=org, direction=direction)
        expect = (
            np.allclose(base.spacing, sp, atol=tol)
            and np.allclose(base.origin, org, atol=tol)
            and np.allclose(base.direction, direction, atol=1e-6)
        )
        assert base.same_geometry(other, atol=tol) == expect
        n_same += expect
    assert 50 < n_same < 350  # both outcomes exercised
    assert not base.same_geometry(Image(np.zeros((2, 3, 5)), spacing=base.spacing, origin=base.origin))
