"""DICOM discovery (find and group series in a folder tree) and series reading into an :class:`Image`.

Discovery reads headers only and never aborts on a bad file: unreadable, non-DICOM or incomplete
files are reported as :class:`FileProblem` entries. Reading a series sorts the slices along the
slice normal, applies each slice's own RescaleSlope/RescaleIntercept and checks the geometry
(same matrix, pixel spacing and orientation, no duplicate or missing slices, no gantry tilt).
"""

from __future__ import annotations

import io
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag

from smartimaging.exceptions import DicomError
from smartimaging.image import Image

__all__ = ["DiscoveryResult", "FileProblem", "SeriesInfo", "discover", "read_series", "slice_geometry"]

_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
_HEADER_TAGS = [
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "FrameOfReferenceUID",
    "SeriesDescription",
    "SOPClassUID",
    "StudyDate",
    "SeriesDate",
    "SeriesTime",
    "SeriesNumber",
]
#: discovery stops parsing a header after this tag (the largest of _HEADER_TAGS): the long PET/CT
#: attributes of later groups (sequences, private blocks) are never parsed
_HEADER_TAG_NUMBERS = [BaseTag(pydicom.datadict.tag_for_keyword(k) or 0) for k in _HEADER_TAGS]
_LAST_HEADER_TAG = max(_HEADER_TAG_NUMBERS)


#: bytes read at once for a discovery header; a header whose identifying attributes lie further in
#: is parsed again from the file
_HEAD_BYTES = 16384


def _after_header_tags(tag: int, vr: str | None, length: int) -> bool:
    return tag > _LAST_HEADER_TAG


def _read_discovery_header(path: Path) -> Dataset:
    """The identifying attributes of a DICOM file, parsing the header only up to the last needed tag.

    The first 16 KiB are parsed from memory (cheap seeks and tells); when the parse does not reach
    past the last needed tag within them, the file itself is parsed.
    """
    tags: list[BaseTag | int] = list(_HEADER_TAG_NUMBERS)
    with open(path, "rb") as fp:
        head = fp.read(_HEAD_BYTES)
        if len(head) < _HEAD_BYTES:  # the whole file is in memory
            return pydicom.filereader.read_partial(
                io.BytesIO(head), stop_when=_after_header_tags, specific_tags=tags
            )
        stopped: list[bool] = []

        def stop(tag: int, vr: str | None, length: int) -> bool:
            if tag > _LAST_HEADER_TAG:
                stopped.append(True)
                return True
            return False

        try:
            ds = pydicom.filereader.read_partial(io.BytesIO(head), stop_when=stop, specific_tags=tags)
            if stopped:
                return ds
        except Exception:  # cut inside an element at the end of the buffer: parse the file
            pass
        fp.seek(0)
        return pydicom.filereader.read_partial(fp, stop_when=_after_header_tags, specific_tags=tags)


# relative tolerance on slice steps before a series counts as unevenly spaced
_UNEVEN_REL_TOL = 0.05
_GAP_FACTOR = 1.5


@dataclass(frozen=True)
class FileProblem:
    """A file that discovery could not use, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series found by :func:`discover` (header information only)."""

    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    modality: str
    frame_of_reference_uid: str
    series_description: str
    sop_class_uid: str
    files: tuple[Path, ...]
    n_files: int
    study_date: str = ""
    series_date: str = ""
    series_time: str = ""
    series_number: int | None = None


@dataclass
class DiscoveryResult:
    """Series found under a folder, plus the files that could not be used."""

    series: list[SeriesInfo] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    n_files_scanned: int = 0
    seconds: float = 0.0


def _str(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _series_attributes(ds: Dataset) -> dict[str, Any]:
    """The series-level attributes of :class:`SeriesInfo` from a series' first header."""
    number = ds.get("SeriesNumber")
    return {
        "modality": _str(ds, "Modality"),
        "frame_of_reference_uid": _str(ds, "FrameOfReferenceUID"),
        "series_description": _str(ds, "SeriesDescription"),
        "sop_class_uid": _str(ds, "SOPClassUID"),
        "study_date": _str(ds, "StudyDate"),
        "series_date": _str(ds, "SeriesDate"),
        "series_time": _str(ds, "SeriesTime"),
        "series_number": int(number) if number not in (None, "") else None,
    }


def discover(root: str | os.PathLike[str], *, progress: bool = False) -> DiscoveryResult:
    """Find the DICOM series under ``root`` by reading headers only.

    Each header is parsed only up to the last identifying attribute (FrameOfReferenceUID,
    (0020,0052)), so a file truncated after it is grouped here and rejected by :func:`read_series`.

    Files are grouped by PatientID / StudyInstanceUID / SeriesInstanceUID. DICOMDIR files are
    skipped; files that are not DICOM, are truncated or lack the identifying UIDs are listed in
    ``problems`` (path and reason) and never abort the discovery.

    Parameters
    ----------
    root : path
        Folder to search recursively (a single file is accepted too).
    progress : bool
        Show a progress bar (rich) while reading headers.

    Returns
    -------
    DiscoveryResult
        Series sorted by patient, study, modality and series description; problems sorted by path.

    Raises
    ------
    DicomError
        If ``root`` does not exist.
    """
    root_path = Path(root)
    if not root_path.exists():
        raise DicomError(f"DICOM folder {root_path} does not exist: check the path")
    t0 = time.perf_counter()
    if root_path.is_file():
        paths = [root_path]
    else:
        paths = []
        for dirpath, dirnames, filenames in os.walk(root_path):
            dirnames.sort()
            paths.extend(Path(dirpath) / name for name in sorted(filenames))

    # per series: the first file's series-level attributes and every member's path (the parsed
    # headers are dropped at once: keeping ~35k partial datasets of a 250-patient cohort cost ~1 GB)
    groups: dict[tuple[str, str, str], tuple[dict[str, Any], list[Path]]] = {}
    problems: list[FileProblem] = []
    iterator: Any = paths
    if progress:
        from rich.progress import track

        iterator = track(paths, description=f"Reading DICOM headers under {root_path}")
    for path in iterator:
        if path.name.upper() == "DICOMDIR":
            continue
        try:
            with warnings.catch_warnings():
                # pydicom warns on out-of-standard values; discovery only groups, so read on
                warnings.simplefilter("ignore")
                ds = _read_discovery_header(path)
        except InvalidDicomError as exc:
            problems.append(FileProblem(path, f"not a DICOM file ({exc})"))
            continue
        except Exception as exc:  # truncated / corrupt files raise many different errors
            problems.append(
                FileProblem(path, f"corrupt or truncated DICOM file: {type(exc).__name__}: {exc}")
            )
            continue
        sop_class = _str(ds, "SOPClassUID") or str(getattr(ds.file_meta, "MediaStorageSOPClassUID", ""))
        if sop_class == _DICOMDIR_SOP_CLASS:
            continue
        series_uid = _str(ds, "SeriesInstanceUID")
        study_uid = _str(ds, "StudyInstanceUID")
        if not series_uid or not study_uid:
            problems.append(
                FileProblem(
                    path,
                    "DICOM file without SeriesInstanceUID (0020,000E) or StudyInstanceUID (0020,000D): "
                    "truncated file, or not an image object",
                )
            )
            continue
        key = (_str(ds, "PatientID"), study_uid, series_uid)
        group = groups.get(key)
        if group is None:
            groups[key] = (_series_attributes(ds), [path])
        else:
            group[1].append(path)

    series: list[SeriesInfo] = []
    for (patient_id, study_uid, series_uid), (attributes, members) in groups.items():
        series.append(
            SeriesInfo(
                patient_id=patient_id,
                study_instance_uid=study_uid,
                series_instance_uid=series_uid,
                files=tuple(members),
                n_files=len(members),
                **attributes,
            )
        )
    series.sort(
        key=lambda s: (
            s.patient_id,
            s.study_instance_uid,
            s.modality,
            s.series_description,
            s.series_instance_uid,
        )
    )
    problems.sort(key=lambda p: str(p.path))
    return DiscoveryResult(series, problems, len(paths), time.perf_counter() - t0)


def _floats(ds: Dataset, keyword: str, n: int, path: Path | str) -> np.ndarray:
    value = ds.get(keyword)
    if value is None:
        raise DicomError(f"{path}: {keyword} is missing; the slice geometry cannot be determined")
    arr = np.asarray([float(v) for v in (value if isinstance(value, Sequence) else [value])], dtype=float)
    if arr.shape != (n,):
        raise DicomError(f"{path}: {keyword} must have {n} values, got {list(arr)}")
    return arr


def _pixels(ds: Dataset, path: Path | str) -> np.ndarray:
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DicomError(
            f"{path}: no pixel data (PixelData (7FE0,0010) absent): the file is not an image or was "
            "stripped; remove it from the series folder or re-export the series"
        )
    try:
        return np.asarray(ds.pixel_array)
    except Exception as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise DicomError(
            f"{path}: pixel data cannot be decoded ({type(exc).__name__}: {exc}); transfer syntax {ts}. "
            "If the file is compressed, install a decoder (pylibjpeg, gdcm) or decompress it "
            "(e.g. `gdcmconv --raw`); if it is truncated, re-export the series"
        ) from exc


def _rescale(ds: Dataset) -> tuple[float, float]:
    slope = ds.get("RescaleSlope")
    intercept = ds.get("RescaleIntercept")
    return (
        float(slope) if slope not in (None, "") else 1.0,
        float(intercept) if intercept not in (None, "") else 0.0,
    )


def _check_tilt(ds: Dataset, path: Path | str) -> None:
    tilt = ds.get("GantryDetectorTilt")
    if tilt not in (None, "") and abs(float(tilt)) > 1e-3:
        raise DicomError(
            f"{path}: GantryDetectorTilt (0018,1120) = {float(tilt)} degrees: tilted-gantry series are not "
            "supported; resample the series to an orthogonal grid first (e.g. with a tilt-correcting converter)"
        )


def _direction(iop: np.ndarray) -> np.ndarray:
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    return np.column_stack([row, col, normal])


def _read_multiframe(ds: Dataset, path: Path, dtype: npt.DTypeLike) -> Image:
    """Read an enhanced (multi-frame) single-file image using its functional groups."""
    try:
        shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else Dataset()
        per_frame = ds.PerFrameFunctionalGroupsSequence
    except AttributeError as exc:
        raise DicomError(
            f"{path}: multi-frame image (NumberOfFrames = {ds.get('NumberOfFrames')}) without "
            "PerFrameFunctionalGroupsSequence (5200,9230): its frame geometry is unknown; convert it to "
            "single-frame slices (e.g. `dcm2niix` or `emf2sf`)"
        ) from exc

    def group(frame: Dataset, name: str) -> Dataset | None:
        for source in (frame, shared):
            if name in source and len(source[name].value) > 0:
                return source[name].value[0]  # type: ignore[no-any-return]
        return None

    positions, slopes, intercepts = [], [], []
    iop = spacing = None
    for i, frame in enumerate(per_frame):
        pos = group(frame, "PlanePositionSequence")
        ori = group(frame, "PlaneOrientationSequence")
        meas = group(frame, "PixelMeasuresSequence")
        if pos is None or ori is None or meas is None:
            raise DicomError(
                f"{path}: frame {i} lacks PlanePositionSequence / PlaneOrientationSequence / "
                "PixelMeasuresSequence: the multi-frame geometry cannot be read; convert the file to "
                "single-frame slices (e.g. `dcm2niix`)"
            )
        f_iop = _floats(ori, "ImageOrientationPatient", 6, path)
        f_sp = _floats(meas, "PixelSpacing", 2, path)
        if iop is None or spacing is None:
            iop, spacing = f_iop, f_sp
        elif not (np.allclose(iop, f_iop, atol=1e-4) and np.allclose(spacing, f_sp, atol=1e-4)):
            raise DicomError(f"{path}: frames differ in orientation or pixel spacing (frame {i})")
        positions.append(_floats(pos, "ImagePositionPatient", 3, path))
        trans = group(frame, "PixelValueTransformationSequence")
        slopes.append(_rescale(trans)[0] if trans is not None else _rescale(ds)[0])
        intercepts.append(_rescale(trans)[1] if trans is not None else _rescale(ds)[1])
    if iop is None or spacing is None:
        raise DicomError(f"{path}: multi-frame image without frames in PerFrameFunctionalGroupsSequence")
    pixels = _pixels(ds, path)
    if pixels.ndim == 2:
        pixels = pixels[None]
    image, _ = _assemble(
        pixels,
        np.asarray(positions),
        iop,
        spacing,
        np.asarray(slopes),
        np.asarray(intercepts),
        [f"{path} [frame {i}]" for i in range(len(positions))],
        dtype,
    )
    return image


def slice_geometry(
    positions: np.ndarray,
    iop: np.ndarray,
    pixel_spacing: np.ndarray,
    names: Sequence[str],
    *,
    single_slice_step: float = 1.0,
) -> tuple[np.ndarray, tuple[float, float, float], tuple[float, float, float], np.ndarray]:
    """Order slices along their normal, check that they form a regular grid, and describe it.

    The one rule every reader and writer of slice stacks uses (``read_series``, the RTSTRUCT and
    SEG writers), so that they agree on the grid of a series.

    Parameters
    ----------
    positions : numpy.ndarray
        ImagePositionPatient of each slice, shape ``(n, 3)``.
    iop : numpy.ndarray
        ImageOrientationPatient (6 values), shared by all slices.
    pixel_spacing : numpy.ndarray
        PixelSpacing (row spacing, column spacing).
    names : sequence of str
        A name per slice (file or SOP instance) for the messages.
    single_slice_step : float
        Slice step reported for a one-slice stack (e.g. SliceThickness).

    Returns
    -------
    order : numpy.ndarray
        Indices sorting the slices by position along the normal (increasing).
    spacing : tuple of float
        ``(x, y, z)`` voxel size in mm; z is the median step.
    origin : tuple of float
        Position of the first slice after sorting.
    direction : numpy.ndarray
        3 x 3 direction matrix (columns: row, column, normal).

    Raises
    ------
    DicomError
        Duplicate positions, missing slices (a step over 1.5 x the median), uneven spacing
        (a step more than 5 % off the median) or slice origins drifting off the normal (a
        sheared or tilted series); the message names the positions and the slice.
    """
    direction = _direction(iop)
    normal = direction[:, 2]
    dist = positions @ normal
    order = np.argsort(dist, kind="stable")
    dist = dist[order]
    positions = positions[order]
    names = [names[i] for i in order]
    n = len(dist)
    if n > 1:
        steps = np.diff(dist)
        dup = np.flatnonzero(steps < 1e-4)
        if dup.size:
            i = int(dup[0])
            raise DicomError(
                f"duplicate slice position {dist[i]:.4f} mm along the slice normal in {names[i]} and "
                f"{names[i + 1]}: the folder holds two copies of a slice or two series mixed together; "
                "remove the duplicate files"
            )
        median = float(np.median(steps))
        gaps = np.flatnonzero(steps > _GAP_FACTOR * median)
        if gaps.size:
            where = ", ".join(f"between {dist[i]:.3f} and {dist[i + 1]:.3f} mm" for i in gaps[:5])
            raise DicomError(
                f"missing slice(s): gap of {float(steps[gaps[0]]):.3f} mm (median step {median:.3f} mm) "
                f"{where} along the slice normal (after {names[int(gaps[0])]}): the series is incomplete; "
                "re-export it from the PACS"
            )
        uneven = np.flatnonzero(np.abs(steps - median) > max(_UNEVEN_REL_TOL * median, 1e-3))
        if uneven.size:
            i = int(uneven[0])
            raise DicomError(
                f"uneven slice spacing: step {float(steps[i]):.4f} mm between positions {dist[i]:.3f} and "
                f"{dist[i + 1]:.3f} mm (median {median:.4f} mm, {names[i]}): resample the series to a "
                "regular grid before reading it"
            )
        # in-plane drift of the slice origins means a sheared (tilted) acquisition
        inplane = (positions - positions[0]) - np.outer(dist - dist[0], normal)
        if np.abs(inplane).max() > max(0.01 * median, 1e-2):
            raise DicomError(
                f"slice origins drift perpendicular to the slice normal (up to {np.abs(inplane).max():.3f} mm; "
                f"first {names[0]}): the series is sheared, as with a gantry tilt (GantryDetectorTilt "
                "(0018,1120)); resample it to an orthogonal grid first"
            )
        step = median
    else:
        step = float(single_slice_step)
    spacing = (float(pixel_spacing[1]), float(pixel_spacing[0]), float(step))
    origin = (float(positions[0][0]), float(positions[0][1]), float(positions[0][2]))
    return order, spacing, origin, direction


def _assemble(
    stack: np.ndarray,
    positions: np.ndarray,
    iop: np.ndarray,
    pixel_spacing: np.ndarray,
    slopes: np.ndarray,
    intercepts: np.ndarray,
    names: list[str],
    dtype: npt.DTypeLike,
) -> tuple[Image, np.ndarray]:
    """Sort and rescale the slices into an Image; also return the sort order (internal)."""
    order, spacing, origin, direction = slice_geometry(positions, iop, pixel_spacing, names)
    slopes = slopes[order]
    values = stack[order].astype(np.float64) * slopes[:, None, None] + intercepts[order][:, None, None]
    return Image(values.astype(dtype), spacing, origin, direction, {"rescale_slopes": slopes}), order


def read_series(
    series: SeriesInfo | Sequence[str | os.PathLike[str]], *, dtype: npt.DTypeLike = np.float32
) -> Image:
    """Read a DICOM series (one file per slice, or one enhanced multi-frame file) into an Image.

    Slices are sorted by their position along the slice normal (cross product of the two
    ImageOrientationPatient vectors, dotted with ImagePositionPatient). Each slice's own
    RescaleSlope / RescaleIntercept is applied (PET stores one slope per slice).

    Parameters
    ----------
    series : SeriesInfo or sequence of paths
        The series found by :func:`discover`, or its files.
    dtype : numpy dtype
        Voxel type of the result (default float32).

    Returns
    -------
    Image
        Voxels in rescaled units (HU, Bq/ml, ...). ``spacing`` = (column spacing, row spacing, slice
        step), ``origin`` = ImagePositionPatient of the first slice, ``direction`` from
        ImageOrientationPatient and the normal. ``meta`` holds ``modality``, ``series_instance_uid``,
        ``frame_of_reference_uid``, ``patient_id``, ``units``, ``files`` (sorted paths),
        ``header`` (first slice's dataset without pixel data) and ``headers`` (all of them, sorted).

    Raises
    ------
    DicomError
        Unreadable files or pixel data, inconsistent Rows/Columns/PixelSpacing/orientation, duplicate
        or missing slices, uneven spacing, gantry tilt (GantryDetectorTilt (0018,1120)), several
        series mixed together. The message names the files concerned.
    """
    paths = [Path(p) for p in (series.files if isinstance(series, SeriesInfo) else series)]
    if not paths:
        raise DicomError(
            "read_series got no files: pass a SeriesInfo from discover() or a list of slice paths"
        )
    datasets: list[Dataset] = []
    for path in paths:
        try:
            datasets.append(pydicom.dcmread(path))
        except FileNotFoundError as exc:
            raise DicomError(f"{path}: file not found; run discover() again on the folder") from exc
        except Exception as exc:
            raise DicomError(
                f"{path}: cannot be read as DICOM ({type(exc).__name__}: {exc}); remove or re-export the file"
            ) from exc

    series_uids = {_str(ds, "SeriesInstanceUID") for ds in datasets}
    if len(series_uids) > 1:
        raise DicomError(
            f"the files belong to {len(series_uids)} different series ({sorted(series_uids)}), e.g. {paths[0]}: "
            "read each series separately (use discover() to group them)"
        )

    ds0 = datasets[0]
    n_frames = int(ds0.get("NumberOfFrames", 1) or 1)
    if n_frames > 1:
        if len(datasets) > 1:
            raise DicomError(
                f"{paths[0]} is a multi-frame image ({n_frames} frames) but the series has {len(datasets)} "
                "files: read each multi-frame file on its own"
            )
        image = _read_multiframe(ds0, paths[0], dtype)
        sorted_paths = [paths[0]]
    else:
        ref_rows, ref_cols = ds0.get("Rows"), ds0.get("Columns")
        ref_iop = _floats(ds0, "ImageOrientationPatient", 6, paths[0])
        ref_ps = _floats(ds0, "PixelSpacing", 2, paths[0])
        positions = np.empty((len(datasets), 3))
        slopes = np.empty(len(datasets))
        intercepts = np.empty(len(datasets))
        slices = []
        for i, (path, ds) in enumerate(zip(paths, datasets, strict=True)):
            _check_tilt(ds, path)
            if (ds.get("Rows"), ds.get("Columns")) != (ref_rows, ref_cols):
                raise DicomError(
                    f"{path} has {ds.get('Rows')}x{ds.get('Columns')} pixels but {paths[0]} has "
                    f"{ref_rows}x{ref_cols} (Rows/Columns): the files do not form one volume"
                )
            if not np.allclose(_floats(ds, "PixelSpacing", 2, path), ref_ps, atol=1e-4):
                raise DicomError(
                    f"{path} has PixelSpacing {list(ds.PixelSpacing)} but {paths[0]} has {list(ref_ps)}: "
                    "the files do not form one volume"
                )
            if not np.allclose(_floats(ds, "ImageOrientationPatient", 6, path), ref_iop, atol=1e-4):
                raise DicomError(
                    f"{path} has ImageOrientationPatient {list(ds.ImageOrientationPatient)} but {paths[0]} has "
                    f"{list(ref_iop)}: the files do not form one volume"
                )
            positions[i] = _floats(ds, "ImagePositionPatient", 3, path)
            slopes[i], intercepts[i] = _rescale(ds)
            px = _pixels(ds, path)
            if px.ndim != 2:
                raise DicomError(f"{path}: expected a 2D slice, got pixel array of shape {px.shape}")
            slices.append(px)
        image, order = _assemble(
            np.stack(slices), positions, ref_iop, ref_ps, slopes, intercepts, [str(p) for p in paths], dtype
        )
        sorted_paths = [paths[i] for i in order]
        datasets = [datasets[i] for i in order]

    headers = []
    for ds in datasets:
        for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            if keyword in ds:
                del ds[keyword]
        headers.append(ds)
    meta = {
        **image.meta,
        "modality": _str(ds0, "Modality"),
        "series_instance_uid": _str(ds0, "SeriesInstanceUID"),
        "frame_of_reference_uid": _str(ds0, "FrameOfReferenceUID"),
        "patient_id": _str(ds0, "PatientID"),
        "units": _str(ds0, "Units") or ("HU" if _str(ds0, "Modality") == "CT" else ""),
        "files": sorted_paths,
        "header": headers[0],
        "headers": headers,
    }
    return Image(image.array, image.spacing, image.origin, image.direction, meta)
