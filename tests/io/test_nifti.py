"""Tests of NIfTI / NRRD / MetaImage reading and writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from smartimaging.image import Image, Mask
from smartimaging.io.nifti import ImageFileError, read_image, read_mask, write_image


def _image() -> Image:
    a = np.deg2rad(15.0)
    direction = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    arr = np.random.default_rng(1).normal(size=(4, 5, 6)).astype(np.float32)
    return Image(arr, spacing=(0.7, 0.8, 2.5), origin=(-12.5, 30.0, 7.25), direction=direction)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
def test_round_trip_keeps_geometry_and_values(tmp_path: Path, suffix: str) -> None:
    img = _image()
    out = write_image(img, tmp_path / f"sub/img{suffix}")
    assert out.is_file()
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left
    back = read_image(out)
    assert back.same_geometry(img, atol=1e-5)
    np.testing.assert_allclose(back.direction, img.direction, atol=1e-6)
    np.testing.assert_array_equal(back.array, img.array)
    assert back.meta["source"] == str(out)


def test_mask_written_as_uint8_and_read_back(tmp_path: Path) -> None:
    arr = np.zeros((3, 4, 5), dtype=bool)
    arr[1, 1:3, 2:4] = True
    mask = Mask(arr, spacing=(1.0, 1.0, 3.0), origin=(1.0, 2.0, 3.0))
    out = write_image(mask, tmp_path / "m.nii.gz")
    assert sitk.ReadImage(str(out)).GetPixelID() == sitk.sitkUInt8
    back = read_mask(out)
    assert isinstance(back, Mask)
    np.testing.assert_array_equal(back.array, arr)
    assert back.same_geometry(mask)


def test_read_mask_label(tmp_path: Path) -> None:
    labels = np.zeros((2, 3, 3), dtype=np.uint8)
    labels[0, 0, 0] = 1
    labels[1, 2, 2] = 2
    out = write_image(Image(labels, spacing=(1, 1, 1)), tmp_path / "l.nrrd")
    m2 = read_mask(out, label=2)
    assert m2.n_voxels == 1 and bool(m2.array[1, 2, 2])
    with pytest.raises(ImageFileError, match=r"label 5 not found.*\[0, 1, 2\]"):
        read_mask(out, label=5)


def test_bad_paths_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nothere.nii.gz"
    with pytest.raises(ImageFileError, match=r"nothere\.nii\.gz.*not found"):
        read_image(missing)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti file")
    with pytest.raises(ImageFileError, match=r"broken\.nii\.gz.*cannot be read"):
        read_image(broken)
    with pytest.raises(ImageFileError, match=r"x\.png.*unsupported"):
        read_image(tmp_path / "x.png")
    with pytest.raises(ImageFileError, match=r"y\.jpg.*unsupported"):
        write_image(_image(), tmp_path / "y.jpg")


def test_2d_image_rejected(tmp_path: Path) -> None:
    path = tmp_path / "flat.nii"
    sitk.WriteImage(sitk.Image(4, 4, sitk.sitkFloat32), str(path))
    with pytest.raises(ImageFileError, match=r"flat\.nii.*2D"):
        read_image(path)
