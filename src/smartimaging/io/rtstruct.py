"""DICOM RT Structure Sets (RTSTRUCT): write masks as planar contours, read contours as masks.

Writing traces every slice of a :class:`~smartimaging.image.Mask` with marching squares at the
level 0.5 (the boundary between voxel centres inside and outside), so that rasterising the
contours again at the voxel centres gives back exactly the same mask. Reading rasterises the
contours onto *any* grid (for example a PET grid coarser than the CT the contours were drawn on).

Conventions follow DICOM PS3.3 C.8.8.5-6 (Structure Set, ROI Contour) and the patient
coordinate system (LPS, millimetres) used by :mod:`smartimaging.image`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid
from skimage.draw import polygon as _draw_polygon
from skimage.measure import find_contours

from smartimaging.atomic import atomic_path
from smartimaging.exceptions import (
    DicomError,
    EmptyMaskError,
    GeometryMismatchError,
    MissingTagError,
)
from smartimaging.image import Image, Mask, check_same_geometry
from smartimaging.io.dicom import slice_geometry

__all__ = [
    "RTSTRUCT_SOP_CLASS_UID",
    "ROINotFoundError",
    "check_roi_names",
    "list_rois",
    "read_rtstruct",
    "sort_series",
    "write_rtstruct",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

RTSTRUCT_SOP_CLASS_UID = UID("1.2.840.10008.5.1.4.1.1.481.3")
"""SOP Class UID of RT Structure Set Storage."""

#: Patient, study and frame-of-reference attributes copied from the referenced image series.
_COPIED_KEYWORDS = (
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "PatientWeight",
    "PatientSize",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "StudyDescription",
    "AccessionNumber",
    "ReferringPhysicianName",
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
)
_TYPE2_STUDY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)

_DEFAULT_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0),
    (0, 200, 0),
    (0, 100, 255),
    (255, 200, 0),
    (200, 0, 255),
    (0, 220, 220),
    (255, 120, 0),
    (150, 150, 150),
)

#: contours whose points spread more than this (in reference voxels along z) are not parallel
#: to the reference slices and cannot be rasterised slice by slice
_PLANE_TOL_VOXELS = 0.25
#: contour planes closer than this (in reference voxels along z) are one plane (rounding of
#: ContourData by the writing software)
_PLANE_MERGE_VOXELS = 0.05


class ROINotFoundError(DicomError, KeyError):
    """No ROI of an RT Structure Set matches the requested name."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------------------------
# geometry of a DICOM image series
# --------------------------------------------------------------------------------------------
def _require(ds: Dataset, keyword: str, where: str) -> object:
    value = ds.get(keyword)
    if value is None or value == "":
        raise MissingTagError(f"{where}: the attribute {keyword} is missing or empty; it is required here")
    return value


def sort_series(datasets: Sequence[Dataset]) -> tuple[list[Dataset], Image]:
    """Sort the slices of a single-frame image series along the slice normal and build its grid.

    Parameters
    ----------
    datasets : sequence of pydicom.Dataset
        Headers of every slice of one series (pixel data is not needed).

    Returns
    -------
    sorted_datasets : list of pydicom.Dataset
        The slices ordered by position along the normal ``row x column`` of
        ImageOrientationPatient (increasing).
    grid : Image
        A zero ``uint8`` image (read-only, uses no memory) on the voxel grid of the series
        (``meta`` holds
        ``frame_of_reference_uid`` and ``series_instance_uid``).

    Raises
    ------
    DicomError
        If the series is empty, mixes series, orientations or frames of reference, repeats a
        position, or fails :func:`smartimaging.io.dicom.slice_geometry` (missing slices, uneven
        spacing, slices not stacked along their normal).
    MissingTagError
        If a geometry attribute (ImagePositionPatient, ImageOrientationPatient, PixelSpacing,
        Rows, Columns) is missing.
    """
    if len(datasets) == 0:
        raise DicomError("the reference image series is empty: pass the datasets of every slice")
    first = datasets[0]
    where = f"reference series {first.get('SeriesInstanceUID', '?')}"
    iop = np.asarray(_require(first, "ImageOrientationPatient", where), dtype=float)
    rows, cols = int(_require(first, "Rows", where)), int(_require(first, "Columns", where))  # type: ignore[call-overload]
    pixel_spacing = np.asarray(_require(first, "PixelSpacing", where), dtype=float)
    series_uids = {str(ds.get("SeriesInstanceUID", "")) for ds in datasets}
    if len(series_uids) > 1:
        raise DicomError(
            f"the reference datasets mix {len(series_uids)} series {sorted(series_uids)}; pass one series"
        )
    frame_uids = {str(ds.get("FrameOfReferenceUID", "")) for ds in datasets}
    if len(frame_uids) > 1:
        raise DicomError(f"{where}: slices belong to several frames of reference {sorted(frame_uids)}")
    positions = []
    for ds in datasets:
        if not np.allclose(
            np.asarray(_require(ds, "ImageOrientationPatient", where), dtype=float), iop, atol=1e-4
        ):
            raise DicomError(
                f"{where}: slice {ds.get('SOPInstanceUID', '?')} has another ImageOrientationPatient"
            )
        if int(ds.Rows) != rows or int(ds.Columns) != cols:
            raise DicomError(f"{where}: slice {ds.get('SOPInstanceUID', '?')} has another matrix size")
        positions.append(np.asarray(_require(ds, "ImagePositionPatient", where), dtype=float))
    names = [str(getattr(ds, "filename", "") or ds.get("SOPInstanceUID", "?")) for ds in datasets]
    single_step = float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)
    order, spacing, origin, direction = slice_geometry(
        np.asarray(positions), iop, pixel_spacing, names, single_slice_step=single_step
    )
    sorted_ds = [datasets[i] for i in order]
    grid = Image(
        # a read-only zero view: the grid carries geometry, not a full-size array
        np.broadcast_to(np.zeros((), dtype=np.uint8), (len(sorted_ds), rows, cols)),
        spacing=spacing,
        origin=origin,
        direction=direction,
        meta={
            "frame_of_reference_uid": str(first.get("FrameOfReferenceUID", "")),
            "series_instance_uid": str(first.get("SeriesInstanceUID", "")),
        },
    )
    return sorted_ds, grid


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def _drop_collinear(points: np.ndarray) -> np.ndarray:
    """Remove the vertices of a closed polygon that lie on a straight edge (exact, half-voxel grid)."""
    if len(points) < 4:
        return points
    prev = np.roll(points, 1, axis=0)
    nxt = np.roll(points, -1, axis=0)
    cross = (points[:, 0] - prev[:, 0]) * (nxt[:, 1] - points[:, 1]) - (points[:, 1] - prev[:, 1]) * (
        nxt[:, 0] - points[:, 0]
    )
    keep = np.abs(cross) > 1e-9
    return points[keep] if keep.sum() >= 3 else points


def _slice_contours(slice_mask: np.ndarray) -> list[np.ndarray]:
    """Closed contours (row, col) of one 2D mask, at the voxel-boundary level 0.5."""
    padded = np.pad(slice_mask.astype(np.float64), 1)
    out = []
    for c in find_contours(padded, 0.5):
        pts = c[:-1] - 1.0  # closed: last point repeats the first; undo the padding
        out.append(_drop_collinear(pts))
    return out


def check_roi_names(names: Sequence[str], *, keyword: str) -> None:
    """Raise ValueError unless every name is a valid DICOM LO value (1-64 characters, no backslash)."""
    for name in names:
        if not isinstance(name, str) or not 0 < len(name) <= 64 or "\\" in name:
            raise ValueError(f"{keyword} must be 1 to 64 characters without a backslash, got {name!r}")


def _ds_number(value: float) -> str:
    # DS is limited to 16 characters; 0.1 µm resolution is far below any voxel size
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _copy_study(target: Dataset, source: Dataset) -> None:
    for kw in _COPIED_KEYWORDS:
        if kw in source:
            setattr(target, kw, source.data_element(kw).value)  # type: ignore[union-attr]
    for kw in _TYPE2_STUDY_KEYWORDS:
        if kw not in target:
            setattr(target, kw, "")


def write_rtstruct(
    masks: Mapping[str, Mask],
    reference: Sequence[pydicom.Dataset],
    path: str | os.PathLike[str],
    *,
    series_description: str = "smartimaging RTSTRUCT",
    structure_set_label: str = "ROIs",
    colors: Mapping[str, tuple[int, int, int]] | None = None,
) -> Path:
    """Write masks as an RT Structure Set of closed planar contours.

    Every slice of every mask is traced with marching squares
    (:func:`skimage.measure.find_contours`) on the slice padded by one voxel, at the level 0.5,
    i.e. on the boundary between voxel centres inside and outside. No voxel centre lies on such a
    contour, so rasterising the contours at the voxel centres with the even-odd rule (as
    :func:`read_rtstruct` does) reproduces the mask exactly. Holes become separate contours.

    Parameters
    ----------
    masks : mapping of str to Mask
        One ROI per entry (ROI name -> mask); each mask must lie on the grid of ``reference``.
    reference : sequence of pydicom.Dataset
        The datasets (headers suffice) of every slice of the image series the contours are drawn
        on; any order.
    path : str or os.PathLike
        Output file (written atomically).
    series_description : str
        SeriesDescription of the new RTSTRUCT series.
    structure_set_label : str
        StructureSetLabel.
    colors : mapping of str to (int, int, int), optional
        ROIDisplayColor per ROI name; a fixed palette is used for the others.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    GeometryMismatchError
        If a mask does not lie on the grid of the reference series.
    EmptyMaskError
        If a mask has no voxel (an ROI without contours could not be read back).
    DicomError
        If ``masks`` is empty or the reference series is inconsistent.
    ValueError
        If an ROI name is not a valid DICOM LO value or a color is not RGB 0-255.

    References
    ----------
    DICOM PS3.3 A.19 (RT Structure Set IOD), C.8.8.5 (Structure Set), C.8.8.6 (ROI Contour),
    C.8.8.8 (RT ROI Observations).
    """
    if len(masks) == 0:
        raise DicomError(f"no mask given to write into {path}: pass at least one ROI name -> Mask")
    check_roi_names(list(masks), keyword="ROIName (the keys of masks)")
    for name, color in (colors or {}).items():
        if len(color) != 3 or not all(0 <= int(c) <= 255 for c in color):
            raise ValueError(f"colors[{name!r}] must be three integers 0-255 (RGB), got {color!r}")
    sorted_ds, grid = sort_series(reference)
    for name, mask in masks.items():
        check_same_geometry(grid, mask, what=f"the reference series and the mask {name!r}")
        if not np.any(mask.array):
            raise EmptyMaskError(f"the mask {name!r} is empty; an RTSTRUCT ROI needs at least one contour")
    first = sorted_ds[0]
    frame_uid = str(_require(first, "FrameOfReferenceUID", "reference series"))
    now = _dt.datetime.now()

    sop_instance_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT_SOP_CLASS_UID
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    _copy_study(ds, first)
    if "SpecificCharacterSet" not in ds:
        ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = RTSTRUCT_SOP_CLASS_UID
    ds.SOPInstanceUID = sop_instance_uid
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 900
    ds.SeriesDescription = series_description
    ds.InstanceNumber = 1
    ds.OperatorsName = ""
    ds.Manufacturer = "smartimaging"
    ds.ManufacturerModelName = "smartimaging"
    ds.SoftwareVersions = _software_version()
    ds.InstanceCreationDate = ds.StructureSetDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = ds.StructureSetTime = now.strftime("%H%M%S")
    ds.SeriesDate, ds.SeriesTime = ds.StructureSetDate, ds.StructureSetTime
    ds.StructureSetLabel = structure_set_label[:16]
    ds.StructureSetName = structure_set_label[:64]

    # Referenced Frame of Reference -> Study -> Series -> every image of the series
    contour_images = []
    for sl in sorted_ds:
        item = Dataset()
        item.ReferencedSOPClassUID = sl.SOPClassUID
        item.ReferencedSOPInstanceUID = sl.SOPInstanceUID
        contour_images.append(item)
    series_item = Dataset()
    series_item.SeriesInstanceUID = first.SeriesInstanceUID
    series_item.ContourImageSequence = DicomSequence(contour_images)
    study_item = Dataset()
    study_item.ReferencedSOPClassUID = (
        "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired, as per PS3.3)
    )
    study_item.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study_item.RTReferencedSeriesSequence = DicomSequence([series_item])
    frame_item = Dataset()
    frame_item.FrameOfReferenceUID = frame_uid
    frame_item.RTReferencedStudySequence = DicomSequence([study_item])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame_item])

    roi_items, contour_items, obs_items = [], [], []
    for number, (name, mask) in enumerate(masks.items(), start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame_uid
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = ""
        roi_items.append(roi)

        color = (colors or {}).get(name, _DEFAULT_COLORS[(number - 1) % len(_DEFAULT_COLORS)])
        rc = Dataset()
        rc.ROIDisplayColor = [int(c) for c in color]
        rc.ReferencedROINumber = number
        contours: list[Dataset] = []
        for k in np.flatnonzero(mask.array.any(axis=(1, 2))):
            sl = sorted_ds[k]
            for rowcol in _slice_contours(mask.array[k]):
                idx = np.column_stack([rowcol[:, 1], rowcol[:, 0], np.full(len(rowcol), float(k))])
                xyz = grid.index_to_physical(idx)
                ref = Dataset()
                ref.ReferencedSOPClassUID = sl.SOPClassUID
                ref.ReferencedSOPInstanceUID = sl.SOPInstanceUID
                c = Dataset()
                c.ContourImageSequence = DicomSequence([ref])
                c.ContourGeometricType = "CLOSED_PLANAR"
                c.NumberOfContourPoints = len(xyz)
                c.ContourNumber = len(contours) + 1
                c.ContourData = [_ds_number(v) for v in xyz.ravel()]
                contours.append(c)
        rc.ContourSequence = DicomSequence(contours)
        contour_items.append(rc)

        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = ""
        obs.ROIInterpreter = ""
        obs_items.append(obs)
    ds.StructureSetROISequence = DicomSequence(roi_items)
    ds.ROIContourSequence = DicomSequence(contour_items)
    ds.RTROIObservationsSequence = DicomSequence(obs_items)

    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return Path(path)


def _software_version() -> str:
    try:
        from importlib.metadata import version

        return version("smartimaging")
    except Exception:  # not installed (run from a source tree)
        return "unknown"


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
def _read_structure_set(path: str | os.PathLike[str]) -> Dataset:
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # pydicom raises several types for unreadable files
        raise DicomError(f"cannot read {path} as DICOM: {exc}") from exc
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class != RTSTRUCT_SOP_CLASS_UID and ds.get("Modality") != "RTSTRUCT":
        raise DicomError(
            f"{path} is not an RT Structure Set (SOPClassUID {sop_class or 'missing'}, "
            f"Modality {ds.get('Modality', 'missing')}); expected {RTSTRUCT_SOP_CLASS_UID}"
        )
    if "StructureSetROISequence" not in ds:
        raise MissingTagError(f"{path}: StructureSetROISequence is missing; the file defines no ROI")
    return ds


def _roi_names(ds: Dataset) -> dict[int, str]:
    return {int(item.ROINumber): str(item.get("ROIName", "")) for item in ds.StructureSetROISequence}


def list_rois(path: str | os.PathLike[str]) -> list[str]:
    """Names of the ROIs of an RT Structure Set, in file order.

    Parameters
    ----------
    path : str or os.PathLike
        The RTSTRUCT file.

    Returns
    -------
    list of str
        ROIName of every item of StructureSetROISequence.

    Raises
    ------
    DicomError
        If the file cannot be read or is not an RT Structure Set.
    """
    return list(_roi_names(_read_structure_set(path)).values())


def _select_rois(names: dict[int, str], roi: str | None, path: str | os.PathLike[str]) -> dict[int, str]:
    if roi is None:
        return names
    exact = {n: name for n, name in names.items() if name == roi}
    if exact:
        return exact
    try:
        pattern = re.compile(roi, re.IGNORECASE)
    except re.error:
        pattern = re.compile(re.escape(roi), re.IGNORECASE)
    chosen = {n: name for n, name in names.items() if pattern.fullmatch(name)}
    if not chosen:
        raise ROINotFoundError(
            f"no ROI of {path} matches {roi!r} (exact name or case-insensitive regular expression, "
            f"full match); the ROIs present are: {sorted(names.values())}"
        )
    return chosen


def _contours_in_index_space(
    item: Dataset, name: str, reference: Image, path: str | os.PathLike[str]
) -> list[np.ndarray]:
    """Closed planar contours of one ROI as continuous (x, y, z) voxel indices of ``reference``."""
    if "ContourSequence" not in item or len(item.ContourSequence) == 0:
        raise EmptyMaskError(
            f"{path}: the ROI {name!r} has no contour (ROIContourSequence item without ContourSequence)"
        )
    out = []
    for number, contour in enumerate(item.ContourSequence, start=1):
        kind = str(contour.get("ContourGeometricType", ""))
        if kind != "CLOSED_PLANAR":
            logger.warning(
                "%s: ROI %r contour %d has ContourGeometricType %r; only CLOSED_PLANAR contours are "
                "rasterised, its points are ignored",
                path,
                name,
                number,
                kind,
            )
            continue
        data = contour.get("ContourData")
        if data is None or len(data) == 0:
            raise MissingTagError(f"{path}: ROI {name!r} contour {number} has no ContourData")
        pts = np.asarray(data, dtype=float)
        if pts.size % 3:
            raise DicomError(
                f"{path}: ROI {name!r} contour {number} has {pts.size} ContourData values, not x,y,z triplets"
            )
        out.append(reference.physical_to_index(pts.reshape(-1, 3)))
    if not out:
        raise EmptyMaskError(f"{path}: the ROI {name!r} has no CLOSED_PLANAR contour to rasterise")
    return out


def _contour_plane(idx: np.ndarray, name: str, path: str | os.PathLike[str]) -> float:
    z = idx[:, 2]
    if float(z.max() - z.min()) > _PLANE_TOL_VOXELS:
        raise GeometryMismatchError(
            f"{path}: a contour of ROI {name!r} is not parallel to the slices of the reference grid "
            f"(it spans {z.max() - z.min():.2f} slices); rasterise onto a grid with the orientation of "
            "the image series the contours were drawn on, then resample the mask"
        )
    return float(z.mean())


def read_rtstruct(
    path: str | os.PathLike[str], reference: Image, *, roi: str | None = None
) -> dict[str, Mask]:
    """Rasterise the closed planar contours of an RT Structure Set onto a voxel grid.

    The grid may be any grid in the same frame of reference whose slices are parallel to the
    contour planes: the CT the contours were drawn on, or e.g. a coarser PET grid.

    Method: the contour points are mapped to continuous voxel indices of ``reference``. Each
    reference slice takes the contour plane nearest to its centre, provided it lies within half
    the contour plane spacing (the smallest distance between two distinct contour planes of the
    file; with a single plane, half a reference slice). On a grid finer in z than the contours a
    plane is thus repeated over its slab; on a coarser grid each slice samples the plane nearest
    its centre. In-plane, voxel centres inside a contour are set with the even-odd rule
    (each contour toggles the voxels it encloses), so nested contours make holes.

    Parameters
    ----------
    path : str or os.PathLike
        The RTSTRUCT file.
    reference : Image
        The grid to rasterise onto (geometry only; the array is not used). If its ``meta`` has a
        ``frame_of_reference_uid``, it must match the structure set's.
    roi : str, optional
        ROI to read: an exact ROIName or a regular expression matched in full, ignoring case.
        All ROIs by default.

    Returns
    -------
    dict of str to Mask
        ROI name -> mask on the grid of ``reference`` (may be empty if the ROI lies outside it).

    Raises
    ------
    ROINotFoundError
        If no ROI matches ``roi`` (the message lists the ROIs present).
    EmptyMaskError
        If a selected ROI has no (closed planar) contour.
    MissingTagError
        If a contour has no ContourData.
    GeometryMismatchError
        If the frames of reference differ or a contour is not parallel to the reference slices.
    DicomError
        If the file cannot be read or is not an RT Structure Set.

    References
    ----------
    DICOM PS3.3 C.8.8.6 (ROI Contour Module; "the even-odd rule" in C.8.8.6.3 for inner contours).
    """
    ds = _read_structure_set(path)
    names = _roi_names(ds)
    selected = _select_rois(names, roi, path)
    ref_frame = str(reference.meta.get("frame_of_reference_uid") or "")
    if ref_frame:
        frames = {str(item.get("ReferencedFrameOfReferenceUID", "")) for item in ds.StructureSetROISequence}
        frames.discard("")
        if frames and ref_frame not in frames:
            raise GeometryMismatchError(
                f"{path}: the contours are in frame of reference {sorted(frames)}, the reference grid in "
                f"{ref_frame}; register the images first"
            )
    items = {int(it.get("ReferencedROINumber", -1)): it for it in ds.get("ROIContourSequence", [])}

    per_roi: dict[int, list[tuple[float, np.ndarray]]] = {}
    for number, name in selected.items():
        if number not in items:
            raise EmptyMaskError(
                f"{path}: the ROI {name!r} (ROINumber {number}) has no ROIContourSequence item"
            )
        contours = _contours_in_index_space(items[number], name, reference, path)
        per_roi[number] = [(_contour_plane(c, name, path), c) for c in contours]

    # contour plane spacing from every CLOSED_PLANAR contour of the file, not only the selected ROIs
    all_planes, _ = _cluster_planes(_all_plane_positions(ds, reference))
    steps = np.diff(all_planes)
    half_slab = float(steps.min()) / 2.0 if steps.size else 0.5

    nz, ny, nx = reference.shape
    out: dict[str, Mask] = {}
    for number, planar in per_roi.items():
        name = selected[number]
        arr = np.zeros(reference.shape, dtype=bool)
        roi_planes, labels = _cluster_planes(np.array([z for z, _ in planar]))
        # even-odd filling of each contour plane, at the in-plane voxel centres
        filled = np.zeros((len(roi_planes), ny, nx), dtype=bool)
        for label, (_, idx) in zip(labels, planar, strict=True):
            rr, cc = _draw_polygon(idx[:, 1], idx[:, 0], shape=(ny, nx))
            filled[label, rr, cc] ^= True
        dist = np.abs(roi_planes[np.newaxis, :] - np.arange(nz)[:, np.newaxis])
        nearest = np.argmin(dist, axis=1)
        use = dist[np.arange(nz), nearest] <= half_slab + 1e-6
        arr[use] = filled[nearest[use]]
        if not arr.any():
            logger.warning(
                "%s: ROI %r has no voxel centre inside its contours on the reference grid", path, name
            )
        out[name] = Mask(
            arr,
            reference.spacing,
            reference.origin,
            reference.direction.copy(),
            {"ROIName": name, "source": str(path)},
        )
    return out


def _cluster_planes(z: np.ndarray, tol: float = _PLANE_MERGE_VOXELS) -> tuple[np.ndarray, np.ndarray]:
    """Group contour plane positions (reference slice units) closer than ``tol``.

    Returns the mean position of each group (increasing) and the group of every input.
    """
    if z.size == 0:
        return np.empty(0), np.empty(0, dtype=int)
    order = np.argsort(z, kind="stable")
    new_group = np.concatenate([[False], np.diff(z[order]) > tol])
    sorted_labels = np.cumsum(new_group)
    labels = np.empty(z.size, dtype=int)
    labels[order] = sorted_labels
    centres = np.bincount(labels, weights=z) / np.bincount(labels)
    return centres, labels


def _all_plane_positions(ds: Dataset, reference: Image) -> np.ndarray:
    zs = []
    for item in ds.get("ROIContourSequence", []):
        for contour in item.get("ContourSequence", []):
            data = contour.get("ContourData")
            if contour.get("ContourGeometricType") != "CLOSED_PLANAR" or not data or len(data) % 3:
                continue
            idx = reference.physical_to_index(np.asarray(data, dtype=float).reshape(-1, 3))
            zs.append(float(idx[:, 2].mean()))
    return np.asarray(zs, dtype=float)
