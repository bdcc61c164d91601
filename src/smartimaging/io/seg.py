"""DICOM Segmentation objects (SEG): write masks as a BINARY segmentation, read them back.

Writing and reading go through highdicom (:class:`highdicom.seg.Segmentation`,
:func:`highdicom.seg.segread`). A SEG written here stores one segment per mask on the grid of the
referenced image series; reading returns every segment as a :class:`~smartimaging.image.Mask`
on the SEG's own grid.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import UID, generate_uid

from smartimaging.atomic import atomic_path
from smartimaging.exceptions import DicomError, EmptyMaskError, GeometryMismatchError
from smartimaging.image import Image, Mask, check_same_geometry, resample_to
from smartimaging.io.rtstruct import _software_version, check_roi_names, sort_series

__all__ = ["ALGORITHM_FAMILIES", "SEG_SOP_CLASS_UID", "read_seg", "write_seg"]

SEG_SOP_CLASS_UID = UID("1.2.840.10008.5.1.4.1.1.66.4")
"""SOP Class UID of Segmentation Storage."""

#: Segmentation algorithm families of DICOM CID 7162 accepted by :func:`write_seg`.
ALGORITHM_FAMILIES: tuple[str, ...] = (
    "AdaptiveFiltering",
    "ArtificialIntelligence",
    "ClusterAnalysis",
    "DeformableModels",
    "EdgeDetection",
    "HistogramAnalysis",
    "MorphologicalOperations",
    "MultiScaleResolutionFiltering",
    "MultispectralProcessing",
    "NeighborhoodAnalysis",
)


def write_seg(
    masks: Mapping[str, Mask],
    reference: Sequence[pydicom.Dataset],
    path: str | os.PathLike[str],
    *,
    series_description: str = "smartimaging SEG",
    algorithm: str | None = None,
    algorithm_family: str = "HistogramAnalysis",
    omit_empty_frames: bool = False,
) -> Path:
    """Write masks as a BINARY DICOM Segmentation, one segment per mask.

    Each segment is labelled with its mask name and coded as SegmentedPropertyCategory
    "Morphologically abnormal structure" (SCT 49755003), SegmentedPropertyType "Neoplasm"
    (SCT 108369006).

    Parameters
    ----------
    masks : mapping of str to Mask
        Segment label -> mask; every mask must lie on the grid of ``reference``.
    reference : sequence of pydicom.Dataset
        The datasets of every slice of the segmented image series (any order).
    path : str or os.PathLike
        Output file (written atomically).
    series_description : str
        SeriesDescription of the new SEG series.
    algorithm : str, optional
        Name of the algorithm that produced the masks. ``None`` marks the segments MANUAL;
        otherwise they are AUTOMATIC with an AlgorithmIdentificationSequence.
    algorithm_family : str
        AlgorithmFamilyCodeSequence (DICOM CID 7162) when ``algorithm`` is given; one of
        :data:`ALGORITHM_FAMILIES`.
    omit_empty_frames : bool
        Leave out frames without any segmented pixel. The default (False) stores every slice,
        so that the SEG alone describes the full grid (the extent of a SEG is that of its
        frames) at the cost of a larger file (bit-packed, 1 bit per voxel and segment).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    GeometryMismatchError
        If a mask does not lie on the grid of the reference series.
    EmptyMaskError
        If every mask is empty and ``omit_empty_frames`` is True (a SEG needs one frame).
    DicomError
        If ``masks`` is empty, the reference series is inconsistent or highdicom rejects it.
    ValueError
        If ``algorithm_family`` is not a valid family or a label is not a valid DICOM LO value.

    References
    ----------
    DICOM PS3.3 A.51 (Segmentation IOD), C.8.20 (Segmentation Image Module).
    """
    if algorithm_family not in ALGORITHM_FAMILIES:
        raise ValueError(
            f"algorithm_family must be one of {list(ALGORITHM_FAMILIES)}, got {algorithm_family!r}"
        )
    if len(masks) == 0:
        raise DicomError(f"no mask given to write into {path}: pass at least one segment label -> Mask")
    check_roi_names(list(masks), keyword="SegmentLabel (the keys of masks)")
    sorted_ds, grid = sort_series(reference)
    for name, mask in masks.items():
        check_same_geometry(grid, mask, what=f"the reference series and the mask {name!r}")
    pixels = np.stack([m.array for m in masks.values()], axis=-1).astype(np.uint8)
    if omit_empty_frames and not pixels.any():
        raise EmptyMaskError(f"every mask written to {path} is empty; a SEG needs at least one frame")

    if algorithm is None:
        algorithm_type = hd.seg.SegmentAlgorithmTypeValues.MANUAL
        algorithm_id = None
    else:
        algorithm_type = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        algorithm_id = hd.AlgorithmIdentificationSequence(
            name=algorithm,
            family=getattr(codes.cid7162, algorithm_family),
            version=_software_version(),
        )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=name,
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Neoplasm,
            algorithm_type=algorithm_type,
            algorithm_identification=algorithm_id,
            tracking_uid=generate_uid(),
            tracking_id=name,
        )
        for number, name in enumerate(masks, start=1)
    ]
    try:
        seg = hd.seg.Segmentation(
            source_images=sorted_ds,
            pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=generate_uid(),
            series_number=901,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer="smartimaging",
            manufacturer_model_name="smartimaging",
            software_versions=_software_version(),
            device_serial_number="0",
            series_description=series_description,
            omit_empty_frames=omit_empty_frames,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise DicomError(f"cannot build the SEG for {path} from the reference series: {exc}") from exc
    with atomic_path(path) as tmp:
        seg.save_as(tmp)
    return Path(path)


def read_seg(path: str | os.PathLike[str], *, reference: Image | None = None) -> dict[str, Mask]:
    """Read every segment of a DICOM Segmentation as a mask on the SEG's own grid.

    The grid is that of the frames in the file: slices ordered along the normal of
    ImageOrientationPatient (row x column), origin at the centre of the first pixel of the first
    slice, in-plane spacing from PixelSpacing and slice spacing from the frame positions. Slices
    between the first and last frame that the file leaves out (empty frames) are zeros.
    FRACTIONAL segments are kept where the fraction is at least 0.5.

    A SEG that omits empty frames only covers the slices from its first to its last frame; pass
    ``reference`` (e.g. the grid of the segmented series) to get the masks on that full grid.

    Parameters
    ----------
    path : str or os.PathLike
        The SEG file.
    reference : Image, optional
        Grid to return the masks on. They are carried there with
        :func:`smartimaging.image.resample_to` (exact when the grids are aligned, as for the
        series the SEG was drawn on). If its ``meta`` has a ``frame_of_reference_uid``, it must
        match the SEG's.

    Returns
    -------
    dict of str to Mask
        SegmentLabel -> mask (``meta`` holds SegmentNumber, SegmentLabel, FrameOfReferenceUID).
        A label used by several segments gets ``#<SegmentNumber>`` appended after its first use.

    Raises
    ------
    DicomError
        If the file cannot be read as a Segmentation, has no segment, or its frames do not
        form a regular 3D grid.
    GeometryMismatchError
        If ``reference`` is in another frame of reference.
    """
    try:
        seg = hd.seg.segread(path)
    except Exception as exc:  # highdicom/pydicom raise many types for non-SEG or broken files
        raise DicomError(f"cannot read {path} as a DICOM Segmentation: {exc}") from exc
    numbers = list(seg.segment_numbers)
    if not numbers:
        raise DicomError(f"{path} is a Segmentation without any segment (empty SegmentSequence)")
    try:
        volume = seg.get_volume(segment_numbers=numbers, combine_segments=False, allow_missing_positions=True)
    except (RuntimeError, ValueError) as exc:
        raise DicomError(f"{path}: the SEG frames do not form a regular 3D volume: {exc}") from exc
    arr = np.asarray(volume.array)
    if arr.ndim == 3:  # one segment: highdicom may drop the channel axis
        arr = arr[..., np.newaxis]
    affine = np.asarray(volume.affine, dtype=float)
    # highdicom's array axes are (slice, row, column); ours (z, y, x) with direction columns x, y, z
    dirs = affine[:3, :3]
    steps = np.linalg.norm(dirs, axis=0)
    unit = dirs / steps
    origin = affine[:3, 3].copy()
    normal = np.cross(unit[:, 2], unit[:, 1])  # row direction x column direction
    if float(unit[:, 0] @ normal) < 0:  # stack along the normal, first slice first
        arr = arr[::-1]
        origin = origin + dirs[:, 0] * (arr.shape[0] - 1)
        unit[:, 0] = -unit[:, 0]
    direction = np.column_stack([unit[:, 2], unit[:, 1], unit[:, 0]]) + 0.0  # no negative zeros
    spacing = (float(steps[2]), float(steps[1]), float(steps[0]))
    frame_uid = str(seg.get("FrameOfReferenceUID", ""))
    out: dict[str, Mask] = {}
    for channel, number in enumerate(numbers):
        label = str(seg.get_segment_description(number).segment_label)
        if label in out:  # labels need not be unique in DICOM; keep every segment
            label = f"{label}#{number}"
        data = arr[..., channel]
        mask_arr = data >= 0.5 if np.issubdtype(data.dtype, np.floating) else data != 0
        out[label] = Mask(
            np.ascontiguousarray(mask_arr),
            spacing,
            tuple(origin),
            direction,
            {
                "SegmentNumber": number,
                "SegmentLabel": label,
                "frame_of_reference_uid": frame_uid,
                "source": str(path),
            },
        )
    if reference is not None:
        ref_frame = str(reference.meta.get("frame_of_reference_uid") or "")
        if ref_frame and frame_uid and ref_frame != frame_uid:
            raise GeometryMismatchError(
                f"{path}: the SEG is in frame of reference {frame_uid}, the reference grid in {ref_frame}; "
                "register the images first"
            )
        out = {label: Mask.from_image(resample_to(mask, reference)) for label, mask in out.items()}
    return out
