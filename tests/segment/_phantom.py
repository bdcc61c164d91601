"""Small analytic PET phantoms for the segmentation tests."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from smartimaging.image import Image, Mask

SPACING = (2.0, 2.0, 2.0)


def sphere_phantom(
    *,
    shape: tuple[int, int, int] = (40, 40, 40),
    centre: tuple[int, int, int] = (20, 20, 20),
    radius_mm: float = 10.0,
    lesion_suv: float = 8.0,
    background: float = 1.0,
    fwhm_mm: float = 6.0,
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[Image, Mask]:
    """A blurred uniform sphere on a uniform background: (SUV image, true sphere mask)."""
    zyx = np.indices(shape, dtype=float)
    d2 = sum(((zyx[a] - centre[a]) * SPACING[a]) ** 2 for a in range(3))
    truth = d2 <= radius_mm**2
    arr = np.where(truth, lesion_suv, background)
    sigma = fwhm_mm / 2.3548 / SPACING[0]
    arr = ndimage.gaussian_filter(arr, sigma, mode="nearest")
    if noise:
        arr = arr + np.random.default_rng(seed).normal(0, noise, shape)
    origin = (-40.0, -40.0, -40.0)
    return Image(arr, SPACING, origin), Mask(truth, SPACING, origin)


def centre_mm(img: Image, zyx: tuple[int, int, int]) -> tuple[float, float, float]:
    p = img.index_to_physical([zyx[2], zyx[1], zyx[0]])
    return (float(p[0]), float(p[1]), float(p[2]))
