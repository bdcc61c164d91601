"""Feature extraction for many cases, in parallel processes, one failure not stopping the others.

A case is an image and a mask, given as objects or as files:

* volume files that SimpleITK reads (NIfTI ``.nii``/``.nii.gz``, NRRD ``.nrrd``, MetaImage
  ``.mha``); a mask file is a label image: the ROI is its non-zero voxels, or the voxels equal
  to ``label``;
* a DICOM folder as the image (the folder must hold one image series; a PET series is
  converted to SUVbw with :func:`smartimaging.io.suv.to_suv`), with a DICOM RTSTRUCT or SEG
  file as the mask (told apart by its Modality / SOPClassUID); ``roi`` picks the structure or
  segment by name (an exact name or a regular expression matched in full, ignoring case; it may
  be left out when the file holds a single ROI).

:func:`extract_batch` returns the tidy tables of every case concatenated (columns of
:data:`smartimaging.features.extract.OUTPUT_COLUMNS`) and, separately, the failures with their
reasons.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pydicom
import SimpleITK as sitk
from rich.progress import Progress

from smartimaging.exceptions import DicomError, SmartImagingError
from smartimaging.features.extract import OUTPUT_COLUMNS, _crop_to_roi, extract
from smartimaging.features.settings import ExtractionSettings
from smartimaging.image import Image, Mask
from smartimaging.io.dicom import discover, read_series
from smartimaging.io.rtstruct import read_rtstruct
from smartimaging.io.seg import read_seg
from smartimaging.io.suv import to_suv

__all__ = ["BatchResult", "Case", "CaseFailure", "extract_batch", "extract_case", "read_case"]

log = logging.getLogger(__name__)

_RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
_SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


class Case(NamedTuple):
    """One image and ROI to extract features from.

    Parameters
    ----------
    case : str
        Case identifier (copied into the ``case`` column).
    image : path or Image
        Image file, DICOM series folder, or an :class:`~smartimaging.image.Image`.
    mask : path or Mask
        Label image file, RTSTRUCT or SEG file, or a :class:`~smartimaging.image.Mask`.
    roi : str
        ROI name: selects the structure / segment of an RTSTRUCT or SEG, and labels the rows.
    modality : str
        DICOM Modality (``'PT'``, ``'CT'``); taken from the DICOM series when empty.
    label : int or None
        For a label-image mask: the label of the ROI (default: every non-zero voxel).
    """

    case: str
    image: str | os.PathLike[str] | Image
    mask: str | os.PathLike[str] | Mask
    roi: str = ""
    modality: str = ""
    label: int | None = None


@dataclass(frozen=True)
class CaseFailure:
    """A case that could not be extracted, and why (the error message names the fix)."""

    case: str
    roi: str
    reason: str


@dataclass
class BatchResult:
    """Features of the cases that succeeded and the failures of the others.

    Attributes
    ----------
    table : pandas.DataFrame
        Tidy table (columns :data:`~smartimaging.features.extract.OUTPUT_COLUMNS`), cases in
        the order given.
    failures : list of CaseFailure
        Failed cases in the order given.
    """

    table: pd.DataFrame
    failures: list[CaseFailure] = field(default_factory=list)


def _read_volume(path: Path, what: str) -> Image:
    if not path.exists():
        raise SmartImagingError(f"{what} not found: {path}")
    try:
        return Image.from_sitk(sitk.ReadImage(str(path)))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        raise SmartImagingError(
            f"cannot read {what} {path} as an image volume (NIfTI, NRRD, MetaImage, or a DICOM folder): {first}"
        ) from exc


def _read_dicom_image(folder: Path) -> tuple[Image, str]:
    found = discover(folder)
    images = [
        s for s in found.series if s.modality not in ("RTSTRUCT", "SEG", "RTPLAN", "RTDOSE", "SR", "PR")
    ]
    if len(images) != 1:
        listed = (
            ", ".join(f"{s.modality} {s.series_instance_uid} ({s.n_files} files)" for s in images) or "none"
        )
        raise DicomError(
            f"the DICOM folder {folder} must hold exactly one image series, found {len(images)}: {listed}; "
            "point --image at the folder of one series"
        )
    series = images[0]
    image = read_series(series)
    if series.modality == "PT":
        image, _ = to_suv(image)
    return image, series.modality


def _dicom_kind(path: Path) -> str:
    """'RTSTRUCT', 'SEG' or '' (not a DICOM file of either kind)."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality", "SOPClassUID"])
    except Exception:  # not DICOM: the caller reads it as a volume
        return ""
    modality = str(getattr(ds, "Modality", ""))
    sop = str(getattr(ds, "SOPClassUID", ""))
    if modality == "RTSTRUCT" or sop == _RTSTRUCT_SOP_CLASS:
        return "RTSTRUCT"
    if modality == "SEG" or sop == _SEG_SOP_CLASS:
        return "SEG"
    return ""


def _pick_roi(masks: dict[str, Mask], roi: str, path: Path) -> tuple[str, Mask]:
    names = list(masks)
    if not roi:
        if len(names) == 1:
            return names[0], masks[names[0]]
        raise SmartImagingError(f"{path} holds {len(names)} ROIs {names}; choose one with --roi NAME")
    if roi in masks:
        return roi, masks[roi]
    pattern = re.compile(roi, re.IGNORECASE)
    hits = [n for n in names if pattern.fullmatch(n)]
    if len(hits) != 1:
        raise SmartImagingError(
            f"ROI {roi!r} matches {len(hits)} of the ROIs in {path} ({names}); give an exact name or a "
            "pattern that matches one"
        )
    return hits[0], masks[hits[0]]


def read_case(
    image: str | os.PathLike[str] | Image,
    mask: str | os.PathLike[str] | Mask,
    *,
    roi: str = "",
    label: int | None = None,
) -> tuple[Image, Mask, str, str]:
    """Read a case's image and mask (see the module docstring for what is accepted).

    Parameters
    ----------
    image : path or Image
        Volume file, DICOM series folder, or an Image.
    mask : path or Mask
        Label image file, RTSTRUCT or SEG file, or a Mask.
    roi : str
        ROI name or pattern (RTSTRUCT / SEG).
    label : int or None
        ROI label of a label-image mask; non-zero voxels by default.

    Returns
    -------
    image : Image
    mask : Mask
        On the image grid for RTSTRUCT and SEG masks; as read otherwise (``extract`` checks
        the grids).
    roi : str
        The ROI name (the matched structure or segment name for DICOM masks).
    modality : str
        DICOM Modality of an image read from DICOM, else ``''``.

    Raises
    ------
    SmartImagingError
        A file is missing or unreadable, a DICOM folder does not hold exactly one image
        series, the ROI is not found, or ``label`` does not occur in the label image.
    """
    modality = ""
    if isinstance(image, Image):
        img = image
    else:
        ipath = Path(image)
        if ipath.is_dir():
            img, modality = _read_dicom_image(ipath)
        else:
            img = _read_volume(ipath, "image")
    if isinstance(mask, Mask):
        return img, mask, roi, modality
    mpath = Path(mask)
    kind = _dicom_kind(mpath) if mpath.is_file() else ""
    if kind == "RTSTRUCT":
        name, m = _pick_roi(read_rtstruct(mpath, img, roi=roi or None), roi, mpath)
        return img, m, name, modality
    if kind == "SEG":
        name, m = _pick_roi(read_seg(mpath, reference=img), roi, mpath)
        return img, m, name, modality
    labels = _read_volume(mpath, "mask")
    if label is None:
        return img, Mask.from_image(labels), roi, modality
    if not np.any(labels.array == label):
        present = np.unique(labels.array)[:20].tolist()
        raise SmartImagingError(
            f"label {label} does not occur in the mask {mpath}; labels present: {present}"
        )
    sel = Mask(labels.array == label, labels.spacing, labels.origin, labels.direction.copy())
    return img, sel, roi, modality


def extract_case(
    case: Case, *, settings: ExtractionSettings | None = None, threads: int | None = None
) -> pd.DataFrame:
    """Read one case and extract its features (the tidy table of :func:`~smartimaging.features.extract.extract`).

    ``threads`` is passed to :func:`~smartimaging.features.extract.extract`.
    """
    image, mask, roi, modality = read_case(case.image, case.mask, roi=case.roi, label=case.label)
    return extract(
        image,
        mask,
        settings=settings,
        case=case.case,
        roi=case.roi or roi,
        modality=case.modality or modality,
        threads=threads,
    )


def _run_one(
    case: Case, settings: ExtractionSettings | None, threads: int | None = None
) -> tuple[pd.DataFrame | None, str]:
    """Worker: the table, or ``None`` and the reason; never raises for a case's problem."""
    try:
        return extract_case(case, settings=settings, threads=threads), ""
    except SmartImagingError as exc:
        return None, str(exc)
    except Exception as exc:  # an unexpected error in one case must not stop the batch
        log.exception("unexpected error for case %s", case.case)
        return None, f"unexpected {type(exc).__name__}: {exc}"


def _for_worker(case: Case) -> Case:
    """The case as sent to a worker process: an in-memory image and mask cut to the ROI.

    :func:`~smartimaging.features.extract.extract` cuts every image to the ROI's bounding box
    plus the local-intensity sphere margin before any family runs, so doing it here changes
    no value; it spares pickling whole scans (about 100 MB for a whole-body PET) to the
    workers. Paths, and images whose grid differs from the mask's or whose mask is empty, are
    sent as they are, so the worker reports the problem exactly as a serial run would.
    """
    image, mask = case.image, case.mask
    if not (isinstance(image, Image) and isinstance(mask, Mask)):
        return case
    if not image.same_geometry(mask) or mask.n_voxels == 0:
        return case
    small_image, small_mask, _ = _crop_to_roi(image, mask, mask)
    return case._replace(image=small_image, mask=small_mask)


def extract_batch(
    cases: Sequence[Case],
    *,
    settings: ExtractionSettings | None = None,
    n_jobs: int = 1,
    progress: bool = False,
) -> BatchResult:
    """Extract features of many cases; a failing case is recorded and the others go on.

    Parameters
    ----------
    cases : sequence of Case
        The cases (tuples ``(case, image, mask, roi, modality)`` are accepted).
    settings : ExtractionSettings, optional
        Extraction settings shared by every case.
    n_jobs : int
        Number of worker processes; 1 runs in this process.
    progress : bool
        Show a progress bar.

    Returns
    -------
    BatchResult
        The concatenated tidy table (cases in the order given) and the failures.

    Raises
    ------
    ValueError
        If ``n_jobs`` is not a positive integer.
    """
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    todo = [c if isinstance(c, Case) else Case(*c) for c in cases]
    results: list[tuple[pd.DataFrame | None, str]] = [(None, "")] * len(todo)

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("cases", total=len(todo))
        if n_jobs == 1 or len(todo) <= 1:
            for i, case in enumerate(todo):
                results[i] = _run_one(case, settings)
                bar.advance(task)
        else:
            with ProcessPoolExecutor(max_workers=min(n_jobs, len(todo))) as pool:
                # the processes already share the cores: one thread per case in each
                futures = {
                    pool.submit(_run_one, _for_worker(case), settings, 1): i for i, case in enumerate(todo)
                }
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    bar.advance(task)
    tables = [t for t, _ in results if t is not None]
    failures = [
        CaseFailure(c.case, c.roi, reason) for c, (t, reason) in zip(todo, results, strict=True) if t is None
    ]
    table = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(
            {c: pd.Series(dtype="float64" if c == "value" else "object") for c in OUTPUT_COLUMNS}
        )
    )
    return BatchResult(table, failures)
