"""Images and masks that carry their geometry.

Conventions (the same as SimpleITK and DICOM's patient coordinate system, LPS):

* ``array`` is indexed ``(z, y, x)`` (slice, row, column).
* ``spacing`` and ``origin`` are given in ``(x, y, z)`` order, in millimetres.
* ``direction`` is a 3 x 3 matrix whose *columns* are the unit vectors of the x, y and z
  voxel axes in patient coordinates (SimpleITK's row-major flattening of it is accepted too).
* ``origin`` is the physical position of the *centre* of voxel ``(0, 0, 0)``.

So the physical point of voxel index ``(i, j, k)`` (x, y, z order) is
``origin + direction @ (spacing * (i, j, k))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self, overload

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from smartimaging.exceptions import EmptyMaskError, GeometryMismatchError

__all__ = ["Image", "Mask", "check_same_geometry", "resample_to"]

_GEOMETRY_ATOL_MM = 1e-3


def _as_triplet(values: Sequence[float] | npt.ArrayLike, name: str) -> tuple[float, float, float]:
    arr = np.asarray(values, dtype=float).ravel()
    if arr.shape != (3,):
        raise ValueError(f"{name} must have 3 values (x, y, z), got {arr.tolist()!r}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


def _as_direction(values: npt.ArrayLike | None) -> np.ndarray:
    if values is None:
        return np.eye(3)
    arr = np.asarray(values, dtype=float)
    if arr.shape == (9,):
        arr = arr.reshape(3, 3)
    if arr.shape != (3, 3):
        raise ValueError(f"direction must be a 3x3 matrix or 9 values, got shape {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class Image:
    """A 3D image: voxel array plus the geometry that places it in patient space.

    Parameters
    ----------
    array : numpy.ndarray
        Voxel values indexed ``(z, y, x)``.
    spacing : tuple of float
        Voxel size in mm, ``(x, y, z)`` order.
    origin : tuple of float, optional
        Physical position (mm) of the centre of the first voxel, ``(x, y, z)``.
    direction : array_like, optional
        3 x 3 direction cosine matrix (columns = voxel axes); identity by default.
    meta : dict, optional
        Free metadata (modality, units, series UID, ...). Not used for computation.

    Examples
    --------
    >>> import numpy as np
    >>> img = Image(np.zeros((2, 3, 4)), spacing=(1.0, 1.0, 2.0))
    >>> img.shape, img.voxel_volume
    ((2, 3, 4), 2.0)
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise ValueError(f"an Image array must be 3D (z, y, x), got {arr.ndim}D with shape {arr.shape}")
        object.__setattr__(self, "array", arr)
        spacing = _as_triplet(self.spacing, "spacing")
        if min(spacing) <= 0:
            raise ValueError(f"spacing must be positive, got {spacing}")
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", _as_triplet(self.origin, "origin"))
        object.__setattr__(self, "direction", _as_direction(self.direction))

    # --- geometry -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)``."""
        s = self.array.shape
        return (int(s[0]), int(s[1]), int(s[2]))

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Voxel size in mm in array order ``(z, y, x)``."""
        return (self.spacing[2], self.spacing[1], self.spacing[0])

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel in mm³."""
        return float(np.prod(self.spacing))

    def index_to_physical(self, index_xyz: npt.ArrayLike) -> np.ndarray:
        """Physical coordinates (mm) of continuous voxel indices given as ``(..., 3)`` in x, y, z order."""
        idx = np.asarray(index_xyz, dtype=float)
        return np.asarray(self.origin) + (idx * np.asarray(self.spacing)) @ self.direction.T

    def physical_to_index(self, points_xyz: npt.ArrayLike) -> np.ndarray:
        """Continuous voxel indices (x, y, z order) of physical points given as ``(..., 3)``."""
        pts = np.asarray(points_xyz, dtype=float) - np.asarray(self.origin)
        return (pts @ np.linalg.inv(self.direction).T) / np.asarray(self.spacing)

    def same_geometry(self, other: Image, atol: float = _GEOMETRY_ATOL_MM) -> bool:
        """Whether ``other`` lies on the same voxel grid (shape, spacing, origin, direction)."""
        # np.allclose's rule (|a - b| <= atol + 1e-5 |b|, NaN never close) on plain floats:
        # np.allclose costs ~50 us per call, and extraction checks grids several times per ROI
        return (
            self.shape == other.shape
            and _all_close(self.spacing, other.spacing, atol)
            and _all_close(self.origin, other.origin, atol)
            and (
                self.direction is other.direction
                or _all_close(self.direction.ravel().tolist(), other.direction.ravel().tolist(), 1e-6)
            )
        )

    def with_array(self, array: np.ndarray, **meta: Any) -> Self:
        """A new image of the same geometry holding ``array`` (same shape required)."""
        if array.shape != self.array.shape:
            raise GeometryMismatchError(
                f"new array shape {array.shape} differs from the image grid {self.array.shape}"
            )
        return type(self)(array, self.spacing, self.origin, self.direction.copy(), {**self.meta, **meta})

    # --- SimpleITK interchange -------------------------------------------------------------
    def to_sitk(self) -> sitk.Image:
        """Convert to a :class:`SimpleITK.Image` (bool arrays become uint8)."""
        arr = self.array.astype(np.uint8) if self.array.dtype == bool else self.array
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing(self.spacing)
        img.SetOrigin(self.origin)
        img.SetDirection(tuple(float(v) for v in self.direction.ravel()))
        return img

    @classmethod
    def from_sitk(cls, image: sitk.Image, **meta: Any) -> Image:
        """Build from a :class:`SimpleITK.Image` (3D, scalar)."""
        if image.GetDimension() != 3:
            raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
        arr = sitk.GetArrayFromImage(image)
        return cls(arr, image.GetSpacing(), image.GetOrigin(), np.array(image.GetDirection()), dict(meta))


def _all_close(a: Sequence[float], b: Sequence[float], atol: float) -> bool:
    """``np.allclose(a, b, atol=atol)`` (default ``rtol=1e-5``) for short sequences of floats."""
    return len(a) == len(b) and all(
        x == y or abs(x - y) <= atol + 1e-5 * abs(y) for x, y in zip(a, b, strict=True)
    )


class Mask(Image):
    """A binary region of interest on a voxel grid (array of ``bool``)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.array.dtype != bool:
            object.__setattr__(self, "array", self.array.astype(bool))

    @property
    def n_voxels(self) -> int:
        """Number of voxels inside the mask."""
        return int(np.count_nonzero(self.array))

    @property
    def volume_ml(self) -> float:
        """Mask volume in millilitres (voxel count times voxel volume)."""
        return self.n_voxels * self.voxel_volume / 1000.0

    def require_nonempty(self, where: str = "") -> Mask:
        """Return ``self``, or raise :class:`EmptyMaskError` if no voxel is set."""
        if self.n_voxels == 0:
            loc = f" ({where})" if where else ""
            raise EmptyMaskError(
                f"the mask{loc} contains no voxel: check the ROI name, the contour's frame of "
                "reference, or the segmentation threshold"
            )
        return self

    @classmethod
    def from_image(cls, image: Image) -> Mask:
        """Interpret a label image as a mask (non-zero voxels are inside)."""
        return cls(image.array != 0, image.spacing, image.origin, image.direction.copy(), dict(image.meta))


def check_same_geometry(image: Image, mask: Image, *, what: str = "image and mask") -> None:
    """Raise :class:`GeometryMismatchError` unless both lie on the same grid.

    The message gives both geometries and the fix (resample the mask onto the image grid).
    """
    if not image.same_geometry(mask):
        raise GeometryMismatchError(
            f"{what} do not share a voxel grid: shape {image.shape} vs {mask.shape}, "
            f"spacing {image.spacing} vs {mask.spacing}, origin {image.origin} vs {mask.origin}. "
            "Resample one onto the other with smartimaging.image.resample_to()."
        )


_INTERPOLATORS = {
    "nearest": sitk.sitkNearestNeighbor,
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,
}


@overload
def resample_to(
    image: Mask,
    reference: Image,
    *,
    interpolator: Literal["nearest", "linear", "bspline"] = ...,
    default_value: float = ...,
) -> Mask: ...
@overload
def resample_to(
    image: Image,
    reference: Image,
    *,
    interpolator: Literal["nearest", "linear", "bspline"] = ...,
    default_value: float = ...,
) -> Image: ...
def resample_to(
    image: Image,
    reference: Image,
    *,
    interpolator: Literal["nearest", "linear", "bspline"] = "linear",
    default_value: float = 0.0,
) -> Image:
    """Resample ``image`` onto the voxel grid of ``reference`` (physical space is respected).

    A :class:`Mask` is resampled as a fraction map with linear interpolation and kept where
    the fraction is at least 0.5 unless ``interpolator='nearest'``; the result is a Mask.

    Parameters
    ----------
    image : Image
        Image to resample.
    reference : Image
        Image whose grid (shape, spacing, origin, direction) the result takes.
    interpolator : {'nearest', 'linear', 'bspline'}
        Interpolation for intensity images.
    default_value : float
        Value outside ``image``'s field of view.
    """
    if interpolator not in _INTERPOLATORS:
        raise ValueError(f"interpolator must be one of {sorted(_INTERPOLATORS)}, got {interpolator!r}")
    is_mask = isinstance(image, Mask)
    src = image.to_sitk()
    if is_mask:
        src = sitk.Cast(src, sitk.sitkFloat32)
    out = sitk.Resample(
        src,
        reference.to_sitk(),
        sitk.Transform(),
        _INTERPOLATORS[interpolator],
        float(default_value),
        src.GetPixelID(),
    )
    arr = sitk.GetArrayFromImage(out)
    if is_mask:
        return Mask(
            arr >= 0.5, reference.spacing, reference.origin, reference.direction.copy(), dict(image.meta)
        )
    return Image(arr, reference.spacing, reference.origin, reference.direction.copy(), dict(image.meta))
