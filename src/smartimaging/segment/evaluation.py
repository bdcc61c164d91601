"""Evaluate segmentations stored in files: one pair of masks, or two folders paired by name.

A mask file is one of:

* a label volume that SimpleITK reads (NIfTI ``.nii``/``.nii.gz``, NRRD, MetaImage): the
  mask is its non-zero voxels;
* a DICOM SEG: the union of its segments (or of those whose label matches ``roi``);
* a DICOM RTSTRUCT: the union of its ROIs (or of those matching ``roi``), rasterised onto the
  grid of the other mask of the pair, or of ``reference`` when given (an RTSTRUCT has no grid
  of its own, so a pair of two RTSTRUCTs needs ``reference``).

A SEG is carried onto the grid of the other mask (or ``reference``) too, so a SEG can be
compared with a NIfTI mask on the same grid. Folders are paired by file name without its
extension (``p001.nii.gz`` with ``p001.nrrd``, ``p001.dcm``); a name found in only one folder is
an error that lists the unpaired names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom

from smartimaging.exceptions import SmartImagingError
from smartimaging.image import Image, Mask
from smartimaging.io.nifti import read_image
from smartimaging.io.rtstruct import read_rtstruct
from smartimaging.io.seg import read_seg
from smartimaging.segment.metrics import evaluate_cohort

__all__ = ["case_name", "evaluate_paths", "pair_folders", "read_mask_file"]

_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
_DICOM_SUFFIXES = (".dcm", ".dicom", "")
_RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
_SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def case_name(path: str | os.PathLike[str]) -> str:
    """File name without its volume or DICOM extension (``p001.nii.gz`` -> ``p001``)."""
    name = Path(path).name
    for suffix in (*_VOLUME_SUFFIXES, ".dcm", ".dicom"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _dicom_kind(path: Path) -> str:
    """``'RTSTRUCT'``, ``'SEG'`` or ``''`` (not a DICOM file of either kind)."""
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


def _union(masks: dict[str, Mask], roi: str | None, path: Path) -> Mask:
    names = list(masks)
    if roi is not None:
        pattern = re.compile(roi, re.IGNORECASE)
        names = [n for n in names if n == roi or pattern.fullmatch(n)]
        if not names:
            raise SmartImagingError(f"no ROI / segment of {path} matches {roi!r}; present: {list(masks)}")
    first = masks[names[0]]
    array = np.zeros(first.shape, dtype=bool)
    for n in names:
        array |= masks[n].array
    return Mask(array, first.spacing, first.origin, first.direction.copy(), {"source": str(path)})


def read_mask_file(
    path: str | os.PathLike[str], *, reference: Image | None = None, roi: str | None = None
) -> Mask:
    """Read a mask from a label volume, a DICOM SEG or a DICOM RTSTRUCT file.

    Parameters
    ----------
    path : str or path-like
        The mask file (see the module docstring).
    reference : Image, optional
        Grid for SEG and RTSTRUCT masks (required for an RTSTRUCT); a volume file is read on
        its own grid.
    roi : str, optional
        For SEG / RTSTRUCT: keep the segments / ROIs whose name equals ``roi`` or matches it as
        a regular expression in full (ignoring case); all by default. Their union is returned.

    Returns
    -------
    Mask

    Raises
    ------
    SmartImagingError
        The file is missing or unreadable, an RTSTRUCT comes without ``reference``, or no ROI
        matches ``roi``.
    """
    p = Path(path)
    if not p.is_file():
        raise SmartImagingError(f"mask file not found: {p}")
    kind = _dicom_kind(p)
    if kind == "RTSTRUCT":
        if reference is None:
            raise SmartImagingError(
                f"{p} is an RTSTRUCT, which has no voxel grid of its own: compare it with a volume or SEG "
                "mask, or give a reference image (--reference) to rasterise it onto"
            )
        return _union(read_rtstruct(p, reference), roi, p)
    if kind == "SEG":
        return _union(read_seg(p, reference=reference), roi, p)
    return Mask.from_image(read_image(p))


def _read_pair(pred: Path, truth: Path, reference: Image | None, roi: str | None) -> tuple[Mask, Mask]:
    """Read both masks, volumes first so that a SEG / RTSTRUCT lands on the other's grid."""
    kinds = {p: _dicom_kind(p) for p in (pred, truth)}
    order = sorted((pred, truth), key=lambda p: kinds[p] != "")
    grid = reference
    out: dict[Path, Mask] = {}
    for p in order:
        out[p] = read_mask_file(p, reference=grid, roi=roi)
        grid = grid if grid is not None else out[p]
    return out[pred], out[truth]


def _mask_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        name = case_name(p)
        if name in files:
            raise SmartImagingError(
                f"{folder} holds two mask files for case {name!r}: {files[name].name} and {p.name}; keep one"
            )
        files[name] = p
    return files


def pair_folders(
    pred_dir: str | os.PathLike[str], truth_dir: str | os.PathLike[str]
) -> list[tuple[str, Path, Path]]:
    """Pair the mask files of two folders by file name without extension.

    Returns
    -------
    list of (str, Path, Path)
        ``(case, pred_file, truth_file)`` sorted by case.

    Raises
    ------
    SmartImagingError
        A folder is empty, or a case is found in only one folder (the message lists them).
    """
    pred = _mask_files(Path(pred_dir))
    truth = _mask_files(Path(truth_dir))
    only_pred = sorted(set(pred) - set(truth))
    only_truth = sorted(set(truth) - set(pred))
    if only_pred or only_truth:
        raise SmartImagingError(
            f"the folders do not hold the same cases: only in {pred_dir}: {only_pred[:10]}, only in "
            f"{truth_dir}: {only_truth[:10]}; masks are paired by file name without extension"
        )
    if not pred:
        raise SmartImagingError(f"no mask file found in {pred_dir}")
    return [(c, pred[c], truth[c]) for c in sorted(pred)]


def evaluate_paths(
    pred: str | os.PathLike[str],
    truth: str | os.PathLike[str],
    *,
    reference: str | os.PathLike[str] | None = None,
    roi: str | None = None,
    tolerance_mm: float = 2.0,
    min_overlap: float = 0.0,
    on_case: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Evaluate a predicted mask file against a reference file, or two folders of them.

    Parameters
    ----------
    pred, truth : str or path-like
        Two mask files, or two folders of mask files paired by name.
    reference : str or path-like, optional
        Image volume whose grid SEG / RTSTRUCT masks are read onto (needed when both masks
        are RTSTRUCTs).
    roi : str, optional
        ROI / segment name or pattern for DICOM masks (all, united, by default).
    tolerance_mm, min_overlap
        As in :func:`smartimaging.segment.metrics.evaluate_segmentation`.
    on_case : callable, optional
        Called with each case name after it is evaluated (progress).

    Returns
    -------
    pandas.DataFrame
        The table of :func:`smartimaging.segment.metrics.evaluate_cohort` (case = file name
        without extension).

    Raises
    ------
    SmartImagingError
        Inputs missing or mixed (one file and one folder), unpaired cases, unreadable masks,
        or masks on different grids (GeometryMismatchError; the message names the case).
    """
    p, t = Path(pred), Path(truth)
    for x in (p, t):
        if not x.exists():
            raise SmartImagingError(f"not found: {x}")
    if p.is_dir() != t.is_dir():
        raise SmartImagingError(f"give two mask files or two folders, got {p} and {t}")
    ref = read_image(reference) if reference is not None else None
    pairs = pair_folders(p, t) if p.is_dir() else [(case_name(t), p, t)]

    def _cases() -> Iterator[tuple[str, Mask, Mask]]:
        for case, pf, tf in pairs:
            pm, tm = _read_pair(pf, tf, ref, roi)
            yield case, pm, tm
            if on_case is not None:
                on_case(case)

    return evaluate_cohort(_cases(), tolerance_mm=tolerance_mm, min_overlap=min_overlap)
