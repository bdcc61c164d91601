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

Method: one compiled pass over the ROI (:mod:`smartimaging.preprocess.sphere`) finds the
maximum and sums the sphere directly, voxel by voxel, only where a mean is needed: around
every ROI voxel for the global peak (the local peak then comes with it), around the voxels at
the running maximum when only the local peak is wanted (SUVpeak). The sums are exact up to
floating-point rounding (they equal a correlation of the image with the spherical kernel to
about ``1e-16`` relative); very large ROIs are correlated over their bounding box (FFT).

References
----------
IBSI 1 reference manual, arXiv:1612.07003, "Local intensity features" (9ST6): local intensity
peak VJGA, global intensity peak 0F91.
"""

from __future__ import annotations

from smartimaging.exceptions import FeatureError
from smartimaging.features.registry import FeatureDef
from smartimaging.image import Image, Mask, check_same_geometry
from smartimaging.preprocess.sphere import RADIUS_MM, _sphere_peaks, sphere_kernel, sphere_means

__all__ = ["FAMILY", "FEATURES", "RADIUS_MM", "compute_image", "sphere_kernel", "sphere_means"]

FAMILY = "local intensity"

FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("loc.peak.local", "Local intensity peak", FAMILY, "VJGA"),
    FeatureDef("loc.peak.global", "Global intensity peak", FAMILY, "0F91"),
)


def compute_image(
    image: Image, mask: Mask, *, radius_mm: float = RADIUS_MM, _checked: bool = False
) -> dict[str, float]:
    """Local and global intensity peaks of ``image`` in ``mask``.

    Parameters
    ----------
    image : Image
        Intensity image (the whole image is used for the sphere means).
    mask : Mask
        Intensity mask on the same grid.
    radius_mm : float
        Sphere radius in mm; the IBSI value 6.2 mm gives a 1 cm³ sphere.
    _checked : bool
        Private: the caller has already checked that image and mask share a voxel grid
        (:func:`smartimaging.features.extract.extract` does), so the check is skipped.

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
    ValueError
        If ``radius_mm`` is not positive.

    References
    ----------
    IBSI 1: VJGA (local intensity peak), 0F91 (global intensity peak).
    """
    if not _checked:
        check_same_geometry(image, mask)
    n, n_bad, local, glob = _sphere_peaks(image.array, mask.array, image.spacing_zyx, radius_mm)
    if n == 0:
        mask.require_nonempty("local intensity")
    if n_bad:
        raise FeatureError(
            f"local intensity peaks: the image holds {n_bad} non-finite value(s) inside the ROI; "
            "remove those voxels from the mask or fill them before extraction"
        )
    return {"loc.peak.local": local, "loc.peak.global": glob}
