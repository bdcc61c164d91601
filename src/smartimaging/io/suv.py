"""Standardised uptake value (SUV) conversion of PET DICOM series.

The rules (see ``docs/suv.md``) follow the QIBA vendor-neutral pseudo-code and the IBSI-SUV
manual (Vácha et al.). Every tag and derived value used is returned in :class:`SUVFactor`
so that a report can show how an SUV was obtained; anything missing, inconsistent or implausible
raises :class:`~smartimaging.exceptions.SUVError` naming the DICOM attribute, the file and the override.

References
----------
.. [1] QIBA, "Vendor-neutral pseudo-code for SUV calculation", QIBA FDG-PET/CT technical committee wiki.
.. [2] Vácha M. et al., "IBSI-SUV: digital reference objects for SUV conversion", OncoRay (2026).
.. [3] Janmahasatian S. et al., Clin Pharmacokinet 44:1051 (2005); James W.P.T., Research on obesity (1976);
   Du Bois D., Du Bois E.F., Arch Intern Med 17:863 (1916).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from pydicom.dataset import Dataset

from smartimaging.exceptions import SUVError
from smartimaging.image import Image

__all__ = [
    "KINDS",
    "SUVFactor",
    "SUVKind",
    "UptakeTime",
    "body_surface_area_m2",
    "factor_from_values",
    "ideal_body_weight_kg",
    "lean_body_mass_kg",
    "normaliser",
    "suv_factor",
    "to_suv",
    "uptake_time",
]

SUVKind = Literal["bw", "lbm", "lbm_janma", "bsa", "ibw"]
KINDS: tuple[str, ...] = ("bw", "lbm", "lbm_janma", "bsa", "ibw")
_SUVTYPE_TO_KIND = {
    "BW": "bw",
    "LBM": "lbm_morgan",
    "LBMJAMES128": "lbm",
    "LBMJANMA": "lbm_janma",
    "BSA": "bsa",
    "IBW": "ibw",
}
_PHILIPS_CREATOR = "Philips PET Private Group"
_GE_CREATOR = "GEMS_PETD_01"
_MAX_WEIGHT_KG = 400.0
_MAX_UPTAKE_S = 24 * 3600.0
#: RadionuclideTotalDose values read as MBq (1 MBq to 50 GBq) and the plausible range in Bq
_MBQ_RANGE = (1.0, 5.0e4)
_BQ_RANGE = (1.0e6, 5.0e10)
#: largest spread (s) of the per-frame back-computed scan starts for the back-computation to be trusted
_BACK_COMPUTE_SPREAD_S = 60.0
#: attributes that must be equal in every slice of a series
_SERIES_LEVEL = (
    "Units",
    "DecayCorrection",
    "SUVType",
    "PatientWeight",
    "PatientSize",
    "PatientSex",
    "SeriesDate",
    "SeriesTime",
)
_RADIOPHARM_LEVEL = (
    "RadionuclideTotalDose",
    "RadionuclideHalfLife",
    "RadiopharmaceuticalStartTime",
    "RadiopharmaceuticalStartDateTime",
)
_HINT = {
    "weight": "pass weight_kg=<kg> (e.g. weight_kg=72) / --weight-kg 72, or a weight_kg column in the study's "
    "clinical table",
    "height": "pass height_m=<m> (e.g. height_m=1.75) / --height-m 1.75, or a height_m column in the study's "
    "clinical table",
    "sex": "pass sex='M', 'F' or 'O' / --sex M, or a sex column in the study's clinical table",
    "dose": "pass dose_bq=<Bq> (e.g. dose_bq=3.7e8) / --dose-bq 3.7e8 (or --dose-mbq 370), or a dose_bq column "
    "in the study's clinical table",
    "injection": "pass injection_time=datetime(...) / --injection-time 2025-01-31T09:12:00, or an "
    "injection_time column in the clinical table",
    "half_life": "pass half_life_s=<s> / --half-life-s (F-18: 6586.2 s, Ga-68: 4057.7 s, C-11: 1221.5 s)",
}


@dataclass(frozen=True)
class SUVFactor:
    """A conversion factor from stored (rescaled) PET values to SUV, with its provenance.

    Attributes
    ----------
    factor : float
        Multiply the rescaled voxel value (Bq/ml for Units BQML) by it to obtain the SUV
        (when ``slice_factors`` is set: the factor of the earliest frame, or of the first slice for
        per-slice Philips scale factors).
    kind : str
        SUV normalisation ('bw', 'lbm', 'lbm_janma', 'bsa', 'ibw').
    tags : dict
        Every DICOM value and derived quantity used (weight, dose, half-life, times, decay factor, ...).
    warnings : tuple of str
        Assumptions made (e.g. a dose read as MBq); show them to the user.
    slice_factors : tuple of float
        One factor per header given to :func:`suv_factor` (same order) when they differ between
        slices (DecayCorrection NONE with frames acquired at different times, per-slice Philips
        scale factors); empty when ``factor`` holds for all slices.
    """

    factor: float
    kind: str
    tags: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    slice_factors: tuple[float, ...] = ()

    @property
    def unit(self) -> str:
        """Unit of the resulting SUV: g/ml, or cm²/ml for SUVbsa."""
        return "cm2/ml" if self.kind == "bsa" else "g/ml"


@dataclass(frozen=True)
class UptakeTime:
    """Injection and decay-reference (scan start) times of a PET series, and the rules that gave them.

    Attributes
    ----------
    injection, reference : datetime
        Injection date-time and scan start used as the decay reference (QIBA rule).
    uptake_s : float
        ``reference - injection`` in seconds.
    reference_rule, injection_rule : str
        Which attributes gave the two times.
    warnings : tuple of str
        Assumptions made (series re-created after the scan, injection taken as the day before...).
    """

    injection: datetime
    reference: datetime
    uptake_s: float
    reference_rule: str
    injection_rule: str
    warnings: tuple[str, ...] = ()


# --- small parsers --------------------------------------------------------------------------


def _parse_time(value: str) -> tuple[int, int, int, int]:
    t = str(value).strip().replace(":", "")
    if len(t) < 2 or not t[:2].isdigit():
        raise ValueError(f"invalid DICOM time {value!r}")
    hh = int(t[0:2])
    mm = int(t[2:4]) if len(t) >= 4 else 0
    ss = int(t[4:6]) if len(t) >= 6 else 0
    frac = t[7:] if len(t) > 7 and t[6] == "." else ""
    us = int((frac + "000000")[:6]) if frac else 0
    return hh, mm, ss, us


def _combine(date: str, time: str) -> datetime:
    d = str(date).strip().replace("-", "")
    hh, mm, ss, us = _parse_time(time)
    return datetime(int(d[0:4]), int(d[4:6]), int(d[6:8]), hh, mm, ss, us)


def _parse_datetime(value: str) -> datetime:
    v = str(value).strip()
    for sep in ("+", "-"):  # drop a UTC offset suffix (&ZZXX)
        if len(v) > 14 and sep in v[8:]:
            v = v[: 8 + v[8:].index(sep)]
    return _combine(v[:8], v[8:] or "000000")


def _float_value(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bytes):
        text = value.decode("ascii", errors="ignore").strip("\x00 ")
        if not text:
            return None
        value = text
    if isinstance(value, Sequence) and not isinstance(value, str):
        value = value[0] if len(value) else None
        if value is None:
            return None
    out = float(value)
    return out if math.isfinite(out) else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip("\x00 ")
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _private(ds: Dataset, group: int, creator: str, offset: int) -> Any:
    """Value of a private element, found through its private creator.

    When the dataset records no private creator at all for block 0x10 of ``group`` (headers
    stripped of their creators, as in the IBSI-SUV DROs) the element at the usual position
    ``(group, 0x10xx)`` is read; an element reserved by *another* creator is never read.
    """
    try:
        block = ds.private_block(group, creator)
    except KeyError:
        if (group, 0x0010) in ds:
            return None  # block 0x10 belongs to another creator
        elem = ds.get((group, 0x1000 + offset))
        return None if elem is None else elem.value
    tag = block.get_tag(offset)
    return ds[tag].value if tag in ds else None


def _private_float(ds: Dataset, group: int, creator: str, offset: int) -> float | None:
    try:
        return _float_value(_private(ds, group, creator, offset))
    except (TypeError, ValueError):
        return None


def _name(ds: Dataset, index: int) -> str:
    return str(getattr(ds, "filename", "") or f"header {index}")


# --- body-size formulas -----------------------------------------------------------------------


def _sex_code(sex: str) -> str:
    code = str(sex or "").strip().upper()[:1]
    if code not in ("M", "F", "O"):
        raise ValueError(f"sex must be 'M', 'F' or 'O', got {sex!r}")
    return code


def lean_body_mass_kg(weight_kg: float, height_m: float, sex: str, *, formula: str = "james") -> float:
    """Lean body mass in kg.

    Parameters
    ----------
    weight_kg, height_m : float
        Body weight (kg) and height (m).
    sex : {'M', 'F', 'O'}
        'O' (other) gives the mean of the male and female values (IBSI-SUV manual).
    formula : {'james', 'janmahasatian', 'morgan'}
        James (DICOM SUVType LBMJAMES128): 1.10 W - 128 (W/H)² male, 1.07 W - 148 (W/H)² female,
        H in cm; Janmahasatian (LBMJANMA): 9270 W / (6680 + 216 BMI) male, 9270 W / (8780 + 244 BMI)
        female; Morgan (DICOM "LBM"): James with 120 for males.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Unknown sex or formula.

    References
    ----------
    James W.P.T., Research on obesity, HMSO (1976); Janmahasatian S. et al., Clin Pharmacokinet
    44:1051 (2005); DICOM PS3.3 C.8.9.1.1.3 (SUVType).
    """
    code = _sex_code(sex)
    if code == "O":
        return 0.5 * (
            lean_body_mass_kg(weight_kg, height_m, "M", formula=formula)
            + lean_body_mass_kg(weight_kg, height_m, "F", formula=formula)
        )
    male = code == "M"
    w, h_cm = float(weight_kg), float(height_m) * 100.0
    if formula in ("james", "morgan"):
        k = (128.0 if formula == "james" else 120.0) if male else 148.0
        return (1.10 if male else 1.07) * w - k * (w / h_cm) ** 2
    if formula == "janmahasatian":
        bmi = w / float(height_m) ** 2
        return 9270.0 * w / ((6680.0 + 216.0 * bmi) if male else (8780.0 + 244.0 * bmi))
    raise ValueError(f"formula must be 'james', 'janmahasatian' or 'morgan', got {formula!r}")


def ideal_body_weight_kg(height_m: float, sex: str) -> float:
    """Ideal body weight in kg (IBSI-SUV manual; DICOM SUVType IBW).

    Parameters
    ----------
    height_m : float
        Height (m).
    sex : {'M', 'F', 'O'}
        Male 48.0 + 1.06 (H - 152), female 45.5 + 0.91 (H - 152), H in cm; 'O' the mean of both.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Unknown sex.
    """
    code = _sex_code(sex)
    h_cm = float(height_m) * 100.0
    if code == "O":
        return 0.5 * (ideal_body_weight_kg(height_m, "M") + ideal_body_weight_kg(height_m, "F"))
    return 48.0 + 1.06 * (h_cm - 152.0) if code == "M" else 45.5 + 0.91 * (h_cm - 152.0)


def body_surface_area_m2(weight_kg: float, height_m: float) -> float:
    """Body surface area in m² (Du Bois & Du Bois 1916: 0.007184 W^0.425 H[cm]^0.725).

    Parameters
    ----------
    weight_kg, height_m : float
        Body weight (kg) and height (m).

    Returns
    -------
    float
    """
    return 0.007184 * float(weight_kg) ** 0.425 * (float(height_m) * 100.0) ** 0.725


def normaliser(
    kind: str, *, weight_kg: float, height_m: float | None = None, sex: str | None = None
) -> float:
    """Body-size normaliser of an SUV kind: grams for 'bw', 'lbm', 'lbm_janma', 'ibw'; cm² for 'bsa'.

    Parameters
    ----------
    kind : {'bw', 'lbm', 'lbm_janma', 'bsa', 'ibw', 'lbm_morgan'}
        See :func:`lean_body_mass_kg`, :func:`ideal_body_weight_kg`, :func:`body_surface_area_m2`.
    weight_kg, height_m : float
        Patient weight (kg) and height (m).
    sex : {'M', 'F', 'O'}
        'O' uses the mean of the male and female formulas (IBSI-SUV manual).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Unknown kind or sex, or no height for a kind that needs it.
    """
    if kind == "bw":
        return float(weight_kg) * 1000.0
    if height_m is None:
        raise ValueError(f"SUV kind {kind!r} needs the patient height")
    if kind == "bsa":
        return body_surface_area_m2(weight_kg, height_m) * 1e4
    if kind == "ibw":
        return ideal_body_weight_kg(height_m, sex or "") * 1000.0
    formula = {"lbm": "james", "lbm_janma": "janmahasatian", "lbm_morgan": "morgan"}.get(kind)
    if formula is None:
        raise ValueError(f"unknown SUV kind {kind!r}; valid: {', '.join(KINDS)}")
    return lean_body_mass_kg(weight_kg, height_m, sex or "", formula=formula) * 1000.0


# --- the factor -----------------------------------------------------------------------------


class _Ctx:
    """Helper carrying the headers, the file name for messages and the provenance record."""

    def __init__(self, headers: list[Dataset], source: str) -> None:
        self.headers = headers
        self.ds = headers[0]
        self.source = source or str(getattr(self.ds, "filename", "") or "<dataset>")
        self.tags: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.slice_decay: list[float] = []

    def fail(self, what: str, tag: str, override: str) -> SUVError:
        return SUVError(f"{self.source}: {what} ({tag}); {override}")

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def radiopharm(self) -> Dataset:
        seq = self.ds.get("RadiopharmaceuticalInformationSequence")
        if not seq:
            return Dataset()
        item: Dataset = seq[0]
        return item


def _check_consistent(ctx: _Ctx) -> None:
    """Series-level attributes must be equal in every slice; a disagreement names the files."""
    if len(ctx.headers) < 2:
        return

    def radiopharm(ds: Dataset) -> Dataset:
        seq = ds.get("RadiopharmaceuticalInformationSequence")
        return seq[0] if seq else Dataset()

    checks = [(k, k, lambda ds, k=k: ds.get(k)) for k in _SERIES_LEVEL] + [
        (k, f"RadiopharmaceuticalInformationSequence > {k}", lambda ds, k=k: radiopharm(ds).get(k))
        for k in _RADIOPHARM_LEVEL
    ]
    for _keyword, label, getter in checks:
        seen: dict[str, list[str]] = {}
        for i, ds in enumerate(ctx.headers):
            seen.setdefault(_text(getter(ds)), []).append(_name(ds, i))
        if len(seen) > 1:
            parts = [
                f"{value or '(absent)'!r} in {files[0]}"
                + (f" and {len(files) - 1} more" if len(files) > 1 else "")
                for value, files in seen.items()
            ]
            raise SUVError(
                f"{ctx.source}: {label} differs between the slices of the series: {'; '.join(parts)}. The series "
                "mixes acquisitions or was edited: split it or fix the headers"
            )


def _check_corrections(ctx: _Ctx, decay: str) -> None:
    """CorrectedImage must contain ATTN, and DECY unless DecayCorrection is NONE (QIBA)."""
    raw = ctx.ds.get("CorrectedImage")
    values = sorted({str(v).strip().upper() for v in ([raw] if isinstance(raw, str) else raw or [])})
    ctx.tags["CorrectedImage"] = values
    if not values:
        ctx.warn("CorrectedImage (0028,0051) is absent: attenuation and decay correction cannot be verified")
        return
    if "ATTN" not in values:
        raise ctx.fail(
            f"CorrectedImage is {values}, without ATTN: the image is not attenuation corrected, so its values "
            "are not activity concentrations and an SUV would be meaningless",
            "CorrectedImage (0028,0051)",
            "use the attenuation-corrected series",
        )
    if decay in ("START", "ADMIN") and "DECY" not in values:
        raise ctx.fail(
            f"DecayCorrection is {decay} but CorrectedImage {values} lacks DECY: the header contradicts itself, "
            "so the decay reference of the values is unknown",
            "CorrectedImage (0028,0051) / DecayCorrection (0054,1102)",
            "fix the header",
        )
    if decay == "NONE" and "DECY" in values:
        ctx.warn(
            "CorrectedImage (0028,0051) lists DECY but DecayCorrection (0054,1102) is NONE: the values are "
            "treated as not decay corrected"
        )


def _weight(ctx: _Ctx, weight_kg: float | None, prefix: str = "") -> float:
    if weight_kg is not None:
        w, ctx.tags[prefix + "weight_source"] = float(weight_kg), "override weight_kg"
    else:
        try:
            w = _float_value(ctx.ds.get("PatientWeight")) or 0.0
        except ValueError:
            w = 0.0
        ctx.tags[prefix + "weight_source"] = "PatientWeight (0010,1030)"
    if w <= 0:
        raise ctx.fail("patient weight is missing or 0", "PatientWeight (0010,1030)", _HINT["weight"])
    if w > _MAX_WEIGHT_KG:
        raise ctx.fail(
            f"patient weight {w} kg is implausible (> {_MAX_WEIGHT_KG:g} kg; grams or pounds?)",
            "PatientWeight (0010,1030)",
            _HINT["weight"],
        )
    ctx.tags[prefix + "PatientWeight_kg"] = w
    return w


def _height(ctx: _Ctx, height_m: float | None, prefix: str = "") -> float:
    if height_m is not None:
        h, ctx.tags[prefix + "height_source"] = float(height_m), "override height_m"
    else:
        try:
            h = _float_value(ctx.ds.get("PatientSize")) or 0.0
        except ValueError:
            h = 0.0
        ctx.tags[prefix + "height_source"] = "PatientSize (0010,1020)"
    if h <= 0:
        raise ctx.fail("patient height is missing or 0", "PatientSize (0010,1020)", _HINT["height"])
    if not 0.3 <= h <= 2.6:
        raise ctx.fail(
            f"patient height {h} m is implausible (cm instead of m?)",
            "PatientSize (0010,1020)",
            _HINT["height"],
        )
    ctx.tags[prefix + "PatientSize_m"] = h
    return h


def _sex(ctx: _Ctx, sex: str | None, kind: str, prefix: str = "") -> str:
    s = (sex if sex is not None else _text(ctx.ds.get("PatientSex"))).strip().upper()
    ctx.tags[prefix + "PatientSex"] = s
    ctx.tags[prefix + "sex_source"] = "override sex" if sex is not None else "PatientSex (0010,0040)"
    if s not in ("M", "F", "O"):
        raise ctx.fail(
            f"patient sex {s or '(absent)'!r} is not M, F or O, which SUV{kind} needs",
            "PatientSex (0010,0040)",
            _HINT["sex"],
        )
    if s == "O":
        ctx.warn(
            f"PatientSex (0010,0040) is O (other): SUV{kind} uses the mean of the male and female formulas "
            "(IBSI-SUV manual)"
        )
    return s


def _norm(
    ctx: _Ctx,
    kind: str,
    weight_kg: float | None = None,
    height_m: float | None = None,
    sex: str | None = None,
    prefix: str = "",
) -> float:
    """The normaliser of ``kind`` (g, or cm² for bsa); ``prefix`` tags the scanner's own normalisation."""
    w = _weight(ctx, weight_kg, prefix) if kind != "ibw" else 0.0
    if kind == "bw":
        value = normaliser("bw", weight_kg=w)
    else:
        h = _height(ctx, height_m, prefix)
        s = _sex(ctx, sex, kind, prefix) if kind != "bsa" else ""
        value = normaliser(kind, weight_kg=w, height_m=h, sex=s)
        if value <= 0:
            raise ctx.fail(
                f"the {kind} normaliser is {value / 1000:.1f} kg for weight {w} kg and height {h} m",
                "PatientWeight (0010,1030) / PatientSize (0010,1020)",
                "check the weight and height, or pass weight_kg= / height_m=",
            )
    ctx.tags[f"{prefix}normaliser_{kind}"] = value
    return value


def _dose(ctx: _Ctx, dose_bq: float | None) -> float:
    if dose_bq is not None:
        d = float(dose_bq)
        ctx.tags["dose_source"] = "override dose_bq"
        if not d > 0:
            raise ctx.fail(
                f"override dose_bq={dose_bq!r} is not positive",
                "RadionuclideTotalDose (0018,1074)",
                _HINT["dose"],
            )
        ctx.tags["RadionuclideTotalDose_Bq"] = d
        return d
    try:
        d = _float_value(ctx.radiopharm().get("RadionuclideTotalDose")) or 0.0
    except ValueError:
        d = 0.0
    ctx.tags["dose_source"] = "RadionuclideTotalDose (0018,1074)"
    ctx.tags["RadionuclideTotalDose"] = d
    if d <= 0:
        raise ctx.fail(
            "administered dose is missing or 0", "RadionuclideTotalDose (0018,1074)", _HINT["dose"]
        )
    if _MBQ_RANGE[0] <= d <= _MBQ_RANGE[1]:
        ctx.warn(
            f"RadionuclideTotalDose (0018,1074) = {d:g} is far too small for a patient dose in Bq: read as MBq "
            f"({d * 1e6:g} Bq); pass dose_bq= to override"
        )
        ctx.tags["RadionuclideTotalDose_unit"] = "MBq (inferred from the value)"
        d *= 1e6
    elif not _BQ_RANGE[0] <= d <= _BQ_RANGE[1]:
        raise ctx.fail(
            f"administered dose {d:g} is neither a patient dose in Bq ({_BQ_RANGE[0]:g} to {_BQ_RANGE[1]:g}) "
            f"nor in MBq ({_MBQ_RANGE[0]:g} to {_MBQ_RANGE[1]:g})",
            "RadionuclideTotalDose (0018,1074)",
            _HINT["dose"],
        )
    ctx.tags["RadionuclideTotalDose_Bq"] = d
    return d


def _half_life(ctx: _Ctx, half_life_s: float | None) -> float:
    raw = half_life_s if half_life_s is not None else ctx.radiopharm().get("RadionuclideHalfLife")
    try:
        t = _float_value(raw) or 0.0
    except ValueError:
        t = 0.0
    if t <= 0:
        raise ctx.fail(
            "radionuclide half-life is missing or 0", "RadionuclideHalfLife (0018,1075)", _HINT["half_life"]
        )
    ctx.tags["RadionuclideHalfLife_s"] = t
    codes = ctx.radiopharm().get("RadionuclideCodeSequence")
    if codes:
        ctx.tags["Radionuclide"] = _text(codes[0].get("CodeMeaning"))
    return t


def _series_datetime(ctx: _Ctx) -> datetime | None:
    date = ctx.ds.get("SeriesDate") or ctx.ds.get("StudyDate")
    time = ctx.ds.get("SeriesTime")
    return _combine(str(date), str(time)) if date and time else None


def _acquisition_datetimes(ctx: _Ctx) -> list[datetime | None]:
    """AcquisitionDateTime, else AcquisitionDate (or SeriesDate) + AcquisitionTime, per header."""
    out: list[datetime | None] = []
    fallback = ctx.ds.get("SeriesDate") or ctx.ds.get("StudyDate")
    for ds in ctx.headers:
        adt, t = _text(ds.get("AcquisitionDateTime")), ds.get("AcquisitionTime")
        date = ds.get("AcquisitionDate") or fallback
        if adt:
            out.append(_parse_datetime(adt))
        elif t and date:
            out.append(_combine(str(date), str(t)))
        else:
            out.append(None)
    return out


def _average_count_time(frame_s: float, half_life: float) -> float:
    """Time after the frame start at which the count rate equals its frame average (decay only)."""
    if frame_s <= 0:
        return 0.0
    lam = math.log(2) / half_life
    x = lam * frame_s
    return math.log(x / -math.expm1(-x)) / lam


def _scan_start(ctx: _Ctx, half_life: float) -> tuple[datetime, str]:
    """Decay reference (scan start) of a series, in the order of QIBA's vendor-neutral pseudo-code.

    1. SeriesDate/SeriesTime when not later than the earliest acquisition;
    2. else (a series re-created after the scan) GE's private scan date-time (0009,100D), read only
       from the GEMS_PETD_01 private block;
    3. else the start back-computed from each frame's AcquisitionTime, FrameReferenceTime and
       ActualFrameDuration (IBSI-SUV manual, option 4; Siemens), when the frames agree within 60 s
       and the start is not after the earliest acquisition;
    4. else the earliest AcquisitionDate/AcquisitionTime of the series.
    """
    series_dt = _series_datetime(ctx)
    times = _acquisition_datetimes(ctx)
    acq = [t for t in times if t is not None]
    if series_dt is not None and (not acq or series_dt <= min(acq)):
        return series_dt, "SeriesDate/SeriesTime (0008,0021)/(0008,0031)"
    if not acq:
        raise ctx.fail(
            "neither SeriesDate/SeriesTime nor AcquisitionTime is present: the scan time is unknown",
            "SeriesDate (0008,0021) / SeriesTime (0008,0031) / AcquisitionTime (0008,0032)",
            "fix the header; the injected dose cannot be decay-corrected",
        )
    earliest = min(acq)
    if series_dt is not None:
        ctx.warn(
            f"SeriesTime {series_dt.time()} is later than the earliest AcquisitionTime {earliest.time()} (a series "
            "re-created after the scan): the scan start is taken from other attributes (QIBA)"
        )
    ge_value = _text(_private(ctx.ds, 0x0009, _GE_CREATOR, 0x0D))
    if ge_value:
        try:
            return _parse_datetime(ge_value), "GE private scan date-time (0009,100D) [GEMS_PETD_01]"
        except ValueError:
            ctx.warn(f"GE private scan date-time (0009,100D) {ge_value!r} is not a date-time: ignored")
    starts: list[datetime] = []
    for ds, t_acq in zip(ctx.headers, times, strict=True):
        frt, dur = _float_value(ds.get("FrameReferenceTime")), _float_value(ds.get("ActualFrameDuration"))
        if t_acq is None or frt is None or dur is None or frt <= 0 or dur <= 0:
            continue
        t_ave = _average_count_time(dur / 1000.0, half_life)
        starts.append(t_acq - timedelta(seconds=frt / 1000.0 - t_ave))
    if starts:
        spread = (max(starts) - min(starts)).total_seconds()
        if min(starts) <= earliest and spread <= _BACK_COMPUTE_SPREAD_S:
            ctx.tags["back_computed_start_spread_s"] = spread
            return (
                min(starts),
                "AcquisitionTime (0008,0032) - (FrameReferenceTime (0054,1300) - average count time in "
                "ActualFrameDuration (0018,1242))",
            )
        ctx.warn(
            f"scan starts back-computed from FrameReferenceTime disagree (spread {spread:.0f} s) or follow the "
            "first acquisition: the earliest AcquisitionTime is used"
        )
    return earliest, "earliest AcquisitionDate/AcquisitionTime (0008,0022)/(0008,0032)"


def _injection_time(ctx: _Ctx, injection_time: datetime | None, reference: datetime) -> datetime:
    if injection_time is not None:
        ctx.tags["injection_source"] = "override injection_time"
        return injection_time
    rp = ctx.radiopharm()
    start_dt = _text(rp.get("RadiopharmaceuticalStartDateTime"))
    if start_dt:
        ctx.tags["injection_source"] = "RadiopharmaceuticalStartDateTime (0018,1078)"
        return _parse_datetime(start_dt)
    start_t = rp.get("RadiopharmaceuticalStartTime")
    if not start_t:
        raise ctx.fail(
            "injection time is missing",
            "RadiopharmaceuticalStartDateTime (0018,1078) / RadiopharmaceuticalStartTime (0018,1072)",
            _HINT["injection"],
        )
    inj = _combine(reference.strftime("%Y%m%d"), str(start_t))
    ctx.tags["injection_source"] = "RadiopharmaceuticalStartTime (0018,1072) on the scan date"
    if inj > reference:
        inj -= timedelta(days=1)
        ctx.warn("injection time is later than the scan time on the same date: taken as the day before")
    return inj


def _check_uptake(ctx: _Ctx, injection: datetime, reference: datetime) -> float:
    delta = (reference - injection).total_seconds()
    if delta < 0:
        raise ctx.fail(
            f"injection ({injection}) is after the reference time ({reference})",
            "RadiopharmaceuticalStartDateTime (0018,1078) / SeriesTime (0008,0031)",
            _HINT["injection"],
        )
    if delta > _MAX_UPTAKE_S:
        raise ctx.fail(
            f"uptake time {delta / 3600:.1f} h is implausible (> 24 h) between injection {injection} and {reference}",
            "RadiopharmaceuticalStartDateTime (0018,1078) / SeriesDate (0008,0021)",
            _HINT["injection"],
        )
    return delta


def _uptake(ctx: _Ctx, injection_time: datetime | None, half_life_s: float | None) -> UptakeTime:
    half_life = _half_life(ctx, half_life_s)
    reference, rule = _scan_start(ctx, half_life)
    injection = _injection_time(ctx, injection_time, reference)
    delta = _check_uptake(ctx, injection, reference)
    return UptakeTime(injection, reference, delta, rule, ctx.tags["injection_source"], tuple(ctx.warnings))


def uptake_time(
    header: Dataset | Sequence[Dataset],
    *,
    injection_time: datetime | None = None,
    half_life_s: float | None = None,
    source: str = "",
) -> UptakeTime:
    """Injection time, scan start (decay reference) and uptake time of a PET series.

    The same rule as :func:`suv_factor` with DecayCorrection START (QIBA order: SeriesTime unless
    later than the earliest acquisition, then GE's private scan date-time, then the start
    back-computed from FrameReferenceTime, then the earliest AcquisitionTime); acquisition QC
    uses it so that its uptake time is the one the SUV used.

    Parameters
    ----------
    header : pydicom.Dataset or sequence of Dataset
        The series' headers (all slices for the earliest acquisition; pixel data not needed).
    injection_time, half_life_s : optional
        Overrides of the injection date-time and RadionuclideHalfLife.
    source : str
        File name used in error messages.

    Returns
    -------
    UptakeTime

    Raises
    ------
    SUVError
        Missing times or half-life, injection after the scan or more than 24 h before it.
    """
    headers = [header] if isinstance(header, Dataset) else list(header)
    if not headers:
        raise SUVError("uptake_time got no header: pass the PET series' headers")
    return _uptake(_Ctx(headers, source), injection_time, half_life_s)


def _decayed_dose(
    ctx: _Ctx,
    decay: str,
    *,
    dose_bq: float | None,
    injection_time: datetime | None,
    half_life_s: float | None,
) -> float:
    """Dose decayed to the time the voxel values refer to (per-slice decay in ``ctx.slice_decay``)."""
    dose = _dose(ctx, dose_bq)
    if decay == "ADMIN":
        ctx.tags["decay_factor"] = 1.0
        return dose
    half_life = _half_life(ctx, half_life_s)
    if decay == "START":
        u = _uptake(ctx, injection_time, half_life_s)
        reference, injection, delta = u.reference, u.injection, u.uptake_s
        ctx.tags["reference_time_source"] = u.reference_rule
    else:
        times = _acquisition_datetimes(ctx)
        missing = [i for i, t in enumerate(times) if t is None]
        if missing:
            raise SUVError(
                f"{_name(ctx.headers[missing[0]], missing[0])}: DecayCorrection NONE needs every slice's "
                f"acquisition time, but {len(missing)} of {len(times)} slices lack it (AcquisitionTime (0008,0032)); "
                "fix the header"
            )
        scan_times: list[datetime] = []
        for i, (ds, t) in enumerate(zip(ctx.headers, times, strict=True)):
            dur = _float_value(ds.get("ActualFrameDuration"))
            if dur is None or dur <= 0 or t is None:
                raise SUVError(
                    f"{_name(ds, i)}: DecayCorrection NONE but ActualFrameDuration (0018,1242) is {dur!r}: the decay "
                    "during the frame cannot be corrected; fix the header"
                )
            # t_scan = t_acq + T_ave: time of the average count rate within the frame (IBSI-SUV manual)
            scan_times.append(t + timedelta(seconds=_average_count_time(dur / 1000.0, half_life)))
        reference = min(scan_times)
        ctx.tags["reference_time_source"] = (
            "earliest AcquisitionTime + average count time in ActualFrameDuration (DecayCorrection NONE, per frame)"
        )
        if len(set(scan_times)) > 1:
            ctx.slice_decay = [2.0 ** (-(t - reference).total_seconds() / half_life) for t in scan_times]
            ctx.tags["slice_scan_times"] = sorted({t.isoformat() for t in scan_times})
            ctx.warn(
                "DecayCorrection NONE with several acquisition times: each slice has its own factor "
                "(SUVFactor.slice_factors); SUVFactor.factor holds for the earliest frame only"
            )
        injection = _injection_time(ctx, injection_time, reference)
        delta = _check_uptake(ctx, injection, reference)
    ctx.tags.update(
        reference_time=reference.isoformat(), injection_time=injection.isoformat(), uptake_s=delta
    )
    decay_factor = 2.0 ** (-delta / half_life)
    ctx.tags["decay_factor"] = decay_factor
    return dose * decay_factor


def suv_factor(
    header: Dataset | Sequence[Dataset],
    *,
    kind: SUVKind = "bw",
    weight_kg: float | None = None,
    height_m: float | None = None,
    sex: str | None = None,
    dose_bq: float | None = None,
    injection_time: datetime | None = None,
    half_life_s: float | None = None,
    source: str = "",
) -> SUVFactor:
    """Factor converting rescaled PET voxel values to SUV, with the tags it used.

    Parameters
    ----------
    header : pydicom.Dataset or sequence of Dataset
        PET header(s) (pixel data not needed): the first slice, or every slice in image order
        (needed for the earliest acquisition, the series consistency check and per-slice factors).
    kind : {'bw', 'lbm', 'lbm_janma', 'bsa', 'ibw'}
        SUV normalisation: body weight; lean body mass (James, DICOM LBMJAMES128); lean body mass
        (Janmahasatian); body surface area (Du Bois, result in cm²/ml); ideal body weight.
    weight_kg, height_m, sex, dose_bq, injection_time, half_life_s : optional
        Overrides of PatientWeight, PatientSize, PatientSex, RadionuclideTotalDose (Bq, taken as given),
        the injection date-time and RadionuclideHalfLife; they take precedence and are recorded in ``tags``.
    source : str
        File name used in error messages (default: the dataset's filename).

    Returns
    -------
    SUVFactor

    Raises
    ------
    SUVError
        Missing or implausible weight, height, sex, dose, half-life or times; series-level attributes
        that differ between slices; CorrectedImage without ATTN (or without DECY for START/ADMIN);
        unknown Units or DecayCorrection. The message names the DICOM attribute, the file and the override.
    ValueError
        Unknown ``kind``.

    References
    ----------
    QIBA vendor-neutral pseudo-code for SUV; IBSI-SUV manual and DROs (Vácha et al., 2026).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    headers = [header] if isinstance(header, Dataset) else list(header)
    if not headers:
        raise SUVError(
            "suv_factor got no header: pass the PET series' first slice dataset (Image.meta['header'])"
        )
    ctx = _Ctx(headers, source)
    ds = ctx.ds
    units = _text(ds.get("Units")).upper()
    ctx.tags["Units"] = units
    ctx.tags["Manufacturer"] = _text(ds.get("Manufacturer"))
    modality = _text(ds.get("Modality"))
    if modality and modality != "PT":
        raise ctx.fail(
            f"Modality is {modality!r}, not PT", "Modality (0008,0060)", "SUV applies to PET series only"
        )
    _check_consistent(ctx)
    overrides = {
        k: v
        for k, v in dict(
            weight_kg=weight_kg,
            height_m=height_m,
            sex=sex,
            dose_bq=dose_bq,
            injection_time=injection_time,
            half_life_s=half_life_s,
        ).items()
        if v is not None
    }
    ctx.tags["overrides"] = {
        k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in overrides.items()
    }
    body_overridden = any(v is not None for v in (weight_kg, height_m, sex))
    per_slice: list[float]

    if units in ("GML", "CM2ML"):
        suv_type = _text(ds.get("SUVType")).upper() or ("BW" if units == "GML" else "BSA")
        ctx.tags["SUVType"] = suv_type
        stored = _SUVTYPE_TO_KIND.get(suv_type)
        if stored is None or (units == "CM2ML") != (stored == "bsa"):
            raise ctx.fail(
                f"SUVType {suv_type!r} is unknown or inconsistent with Units {units}",
                "SUVType (0054,1006)",
                "fix the header (GML goes with BW/LBM/LBMJAMES128/LBMJANMA/IBW, CM2ML with BSA)",
            )
        ctx.tags["stored_as"] = f"SUV{stored} already"
        if stored == kind and not body_overridden:
            per_slice = [1.0]
        else:
            # the scanner normalised with the header's body size; the requested kind uses overrides if any
            denominator = _norm(ctx, stored, prefix="scanner_")
            numerator = _norm(ctx, kind, weight_kg, height_m, sex)
            ctx.tags["conversion"] = f"SUV{kind} = SUV{stored} x {numerator:.6g} / {denominator:.6g}"
            per_slice = [numerator / denominator]
    elif units in ("BQML", "CNTS"):
        decay = _text(ds.get("DecayCorrection")).upper()
        ctx.tags["DecayCorrection"] = decay
        if decay not in ("START", "ADMIN", "NONE"):
            raise ctx.fail(
                f"DecayCorrection {decay or '(empty)'!r} is not one of START, ADMIN, NONE",
                "DecayCorrection (0054,1102)",
                "fix the header; the time the voxel values refer to is unknown",
            )
        _check_corrections(ctx, decay)
        multipliers = [1.0] * len(headers)
        if units == "CNTS":
            suv_sf = [_private_float(h, 0x7053, _PHILIPS_CREATOR, 0x00) for h in headers]
            ac_sf = [_private_float(h, 0x7053, _PHILIPS_CREATOR, 0x09) for h in headers]
            ctx.tags["PhilipsSUVScaleFactor_7053_1000"] = suv_sf[0]
            ctx.tags["PhilipsActivityConcentrationScaleFactor_7053_1009"] = ac_sf[0]
            if all(v is not None and v > 0 for v in suv_sf):
                scale = [float(v or 0.0) for v in suv_sf]
                ratio = 1.0
                if kind != "bw" or weight_kg is not None:
                    # the scanner's SUVbw used the header weight
                    ratio = _norm(ctx, kind, weight_kg, height_m, sex) / _norm(ctx, "bw", prefix="scanner_")
                per_slice = [s * ratio for s in scale]
                return _finish(ctx, kind, per_slice)
            if not all(v is not None and v > 0 for v in ac_sf):
                raise ctx.fail(
                    "Units CNTS without a usable Philips SUV Scale Factor (7053,1000) or Activity Concentration "
                    f"Scale Factor (7053,1009) in every slice (private creator {_PHILIPS_CREATOR!r}; first slice: "
                    f"{suv_sf[0]!r}, {ac_sf[0]!r})",
                    "Units (0054,1001)",
                    "counts cannot be converted to Bq/ml: export the series in BQML from the scanner console",
                )
            multipliers = [float(v or 0.0) for v in ac_sf]
        norm = _norm(ctx, kind, weight_kg, height_m, sex)
        dose = _decayed_dose(
            ctx, decay, dose_bq=dose_bq, injection_time=injection_time, half_life_s=half_life_s
        )
        ctx.tags["decayed_dose_Bq"] = dose
        decays = ctx.slice_decay or [1.0] * len(headers)
        per_slice = [m * norm / (dose * d) for m, d in zip(multipliers, decays, strict=True)]
        return _finish(ctx, kind, per_slice, primary=int(np.argmax(decays)))
    else:
        raise ctx.fail(
            f"Units {units or '(empty)'!r} cannot be converted to SUV (supported: BQML, CNTS with Philips "
            "scale factors, GML, CM2ML)",
            "Units (0054,1001)",
            "export the series in BQML from the scanner console",
        )
    return _finish(ctx, kind, per_slice)


def _finish(ctx: _Ctx, kind: str, per_slice: list[float], primary: int = 0) -> SUVFactor:
    for factor in per_slice:
        if not math.isfinite(factor) or factor <= 0:
            raise SUVError(
                f"{ctx.source}: SUV factor {factor} is not a positive number; tags used: {ctx.tags}"
            )
    first = float(per_slice[primary])
    same = all(math.isclose(f, first, rel_tol=1e-12) for f in per_slice)
    slices = () if same else tuple(float(f) for f in per_slice)
    return SUVFactor(first, kind, ctx.tags, tuple(ctx.warnings), slices)


def factor_from_values(
    *,
    kind: SUVKind = "bw",
    dose_bq: float | None,
    weight_kg: float | None = None,
    height_m: float | None = None,
    sex: str | None = None,
    uptake_s: float | None = None,
    half_life_s: float | None = None,
    decay_corrected_to: Literal["start", "admin"] = "start",
    source: str = "",
) -> SUVFactor:
    """SUV factor for an image in Bq/ml without DICOM header (e.g. a NIfTI PET), from given values.

    Parameters
    ----------
    kind : {'bw', 'lbm', 'lbm_janma', 'bsa', 'ibw'}
        SUV normalisation.
    dose_bq : float
        Injected activity (Bq); None raises an error naming the option and the column.
    weight_kg, height_m, sex : optional
        Body size; which are needed depends on ``kind`` (bw: weight; bsa: weight, height;
        lbm/lbm_janma: weight, height, sex; ibw: height, sex).
    uptake_s : float, optional
        Injection to scan start (s); needed when ``decay_corrected_to='start'``.
    half_life_s : float, optional
        Radionuclide half-life (s); needed when ``decay_corrected_to='start'`` (F-18: 6586.2).
    decay_corrected_to : {'start', 'admin'}
        Time the voxel values are decay corrected to: the scan start (the usual export) or the
        injection (no dose decay).
    source : str
        What the values refer to (file or table row), used in error messages.

    Returns
    -------
    SUVFactor

    Raises
    ------
    SUVError
        A value needed for ``kind`` or for the decay is missing or implausible; the message names it
        (as an option and a clinical-table column).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if decay_corrected_to not in ("start", "admin"):
        raise ValueError(f"decay_corrected_to must be 'start' or 'admin', got {decay_corrected_to!r}")
    where = source or "values given"

    def need(value: float | str | None, what: str, option: str, setting: str) -> None:
        if value is None or (isinstance(value, float) and not math.isfinite(value)) or value == "":
            raise SUVError(
                f"{where}: SUV{kind} of an image without DICOM header needs the {what}: pass {option} (CLI / "
                f"Python), or in a study fill the clinical-table column named by {setting if '.' in setting else 'suv.' + setting}"
            )

    need(dose_bq, "injected dose", "--dose-mbq / dose_bq=", "dose_column")
    if kind != "ibw":
        need(weight_kg, "patient weight", "--weight-kg / weight_kg=", "weight_column")
    if kind != "bw":
        need(height_m, "patient height", "--height-m / height_m=", "height_column")
    if kind in ("lbm", "lbm_janma", "ibw"):
        need(sex, "patient sex (M, F or O)", "--sex / sex=", "sex_column")
    if decay_corrected_to == "start":
        need(uptake_s, "uptake time (injection to scan start)", "--uptake-min / uptake_s=", "uptake_column")
        need(half_life_s, "radionuclide half-life", "--half-life-s / half_life_s=", "input.nifti.half_life_s")
    ds = Dataset()
    ds.Modality = "PT"
    ctx = _Ctx([ds], where)
    ctx.tags["Units"] = "BQML (given)"
    norm = _norm(ctx, kind, weight_kg, height_m, sex)
    dose = _dose(ctx, dose_bq)
    if decay_corrected_to == "admin":
        decay = 1.0
    else:
        u, t = float(uptake_s or 0.0), float(half_life_s or 0.0)
        if not 0 <= u <= _MAX_UPTAKE_S:
            raise SUVError(
                f"{where}: uptake time {u:g} s is not within 0 to 24 h; check --uptake-min / uptake_min"
            )
        if not t > 0:
            raise SUVError(f"{where}: half-life {t:g} s is not positive; check --half-life-s / half_life_s")
        ctx.tags.update(uptake_s=u, RadionuclideHalfLife_s=t)
        decay = 2.0 ** (-u / t)
    ctx.tags.update(decay_factor=decay, decay_corrected_to=decay_corrected_to, decayed_dose_Bq=dose * decay)
    return _finish(ctx, kind, [norm / (dose * decay)])


def to_suv(pet: Image, *, kind: SUVKind = "bw", **overrides: Any) -> tuple[Image, SUVFactor]:
    """Convert a PET image read by :func:`smartimaging.io.dicom.read_series` to SUV.

    Parameters
    ----------
    pet : Image
        PET image in rescaled units; ``meta['header']`` (and ``meta['headers']`` if present) hold the
        DICOM header(s).
    kind : {'bw', 'lbm', 'lbm_janma', 'bsa', 'ibw'}
        SUV normalisation.
    **overrides
        Passed to :func:`suv_factor` (weight_kg, height_m, sex, dose_bq, injection_time, half_life_s, source).

    Returns
    -------
    (Image, SUVFactor)
        The SUV image (float32, ``meta['units']`` = 'SUVbw', ...) and the factor with its provenance.

    Raises
    ------
    SUVError
        No header in ``pet.meta``, or any error of :func:`suv_factor`.
    """
    headers = pet.meta.get("headers") or ([pet.meta["header"]] if pet.meta.get("header") is not None else [])
    if not headers:
        raise SUVError(
            "the PET image carries no DICOM header (meta['header']): read it with "
            "smartimaging.io.dicom.read_series, or compute the factor with suv_factor() and the header"
        )
    files = pet.meta.get("files") or []
    overrides.setdefault("source", str(files[0]) if files else "")
    f = suv_factor(headers, kind=kind, **overrides)
    if f.slice_factors:
        if len(f.slice_factors) != pet.shape[0]:
            raise SUVError(
                f"{overrides['source']}: {len(f.slice_factors)} per-slice SUV factors for {pet.shape[0]} slices: "
                "meta['headers'] must hold one header per slice, in slice order (use read_series)"
            )
        scale = np.asarray(f.slice_factors)[:, None, None]
    else:
        scale = np.asarray(f.factor)
    arr = (pet.array.astype(np.float64) * scale).astype(np.float32)
    return pet.with_array(arr, units=f"SUV{kind}", suv=f), f
