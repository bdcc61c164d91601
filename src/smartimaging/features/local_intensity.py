"""IBSI 1 local intensity features (family "local intensity", IBSI section 3.2).

Both features are means of the intensities in a 1 cm³ sphere (radius 6.2 mm):

* the *local intensity peak* (VJGA) centres the sphere on the voxel of maximum intensity in
  the ROI; when several voxels share that maximum, the highest of their sphere means is taken;
* the *global intensity peak* (0F91) is the highest sphere mean over every ROI voxel as
  centre.

The sphere holds every voxel of the *image* (not only of the ROI) whose centre lies within the
radius of the centre voxel, distances being measured in mm with the image's (possibly
anisotropic) spacing. Voxels beyond the image border do not exist and are not counted; neither
are non-finite image voxels outside the ROI (non-finite values inside the ROI are an error).

The sphere means are computed for all ROI voxels at once by correlating the ROI's bounding box,
padded by the radius, with a spherical kernel (direct correlation for small problems, FFT
otherwise).

References
----------
IBSI 1 reference manual, arXiv:1612.07003, "Local intensity features" (9ST6): local intensity
peak VJGA, global intensity peak 0F91.
"""

from __future__ import annotations

import numpy as np

from smartimaging.exceptions import FeatureError
from smartimaging.features.registry import FeatureDef
from smartimaging.image import Image, Mask, check_same_geometry
from smartimaging.preprocess.sphere import RADIUS_MM, sphere_kernel, sphere_means

__all__ = ["FAMILY", "FEATURES", "RADIUS_MM", "compute_image", "sphere_kernel", "sphere_means"]

FAMILY = "local intensity"

FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("loc.peak.local", "Local intensity peak", FAMILY, "VJGA"),
    FeatureDef("loc.peak.global", "Global intensity peak", FAMILY, "0F91"),
)


def compute_image(image: Image, mask: Mask, *, radius_mm: float = RADIUS_MM) -> dict[str, float]:
    """Local and global intensity peaks of ``image`` in ``mask``.

    Parameters
    ----------
    image : Image
        Intensity image (the whole image is used for the sphere means).
    mask : Mask
        Intensity mask on the same grid.
    radius_mm : float
        Sphere radius in mm; the IBSI value 6.2 mm gives a 1 cm³ sphere.

    Returns
    -------
    dict of str to float
        ``{"loc.peak.local": ..., "loc.peak.global": ...}``.

    Raises
    ------
    GeometryMismatchError
        If image and mask grids differ.
    EmptyMaskError
        If the mask is empty.
    FeatureError
        If the image holds non-finite values inside the mask.

    References
    ----------
    IBSI 1: VJGA (local intensity peak), 0F91 (global intensity peak).
    """
    check_same_geometry(image, mask)
    mask.require_nonempty("local intensity")
    roi_values = np.asarray(image.array[mask.array], dtype=np.float64)
    n_bad = int(np.count_nonzero(~np.isfinite(roi_values)))
    if n_bad:
        raise FeatureError(
            f"local intensity peaks: the image holds {n_bad} non-finite value(s) inside the ROI; "
            "remove those voxels from the mask or fill them before extraction"
        )
    means = sphere_means(image, mask, radius_mm=radius_mm)
    at_max = roi_values == roi_values.max()
    return {
        "loc.peak.local": float(means[at_max].max()),
        "loc.peak.global": float(means.max()),
    }
