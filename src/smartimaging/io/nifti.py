"""Read and write research image formats (NIfTI, NRRD, MetaImage) through SimpleITK.

Geometry is kept in the LPS convention of :mod:`smartimaging.image`; SimpleITK converts NIfTI's
RAS-based qform/sform into LPS on reading and back on writing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from smartimaging.atomic import atomic_path
from smartimaging.exceptions import SmartImagingError
from smartimaging.image import Image, Mask

__all__ = ["SUFFIXES", "ImageFileError", "read_image", "read_mask", "write_image"]

SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


class ImageFileError(SmartImagingError):
    """A NIfTI / NRRD / MetaImage file cannot be read or written."""


def _check_suffix(path: Path) -> None:
    name = path.name.lower()
    if not name.endswith(SUFFIXES):
        raise ImageFileError(f"{path}: unsupported image file type; use one of {', '.join(SUFFIXES)}")


def read_image(path: str | os.PathLike[str]) -> Image:
    """Read a 3D scalar image from NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr) or MetaImage (.mha, .mhd).

    Parameters
    ----------
    path : path
        The image file.

    Returns
    -------
    Image
        Voxel array (z, y, x) with spacing, origin and direction in LPS; ``meta['source']`` is the path.

    Raises
    ------
    ImageFileError
        The file is missing, of an unsupported type, unreadable, or not a 3D scalar image.
    """
    p = Path(path)
    _check_suffix(p)
    if not p.is_file():
        raise ImageFileError(f"{p}: image file not found; check the path")
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise ImageFileError(
            f"{p}: cannot be read ({str(exc).strip().splitlines()[-1]}); is the file complete?"
        ) from exc
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise ImageFileError(
            f"{p}: has {img.GetNumberOfComponentsPerPixel()} components per voxel; only scalar images are supported"
        )
    if img.GetDimension() == 4 and img.GetSize()[3] == 1:
        img = img[:, :, :, 0]
    if img.GetDimension() != 3:
        raise ImageFileError(
            f"{p}: is a {img.GetDimension()}D image of size {img.GetSize()}; a 3D image is needed"
        )
    return Image.from_sitk(img, source=str(p))


def read_mask(path: str | os.PathLike[str], *, label: int | None = None) -> Mask:
    """Read a mask / label map file as a :class:`Mask`.

    Parameters
    ----------
    path : path
        NIfTI / NRRD / MetaImage label file.
    label : int, optional
        Keep only voxels equal to this label; by default every non-zero voxel is inside.

    Raises
    ------
    ImageFileError
        Unreadable file, or ``label`` absent from the file (the message lists the labels present).
    """
    img = read_image(path)
    if label is None:
        return Mask.from_image(img)
    present = np.unique(img.array)
    if label not in present:
        raise ImageFileError(
            f"{path}: label {label} not found; labels present: {[v.item() for v in present[:20]]}"
        )
    return Mask(
        img.array == label, img.spacing, img.origin, img.direction.copy(), {**img.meta, "label": label}
    )


def write_image(image: Image, path: str | os.PathLike[str]) -> Path:
    """Write an image (or mask) atomically, keeping its geometry. Boolean arrays are stored as uint8.

    Parameters
    ----------
    image : Image
        Image or Mask to write.
    path : path
        Target file; its suffix selects the format (.nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd).

    Returns
    -------
    Path
        The written path.

    Raises
    ------
    ImageFileError
        Unsupported suffix or a write failure.
    """
    p = Path(path)
    _check_suffix(p)
    try:
        with atomic_path(p) as tmp:
            sitk.WriteImage(image.to_sitk(), str(tmp), True)
    except RuntimeError as exc:
        raise ImageFileError(f"{p}: cannot be written ({str(exc).strip().splitlines()[-1]})") from exc
    return p
