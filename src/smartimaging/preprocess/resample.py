"""Resampling to a new voxel spacing as IBSI 1 defines it, and the whole image-processing chain.

IBSI 1 (section "Interpolation", grid alignment "align grid centres"):

* the new grid has ``n_new = ceil(n_old * s_old / s_new)`` voxels along each resampled axis
  (the size is rounded up);
* its centre coincides with the centre of the original grid, so in original voxel-index
  units the first new voxel centre lies at
  ``(s_old * (n_old - 1) - s_new * (n_new - 1)) / (2 * s_old)`` and the following ones every
  ``s_new / s_old`` index units;
* the new origin (centre of voxel 0) is therefore
  ``origin_old + direction @ ((s_old * (n_old - 1) - s_new * (n_new - 1)) / 2)`` per axis;
  the direction matrix is unchanged.

Interpolation is done in voxel-index space with :func:`scipy.ndimage.map_coordinates`:
order 0 (nearest neighbour), order 1 (linear) or order 3 (cubic B-spline with the spline
prefilter, i.e. an interpolating cubic spline). Points of the new grid that fall outside the
original field of view (at most half a new voxel beyond the outermost original voxel centres)
take values by nearest-neighbour extrapolation (``mode='nearest'``, which also sets the
boundary condition of the spline prefilter), as MIRP does. An axis whose spacing is ``None``
(or the slice axis with ``in_plane_only=True``, IBSI configuration B) is not interpolated at
all: the image is then resampled slice by slice in 2D.

Masks are interpolated as fraction maps (linear by default, IBSI's recommendation) and a voxel
is kept when its interpolated fraction is at least the partial-volume threshold (0.5).

:func:`preprocess` applies the IBSI order: interpolate image and mask, round intensities,
re-segment (range, then outlier filter), giving the intensity and morphological masks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from scipy import ndimage

from smartimaging.exceptions import ConfigError
from smartimaging.image import Image, Mask, check_same_geometry
from smartimaging.preprocess.resegment import intensity_and_morphological_masks

__all__ = [
    "IMAGE_INTERPOLATIONS",
    "MASK_INTERPOLATIONS",
    "ImageProcessingSettings",
    "ibsi_grid",
    "load_image_processing_settings",
    "preprocess",
    "resample_image",
    "resample_mask",
    "round_intensities",
]

#: Valid values of ``interpolation`` for intensity images, with their spline order.
IMAGE_INTERPOLATIONS: dict[str, int] = {"nearest": 0, "linear": 1, "cubic": 3}
#: Valid values of ``interpolation`` for masks.
MASK_INTERPOLATIONS: dict[str, int] = {"nearest": 0, "linear": 1}

Spacing = Sequence[float | None]


def _check_spacing(spacing: Spacing, in_plane_only: bool) -> tuple[float | None, float | None, float | None]:
    try:
        values = tuple(spacing)
    except TypeError:
        raise ConfigError(
            f"spacing must be 3 values (x, y, z) in mm, each a positive number or None to keep that "
            f"axis, got {spacing!r}"
        ) from None
    if len(values) != 3:
        raise ConfigError(
            f"spacing must be 3 values (x, y, z) in mm, each a positive number or None to keep that "
            f"axis, got {len(values)} values {list(values)!r}"
        )
    out: list[float | None] = []
    for axis, value in zip("xyz", values, strict=True):
        if value is None:
            out.append(None)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
            raise ConfigError(f"spacing along {axis} must be a number (mm) or None, got {value!r}")
        v = float(value)
        if not math.isfinite(v) or v <= 0:
            raise ConfigError(f"spacing along {axis} must be a positive number of mm, got {value!r}")
        out.append(v)
    if in_plane_only and out[2] is not None:
        raise ConfigError(
            f"in_plane_only=True keeps the slice spacing, but a z spacing of {out[2]} mm was given: "
            "set the z spacing to None (null in YAML)"
        )
    return (out[0], out[1], out[2])


def _axis_positions(n_old: int, s_old: float, s_new: float | None) -> tuple[int, float, np.ndarray]:
    """New size, new spacing and the new voxel centres in original index units for one axis."""
    if s_new is None:
        return n_old, s_old, np.arange(n_old, dtype=float)
    # ceil of a ratio that is an integer up to round-off (e.g. 3 * 2 / 2) must not add a voxel
    ratio = n_old * s_old / s_new
    n_new = max(1, math.ceil(ratio - 1e-9 * max(1.0, ratio)))
    start = (s_old * (n_old - 1) - s_new * (n_new - 1)) / (2.0 * s_old)
    return n_new, s_new, start + np.arange(n_new, dtype=float) * (s_new / s_old)


def _grid(
    image: Image, spacing: tuple[float | None, float | None, float | None]
) -> tuple[tuple[int, int, int], tuple[float, float, float], tuple[float, float, float], list[np.ndarray]]:
    """Shape (z, y, x), spacing and origin (x, y, z) of the IBSI grid, and per-axis index positions (x, y, z)."""
    n_xyz = (image.shape[2], image.shape[1], image.shape[0])
    sizes, spacings, positions = [], [], []
    for n_old, s_old, s_new in zip(n_xyz, image.spacing, spacing, strict=True):
        n_new, s, pos = _axis_positions(n_old, s_old, s_new)
        sizes.append(n_new)
        spacings.append(s)
        positions.append(pos)
    first_index = np.array([p[0] for p in positions])
    origin = image.index_to_physical(first_index)
    return (
        (sizes[2], sizes[1], sizes[0]),
        (spacings[0], spacings[1], spacings[2]),
        (float(origin[0]), float(origin[1]), float(origin[2])),
        positions,
    )


def ibsi_grid(image: Image, *, spacing: Spacing) -> Image:
    """The IBSI-aligned target grid for resampling ``image`` to ``spacing`` (an image of zeros).

    Parameters
    ----------
    image : Image
        Image whose grid is resampled.
    spacing : sequence of 3 (float or None)
        New voxel size in mm, ``(x, y, z)`` order; ``None`` keeps that axis unchanged.

    Returns
    -------
    Image
        float64 zeros on the new grid: ``n_new = ceil(n_old * s_old / s_new)`` voxels per axis,
        grid centre equal to the original grid centre, same direction as ``image``.

    Raises
    ------
    ConfigError
        ``spacing`` is not 3 positive numbers or None.

    References
    ----------
    IBSI 1 reference manual, section "Interpolation" (grid alignment: align grid centres).
    """
    spacing_t = _check_spacing(spacing, in_plane_only=False)
    shape, new_spacing, origin, _ = _grid(image, spacing_t)
    return Image(np.zeros(shape), new_spacing, origin, image.direction.copy(), dict(image.meta))


def _interpolate(array: np.ndarray, positions_xyz: list[np.ndarray], order: int, keep_z: bool) -> np.ndarray:
    data = np.asarray(array, dtype=np.float64)
    px, py, pz = positions_xyz
    if keep_z:
        # 2D, slice by slice: the slice axis is never interpolated (IBSI configuration B)
        yy, xx = np.meshgrid(py, px, indexing="ij")
        coords = np.stack([yy, xx])
        out = np.empty((data.shape[0], py.size, px.size))
        for k in range(data.shape[0]):
            out[k] = ndimage.map_coordinates(data[k], coords, order=order, mode="nearest", prefilter=True)
        return out
    zz, yy, xx = np.meshgrid(pz, py, px, indexing="ij")
    return ndimage.map_coordinates(data, np.stack([zz, yy, xx]), order=order, mode="nearest", prefilter=True)


def resample_image(
    image: Image,
    *,
    spacing: Spacing,
    interpolation: Literal["nearest", "linear", "cubic"] = "linear",
    round_to: float | None = None,
    in_plane_only: bool = False,
) -> Image:
    """Resample an intensity image onto the IBSI-aligned grid of the given spacing.

    Parameters
    ----------
    image : Image
        Image to resample.
    spacing : sequence of 3 (float or None)
        New voxel size in mm, ``(x, y, z)``; ``None`` keeps that axis (not interpolated).
    interpolation : {'nearest', 'linear', 'cubic'}
        Nearest neighbour, (tri/bi)linear, or cubic B-spline (interpolating, with prefilter).
    round_to : float, optional
        Round the interpolated intensities to multiples of this value (1 for CT in HU, as
        IBSI asks); ``None`` keeps them as interpolated. Ties round half to even.
    in_plane_only : bool
        Resample within slices only (2D); the z spacing must then be ``None``.

    Returns
    -------
    Image
        float64 image on the new grid (same direction, meta kept). Values beyond the original
        field of view are extrapolated from the nearest edge voxel.

    Raises
    ------
    ConfigError
        Invalid ``spacing``, ``interpolation`` (the message lists the valid ones) or
        ``round_to``, or a z spacing given together with ``in_plane_only``.

    References
    ----------
    IBSI 1 reference manual, section "Interpolation" (grid alignment, interpolation methods,
    rounding of interpolated intensities).
    """
    if interpolation not in IMAGE_INTERPOLATIONS:
        raise ConfigError(
            f"interpolation must be one of {sorted(IMAGE_INTERPOLATIONS)} for images, got {interpolation!r}"
        )
    _check_round_to(round_to)
    spacing_t = _check_spacing(spacing, in_plane_only)
    _shape, new_spacing, origin, positions = _grid(image, spacing_t)
    out = _interpolate(image.array, positions, IMAGE_INTERPOLATIONS[interpolation], spacing_t[2] is None)
    if round_to is not None:
        out = round_intensities(out, round_to)
    return Image(out, new_spacing, origin, image.direction.copy(), dict(image.meta))


def _check_round_to(round_to: float | None) -> None:
    if round_to is None:
        return
    if isinstance(round_to, bool) or not isinstance(round_to, int | float) or not round_to > 0:
        raise ConfigError(f"round_to must be a positive number (e.g. 1 for HU) or None, got {round_to!r}")


def round_intensities(values: np.ndarray, round_to: float) -> np.ndarray:
    """Round ``values`` to the nearest multiple of ``round_to`` (half to even)."""
    _check_round_to(round_to)
    if round_to == 1:
        return np.round(values)
    return np.round(np.asarray(values, dtype=np.float64) / round_to) * round_to


def resample_mask(
    mask: Mask,
    *,
    spacing: Spacing,
    interpolation: Literal["nearest", "linear"] = "linear",
    threshold: float = 0.5,
    in_plane_only: bool = False,
) -> Mask:
    """Resample a mask onto the IBSI-aligned grid, keeping voxels with fraction >= ``threshold``.

    Parameters
    ----------
    mask : Mask
        Region of interest to resample.
    spacing : sequence of 3 (float or None)
        New voxel size in mm, ``(x, y, z)``; ``None`` keeps that axis.
    interpolation : {'nearest', 'linear'}
        ``'linear'`` interpolates the 0/1 mask as a fraction map (IBSI's recommendation);
        ``'nearest'`` copies the nearest original voxel.
    threshold : float
        Partial-volume threshold in (0, 1]: a new voxel is in the ROI when its interpolated
        fraction is at least this value (IBSI: 0.5).
    in_plane_only : bool
        Resample within slices only (2D); the z spacing must then be ``None``.

    Returns
    -------
    Mask
        The mask on the same grid :func:`resample_image` gives for the same spacing.

    Raises
    ------
    ConfigError
        Invalid ``spacing``, ``interpolation`` (the message lists the valid ones) or
        ``threshold``.

    References
    ----------
    IBSI 1 reference manual, section "Interpolation" (ROI mask interpolation and
    partial-volume threshold).
    """
    if interpolation not in MASK_INTERPOLATIONS:
        raise ConfigError(
            f"interpolation must be one of {sorted(MASK_INTERPOLATIONS)} for masks, got {interpolation!r}"
        )
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold <= 1:
        raise ConfigError(f"threshold must be a fraction in (0, 1] (IBSI uses 0.5), got {threshold!r}")
    spacing_t = _check_spacing(spacing, in_plane_only)
    _shape, new_spacing, origin, positions = _grid(mask, spacing_t)
    frac = _interpolate(mask.array, positions, MASK_INTERPOLATIONS[interpolation], spacing_t[2] is None)
    # round-off guard: a fraction of exactly 0.5 must not fall to 0.49999999999
    keep = frac >= threshold - 1e-9
    return Mask(keep, new_spacing, origin, mask.direction.copy(), dict(mask.meta))


class ImageProcessingSettings(BaseModel):
    """The ``image_processing`` section of a settings file (IBSI 1 image processing).

    Parameters
    ----------
    spacing : tuple of 3 (float or None) or None
        New voxel size in mm ``(x, y, z)``; ``None`` (default) means no resampling, and a
        ``None`` entry keeps that axis.
    in_plane_only : bool
        Resample within slices only (2D, IBSI configuration B); z spacing must be ``None``.
    interpolation : {'nearest', 'linear', 'cubic'}
        Image interpolation.
    round_to : float or None
        Round intensities to multiples of this value after interpolation (1 for HU).
    mask_interpolation : {'nearest', 'linear'}
        Mask interpolation.
    mask_threshold : float
        Partial-volume threshold for the interpolated mask, in (0, 1].
    resegmentation_range : tuple of (float or None, float or None) or None
        Keep intensity-mask voxels within ``[lower, upper]``; ``None`` on one side leaves it open.
    outlier_sd : float or None
        Keep intensity-mask voxels within mean ± ``outlier_sd`` standard deviations of the ROI.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    spacing: tuple[float | None, float | None, float | None] | None = None
    in_plane_only: bool = False
    interpolation: Literal["nearest", "linear", "cubic"] = "linear"
    round_to: float | None = Field(default=None, gt=0)
    mask_interpolation: Literal["nearest", "linear"] = "linear"
    mask_threshold: float = Field(default=0.5, gt=0, le=1)
    resegmentation_range: tuple[float | None, float | None] | None = None
    outlier_sd: float | None = Field(default=None, gt=0)

    @field_validator("spacing")
    @classmethod
    def _positive_spacing(
        cls, v: tuple[float | None, float | None, float | None] | None
    ) -> tuple[float | None, float | None, float | None] | None:
        if v is not None and any(s is not None and not (math.isfinite(s) and s > 0) for s in v):
            raise ValueError(f"every spacing must be a positive number of mm or null, got {list(v)}")
        return v

    @field_validator("resegmentation_range")
    @classmethod
    def _ordered_range(
        cls, v: tuple[float | None, float | None] | None
    ) -> tuple[float | None, float | None] | None:
        if v is None:
            return v
        lower, upper = v
        if lower is None and upper is None:
            raise ValueError("give at least one bound, or leave resegmentation_range out (null)")
        if lower is not None and upper is not None and lower > upper:
            raise ValueError(f"lower bound {lower} is above upper bound {upper}")
        return v

    @model_validator(mode="after")
    def _in_plane_needs_no_z(self) -> ImageProcessingSettings:
        if self.in_plane_only:
            if self.spacing is None:
                raise ValueError("in_plane_only needs a spacing such as [2.0, 2.0, null]")
            if self.spacing[2] is not None:
                raise ValueError(
                    f"in_plane_only keeps the slice spacing: set the z spacing to null, got {self.spacing[2]}"
                )
        return self


def load_image_processing_settings(path: str | Path) -> ImageProcessingSettings:
    """Read the ``image_processing`` section of a YAML settings file.

    Parameters
    ----------
    path : str or Path
        YAML file with a top-level mapping; its ``image_processing`` mapping is validated (other
        sections, e.g. ``features``, are left to their own readers). A missing section means
        no processing (all defaults).

    Returns
    -------
    ImageProcessingSettings

    Raises
    ------
    ConfigError
        The file cannot be read or parsed, or the section has an unknown key or invalid value
        (the message names the file and the key).
    """
    p = Path(path)
    try:
        data: Any = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {p}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"settings file {p} is not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"settings file {p} must hold a mapping at top level, got {type(data).__name__}")
    section = data.get("image_processing") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"'image_processing' in {p} must be a mapping, got {type(section).__name__}")
    try:
        return ImageProcessingSettings.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(
            f"image_processing.{'.'.join(str(x) for x in err['loc']) or '(section)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings in {p}: {problems}") from None


def preprocess(image: Image, mask: Mask, settings: ImageProcessingSettings) -> tuple[Image, Mask, Mask]:
    """Apply the IBSI image-processing chain: interpolate, round, re-segment.

    Parameters
    ----------
    image : Image
        Intensity image.
    mask : Mask
        Region of interest on the image's grid.
    settings : ImageProcessingSettings
        What to do; see :class:`ImageProcessingSettings`.

    Returns
    -------
    image : Image
        The (resampled, rounded) image, float64.
    intensity_mask : Mask
        Morphological mask after re-segmentation: used for intensity-based features.
    morphological_mask : Mask
        The (resampled) mask before re-segmentation: used for morphological features.

    Raises
    ------
    GeometryMismatchError
        Image and mask are not on the same grid.
    EmptyMaskError
        The mask is empty, before or after resampling (outlier filtering needs ROI voxels).

    References
    ----------
    IBSI 1 reference manual, sections "Interpolation" and "Re-segmentation"; configurations
    A-E of the CT radiomics phantom.
    """
    check_same_geometry(image, mask)
    if settings.spacing is not None:
        image = resample_image(
            image,
            spacing=settings.spacing,
            interpolation=settings.interpolation,
            in_plane_only=settings.in_plane_only,
        )
        mask = resample_mask(
            mask,
            spacing=settings.spacing,
            interpolation=settings.mask_interpolation,
            threshold=settings.mask_threshold,
            in_plane_only=settings.in_plane_only,
        )
    else:
        image = image.with_array(np.asarray(image.array, dtype=np.float64))
    if settings.round_to is not None:
        image = image.with_array(round_intensities(image.array, settings.round_to))
    intensity, morphological = intensity_and_morphological_masks(
        image, mask, range=settings.resegmentation_range, outliers=settings.outlier_sd
    )
    return image, intensity, morphological
