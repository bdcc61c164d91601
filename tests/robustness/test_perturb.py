"""MIRP-style perturbations (robustness/perturb.py) and segmentation methods, on hand-made volumes."""

from __future__ import annotations

import numpy as np
import pytest

from smartimaging.exceptions import EmptyMaskError, SegmentationError
from smartimaging.image import Image, Mask
from smartimaging.robustness.perturb import (
    Perturbation,
    adapt_roi_fraction,
    adapt_roi_mm,
    add_noise,
    crop_to_roi,
    estimate_noise,
    perturbation_set,
    rotate,
    translate,
)
from smartimaging.robustness.segmentations import SegmentationMethod, parse_method


def _cube(shape=(9, 11, 13), spacing=(2.0, 2.0, 2.0)) -> Mask:
    a = np.zeros(shape, bool)
    a[3:6, 4:7, 5:8] = True  # 27 voxels, centred on voxel (4, 5, 6)
    return Mask(a, spacing=spacing, origin=(10.0, -5.0, 3.0))


def test_adapt_mm_by_hand():
    m = _cube()
    grown = adapt_roi_mm(m, distance_mm=2.0)  # one 6-neighbour layer (diagonals are 2.83 mm away)
    assert grown.n_voxels == 27 + 6 * 9
    assert adapt_roi_mm(m, distance_mm=1.9).n_voxels == 27
    assert adapt_roi_mm(m, distance_mm=3.0).n_voxels == 27 + 6 * 9 + 12 * 3  # + edges
    shrunk = adapt_roi_mm(m, distance_mm=-2.0)
    assert shrunk.n_voxels == 1 and shrunk.array[4, 5, 6]
    assert adapt_roi_mm(m, distance_mm=-4.0).n_voxels == 0
    # anisotropic: 2 mm grows along x (1 mm voxels) by two voxels, along z (3 mm) not at all
    line = Mask(np.pad(np.ones((1, 1, 1), bool), 3), spacing=(1.0, 5.0, 3.0))
    assert adapt_roi_mm(line, distance_mm=2.0).array.sum(axis=(0, 1)).tolist() == [0, 1, 1, 1, 1, 1, 0]
    assert adapt_roi_mm(line, distance_mm=2.0).n_voxels == 5
    # erosion treats the grid border as outside
    full = Mask(np.ones((3, 3, 3), bool), spacing=(1.0, 1.0, 1.0))
    assert adapt_roi_mm(full, distance_mm=-1.0).n_voxels == 1


def test_adapt_fraction_exact_volume():
    m = _cube()
    for f, n in ((0.2, 32), (-0.2, 22), (0.5, 41), (-0.5, 13)):  # round(27 * |f|)
        out = adapt_roi_fraction(m, fraction=f)
        assert out.n_voxels == n
        assert (out.array >= m.array).all() if f > 0 else (out.array <= m.array).all()
    # the 6 face neighbours (2 mm away) come before any edge neighbour (2.83 mm)
    assert adapt_roi_fraction(m, fraction=6 * 9 / 27).array.sum() == adapt_roi_mm(m, distance_mm=2.0).n_voxels
    np.testing.assert_array_equal(
        adapt_roi_fraction(m, fraction=0.3).array, adapt_roi_fraction(m, fraction=0.3).array
    )
    with pytest.raises(ValueError, match="fraction"):
        adapt_roi_fraction(m, fraction=-1.0)
    with pytest.raises(EmptyMaskError):
        adapt_roi_fraction(Mask(np.zeros((2, 2, 2), bool), spacing=(1, 1, 1)), fraction=0.1)


def test_translate_whole_voxel_is_a_shift():
    m = _cube()
    img = Image(np.random.default_rng(0).normal(size=m.shape), m.spacing, m.origin)
    ti, tm = translate(img, m, shift_voxels=(1.0, 0.0, 2.0))
    np.testing.assert_allclose(ti.array[:-2, :, :-1], img.array[2:, :, 1:])
    np.testing.assert_array_equal(tm.array[:-2, :, :-1], m.array[2:, :, 1:])
    assert ti.origin == pytest.approx((12.0, -5.0, 7.0))
    # the anatomy stays put: the ROI centre in mm is unchanged
    centre = lambda mask: mask.index_to_physical(np.argwhere(mask.array)[:, ::-1].mean(axis=0))  # noqa: E731
    np.testing.assert_allclose(centre(tm), centre(m))
    half_i, _ = translate(img, m, shift_voxels=(0.5, 0.0, 0.0))
    np.testing.assert_allclose(half_i.array[:, :, 3], 0.5 * (img.array[:, :, 3] + img.array[:, :, 4]))


def test_rotate():
    m = _cube()
    img = Image(np.random.default_rng(1).normal(size=m.shape), m.spacing, m.origin)
    ri, rm = rotate(img, m, angle_deg=0.0)
    np.testing.assert_allclose(ri.array, img.array, atol=1e-12)
    np.testing.assert_array_equal(rm.array, m.array)
    # 90 degrees about the centre voxel (4, 5, 6) on an isotropic grid: a quarter turn of the array
    ri, _ = rotate(img, m, angle_deg=90.0)
    sub = img.array[:, 1:10, 2:11]  # 9 x 9 square centred on (y, x) = (5, 6)
    rot = ri.array[:, 1:10, 2:11]
    quarter = [np.allclose(rot, np.rot90(sub, k=k, axes=(1, 2)), atol=1e-9) for k in (1, -1)]
    assert sum(quarter) == 1
    # an anisotropic in-plane grid: the rotated cube keeps its physical size
    aniso = Mask(np.pad(np.ones((3, 4, 8), bool), 6), spacing=(1.0, 2.0, 3.0))
    _, r90 = rotate(Image(np.zeros(aniso.shape), aniso.spacing), aniso, angle_deg=90.0)
    assert r90.n_voxels == aniso.n_voxels


def test_noise():
    rng = np.random.default_rng(2)
    img = Image(np.full((20, 22, 24), 5.0) + rng.normal(0, 0.3, (20, 22, 24)), spacing=(4.0, 4.0, 4.0))
    assert estimate_noise(img) == pytest.approx(0.3, rel=0.05)
    smooth = Image(np.add.outer(np.arange(20.0), np.ones((22, 24))), spacing=(4.0, 4.0, 4.0))
    assert estimate_noise(smooth) == pytest.approx(0.0, abs=1e-12)  # a linear ramp has no noise
    a = add_noise(smooth, sd=0.5, rng=np.random.default_rng(9))
    b = add_noise(smooth, sd=0.5, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(a.array, b.array)
    assert np.std(a.array - smooth.array) == pytest.approx(0.5, rel=0.05)


def test_perturbation_apply_and_set():
    m = _cube()
    img = Image(np.ones(m.shape), m.spacing, m.origin)
    p = Perturbation(
        "x", "combined", rotate_deg=5.0, translate_voxels=(0.25, 0.0, 0.0), adapt_fraction=0.1, noise_sd=0.1
    )
    out_i, out_m = p.apply(img, m, rng=np.random.default_rng(0))
    again_i, again_m = p.apply(img, m, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(out_i.array, again_i.array)
    np.testing.assert_array_equal(out_m.array, again_m.array)
    with pytest.raises(EmptyMaskError, match="'gone'"):
        Perturbation("gone", "erode", adapt_mm=-10.0).apply(img, m, rng=np.random.default_rng(0))
    conds = perturbation_set(
        ("dilate", "erode", "noise", "translate", "rotate", "combined"), n_combined=3, seed=4
    )
    kinds = [c.kind for c in conds]
    assert (
        kinds
        == ["dilate"] * 2
        + ["erode"] * 2
        + ["noise"] * 2
        + ["translate"] * 2
        + ["rotate"] * 2
        + ["combined"] * 3
    )
    assert [c.name for c in conds[:2]] == ["dilate_10pct", "dilate_20pct"]
    assert perturbation_set(("combined",), seed=4) == perturbation_set(("combined",), seed=4)
    assert [c.adapt_mm for c in perturbation_set(("erode",), adapt_mm=(2.0,))] == [-2.0]
    with pytest.raises(ValueError, match="valid"):
        perturbation_set(("shear",))


def test_crop_keeps_geometry():
    m = _cube()
    img = Image(np.arange(np.prod(m.shape), dtype=float).reshape(m.shape), m.spacing, m.origin)
    ci, cm = crop_to_roi(img, m, margin_mm=2.0)
    assert cm.shape == (5, 5, 5) and cm.n_voxels == 27
    # the first voxel of the crop is voxel (2, 3, 4) of the image, at the same physical place
    np.testing.assert_allclose(ci.origin, img.index_to_physical([4, 3, 2]))
    assert ci.array[0, 0, 0] == img.array[2, 3, 4]


def test_segmentation_methods():
    suv = np.full((10, 12, 12), 1.0)
    suv[3:7, 3:8, 3:8] = 4.0
    suv[4:6, 5:7, 5:7] = 10.0
    suv[8, 10, 10] = 6.0  # a hot spot away from the lesion
    image = Image(suv, spacing=(2.0, 2.0, 2.0))
    contour = Mask(suv >= 4.0, spacing=(2.0, 2.0, 2.0))
    contour.array[8, 10, 10] = False
    assert parse_method("contour")(image, contour) is contour
    rel = parse_method("relative:50")
    assert isinstance(rel, SegmentationMethod) and rel.name == "relative_50pct"
    assert rel(image, contour).n_voxels == 8  # voxels >= 5: the 10-SUV core
    assert parse_method("relative:0.4")(image, contour).n_voxels == 100  # >= 4: the whole lesion
    fixed = parse_method("fixed:2.5")
    assert fixed.name == "fixed_2.5"  # type: ignore[attr-defined]
    out = fixed(image, contour)
    assert out.n_voxels == 100 and not out.array[8, 10, 10]  # the separate hot spot is left out
    with pytest.raises(SegmentationError):
        parse_method("fixed:20")(image, contour)
    for bad in ("gradient", "relative", "fixed:abc", "relative:150"):
        with pytest.raises(ValueError):
            parse_method(bad)
