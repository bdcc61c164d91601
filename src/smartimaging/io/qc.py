"""Acquisition quality control of PET/CT series from their DICOM headers (no pixel data read).

:func:`series_qc` gives one row of QC attributes per series: scanner, radiopharmaceutical, dose
per kg, uptake time, blood glucose, reconstruction (method, iterations and subsets, filter,
matrix, voxel size, time of flight, PSF), with flags against the EANM FDG PET/CT guideline.
:func:`cohort_qc` makes the table for a cohort, :func:`qc_summary` says what varies across the
cohort, and :func:`suggest_batches` proposes harmonisation batches (scanner x reconstruction).

Nothing here raises on a bad header: problems are recorded in the ``qc_errors`` column and in
the flags. See docs/qc.md for the sources of the limits and the parsing heuristics.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from smartimaging.exceptions import SUVError
from smartimaging.io.dicom import DiscoveryResult, SeriesInfo
from smartimaging.io.suv import suv_factor, uptake_time

__all__ = [
    "BATCH_KEYS",
    "EANM_DOSE_PER_KG_MBQ",
    "EANM_GLUCOSE_MAX_MMOL_L",
    "EANM_UPTAKE_MIN",
    "QC_COLUMNS",
    "SUMMARY_ATTRIBUTES",
    "cohort_qc",
    "headers_qc",
    "parse_filter_fwhm",
    "parse_reconstruction",
    "qc_summary",
    "series_qc",
    "suggest_batches",
]

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: Uptake time window (minutes): EANM FDG PET/CT guideline 2.0 (Boellaard 2015), 60 min, 55-75 accepted.
EANM_UPTAKE_MIN: tuple[float, float] = (55.0, 75.0)
#: Administered activity per body weight (MBq/kg) treated as plausible; see docs/qc.md.
EANM_DOSE_PER_KG_MBQ: tuple[float, float] = (2.0, 4.0)
#: Blood glucose above which EANM advises to reschedule the scan (11 mmol/l = 200 mg/dl).
EANM_GLUCOSE_MAX_MMOL_L = 11.0
_MG_DL_PER_MMOL_L = 18.016  # molar mass of glucose 180.16 g/mol

BATCH_KEYS: tuple[str, ...] = ("Manufacturer", "ManufacturerModelName", "ReconstructionMethod")

#: Attributes summarised by :func:`qc_summary` (when present in the table).
SUMMARY_ATTRIBUTES: tuple[str, ...] = (
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
    "Radiopharmaceutical",
    "Units",
    "DecayCorrection",
    "ReconstructionMethod",
    "iterations",
    "subsets",
    "ConvolutionKernel",
    "filter_fwhm_mm",
    "tof",
    "psf",
    "matrix",
    "pixel_spacing_mm",
    "SliceThickness",
    "AttenuationCorrectionMethod",
    "KVP",
)

#: Columns of :func:`cohort_qc`, in order.
QC_COLUMNS: tuple[str, ...] = (
    "PatientID", "StudyDate", "Modality", "SeriesInstanceUID", "SeriesDescription", "n_files", "folder",
    "Manufacturer", "ManufacturerModelName", "StationName", "SoftwareVersions",
    "Radiopharmaceutical", "Radionuclide", "RadionuclideTotalDose_MBq", "PatientWeight_kg", "dose_per_kg_MBq",
    "uptake_min", "BloodGlucose", "BloodGlucose_mmol_l", "BloodGlucose_source",
    "Units", "DecayCorrection", "AttenuationCorrectionMethod", "ReconstructionMethod", "iterations", "subsets",
    "reconstruction_source", "ConvolutionKernel", "filter_fwhm_mm", "tof", "psf",
    "matrix", "Rows", "Columns", "pixel_spacing_mm", "pixel_spacing_row_mm", "pixel_spacing_col_mm",
    "SliceThickness", "KVP", "XRayTubeCurrent", "suvbw_factor",
    "flag_uptake", "flag_dose_per_kg", "flag_glucose", "flag_missing", "flags", "missing", "qc_errors",
)  # fmt: skip
_INT_COLUMNS = ("n_files", "iterations", "subsets", "Rows", "Columns")
_FLAG_COLUMNS = ("flag_uptake", "flag_dose_per_kg", "flag_glucose", "flag_missing")

_ITER_SUBSET_PATTERNS = (
    re.compile(r"(\d+)\s*i\s*[x,/]?\s*(\d+)\s*s\b", re.IGNORECASE),  # Siemens "OSEM3D 4i16s"
    re.compile(r"(\d+)\s*it(?:er(?:ation)?s?)?\.?\s*[x,/;]?\s*(\d+)\s*s(?:ub(?:set)?s?)?\b", re.IGNORECASE),
    re.compile(r"\bi\s*(\d+)\s*s\s*(\d+)\b", re.IGNORECASE),  # "i3s21"
)
# time of flight / PSF markers in ReconstructionMethod (see docs/qc.md for their sources)
_TOF_TRUE = re.compile(r"TOF|TIME.?OF.?FLIGHT|\bTF\b|-TF\b|VPFX|ULTRA\s*HD", re.IGNORECASE)
_TOF_FALSE = re.compile(r"NON.?TOF|NO.?TOF|\bVPHD", re.IGNORECASE)
_PSF_TRUE = re.compile(
    r"PSF|TRUE\s*X|ULTRA\s*HD|SHARP\s*IR|\bVP(?:HD|FX)S\b|RESOLUTION.?RECOVERY", re.IGNORECASE
)
_PSF_FALSE = re.compile(r"NO.?PSF|NON.?PSF|\bVP(?:HD|FX)\b", re.IGNORECASE)
_FWHM = re.compile(r"(\d+(?:\.\d+)?)\s*(?:mm)?", re.IGNORECASE)
_GLUCOSE_MEANINGS = ("glucose", "blood glucose", "serum glucose", "glucose [mass/volume] in blood")


def parse_reconstruction(text: str) -> dict[str, Any]:
    """Iterations, subsets, time of flight and PSF from a ReconstructionMethod text.

    Parameters
    ----------
    text : str
        ReconstructionMethod (0054,1103), e.g. ``"OSEM3D 4i16s"``, ``"PSF+TOF 3i21s"``,
        ``"VPFXS"``, ``"BLOB-OS-TF"``.

    Returns
    -------
    dict
        ``iterations`` and ``subsets`` (int or None), ``tof`` and ``psf`` (True when a marker is
        found, False when the text says so explicitly, None when it does not tell).

    Examples
    --------
    >>> parse_reconstruction("PSF+TOF 3i21s")
    {'iterations': 3, 'subsets': 21, 'tof': True, 'psf': True}
    """
    out: dict[str, Any] = {"iterations": None, "subsets": None, "tof": None, "psf": None}
    for pattern in _ITER_SUBSET_PATTERNS:
        match = pattern.search(text)
        if match:
            out["iterations"], out["subsets"] = int(match.group(1)), int(match.group(2))
            break
    if _TOF_FALSE.search(text):
        out["tof"] = False
    elif _TOF_TRUE.search(text):
        out["tof"] = True
    if _PSF_FALSE.search(text):
        out["psf"] = False
    elif _PSF_TRUE.search(text):
        out["psf"] = True
    return out


def parse_filter_fwhm(kernel: str) -> float | None:
    """FWHM (mm) of a Gaussian post-filter named in ConvolutionKernel, e.g. ``"Gaussian 6.0 mm"``,
    ``"XYZ Gauss5.00"``; None for other kernels (``"All-pass"``, CT kernels such as ``"B30f"``)."""
    low = kernel.lower()
    if "gauss" not in low:
        return None
    match = _FWHM.search(low[low.index("gauss") :])
    return float(match.group(1)) if match else None


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out


def _find(ds: Dataset, keyword: str, depth: int = 3) -> Any:
    """The first value of ``keyword`` in ``ds`` or its sequences (breadth first, up to ``depth``)."""
    level = [ds]
    for _ in range(depth + 1):
        nxt: list[Dataset] = []
        for item in level:
            if keyword in item and item.get(keyword) not in (None, ""):
                return item.get(keyword)
            for elem in item:
                if elem.VR == "SQ" and elem.tag != 0x7FE00010:
                    nxt.extend(elem.value)
        level = nxt
        if not level:
            break
    return None


def _private(ds: Dataset, group: int, creator: str, offset: int) -> Any:
    try:
        block = ds.private_block(group, creator)
        return block[offset].value
    except KeyError:
        return None


def _glucose(ds: Dataset) -> tuple[float | None, str, str]:
    """Blood glucose from AcquisitionContextSequence (0040,0555): (value in mmol/l, as written, where)."""
    for item in ds.get("AcquisitionContextSequence") or []:
        names = item.get("ConceptNameCodeSequence") or []
        if not any(str(c.get("CodeMeaning", "")).strip().lower() in _GLUCOSE_MEANINGS for c in names):
            continue
        value = _float(item.get("NumericValue"))
        if value is None:
            continue
        units = ""
        for code in item.get("MeasurementUnitsCodeSequence") or []:
            units = str(code.get("CodeValue", "") or code.get("CodeMeaning", ""))
        mmol = value / _MG_DL_PER_MMOL_L if units.lower().replace(" ", "") in ("mg/dl", "mg/100ml") else value
        written = f"{value:g} {units}".strip()
        return mmol, written, "AcquisitionContextSequence (0040,0555)"
    return None, "", ""


def _reconstruction(ds: Dataset, method: str) -> dict[str, Any]:
    rec = parse_reconstruction(method)
    sources = {"iterations": "ReconstructionMethod", "subsets": "ReconstructionMethod"}
    # Enhanced PET (PETReconstructionSequence) and GE private GEMS_PETD_01 tags when the text lacks them
    for key, keyword, group, offset in (
        ("iterations", "NumberOfIterations", 0x0009, 0xB2),
        ("subsets", "NumberOfSubsets", 0x0009, 0xB3),
    ):
        if rec[key] is not None:
            continue
        value = _find(ds, keyword)
        source = keyword
        if value is None:
            value = _private(ds, group, "GEMS_PETD_01", offset)
            source = f"GEMS_PETD_01 ({group:04X},xx{offset:02X})"
        if value is not None and int(value) > 0:
            rec[key] = int(value)
            sources[key] = source
    tof = _find(ds, "TimeOfFlightInformationUsed")
    if tof in ("YES", "NO"):
        rec["tof"] = tof == "YES"
    rec["reconstruction_source"] = "; ".join(f"{k}: {v}" for k, v in sources.items() if rec[k] is not None)
    return rec


def headers_qc(
    headers: Sequence[Dataset],
    *,
    uptake_range_min: tuple[float, float] = EANM_UPTAKE_MIN,
    dose_per_kg_range: tuple[float, float] = EANM_DOSE_PER_KG_MBQ,
    source: str = "",
) -> dict[str, Any]:
    """QC attributes of a series from its headers (see :func:`series_qc`)."""
    if not headers:
        return {"qc_errors": "no header"}
    ds = headers[0]
    modality = _text(ds, "Modality")
    row: dict[str, Any] = {
        "PatientID": _text(ds, "PatientID"),
        "StudyDate": _text(ds, "StudyDate"),
        "SeriesInstanceUID": _text(ds, "SeriesInstanceUID"),
        "Modality": modality,
        "SeriesDescription": _text(ds, "SeriesDescription"),
        "n_files": len(headers),
        "Manufacturer": _text(ds, "Manufacturer"),
        "ManufacturerModelName": _text(ds, "ManufacturerModelName"),
        "StationName": _text(ds, "StationName"),
        "SoftwareVersions": _text(ds, "SoftwareVersions"),
    }
    errors: list[str] = []
    flags: list[str] = []
    missing: list[str] = []
    for keyword in ("Manufacturer", "ManufacturerModelName"):
        if not row[keyword]:
            missing.append(keyword)
    rows, cols = ds.get("Rows"), ds.get("Columns")
    spacing = ds.get("PixelSpacing")
    row["Rows"] = int(rows) if rows is not None else None
    row["Columns"] = int(cols) if cols is not None else None
    row["matrix"] = f"{int(rows)}x{int(cols)}" if rows is not None and cols is not None else ""
    if spacing is not None and len(spacing) == 2:
        row["pixel_spacing_row_mm"], row["pixel_spacing_col_mm"] = float(spacing[0]), float(spacing[1])
        row["pixel_spacing_mm"] = f"{float(spacing[0]):g}x{float(spacing[1]):g}"
    else:
        row["pixel_spacing_row_mm"] = row["pixel_spacing_col_mm"] = None
        row["pixel_spacing_mm"] = ""
        missing.append("PixelSpacing")
    row["SliceThickness"] = _float(ds.get("SliceThickness"))
    row["ConvolutionKernel"] = _text(ds, "ConvolutionKernel")
    row["filter_fwhm_mm"] = parse_filter_fwhm(row["ConvolutionKernel"])
    if modality == "CT":
        row["KVP"] = _float(ds.get("KVP"))
        row["XRayTubeCurrent"] = _float(ds.get("XRayTubeCurrent"))
        if not row["ConvolutionKernel"]:
            missing.append("ConvolutionKernel")
    if modality == "PT":
        _pet_qc(ds, headers, row, errors, flags, missing, uptake_range_min, dose_per_kg_range, source)
    row["missing"] = "; ".join(missing)
    row["flag_missing"] = bool(missing)
    if missing:
        flags.append("missing: " + ", ".join(missing))
    row["flags"] = "; ".join(flags)
    row["qc_errors"] = "; ".join(errors)
    return row


def _pet_qc(
    ds: Dataset,
    headers: Sequence[Dataset],
    row: dict[str, Any],
    errors: list[str],
    flags: list[str],
    missing: list[str],
    uptake_range: tuple[float, float],
    dose_range: tuple[float, float],
    source: str,
) -> None:
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    rp = seq[0] if seq else Dataset()
    if not seq:
        missing.append("RadiopharmaceuticalInformationSequence")
    row["Radiopharmaceutical"] = _text(rp, "Radiopharmaceutical")
    codes = rp.get("RadionuclideCodeSequence") or []
    row["Radionuclide"] = str(codes[0].get("CodeMeaning", "")) if codes else ""
    dose_bq = _float(rp.get("RadionuclideTotalDose"))
    row["RadionuclideTotalDose_MBq"] = dose_bq / 1e6 if dose_bq else None
    weight = _float(ds.get("PatientWeight"))
    row["PatientWeight_kg"] = weight if weight else None
    for keyword, value in (("RadionuclideTotalDose", dose_bq), ("PatientWeight", weight)):
        if not value:
            missing.append(keyword)
    row["dose_per_kg_MBq"] = dose_bq / 1e6 / weight if dose_bq and weight else None
    for keyword in ("Units", "DecayCorrection", "AttenuationCorrectionMethod", "ReconstructionMethod"):
        row[keyword] = _text(ds, keyword)
        if not row[keyword]:
            missing.append(keyword)
    rec = _reconstruction(ds, row["ReconstructionMethod"])
    row.update(rec)
    # the real SUV computation: any failure is recorded, never raised
    try:
        factor = suv_factor(headers, source=source)
        row["suvbw_factor"] = factor.factor
    except SUVError as exc:
        row["suvbw_factor"] = None
        errors.append(str(exc))
    # uptake with the SUV's own reference-time rule (one function: io.suv.uptake_time)
    try:
        uptake_s: float | None = uptake_time(headers, source=source).uptake_s
    except SUVError as exc:
        uptake_s = None
        message = str(exc)
        if message not in errors:
            errors.append(message)
    row["uptake_min"] = uptake_s / 60.0 if uptake_s is not None else None
    if uptake_s is None:
        missing.append("uptake time")
    lo, hi = uptake_range
    row["flag_uptake"] = row["uptake_min"] is not None and not lo <= row["uptake_min"] <= hi
    if row["flag_uptake"]:
        flags.append(f"uptake {row['uptake_min']:.1f} min outside {lo:g}-{hi:g} min (EANM)")
    lo, hi = dose_range
    per_kg = row["dose_per_kg_MBq"]
    row["flag_dose_per_kg"] = per_kg is not None and not lo <= per_kg <= hi
    if row["flag_dose_per_kg"]:
        flags.append(f"dose {per_kg:.2f} MBq/kg outside {lo:g}-{hi:g} MBq/kg")
    glucose, written, where = _glucose(ds)
    row["BloodGlucose_mmol_l"] = glucose
    row["BloodGlucose"] = written
    row["BloodGlucose_source"] = where
    row["flag_glucose"] = glucose is not None and glucose > EANM_GLUCOSE_MAX_MMOL_L
    if row["flag_glucose"]:
        flags.append(f"blood glucose {written} above {EANM_GLUCOSE_MAX_MMOL_L:g} mmol/l (EANM)")


def _read_headers(series: SeriesInfo, all_headers: bool) -> tuple[list[Dataset], list[str]]:
    headers: list[Dataset] = []
    errors: list[str] = []
    paths = series.files if all_headers else series.files[:1]
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, EOFError, OSError, ValueError) as exc:
            errors.append(f"{path}: unreadable header ({exc})")
            continue
        ds.filename = str(path)
        headers.append(ds)
    return headers, errors


def series_qc(
    series: SeriesInfo,
    *,
    all_headers: bool = True,
    uptake_range_min: tuple[float, float] = EANM_UPTAKE_MIN,
    dose_per_kg_range: tuple[float, float] = EANM_DOSE_PER_KG_MBQ,
) -> dict[str, Any]:
    """QC attributes and flags of one series, from its headers only.

    Parameters
    ----------
    series : SeriesInfo
        A series found by :func:`smartimaging.io.dicom.discover`.
    all_headers : bool
        Read every file's header (the uptake time then uses the earliest AcquisitionTime, as
        SUV does); False reads the first file only (faster, for a quick look).
    uptake_range_min : (float, float)
        Accepted uptake time in minutes (EANM: 55-75).
    dose_per_kg_range : (float, float)
        Accepted administered activity per kg (MBq/kg).

    Returns
    -------
    dict
        Identification (PatientID, StudyDate, SeriesInstanceUID, Modality, SeriesDescription,
        n_files), scanner (Manufacturer, ManufacturerModelName, StationName, SoftwareVersions),
        geometry (matrix, Rows, Columns, pixel spacing, SliceThickness), ConvolutionKernel and
        ``filter_fwhm_mm``; for PET also Radiopharmaceutical, Radionuclide,
        RadionuclideTotalDose_MBq, PatientWeight_kg, dose_per_kg_MBq, uptake_min, BloodGlucose
        (as written, in mmol/l and where found), Units, DecayCorrection,
        AttenuationCorrectionMethod, ReconstructionMethod, iterations, subsets, tof, psf,
        suvbw_factor; for CT KVP and XRayTubeCurrent. Flags: ``flag_uptake``,
        ``flag_dose_per_kg``, ``flag_glucose``, ``flag_missing``, ``flags`` (text), ``missing``
        (attribute names) and ``qc_errors`` (messages, e.g. the SUVError). Missing values are None.

    Notes
    -----
    Never raises on header problems: they go to ``qc_errors``.
    """
    headers, errors = _read_headers(series, all_headers)
    row = headers_qc(
        headers,
        uptake_range_min=uptake_range_min,
        dose_per_kg_range=dose_per_kg_range,
        source=str(series.files[0].parent) if series.files else "",
    )
    if not headers:
        row.update(
            PatientID=series.patient_id,
            SeriesInstanceUID=series.series_instance_uid,
            Modality=series.modality,
            n_files=series.n_files,
        )
    if errors:
        row["qc_errors"] = "; ".join([*errors, row["qc_errors"]] if row.get("qc_errors") else errors)
    row["folder"] = str(series.files[0].parent) if series.files else ""
    return row


def cohort_qc(
    series: DiscoveryResult | Iterable[SeriesInfo],
    *,
    modalities: Sequence[str] = ("PT", "CT"),
    all_headers: bool = True,
    uptake_range_min: tuple[float, float] = EANM_UPTAKE_MIN,
    dose_per_kg_range: tuple[float, float] = EANM_DOSE_PER_KG_MBQ,
) -> pd.DataFrame:
    """The QC table of a cohort: one row per series of the given modalities (PET and CT).

    Parameters
    ----------
    series : DiscoveryResult or iterable of SeriesInfo
        E.g. ``discover(folder)``.
    modalities : sequence of str
        Modalities kept (others, e.g. RTSTRUCT and SEG, are skipped).
    all_headers, uptake_range_min, dose_per_kg_range
        See :func:`series_qc`.

    Returns
    -------
    pandas.DataFrame
        Rows sorted by PatientID, Modality, SeriesInstanceUID; columns as in :func:`series_qc`.
    """
    items = series.series if isinstance(series, DiscoveryResult) else list(series)
    rows = [
        series_qc(
            s,
            all_headers=all_headers,
            uptake_range_min=uptake_range_min,
            dose_per_kg_range=dose_per_kg_range,
        )
        for s in items
        if s.modality in modalities
    ]
    table = pd.DataFrame(rows)
    extra = [c for c in table.columns if c not in QC_COLUMNS]
    table = table.reindex(columns=[*QC_COLUMNS, *extra])
    for column in _INT_COLUMNS:
        table[column] = table[column].astype("Int64")
    for column in _FLAG_COLUMNS:  # CT rows have no PET flag: not flagged
        table[column] = table[column].astype("boolean").fillna(False).astype(bool)
    for column in ("tof", "psf"):  # True / False / unknown
        table[column] = table[column].astype("boolean")
    for column in ("flags", "missing", "qc_errors"):
        table[column] = table[column].fillna("")
    if table.empty:
        return table
    return table.sort_values(["PatientID", "Modality", "SeriesInstanceUID"], kind="stable").reset_index(
        drop=True
    )


def qc_summary(table: pd.DataFrame, *, attributes: Sequence[str] | None = None) -> pd.DataFrame:
    """What varies across the cohort: per modality and attribute, the distinct values and counts.

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`cohort_qc`.
    attributes : sequence of str, optional
        Columns to summarise; default :data:`SUMMARY_ATTRIBUTES` (those present).

    Returns
    -------
    pandas.DataFrame
        Columns ``Modality, attribute, n_series, n_missing, n_distinct, varies, values`` where
        ``values`` is ``"value (count); ..."`` by decreasing count. Attributes that vary are the
        candidates for harmonisation batches.
    """
    columns = ["Modality", "attribute", "n_series", "n_missing", "n_distinct", "varies", "values"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    wanted = [a for a in (attributes or SUMMARY_ATTRIBUTES) if a in table.columns]
    out: list[dict[str, Any]] = []
    groups = table.groupby("Modality", sort=True) if "Modality" in table.columns else [("", table)]
    for modality, group in groups:
        for attribute in wanted:
            raw = group[attribute]
            present = raw[raw.notna() & (raw.astype(str) != "")]
            if present.empty and attribute not in ("Manufacturer", "ManufacturerModelName"):
                continue
            counts = present.astype(str).value_counts()
            out.append(
                {
                    "Modality": modality,
                    "attribute": attribute,
                    "n_series": len(group),
                    "n_missing": len(group) - len(present),
                    "n_distinct": int(counts.size),
                    "varies": bool(counts.size > 1),
                    "values": "; ".join(f"{v} ({n})" for v, n in counts.items()),
                }
            )
    return pd.DataFrame(out, columns=columns)


def suggest_batches(table: pd.DataFrame, keys: Sequence[str] = BATCH_KEYS) -> pd.Series:
    """A harmonisation batch label per series: the values of ``keys`` joined by `` | ``.

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`cohort_qc`.
    keys : sequence of str
        Columns defining a batch (default scanner manufacturer, model and reconstruction).
        Missing values count as ``"unknown"``.

    Returns
    -------
    pandas.Series
        Named ``batch``, with the index of ``table``.

    Raises
    ------
    KeyError
        If a key is not a column of ``table`` (the message lists the columns).
    """
    absent = [k for k in keys if k not in table.columns]
    if absent:
        raise KeyError(f"batch keys {absent} are not QC columns; choose from {sorted(table.columns)}")
    parts = table[list(keys)].astype(object).where(table[list(keys)].notna(), "unknown").astype(str)
    parts = parts.replace("", "unknown")
    return parts.agg(" | ".join, axis=1).rename("batch")
