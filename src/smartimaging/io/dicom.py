"""DICOM discovery (headers only) and image-series reading.

:func:`discover` walks a folder tree of any layout, opens each file up to (not including) the
pixel data, and groups the files by PatientID / StudyInstanceUID / SeriesInstanceUID. Files that
are not DICOM, or are corrupt, are listed with the reason; they never stop the discovery.

:func:`read_series` reads one image series into an :class:`~smartimaging.image.Image`: slices
sorted along their normal, per-slice RescaleSlope / RescaleIntercept applied (PET stores one
slope per slice), geometry checked (missing slices, uneven spacing, gantry tilt, mixed sizes).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from smartimaging.exceptions import DicomError
from smartimaging.image import Image
from smartimaging.io.rtstruct import sort_series

__all__ = ["DiscoveryResult", "FileProblem", "SeriesInfo", "discover", "read_series"]

log = logging.getLogger(__name__)

#: Attributes read during discovery (everything else, and the pixel data, is skipped).
_DISCOVERY_TAGS = [
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPClassUID",
    "Modality",
    "FrameOfReferenceUID",
    "SeriesDescription",
    "StudyDate",
    "SeriesDate",
    "SeriesTime",
]


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series found on disk (files unsorted; :func:`read_series` sorts them)."""

    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    modality: str
    frame_of_reference_uid: str
    series_description: str
    sop_class_uid: str
    files: tuple[Path, ...]
    study_date: str = ""
    series_time: str = ""

    @property
    def n_files(self) -> int:
        """Number of files (slices, or one for a multi-frame object)."""
        return len(self.files)


@dataclass(frozen=True)
class FileProblem:
    """A file that discovery could not use, and why."""

    path: Path
    reason: str


@dataclass
class DiscoveryResult:
    """Series found under a folder, and the files that could not be read."""

    series: list[SeriesInfo] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)

    def by_patient(self) -> dict[str, list[SeriesInfo]]:
        """Series grouped by PatientID (sorted)."""
        out: dict[str, list[SeriesInfo]] = {}
        for s in sorted(self.series, key=lambda s: (s.patient_id, s.series_instance_uid)):
            out.setdefault(s.patient_id, []).append(s)
        return out


def _walk(root: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.upper() == "DICOMDIR" or name.startswith("."):
                continue
            yield Path(dirpath) / name


def _read_header(path: Path) -> Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_DISCOVERY_TAGS)


def discover(root: str | os.PathLike[str], *, progress: bool = False) -> DiscoveryResult:
    """Find every DICOM series under ``root`` by reading headers only.

    Parameters
    ----------
    root : path
        Folder to walk (any layout; symbolic links to folders are not followed).
    progress : bool
        Show a progress bar (files read).

    Returns
    -------
    DiscoveryResult
        ``series``: one :class:`SeriesInfo` per SeriesInstanceUID (sorted by patient, then UID);
        ``problems``: unreadable files with the reason.

    Raises
    ------
    DicomError
        If ``root`` is not a folder.
    """
    base = Path(root)
    if not base.is_dir():
        raise DicomError(f"DICOM folder not found: {base}")
    paths = list(_walk(base))
    groups: dict[str, dict[str, object]] = {}
    files: dict[str, list[Path]] = {}
    problems: list[FileProblem] = []

    from rich.progress import Progress  # local: only needed for the bar

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("reading DICOM headers", total=len(paths))
        for path in paths:
            bar.advance(task)
            try:
                ds = _read_header(path)
            except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
                problems.append(FileProblem(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})"))
                continue
            uid = str(ds.get("SeriesInstanceUID", "") or "")
            if not uid or "SOPClassUID" not in ds:
                problems.append(
                    FileProblem(
                        path, "DICOM file without SeriesInstanceUID or SOPClassUID: not an image object"
                    )
                )
                continue
            if uid not in groups:
                groups[uid] = {
                    "patient_id": str(ds.get("PatientID", "") or ""),
                    "study_instance_uid": str(ds.get("StudyInstanceUID", "") or ""),
                    "series_instance_uid": uid,
                    "modality": str(ds.get("Modality", "") or ""),
                    "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", "") or ""),
                    "series_description": str(ds.get("SeriesDescription", "") or ""),
                    "sop_class_uid": str(ds.get("SOPClassUID", "") or ""),
                    "study_date": str(ds.get("StudyDate", "") or ""),
                    "series_time": str(ds.get("SeriesTime", "") or ""),
                }
                files[uid] = []
            files[uid].append(path)
    series = [SeriesInfo(files=tuple(files[uid]), **groups[uid]) for uid in groups]  # type: ignore[arg-type]
    series.sort(key=lambda s: (s.patient_id, s.series_instance_uid))
    log.info(
        "discovered %d series in %d files under %s (%d problems)",
        len(series),
        len(paths),
        base,
        len(problems),
    )
    return DiscoveryResult(series, problems)


def _check_tilt(datasets: Sequence[Dataset], where: str) -> None:
    tilts = {round(float(ds.get("GantryDetectorTilt", 0) or 0), 3) for ds in datasets}
    if any(t != 0 for t in tilts):
        raise DicomError(
            f"{where}: GantryDetectorTilt (0018,1120) is {sorted(tilts)} degrees; tilted acquisitions need "
            "resampling onto an orthogonal grid first (e.g. with 3D Slicer or dcm2niix), then use the NIfTI"
        )


def _check_sizes(datasets: Sequence[Dataset], where: str) -> None:
    sizes = {(int(ds.Rows), int(ds.Columns)) for ds in datasets if "Rows" in ds and "Columns" in ds}
    if len(sizes) > 1:
        raise DicomError(
            f"{where}: slices of different sizes (Rows, Columns) {sorted(sizes)}; split the series"
        )


def read_series(series: SeriesInfo | Sequence[str | os.PathLike[str]], *, dtype: type = np.float32) -> Image:
    """Read an image series (single-frame slices) into an Image.

    Parameters
    ----------
    series : SeriesInfo or sequence of paths
        The files of one series, in any order.
    dtype : numpy dtype
        Type of the returned values (after rescale).

    Returns
    -------
    Image
        Values after RescaleSlope / RescaleIntercept, slices sorted along the normal.
        ``meta`` holds ``Modality``, ``SeriesInstanceUID``, ``FrameOfReferenceUID``,
        ``PatientID``, ``files`` (sorted paths), ``header`` (first slice without pixel data)
        and ``headers`` (every slice without pixel data, in order: SUV needs the earliest
        AcquisitionTime).

    Raises
    ------
    DicomError
        The message names the file and what is wrong: unreadable file, missing pixel data,
        missing slice or uneven spacing, gantry tilt, mixed sizes or orientations.
    """
    paths = [Path(p) for p in (series.files if isinstance(series, SeriesInfo) else series)]
    if not paths:
        raise DicomError("read_series: no file given")
    datasets: list[Dataset] = []
    for path in paths:
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, EOFError, OSError, ValueError) as exc:
            raise DicomError(
                f"{path}: cannot read the DICOM file ({exc}); replace or remove the file"
            ) from exc
        ds.filename = str(path)
        datasets.append(ds)
    where = f"series {datasets[0].get('SeriesInstanceUID', '?')} ({paths[0].parent})"
    if len(datasets) == 1 and int(datasets[0].get("NumberOfFrames", 1) or 1) > 1:
        raise DicomError(
            f"{paths[0]}: a multi-frame (enhanced) image object; convert it to single-frame slices "
            "(e.g. with dcm2niix or pydicom's pixel handlers) or to NIfTI, then read that"
        )
    _check_tilt(datasets, where)
    _check_sizes(datasets, where)
    ordered, grid = sort_series(datasets)
    rows, cols = grid.shape[1], grid.shape[2]
    volume: np.ndarray = np.empty((len(ordered), rows, cols), dtype=dtype)
    for k, sl in enumerate(ordered):
        name = str(getattr(sl, "filename", "") or "")
        try:
            pixels = sl.pixel_array
        except (AttributeError, ValueError, TypeError, RuntimeError) as exc:
            raise DicomError(
                f"{name}: pixel data missing or unreadable ({exc}); the file may be truncated - "
                "re-export the series"
            ) from exc
        if pixels.shape != (rows, cols):
            raise DicomError(f"{name}: pixel array of shape {pixels.shape}, expected {(rows, cols)}")
        slope = float(sl.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(sl.get("RescaleIntercept", 0.0) or 0.0)
        volume[k] = pixels.astype(np.float64) * slope + intercept
    headers: list[Dataset] = []
    for source in ordered:
        head = source.copy()
        if "PixelData" in head:
            del head.PixelData
        headers.append(head)
    first = ordered[0]
    meta = {
        "Modality": str(first.get("Modality", "")),
        "SeriesInstanceUID": str(first.get("SeriesInstanceUID", "")),
        "FrameOfReferenceUID": str(first.get("FrameOfReferenceUID", "")),
        "PatientID": str(first.get("PatientID", "")),
        "files": [Path(str(ds.filename)) for ds in ordered],
        "header": headers[0],
        "headers": headers,
    }
    return Image(volume, grid.spacing, grid.origin, grid.direction.copy(), meta)
