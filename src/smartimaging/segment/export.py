"""Write segmentation results: a NIfTI label image, a DICOM SEG (one segment per lesion) or an RTSTRUCT.

The DICOM outputs reference the source PET series (their datasets are needed) and record the
algorithm: the SEG's segments are AUTOMATIC with an AlgorithmIdentificationSequence (name
``smartimaging <method>``, family from DICOM CID 7162) and are labelled with the lesion names, so
that 3D Slicer and OHIF show one named segment per lesion.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pydicom

from smartimaging.exceptions import SegmentationError
from smartimaging.image import Image, Mask, check_same_geometry

__all__ = ["ALGORITHM_FAMILY", "FORMATS", "guess_format", "write_masks"]

FORMATS = ("nifti", "seg", "rtstruct")

#: DICOM CID 7162 algorithm family per method.
ALGORITHM_FAMILY = {
    "fixed": "HistogramAnalysis",
    "relative": "HistogramAnalysis",
    "adaptive": "HistogramAnalysis",
    "percist": "HistogramAnalysis",
    "gradient": "EdgeDetection",
    "region_growing": "NeighborhoodAnalysis",
    "whole_body": "HistogramAnalysis",
}


def guess_format(path: str | os.PathLike[str]) -> Literal["nifti", "seg", "rtstruct"]:
    """Output format from a file name: ``.nii``/``.nii.gz`` NIfTI; ``.dcm`` whose name starts with
    ``rtstruct`` or ``rs`` an RTSTRUCT; any other ``.dcm`` a SEG.

    Raises
    ------
    ValueError
        For any other suffix (the message lists the accepted ones).
    """
    name = Path(path).name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith(".dcm"):
        return "rtstruct" if name.startswith(("rtstruct", "rs")) else "seg"
    raise ValueError(
        f"cannot tell the output format of {str(path)!r}: use .nii/.nii.gz (NIfTI labels), "
        "seg*.dcm (DICOM SEG) or rtstruct*.dcm (RTSTRUCT), or give the format explicitly"
    )


def write_masks(
    masks: Mapping[str, Mask],
    path: str | os.PathLike[str],
    *,
    fmt: Literal["auto", "nifti", "seg", "rtstruct"] = "auto",
    reference: Sequence[pydicom.Dataset] | None = None,
    method: str = "relative",
    grid: Image | None = None,
) -> Path:
    """Write lesion masks (all on one grid) in the chosen format.

    Parameters
    ----------
    masks : mapping of str to Mask
        Lesion name -> mask (names become SEG segment labels / RTSTRUCT ROI names; in NIfTI the
        i-th mask gets label i, in the mapping's order).
    path : str or os.PathLike
        Output file (written atomically).
    fmt : {'auto', 'nifti', 'seg', 'rtstruct'}
        Format; ``'auto'`` uses :func:`guess_format`.
    reference : sequence of pydicom.Dataset, optional
        Datasets of the segmented PET series; required for SEG and RTSTRUCT.
    method : str
        Method name, recorded as the SEG algorithm (``smartimaging <method>``).
    grid : Image, optional
        Grid every mask must lie on (checked when given).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    SegmentationError
        If ``masks`` is empty, or a DICOM output is asked without the reference series.
    GeometryMismatchError
        If the masks do not share one grid.
    ValueError
        If ``fmt`` is invalid.
    """
    if fmt not in ("auto", *FORMATS):
        raise ValueError(f"fmt must be one of {['auto', *FORMATS]}, got {fmt!r}")
    if not masks:
        raise SegmentationError(f"no lesion mask to write to {path}")
    kind = guess_format(path) if fmt == "auto" else fmt
    first = next(iter(masks.values()))
    for name, m in masks.items():
        check_same_geometry(grid or first, m, what=f"the output grid and the mask {name!r}")
    if kind == "nifti":
        from smartimaging.io.nifti import write_image

        labels = np.zeros(first.shape, dtype=np.uint16)
        for value, m in enumerate(masks.values(), start=1):
            labels[np.asarray(m.array) & (labels == 0)] = value
        return write_image(Image(labels, first.spacing, first.origin, first.direction.copy()), path)
    if reference is None:
        raise SegmentationError(
            f"a DICOM {kind.upper()} output ({path}) needs the source PET DICOM series to reference; "
            "give the PET as a DICOM folder, or write NIfTI (.nii.gz)"
        )
    if kind == "seg":
        from smartimaging.io.seg import write_seg

        return write_seg(
            masks,
            reference,
            path,
            series_description=f"smartimaging {method} lesions",
            algorithm=f"smartimaging {method}",
            algorithm_family=ALGORITHM_FAMILY.get(method, "HistogramAnalysis"),
        )
    from smartimaging.io.rtstruct import write_rtstruct

    return write_rtstruct(
        masks,
        reference,
        path,
        series_description=f"smartimaging {method} lesions",
        structure_set_label=method[:16],
    )
