"""Overlap and volume agreement between two segmentations on the same grid.

References
----------
Taha A. A., Hanbury A., "Metrics for evaluating 3D medical image segmentation: analysis,
selection, and tool", BMC Med Imaging 2015;15:29.
"""

from __future__ import annotations

import numpy as np

from smartimaging.exceptions import EmptyMaskError
from smartimaging.image import Mask, check_same_geometry

__all__ = ["dice", "jaccard", "volume_difference"]


def _counts(a: Mask, b: Mask, name: str) -> tuple[int, int, int]:
    check_same_geometry(a, b, what=f"masks compared by {name}")
    inter = int(np.count_nonzero(a.array & b.array))
    na, nb = a.n_voxels, b.n_voxels
    if na == 0 and nb == 0:
        raise EmptyMaskError(f"{name} is undefined for two empty masks: check both segmentations")
    return inter, na, nb


def dice(a: Mask, b: Mask) -> float:
    """Dice similarity coefficient ``2 |A ∩ B| / (|A| + |B|)``.

    Parameters
    ----------
    a, b : Mask
        Masks on the same grid (not both empty).

    Returns
    -------
    float
        In ``[0, 1]``; 1 for identical masks.

    Raises
    ------
    GeometryMismatchError
        If the grids differ.
    EmptyMaskError
        If both masks are empty.

    Examples
    --------
    >>> import numpy as np
    >>> a = Mask(np.array([[[1, 1, 0, 0]]], bool), spacing=(1.0, 1.0, 1.0))
    >>> b = Mask(np.array([[[0, 1, 1, 0]]], bool), spacing=(1.0, 1.0, 1.0))
    >>> dice(a, b)
    0.5
    """
    inter, na, nb = _counts(a, b, "dice")
    return 2.0 * inter / (na + nb)


def jaccard(a: Mask, b: Mask) -> float:
    """Jaccard index (intersection over union) ``|A ∩ B| / |A ∪ B|``.

    Parameters
    ----------
    a, b : Mask
        Masks on the same grid (not both empty).

    Returns
    -------
    float
        In ``[0, 1]``.

    Raises
    ------
    GeometryMismatchError
        If the grids differ.
    EmptyMaskError
        If both masks are empty.
    """
    inter, na, nb = _counts(a, b, "jaccard")
    return inter / (na + nb - inter)


def volume_difference(a: Mask, b: Mask) -> float:
    """Relative volume difference ``(V_a - V_b) / V_b``, ``b`` being the reference.

    Parameters
    ----------
    a : Mask
        Tested segmentation.
    b : Mask
        Reference segmentation (not empty), on the same grid.

    Returns
    -------
    float
        Signed fraction: 0.1 means ``a`` is 10 % larger than ``b``.

    Raises
    ------
    GeometryMismatchError
        If the grids differ.
    EmptyMaskError
        If the reference ``b`` is empty.
    """
    check_same_geometry(a, b, what="masks compared by volume_difference")
    b.require_nonempty("reference of volume_difference")
    return (a.n_voxels - b.n_voxels) / b.n_voxels
