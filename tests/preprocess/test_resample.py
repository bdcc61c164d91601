"""Tests of IBSI resampling (grid alignment, interpolation, mask threshold, rounding) and settings."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from smartimaging.exceptions import ConfigError, GeometryMismatchError
from smartimaging.image import Image, Mask
from smartimaging.preprocess.resample import (
    ImageProcessingSettings,
    ibsi_grid,
    load_image_processing_settings,
    preprocess,
    resample_image,
    resample_mask,
)


def _row(values: list[float], spacing_x: float, origin_x: float = 0.0) -> Image:
    """A 1 x 1 x n image (a row along x)."""
    return Image(
        np.asarray(values, dtype=float)[None, None, :], spacing=(spacing_x, 1.0, 1.0), origin=(origin_x, 0, 0)
    )


def _centre(img: Image) -> np.ndarray:
    n_xyz = np.array([img.shape[2], img.shape[1], img.shape[0]], dtype=float)
    return img.index_to_physical((n_xyz - 1) / 2)


def test_ramp_2mm_to_1mm_gives_analytic_values_at_aligned_centres() -> None:
    # f(x) = x (mm) sampled at 0, 2, 4, 6 mm
    img = _row([0.0, 2.0, 4.0, 6.0], spacing_x=2.0)
    out = resample_image(img, spacing=(1.0, None, None), interpolation="linear")
    # n_new = ceil(4 * 2 / 1) = 8; first centre at (2*3 - 1*7) / 2 = -0.5 mm, then every 1 mm
    assert out.shape == (1, 1, 8)
    assert out.spacing == (1.0, 1.0, 1.0)
    assert out.origin == pytest.approx((-0.5, 0.0, 0.0))
    centres = -0.5 + np.arange(8)
    # inside the original field of view the ramp is reproduced exactly; the two end points lie
    # half a new voxel beyond the outermost original centres and take the edge value (nearest)
    expected = np.clip(centres, 0.0, 6.0)
    np.testing.assert_allclose(out.array[0, 0], expected, atol=1e-12)


def test_new_size_is_rounded_up_and_origin_follows_the_formula() -> None:
    img = _row([1.0] * 5, spacing_x=3.0, origin_x=10.0)
    grid = ibsi_grid(img, spacing=(2.0, None, None))
    # ceil(5 * 3 / 2) = ceil(7.5) = 8
    assert grid.shape == (1, 1, 8)
    # origin_x = 10 + (3 * 4 - 2 * 7) / 2 = 9
    assert grid.origin[0] == pytest.approx(9.0)
    assert np.all(grid.array == 0)


def test_exact_ratio_does_not_add_a_voxel() -> None:
    # 60 slices of 3 mm -> 2 mm: 90 exactly, not 91 through round-off
    img = Image(np.zeros((60, 1, 1)), spacing=(1.0, 1.0, 3.0))
    assert ibsi_grid(img, spacing=(None, None, 2.0)).shape == (90, 1, 1)
    img = Image(np.zeros((7, 1, 1)), spacing=(1.0, 1.0, 0.3))
    assert ibsi_grid(img, spacing=(None, None, 0.1)).shape == (21, 1, 1)


def test_grid_centre_equals_original_centre_with_rotated_direction() -> None:
    theta = math.radians(30)
    direction = np.array(
        [[math.cos(theta), -math.sin(theta), 0.0], [math.sin(theta), math.cos(theta), 0.0], [0.0, 0.0, 1.0]]
    )
    img = Image(
        np.zeros((7, 11, 13)), spacing=(0.8, 1.1, 2.5), origin=(-12.0, 3.0, 40.0), direction=direction
    )
    grid = ibsi_grid(img, spacing=(1.5, 1.5, 1.5))
    assert grid.shape == (math.ceil(7 * 2.5 / 1.5), math.ceil(11 * 1.1 / 1.5), math.ceil(13 * 0.8 / 1.5))
    np.testing.assert_allclose(_centre(grid), _centre(img), atol=1e-9)
    np.testing.assert_allclose(grid.direction, direction)


def test_trilinear_reproduces_a_linear_function_inside_the_field_of_view() -> None:
    spacing = (0.9, 1.3, 3.0)
    origin = (-5.0, 2.0, 7.0)
    zz, yy, xx = np.meshgrid(np.arange(6), np.arange(7), np.arange(8), indexing="ij")
    f = lambda x, y, z: 2.0 * x - 3.0 * y + 0.5 * z + 1.0  # noqa: E731
    img = Image(
        f(origin[0] + spacing[0] * xx, origin[1] + spacing[1] * yy, origin[2] + spacing[2] * zz),
        spacing,
        origin,
    )
    out = resample_image(img, spacing=(1.0, 1.0, 1.0), interpolation="linear")
    oz, oy, ox = np.meshgrid(*(np.arange(n) for n in out.shape), indexing="ij")
    phys = out.index_to_physical(np.stack([ox, oy, oz], axis=-1))
    inside = np.ones(out.shape, bool)
    for axis in range(3):
        lo = origin[axis]
        hi = origin[axis] + spacing[axis] * (img.shape[2 - axis] - 1)
        inside &= (phys[..., axis] >= lo) & (phys[..., axis] <= hi)
    assert inside.sum() > 100
    expected = f(phys[..., 0], phys[..., 1], phys[..., 2])
    np.testing.assert_allclose(out.array[inside], expected[inside], atol=1e-9)


@pytest.mark.parametrize("interpolation", ["nearest", "linear", "cubic"])
def test_same_spacing_is_the_identity(interpolation: str) -> None:
    rng = np.random.default_rng(0)
    img = Image(rng.normal(size=(4, 5, 6)), spacing=(1.5, 1.5, 2.0), origin=(1, 2, 3))
    out = resample_image(img, spacing=(1.5, 1.5, 2.0), interpolation=interpolation)  # type: ignore[arg-type]
    assert out.same_geometry(img)
    np.testing.assert_allclose(out.array, img.array, atol=1e-9)


def test_cubic_spline_differs_from_linear_between_nodes_and_keeps_nodes() -> None:
    img = _row([0.0, 0.0, 10.0, 0.0, 0.0], spacing_x=2.0)
    lin = resample_image(img, spacing=(1.0, None, None), interpolation="linear").array[0, 0]
    cub = resample_image(img, spacing=(1.0, None, None), interpolation="cubic").array[0, 0]
    # ceil(10) = 10 new voxels at -0.5, 0.5, ..., 8.5 mm; original node 4 mm is not among them,
    # the cubic spline overshoots the linear interpolant next to the peak and undershoots beside it
    assert lin.shape == cub.shape == (10,)
    assert cub[4] > lin[4] and cub[5] > lin[5]
    assert cub.min() < 0.0 <= lin.min()


def test_nearest_keeps_integer_labels() -> None:
    img = _row([1.0, 2.0, 3.0], spacing_x=1.0)
    out = resample_image(img, spacing=(0.5, None, None), interpolation="nearest")
    # new centres at -0.25, 0.25, ..., 2.25 (index units) -> nearest original voxels 0,0,1,1,2,2
    assert out.array[0, 0].tolist() == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]


def test_mask_fraction_threshold() -> None:
    mask = Mask(np.array([0, 0, 1, 1], bool)[None, None, :], spacing=(2.0, 1.0, 1.0))
    # new centres at index -0.25, 0.25, ..., 3.25 -> fractions 0, 0, 0, 0.25, 0.75, 1, 1, 1
    out = resample_mask(mask, spacing=(1.0, None, None))
    assert out.array[0, 0].tolist() == [False] * 4 + [True] * 4
    low = resample_mask(mask, spacing=(1.0, None, None), threshold=0.2)
    assert low.array[0, 0].tolist() == [False] * 3 + [True] * 5
    near = resample_mask(mask, spacing=(1.0, None, None), interpolation="nearest")
    assert near.array[0, 0].tolist() == [False] * 4 + [True] * 4
    assert isinstance(out, Mask)


def test_mask_fraction_of_exactly_one_half_is_kept() -> None:
    mask = Mask(np.array([0, 1], bool)[None, None, :], spacing=(1.0, 1.0, 1.0))
    # 1 mm -> 2 mm: one voxel centred between the two (index 0.5): fraction 0.5 >= 0.5
    out = resample_mask(mask, spacing=(2.0, None, None))
    assert out.shape == (1, 1, 1)
    assert bool(out.array[0, 0, 0])


def test_image_and_mask_land_on_the_same_grid() -> None:
    img = Image(np.zeros((5, 6, 7)), spacing=(0.7, 0.9, 2.5), origin=(3, -4, 5))
    m = Mask(np.ones((5, 6, 7), bool), spacing=(0.7, 0.9, 2.5), origin=(3, -4, 5))
    a = resample_image(img, spacing=(1.0, 1.0, 1.0))
    b = resample_mask(m, spacing=(1.0, 1.0, 1.0))
    assert a.same_geometry(b)
    assert a.same_geometry(ibsi_grid(img, spacing=(1.0, 1.0, 1.0)))
    # a full mask stays full (nearest-edge extrapolation, no loss at the borders)
    assert b.array.all()


def test_rounding_of_interpolated_intensities() -> None:
    img = _row([0.0, 1.0], spacing_x=2.0)
    raw = resample_image(img, spacing=(1.0, None, None)).array[0, 0]
    # centres at index -0.25, 0.25, 0.75, 1.25 -> 0, 0.25, 0.75, 1
    np.testing.assert_allclose(raw, [0.0, 0.25, 0.75, 1.0])
    rounded = resample_image(img, spacing=(1.0, None, None), round_to=1).array[0, 0]
    assert rounded.tolist() == [0.0, 0.0, 1.0, 1.0]
    halves = resample_image(_row([0.0, 3.0], 2.0), spacing=(1.0, None, None), round_to=0.5).array[0, 0]
    # 0, 0.75, 2.25, 3 -> multiples of 0.5, ties to even: 0, 1.0, 2.0, 3
    assert halves.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_in_plane_only_keeps_slices_untouched() -> None:
    # each slice is constant; any interpolation across slices would mix the constants
    arr = np.stack([np.full((4, 4), v) for v in (-1000.0, 0.0, 40.0)])
    img = Image(arr, spacing=(1.0, 1.0, 3.0), origin=(0.0, 0.0, -10.0))
    for method in ("linear", "cubic"):
        out = resample_image(img, spacing=(0.5, 0.5, None), interpolation=method, in_plane_only=True)  # type: ignore[arg-type]
        assert out.shape == (3, 8, 8)
        assert out.spacing == (0.5, 0.5, 3.0)
        assert out.origin[2] == -10.0
        assert out.origin[:2] == pytest.approx((-0.25, -0.25))
        for k, v in enumerate((-1000.0, 0.0, 40.0)):
            np.testing.assert_allclose(out.array[k], v, atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"spacing": (1.0, 1.0, 1.0), "interpolation": "bspline"},
            "one of \\['cubic', 'linear', 'nearest'\\]",
        ),
        ({"spacing": (1.0, -1.0, 1.0)}, "spacing along y must be a positive"),
        ({"spacing": (1.0, 1.0)}, "3 values"),
        ({"spacing": 2.0}, "3 values"),
        ({"spacing": (1.0, "a", 1.0)}, "spacing along y must be a number"),
        ({"spacing": (1.0, 1.0, 2.0), "in_plane_only": True}, "set the z spacing to None"),
        ({"spacing": (1.0, 1.0, 1.0), "round_to": 0}, "round_to must be a positive"),
    ],
)
def test_resample_image_rejects_bad_parameters(kwargs: dict[str, object], match: str) -> None:
    img = Image(np.zeros((2, 2, 2)), spacing=(1, 1, 1))
    with pytest.raises(ConfigError, match=match):
        resample_image(img, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"interpolation": "cubic"}, "one of \\['linear', 'nearest'\\] for masks"),
        ({"threshold": 0.0}, "threshold must be a fraction in \\(0, 1\\]"),
        ({"threshold": 1.5}, "threshold must be a fraction"),
    ],
)
def test_resample_mask_rejects_bad_parameters(kwargs: dict[str, object], match: str) -> None:
    m = Mask(np.ones((2, 2, 2), bool), spacing=(1, 1, 1))
    with pytest.raises(ConfigError, match=match):
        resample_mask(m, spacing=(0.5, 0.5, 0.5), **kwargs)  # type: ignore[arg-type]


def test_settings_reject_unknown_and_inconsistent_keys() -> None:
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        ImageProcessingSettings.model_validate({"spacingg": [1, 1, 1]})
    with pytest.raises(ValueError, match="z spacing to null"):
        ImageProcessingSettings(spacing=(2.0, 2.0, 3.0), in_plane_only=True)
    with pytest.raises(ValueError, match="at least one bound"):
        ImageProcessingSettings(resegmentation_range=(None, None))
    with pytest.raises(ValueError, match="above upper bound"):
        ImageProcessingSettings(resegmentation_range=(400.0, -500.0))
    with pytest.raises(ValueError, match="positive number of mm"):
        ImageProcessingSettings(spacing=(2.0, 0.0, 2.0))
    with pytest.raises(ValueError, match="Input should be 'nearest', 'linear' or 'cubic'"):
        ImageProcessingSettings.model_validate({"interpolation": "spline"})


def test_load_settings_names_file_and_key(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "image_processing:\n  spacing: [2, 2, null]\n  in_plane_only: true\nfeatures: {n_bins: 32}\n"
    )
    s = load_image_processing_settings(good)
    assert s.spacing == (2.0, 2.0, None) and s.in_plane_only
    bad = tmp_path / "bad.yaml"
    bad.write_text("image_processing:\n  mask_treshold: 0.5\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*image_processing\.mask_treshold"):
        load_image_processing_settings(bad)
    with pytest.raises(ConfigError, match="cannot read settings file"):
        load_image_processing_settings(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_image_processing_settings(empty) == ImageProcessingSettings()


def test_preprocess_without_resampling_and_geometry_check() -> None:
    arr = np.array([[[-600.0, 0.4, 100.6, 500.0]]])
    img = Image(arr, spacing=(1, 1, 1))
    m = Mask(np.ones(arr.shape, bool), spacing=(1, 1, 1))
    settings = ImageProcessingSettings(round_to=1, resegmentation_range=(-500.0, 400.0))
    out, intensity, morph = preprocess(img, m, settings)
    assert out.array.tolist() == [[[-600.0, 0.0, 101.0, 500.0]]]
    assert intensity.array.tolist() == [[[False, True, True, False]]]
    assert morph.array.all()
    shifted = Mask(np.ones(arr.shape, bool), spacing=(1, 1, 1), origin=(5, 0, 0))
    with pytest.raises(GeometryMismatchError, match="do not share a voxel grid"):
        preprocess(img, shifted, settings)
