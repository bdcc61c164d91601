"""Image and ROI perturbations for feature robustness, after MIRP (Zwanenburg et al. 2019).

A :class:`Perturbation` is one perturbed condition; it is applied to an image and its ROI in
the order: rotation, translation (both resample image and mask), ROI adaptation
(growth/shrinkage by a distance or a volume fraction), additive Gaussian noise. The
primitives are also available on their own:

* :func:`adapt_roi_mm`: dilation (``distance_mm > 0``) or erosion (``< 0``) with a ball of
  that radius in physical space;
* :func:`adapt_roi_fraction`: grow or shrink the ROI by a fraction of its volume, adding
  (removing) the voxels nearest to its boundary first;
* :func:`add_noise`: Gaussian noise, its standard deviation given or estimated from the image
  (:func:`estimate_noise`);
* :func:`translate`: sub-voxel translation of the grid;
* :func:`rotate`: rotation about the ROI centroid in the axial plane.

Rotated and translated images are interpolated linearly; masks are interpolated as fractions
and kept where the fraction is at least 0.5 (as MIRP and IBSI 1 do).

References
----------
Zwanenburg A. et al., "Assessing robustness of radiomic features by image perturbation",
Sci Rep 2019;9:614 (doi:10.1038/s41598-018-36938-4).

Donoho D. L., Johnstone I. M., "Ideal spatial adaptation by wavelet shrinkage", Biometrika
1994;81:425-455 (noise from the median absolute finest-scale wavelet coefficient).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from smartimaging.exceptions import EmptyMaskError
from smartimaging.image import Image, Mask, check_same_geometry

__all__ = [
    "PERTURBATION_KINDS",
    "Perturbation",
    "adapt_roi_fraction",
    "adapt_roi_mm",
    "add_noise",
    "crop_to_roi",
    "estimate_noise",
    "perturbation_set",
    "rotate",
    "translate",
]

#: Kinds of perturbation :func:`perturbation_set` builds, in this order.
PERTURBATION_KINDS: tuple[str, ...] = ("dilate", "erode", "noise", "translate", "rotate", "combined")


def _mask_like(mask: Image, array: np.ndarray) -> Mask:
    return Mask(array, mask.spacing, mask.origin, mask.direction.copy(), dict(mask.meta))


def crop_to_roi(image: Image, mask: Mask, *, margin_mm: float = 30.0) -> tuple[Image, Mask]:
    """Crop image and mask to the ROI's bounding box enlarged by ``margin_mm`` (geometry kept).

    Parameters
    ----------
    image : Image
        Image on the mask's grid.
    mask : Mask
        Region of interest (not empty).
    margin_mm : float
        Margin around the bounding box, mm (>= 0).

    Returns
    -------
    image, mask : Image, Mask
        The crops, with the origin moved so that every voxel keeps its physical position.

    Raises
    ------
    EmptyMaskError
        If the mask is empty.
    GeometryMismatchError
        If image and mask grids differ.
    """
    check_same_geometry(image, mask, what="image and ROI to crop")
    mask.require_nonempty("ROI to crop")
    if margin_mm < 0:
        raise ValueError(f"margin_mm must be >= 0, got {margin_mm}")
    idx = np.nonzero(mask.array)
    pad = [math.ceil(margin_mm / s) for s in mask.spacing_zyx]
    lo = [max(0, int(a.min()) - p) for a, p in zip(idx, pad, strict=True)]
    hi = [min(n, int(a.max()) + p + 1) for a, n, p in zip(idx, mask.shape, pad, strict=True)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    ox, oy, oz = (float(v) for v in image.index_to_physical([lo[2], lo[1], lo[0]]))
    origin = (ox, oy, oz)
    crop_img = Image(image.array[box].copy(), image.spacing, origin, image.direction.copy(), dict(image.meta))
    crop_mask = Mask(mask.array[box].copy(), mask.spacing, origin, mask.direction.copy(), dict(mask.meta))
    return crop_img, crop_mask


def adapt_roi_mm(mask: Mask, *, distance_mm: float) -> Mask:
    """Dilate (``distance_mm > 0``) or erode (``< 0``) a ROI by a ball of radius ``|distance_mm|``.

    Dilation adds every voxel whose centre lies within ``distance_mm`` of an ROI voxel centre;
    erosion removes every ROI voxel whose centre lies within ``|distance_mm|`` of a voxel centre
    outside the ROI (voxels outside the grid count as outside). Distances are physical (mm),
    so on a 4 mm grid a 2 mm change does nothing and a 4 mm change moves the border by one voxel.

    Parameters
    ----------
    mask : Mask
        The ROI.
    distance_mm : float
        Signed distance in mm.

    Returns
    -------
    Mask
        The adapted ROI (may be empty after a strong erosion).

    Examples
    --------
    >>> m = Mask(np.array([[[0, 0, 1, 0, 0]]], bool), spacing=(2.0, 1.0, 1.0))
    >>> adapt_roi_mm(m, distance_mm=2.0).array.astype(int).tolist()
    [[[0, 1, 1, 1, 0]]]
    """
    if not math.isfinite(distance_mm):
        raise ValueError(f"distance_mm must be finite, got {distance_mm}")
    arr = mask.array
    if distance_mm == 0 or not arr.any():
        return _mask_like(mask, arr.copy())
    sampling = mask.spacing_zyx
    if distance_mm > 0:
        return _mask_like(mask, ndimage.distance_transform_edt(~arr, sampling=sampling) <= distance_mm)
    padded = np.pad(arr, 1)  # outside the grid counts as outside
    inner = ndimage.distance_transform_edt(padded, sampling=sampling)[1:-1, 1:-1, 1:-1]
    return _mask_like(mask, arr & (inner > -distance_mm))


def adapt_roi_fraction(mask: Mask, *, fraction: float) -> Mask:
    """Grow or shrink a ROI by a fraction of its volume, nearest-to-the-border voxels first.

    Growing by ``fraction > 0`` adds the ``round(fraction * n)`` outside voxels nearest (mm) to
    the ROI; shrinking by ``fraction < 0`` removes the ``round(-fraction * n)`` ROI voxels
    nearest to the outside. Ties are broken by voxel order, so the result is deterministic.

    Parameters
    ----------
    mask : Mask
        The ROI (not empty).
    fraction : float
        Relative volume change, > -1; e.g. ``0.2`` for +20 %.

    Returns
    -------
    Mask
        A ROI of ``n + round(fraction * n)`` voxels (fewer when growing against the grid
        border).

    Raises
    ------
    ValueError
        If ``fraction`` is outside ``(-1, 1]``.
    EmptyMaskError
        If the ROI is empty, or the shrinkage would leave no voxel.
    """
    if not (math.isfinite(fraction) and fraction > -1.0):
        raise ValueError(f"fraction must be a finite number > -1, got {fraction}")
    mask.require_nonempty("ROI to adapt")
    arr = mask.array
    n = int(np.count_nonzero(arr))
    change = round(abs(fraction) * n)
    if change == 0:
        return _mask_like(mask, arr.copy())
    sampling = mask.spacing_zyx
    if fraction > 0:
        dist = ndimage.distance_transform_edt(~arr, sampling=sampling)
        candidates = np.flatnonzero(~arr)
    else:
        if change >= n:
            raise EmptyMaskError(f"shrinking the ROI of {n} voxels by {-fraction:.0%} leaves no voxel")
        padded = np.pad(arr, 1)
        dist = ndimage.distance_transform_edt(padded, sampling=sampling)[1:-1, 1:-1, 1:-1]
        candidates = np.flatnonzero(arr)
    order = np.argsort(dist.ravel()[candidates], kind="stable")
    chosen = candidates[order[:change]]
    out = arr.copy().ravel()
    out[chosen] = fraction > 0
    return _mask_like(mask, out.reshape(arr.shape))


def estimate_noise(image: Image, *, within: Mask | None = None) -> float:
    """Standard deviation of white noise, from the finest diagonal Haar wavelet coefficients.

    ``sigma = median(|HHH|) / 0.6745`` (Donoho & Johnstone), where ``HHH`` is the 3D Haar
    detail band of pairs of voxels along all three axes, computed in the bounding box of
    ``within`` (e.g. the ROI enlarged by a margin, which keeps the air around the body, whose
    noise is different, out of the estimate) or of the whole image.

    The estimator assumes white noise. Reconstructed PET noise is spatially correlated (it is
    smoothed by the reconstruction and the point-spread function) and grows with the uptake,
    so the estimate is lower than the voxel-wise noise: on a synthetic patient of
    :mod:`smartimaging.synthetic` it gave 0.11 SUV where the true noise around the lesion had
    an SD of 0.47 SUV. Give the SD explicitly (``Perturbation(noise_sd=...)``) when the noise
    level of the scanner is known.

    Parameters
    ----------
    image : Image
        Image (at least 2 voxels along every axis in the region).
    within : Mask, optional
        Region whose bounding box is used.

    Returns
    -------
    float
        Estimated noise standard deviation, in image units (>= 0).
    """
    arr = np.asarray(image.array, dtype=np.float64)
    if within is not None:
        check_same_geometry(image, within, what="image and noise-estimation region")
        within.require_nonempty("noise-estimation region")
        idx = np.nonzero(within.array)
        arr = arr[tuple(slice(int(a.min()), int(a.max()) + 1) for a in idx)]
    if min(arr.shape) < 2:
        raise ValueError(f"noise estimation needs at least 2 voxels along every axis, got {arr.shape}")
    h = arr
    for axis in range(3):
        m = (h.shape[axis] // 2) * 2
        even = np.take(h, np.arange(0, m, 2), axis=axis)
        odd = np.take(h, np.arange(1, m, 2), axis=axis)
        h = (even - odd) / math.sqrt(2.0)
    h = h[np.isfinite(h)]
    return float(np.median(np.abs(h)) / 0.6745) if h.size else 0.0


def add_noise(image: Image, *, sd: float, rng: np.random.Generator) -> Image:
    """Add Gaussian white noise of standard deviation ``sd`` (image units).

    Parameters
    ----------
    image : Image
        Image.
    sd : float
        Standard deviation (>= 0).
    rng : numpy.random.Generator
        Random generator (e.g. ``np.random.default_rng(seed)``).

    Returns
    -------
    Image
        A float64 image.
    """
    if not (math.isfinite(sd) and sd >= 0):
        raise ValueError(f"sd must be a finite value >= 0, got {sd}")
    noisy = np.asarray(image.array, dtype=np.float64) + rng.normal(0.0, sd, size=image.shape)
    return image.with_array(noisy)


def _resample(image: Image, mask: Mask, matrix: np.ndarray, offset: np.ndarray) -> tuple[Image, Mask]:
    """Pull image and mask through ``input_index = matrix @ output_index + offset`` (z, y, x)."""
    img = ndimage.affine_transform(
        np.asarray(image.array, dtype=np.float64), matrix, offset=offset, order=1, mode="nearest"
    )
    frac = ndimage.affine_transform(
        mask.array.astype(np.float64), matrix, offset=offset, order=1, mode="constant"
    )
    return image.with_array(img), _mask_like(mask, frac >= 0.5)


def translate(image: Image, mask: Mask, *, shift_voxels: tuple[float, float, float]) -> tuple[Image, Mask]:
    """Translate the voxel grid by a (sub-)voxel shift and resample image and mask on it.

    The new grid's voxel ``i`` lies where the old grid's voxel ``i + shift`` was; the origin is
    moved accordingly, so the anatomy stays where it is in patient space and only the sampling
    changes (MIRP's "translation" perturbation).

    Parameters
    ----------
    image : Image
        Image on the mask's grid.
    mask : Mask
        ROI.
    shift_voxels : tuple of float
        Shift along x, y, z in voxels (e.g. ``(0.5, 0.0, 0.25)``).

    Returns
    -------
    image, mask : Image, Mask
        On the translated grid.
    """
    check_same_geometry(image, mask, what="image and ROI to translate")
    sx, sy, sz = (float(v) for v in shift_voxels)
    offset = np.array([sz, sy, sx])
    img, m = _resample(image, mask, np.eye(3), offset)
    ox, oy, oz = (float(v) for v in image.index_to_physical([sx, sy, sz]))
    origin = (ox, oy, oz)
    return (
        Image(img.array, image.spacing, origin, image.direction.copy(), dict(image.meta)),
        Mask(m.array, mask.spacing, origin, mask.direction.copy(), dict(mask.meta)),
    )


def rotate(image: Image, mask: Mask, *, angle_deg: float) -> tuple[Image, Mask]:
    """Rotate image and ROI in the axial (x-y) plane about the ROI centroid, on the same grid.

    The rotation is done in physical space (anisotropic pixels are handled) and resampled on
    the original grid (MIRP's "rotation" perturbation).

    Parameters
    ----------
    image : Image
        Image on the mask's grid.
    mask : Mask
        ROI (not empty).
    angle_deg : float
        Angle in degrees (counter-clockwise from +x towards +y).

    Returns
    -------
    image, mask : Image, Mask
        On the original grid.
    """
    check_same_geometry(image, mask, what="image and ROI to rotate")
    mask.require_nonempty("ROI to rotate")
    theta = math.radians(angle_deg)
    c, s = math.cos(theta), math.sin(theta)
    # inverse rotation (pull) in physical (z, y, x) coordinates
    r_inv = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    scale = np.diag(mask.spacing_zyx)
    matrix = np.linalg.inv(scale) @ r_inv @ scale
    centre = np.array(ndimage.center_of_mass(mask.array))
    offset = centre - matrix @ centre
    return _resample(image, mask, matrix, offset)


NoiseSpec = float | Literal["estimate"] | None


@dataclass(frozen=True)
class Perturbation:
    """One perturbed condition (MIRP-style): rotation, translation, ROI adaptation, noise.

    Parameters
    ----------
    name : str
        Label of the condition (used in outputs; unique within a study).
    kind : str
        Group of the condition (``'dilate'``, ``'erode'``, ``'noise'``, ``'translate'``,
        ``'rotate'``, ``'combined'``, or any label): ICCs are computed per kind.
    rotate_deg : float
        Axial rotation about the ROI centroid (degrees).
    translate_voxels : tuple of float
        Grid translation along x, y, z (voxels).
    adapt_mm : float
        ROI dilation (> 0) or erosion (< 0) in mm (:func:`adapt_roi_mm`).
    adapt_fraction : float
        ROI volume change as a fraction (:func:`adapt_roi_fraction`), applied after
        ``adapt_mm``.
    noise_sd : float, 'estimate' or None
        Standard deviation of added Gaussian noise in image units, ``'estimate'`` to use
        :func:`estimate_noise` (around the ROI), or ``None`` for none.
    """

    name: str
    kind: str
    rotate_deg: float = 0.0
    translate_voxels: tuple[float, float, float] = (0.0, 0.0, 0.0)
    adapt_mm: float = 0.0
    adapt_fraction: float = 0.0
    noise_sd: NoiseSpec = None

    def apply(self, image: Image, mask: Mask, *, rng: np.random.Generator) -> tuple[Image, Mask]:
        """Perturb ``image`` and ``mask``; ``rng`` draws the noise.

        Raises
        ------
        EmptyMaskError
            If the perturbed ROI is empty (e.g. a small lesion eroded away).
        """
        if self.rotate_deg:
            image, mask = rotate(image, mask, angle_deg=self.rotate_deg)
        if any(self.translate_voxels):
            image, mask = translate(image, mask, shift_voxels=self.translate_voxels)
        if self.adapt_mm:
            mask = adapt_roi_mm(mask, distance_mm=self.adapt_mm)
        if self.adapt_fraction:
            mask = adapt_roi_fraction(mask, fraction=self.adapt_fraction)
        if self.noise_sd is not None:
            if self.noise_sd == "estimate":
                region = adapt_roi_mm(mask, distance_mm=20.0) if mask.array.any() else None
                sd = estimate_noise(image, within=region)
            else:
                sd = float(self.noise_sd)
            image = add_noise(image, sd=sd, rng=rng)
        if not mask.array.any():
            raise EmptyMaskError(
                f"perturbation {self.name!r} leaves the ROI empty; use a milder perturbation"
            )
        return image, mask


def _adapt(
    kind: str, sign: float, mm: tuple[float, ...] | None, fractions: tuple[float, ...]
) -> list[Perturbation]:
    if mm:
        return [Perturbation(f"{kind}_{abs(d):g}mm", kind, adapt_mm=sign * abs(d)) for d in mm]
    return [
        Perturbation(f"{kind}_{abs(f):.0%}".replace("%", "pct"), kind, adapt_fraction=sign * abs(f))
        for f in fractions
    ]


def perturbation_set(
    kinds: tuple[str, ...] | list[str] = ("dilate", "erode", "noise", "translate", "rotate"),
    *,
    adapt_fractions: tuple[float, ...] = (0.1, 0.2),
    adapt_mm: tuple[float, ...] | None = None,
    noise_repetitions: int = 2,
    noise_sd: float | Literal["estimate"] = "estimate",
    translations: tuple[float, ...] = (0.25, 0.5),
    angles_deg: tuple[float, ...] = (-10.0, 10.0),
    n_combined: int = 4,
    seed: int = 0,
) -> list[Perturbation]:
    """A MIRP-style set of perturbed conditions.

    Parameters
    ----------
    kinds : sequence of str
        Which kinds, among :data:`PERTURBATION_KINDS`.
    adapt_fractions : tuple of float
        Volume fractions of ``dilate`` (+) and ``erode`` (-) (used unless ``adapt_mm``).
    adapt_mm : tuple of float, optional
        Distances in mm of ``dilate`` and ``erode`` instead of volume fractions.
    noise_repetitions : int
        Number of noise realisations (``noise``).
    noise_sd : float or 'estimate'
        Noise standard deviation (image units) or estimated from each image.
    translations : tuple of float
        Shift fractions of a voxel; ``translate`` uses each along x, y and z at once.
    angles_deg : tuple of float
        Axial rotation angles (``rotate``).
    n_combined : int
        Number of ``combined`` conditions: each draws an angle, a translation, a volume
        fraction (sign included) and noise from the sets above, from ``seed``.
    seed : int
        Seed of the draws of the ``combined`` conditions (noise itself is drawn per patient).

    Returns
    -------
    list of Perturbation
        Conditions in the order of ``kinds``.

    Raises
    ------
    ValueError
        If a kind is unknown (the message lists the valid ones).
    """
    unknown = [k for k in kinds if k not in PERTURBATION_KINDS]
    if unknown:
        raise ValueError(f"unknown perturbation kind(s) {unknown}; valid: {list(PERTURBATION_KINDS)}")
    out: list[Perturbation] = []
    for kind in kinds:
        if kind == "dilate":
            out += _adapt("dilate", 1.0, adapt_mm, adapt_fractions)
        elif kind == "erode":
            out += _adapt("erode", -1.0, adapt_mm, adapt_fractions)
        elif kind == "noise":
            out += [
                Perturbation(f"noise_{i + 1}", "noise", noise_sd=noise_sd) for i in range(noise_repetitions)
            ]
        elif kind == "translate":
            out += [
                Perturbation(f"translate_{t:g}", "translate", translate_voxels=(t, t, t))
                for t in translations
            ]
        elif kind == "rotate":
            out += [Perturbation(f"rotate_{a:g}deg", "rotate", rotate_deg=a) for a in angles_deg]
        else:  # combined
            rng = np.random.default_rng(seed)
            fractions = [f for f in adapt_fractions for f in (f, -f)] or [0.0]
            for i in range(n_combined):
                t = float(rng.choice(translations)) if translations else 0.0
                out.append(
                    Perturbation(
                        f"combined_{i + 1}",
                        "combined",
                        rotate_deg=float(rng.choice(angles_deg)) if angles_deg else 0.0,
                        translate_voxels=(t, t, t),
                        adapt_fraction=float(rng.choice(fractions)),
                        noise_sd=noise_sd,
                    )
                )
    return out
