"""Standardised uptake value (SUV) conversion of PET DICOM series.

The rules (see ``docs/suv.md``) follow the QIBA vendor-neutral pseudo-code and the IBSI-SUV
manual (Vácha et al.). Every tag and derived value used is returned in :class:`SUVFactor`
so that a report can show how an SUV was obtained; anything missing or implausible raises
:class:`~smartimaging.exceptions.SUVError` naming the DICOM attribute, the file and the override.

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

__all__ = ["KINDS", "SUVFactor", "normaliser", "suv_factor", "to_suv"]

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
_PHILIPS_SUV_SCALE = (0x7053, 0x1000)
_PHILIPS_ACTIVITY_SCALE = (0x7053, 0x1009)
_GE_SCAN_DATETIME = (0x0009, 0x100D)
_MAX_WEIGHT_KG = 400.0
_MAX_UPTAKE_S = 24 * 3600.0


@dataclass(frozen=True)
class SUVFactor:
    """A conversion factor from stored (rescaled) PET values to SUV, with its provenance.

    Attributes
    ----------
    factor : float
        Multiply the rescaled voxel value (Bq/ml for Units BQML) by it to obtain the SUV.
    kind : str
        SUV normalisation ('bw', 'lbm', 'lbm_janma', 'bsa', 'ibw').
    tags : dict
        Every DICOM value and derived quantity used (weight, dose, half-life, times, decay factor, ...).
    warnings : tuple of str
        Assumptions made (e.g. a dose read as MBq); show them to the user.
    slice_factors : tuple of float
        Only for DecayCorrection NONE with frames acquired at different times: one factor per
        header given to :func:`suv_factor` (same order); empty when ``factor`` holds for all slices.
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
    return float(value)


def _private(ds: Dataset, tag: tuple[int, int]) -> float | None:
    if tag not in ds:
        return None
    try:
        return _float_value(ds[tag].value)
    except (TypeError, ValueError):
        return None


# --- normalisers ----------------------------------------------------------------------------


def _sexes(sex: str) -> tuple[str, ...]:
    return ("M",) if sex == "M" else ("F",) if sex == "F" else ("M", "F")


def normaliser(
    kind: str, *, weight_kg: float, height_m: float | None = None, sex: str | None = None
) -> float:
    """Body-size normaliser of an SUV kind: grams for 'bw', 'lbm', 'lbm_janma', 'ibw'; cm² for 'bsa'.

    For sex other than 'M'/'F' the mean of the male and female values is used (IBSI-SUV manual).

    Parameters
    ----------
    kind : {'bw', 'lbm', 'lbm_janma', 'bsa', 'ibw', 'lbm_morgan'}
        'lbm' is James (DICOM LBMJAMES128): 1.10 W - 128 (W/H)² male, 1.07 W - 148 (W/H)² female;
        'lbm_morgan' uses 120 instead of 128 for males (DICOM "LBM");
        'lbm_janmahasatian': 9270 W / (6680 + 216 BMI) male, 9270 W / (8780 + 244 BMI) female;
        'bsa': Du Bois 0.007184 W^0.425 H^0.725 m², returned in cm²;
        'ibw': 48.0 + 1.06 (H - 152) male, 45.5 + 0.91 (H - 152) female (kg, H in cm).
    weight_kg, height_m : float
        Patient weight (kg) and height (m).
    sex : str
        'M', 'F' or other.
    """
    w = float(weight_kg)
    if kind == "bw":
        return w * 1000.0
    if height_m is None:
        raise ValueError(f"SUV kind {kind!r} needs the patient height")
    h_cm = float(height_m) * 100.0
    if kind == "bsa":
        return 0.007184 * w**0.425 * h_cm**0.725 * 1e4
    values = []
    for s in _sexes((sex or "").upper()):
        if kind in ("lbm", "lbm_morgan"):
            k = (128.0 if kind == "lbm" else 120.0) if s == "M" else 148.0
            values.append((1.10 if s == "M" else 1.07) * w - k * (w / h_cm) ** 2)
        elif kind == "lbm_janma":
            bmi = w / float(height_m) ** 2
            values.append(9270.0 * w / ((6680.0 + 216.0 * bmi) if s == "M" else (8780.0 + 244.0 * bmi)))
        elif kind == "ibw":
            values.append(48.0 + 1.06 * (h_cm - 152.0) if s == "M" else 45.5 + 0.91 * (h_cm - 152.0))
        else:
            raise ValueError(f"unknown SUV kind {kind!r}; valid: {', '.join(KINDS)}")
    return float(np.mean(values)) * 1000.0


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

    def radiopharm(self) -> Dataset:
        seq = self.ds.get("RadiopharmaceuticalInformationSequence")
        if not seq:
            return Dataset()
        item: Dataset = seq[0]
        return item


def _weight(ctx: _Ctx, weight_kg: float | None) -> float:
    if weight_kg is not None:
        w, ctx.tags["weight_source"] = float(weight_kg), "override weight_kg"
    else:
        raw = ctx.ds.get("PatientWeight")
        w = float(raw) if raw not in (None, "") else 0.0
        ctx.tags["weight_source"] = "PatientWeight (0010,1030)"
    hint = "pass weight_kg=<kg> (e.g. weight_kg=72) / --weight-kg 72, or a weight_kg column in the study's clinical table"
    if w <= 0:
        raise ctx.fail("patient weight is missing or 0", "PatientWeight (0010,1030)", hint)
    if w > _MAX_WEIGHT_KG:
        raise ctx.fail(
            f"patient weight {w} kg is implausible (> {_MAX_WEIGHT_KG:g} kg; grams or pounds?)",
            "PatientWeight (0010,1030)",
            hint,
        )
    ctx.tags["PatientWeight_kg"] = w
    return w


def _height(ctx: _Ctx, height_m: float | None) -> float:
    if height_m is not None:
        h, ctx.tags["height_source"] = float(height_m), "override height_m"
    else:
        raw = ctx.ds.get("PatientSize")
        h = float(raw) if raw not in (None, "") else 0.0
        ctx.tags["height_source"] = "PatientSize (0010,1020)"
    hint = "pass height_m=<m> (e.g. height_m=1.75) / --height-m 1.75, or a height_m column in the study's clinical table"
    if h <= 0:
        raise ctx.fail("patient height is missing or 0", "PatientSize (0010,1020)", hint)
    if not 0.3 <= h <= 2.6:
        raise ctx.fail(
            f"patient height {h} m is implausible (cm instead of m?)", "PatientSize (0010,1020)", hint
        )
    ctx.tags["PatientSize_m"] = h
    return h


def _sex(ctx: _Ctx, sex: str | None) -> str:
    s = (sex if sex is not None else str(ctx.ds.get("PatientSex", "") or "")).strip().upper()
    ctx.tags["PatientSex"] = s
    ctx.tags["sex_source"] = "override sex" if sex is not None else "PatientSex (0010,0040)"
    if s not in ("M", "F"):
        ctx.warnings.append(
            f"PatientSex (0010,0040) is {s or 'empty'!r}: the mean of the male and female formulas is used "
            "(IBSI-SUV manual); pass sex='M' or 'F' to override"
        )
    return s


def _norm(ctx: _Ctx, kind: str, weight_kg: float | None, height_m: float | None, sex: str | None) -> float:
    w = _weight(ctx, weight_kg)
    if kind == "bw":
        value = normaliser("bw", weight_kg=w)
    else:
        h = _height(ctx, height_m)
        s = _sex(ctx, sex) if kind != "bsa" else ""
        value = normaliser(kind, weight_kg=w, height_m=h, sex=s)
        if value <= 0:
            raise ctx.fail(
                f"the {kind} normaliser is {value / 1000:.1f} kg for weight {w} kg and height {h} m",
                "PatientWeight (0010,1030) / PatientSize (0010,1020)",
                "check the weight and height, or pass weight_kg= / height_m=",
            )
    ctx.tags[f"normaliser_{kind}"] = value
    return value


def _dose(ctx: _Ctx, dose_bq: float | None) -> float:
    hint = "pass dose_bq=<Bq> (e.g. dose_bq=3.7e8) / --dose-bq, or a dose_bq column in the study's clinical table"
    if dose_bq is not None:
        d = float(dose_bq)
        ctx.tags["dose_source"] = "override dose_bq"
    else:
        raw = ctx.radiopharm().get("RadionuclideTotalDose")
        d = float(raw) if raw not in (None, "") else 0.0
        ctx.tags["dose_source"] = "RadionuclideTotalDose (0018,1074)"
        if 0 < d < 1e4:
            ctx.warnings.append(
                f"RadionuclideTotalDose (0018,1074) = {d:g} is too small for Bq: read as MBq ({d * 1e6:g} Bq); "
                "pass dose_bq= to override"
            )
            d *= 1e6
    if d <= 0:
        raise ctx.fail("administered dose is missing or 0", "RadionuclideTotalDose (0018,1074)", hint)
    ctx.tags["RadionuclideTotalDose_Bq"] = d
    return d


def _half_life(ctx: _Ctx, half_life_s: float | None) -> float:
    raw = half_life_s if half_life_s is not None else ctx.radiopharm().get("RadionuclideHalfLife")
    t = float(raw) if raw not in (None, "") else 0.0
    if t <= 0:
        raise ctx.fail(
            "radionuclide half-life is missing or 0",
            "RadionuclideHalfLife (0018,1075)",
            "pass half_life_s=<s> (F-18: 6586.2 s, Ga-68: 4057.7 s)",
        )
    ctx.tags["RadionuclideHalfLife_s"] = t
    return t


def _series_datetime(ctx: _Ctx) -> datetime:
    date, time = ctx.ds.get("SeriesDate"), ctx.ds.get("SeriesTime")
    if not date or not time:
        raise ctx.fail(
            "series date/time is missing",
            "SeriesDate (0008,0021) / SeriesTime (0008,0031)",
            "the decay-correction reference time is unknown; fix the header",
        )
    return _combine(str(date), str(time))


def _acquisition_datetimes(ctx: _Ctx) -> list[tuple[datetime, Dataset]]:
    out = []
    for ds in ctx.headers:
        t = ds.get("AcquisitionTime")
        if t:
            out.append((_combine(str(ds.get("AcquisitionDate") or ds.get("SeriesDate")), str(t)), ds))
    return out


def _average_count_time(frame_s: float, half_life: float) -> float:
    lam = math.log(2) / half_life
    x = lam * frame_s
    return math.log(x / (1.0 - math.exp(-x))) / lam


def _reference_time(ctx: _Ctx, half_life: float) -> datetime:
    """Scan start for DecayCorrection START (QIBA rule; IBSI-SUV method 4 fallback)."""
    series_dt = _series_datetime(ctx)
    acq = _acquisition_datetimes(ctx)
    manufacturer = str(ctx.ds.get("Manufacturer", "") or "").upper()
    if manufacturer.startswith("GE") and _GE_SCAN_DATETIME in ctx.ds:
        raw = ctx.ds[_GE_SCAN_DATETIME].value
        text = raw.decode("ascii", "ignore") if isinstance(raw, bytes) else str(raw)
        text = text.strip("\x00 ")
        if text:
            ref = _parse_datetime(text)
            ctx.tags["reference_time_source"] = "GE private scan date-time (0009,100D)"
            return ref
    if not acq or series_dt <= min(a for a, _ in acq):
        ctx.tags["reference_time_source"] = "SeriesDate/SeriesTime (0008,0021/0031)"
        return series_dt
    # series written after the acquisition (post-processed): back-compute the scan start
    starts = []
    for a, ds in acq:
        frt, dur = ds.get("FrameReferenceTime"), ds.get("ActualFrameDuration")
        if frt not in (None, "") and dur not in (None, "") and float(frt) > 0 and float(dur) > 0:
            t_ave = _average_count_time(float(dur) / 1000.0, half_life)
            starts.append(a - timedelta(seconds=float(frt) / 1000.0 - t_ave))
    if starts:
        ctx.tags["reference_time_source"] = (
            "AcquisitionTime - (FrameReferenceTime - average count time in frame) (SeriesTime later than acquisition)"
        )
        return min(starts)
    ctx.tags["reference_time_source"] = (
        "earliest AcquisitionDate/AcquisitionTime (SeriesTime later than acquisition)"
    )
    return min(a for a, _ in acq)


def _injection_time(ctx: _Ctx, injection_time: datetime | None, reference: datetime) -> datetime:
    if injection_time is not None:
        ctx.tags["injection_source"] = "override injection_time"
        return injection_time
    rp = ctx.radiopharm()
    start_dt = rp.get("RadiopharmaceuticalStartDateTime")
    if start_dt:
        ctx.tags["injection_source"] = "RadiopharmaceuticalStartDateTime (0018,1078)"
        return _parse_datetime(str(start_dt))
    start_t = rp.get("RadiopharmaceuticalStartTime")
    if not start_t:
        raise ctx.fail(
            "injection time is missing",
            "RadiopharmaceuticalStartDateTime (0018,1078) / RadiopharmaceuticalStartTime (0018,1072)",
            "pass injection_time=datetime(...) / --injection-time, or an injection_time column in the clinical table",
        )
    date = str(ctx.ds.get("SeriesDate") or reference.strftime("%Y%m%d"))
    inj = _combine(date, str(start_t))
    ctx.tags["injection_source"] = "RadiopharmaceuticalStartTime (0018,1072) with SeriesDate"
    if inj > reference:
        inj -= timedelta(days=1)
        ctx.warnings.append(
            "injection time is later than the scan time on the same date: taken as the day before"
        )
    return inj


def _decayed_dose(
    ctx: _Ctx,
    *,
    dose_bq: float | None,
    injection_time: datetime | None,
    half_life_s: float | None,
) -> float:
    """Dose decayed to the time the voxel values refer to."""
    dose = _dose(ctx, dose_bq)
    dc = str(ctx.ds.get("DecayCorrection", "") or "").strip().upper()
    ctx.tags["DecayCorrection"] = dc
    if dc == "ADMIN":
        ctx.tags["decay_factor"] = 1.0
        return dose
    if dc not in ("START", "NONE"):
        raise ctx.fail(
            f"DecayCorrection {dc or '(empty)'!r} is not one of START, ADMIN, NONE",
            "DecayCorrection (0054,1102)",
            "fix the header; the time the voxel values refer to is unknown",
        )
    half_life = _half_life(ctx, half_life_s)
    if dc == "START":
        reference = _reference_time(ctx, half_life)
    else:
        acq = _acquisition_datetimes(ctx)
        if not acq:
            raise ctx.fail(
                "DecayCorrection NONE needs the acquisition time",
                "AcquisitionTime (0008,0032)",
                "fix the header",
            )
        if len(acq) != len(ctx.headers):
            raise ctx.fail(
                f"DecayCorrection NONE: {len(ctx.headers) - len(acq)} of {len(ctx.headers)} slices lack the "
                "acquisition time needed for their decay correction",
                "AcquisitionTime (0008,0032)",
                "fix the header",
            )

        def scan_time(a: datetime, ds: Dataset) -> datetime:
            # t_scan = t_acq + T_ave: time of the average count rate within the frame (IBSI-SUV manual)
            dur = ds.get("ActualFrameDuration")
            ok = dur not in (None, "") and float(dur) > 0
            return a + timedelta(seconds=_average_count_time(float(dur) / 1000.0, half_life) if ok else 0.0)

        times = [scan_time(a, ds) for a, ds in acq]
        reference = min(times)
        ctx.tags["reference_time_source"] = (
            "earliest AcquisitionTime + average count time in frame (DecayCorrection NONE)"
        )
        if len(set(times)) > 1:
            # frames acquired at different times: one decay factor per slice, relative to the reference
            ctx.slice_decay = [2.0 ** (-(t - reference).total_seconds() / half_life) for t in times]
            ctx.tags["slice_scan_times"] = sorted({t.isoformat() for t in times})
            ctx.warnings.append(
                "DecayCorrection NONE with several acquisition times: each slice has its own factor "
                "(SUVFactor.slice_factors); SUVFactor.factor holds for the earliest frame only"
            )
    injection = _injection_time(ctx, injection_time, reference)
    delta = (reference - injection).total_seconds()
    ctx.tags.update(
        reference_time=reference.isoformat(), injection_time=injection.isoformat(), uptake_s=delta
    )
    if delta < 0:
        raise ctx.fail(
            f"injection ({injection}) is after the reference time ({reference})",
            "RadiopharmaceuticalStartDateTime (0018,1078) / SeriesTime (0008,0031)",
            "pass injection_time=datetime(...) / --injection-time with the true injection time",
        )
    if delta > _MAX_UPTAKE_S:
        raise ctx.fail(
            f"uptake time {delta / 3600:.1f} h is implausible (> 24 h) between injection {injection} and {reference}",
            "RadiopharmaceuticalStartDateTime (0018,1078) / SeriesDate (0008,0021)",
            "pass injection_time=datetime(...) / --injection-time with the true injection time",
        )
    decay = 2.0 ** (-delta / half_life)
    ctx.tags["decay_factor"] = decay
    return dose * decay


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
        PET header(s) (pixel data not needed). With several slices the earliest AcquisitionTime is
        used for the START rule.
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
        Missing or implausible weight, height, dose, half-life or times; unknown Units or
        DecayCorrection. The message names the DICOM attribute, the file and the override to use.
    ValueError
        Unknown ``kind``.
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
    units = str(ds.get("Units", "") or "").strip().upper()
    ctx.tags["Units"] = units
    modality = str(ds.get("Modality", "") or "")
    if modality and modality != "PT":
        raise ctx.fail(
            f"Modality is {modality!r}, not PT", "Modality (0008,0060)", "SUV applies to PET series only"
        )
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
    corrected = [str(v).upper() for v in (ds.get("CorrectedImage") or [])]
    ctx.tags["CorrectedImage"] = corrected
    if corrected and "ATTN" not in corrected:
        ctx.warnings.append("CorrectedImage (0028,0051) lacks ATTN: the image is not attenuation corrected")

    if units in ("GML", "CM2ML"):
        suv_type = str(ds.get("SUVType", "") or "").strip().upper() or ("BW" if units == "GML" else "BSA")
        ctx.tags["SUVType"] = suv_type
        stored = _SUVTYPE_TO_KIND.get(suv_type)
        if stored is None or (units == "CM2ML") != (stored == "bsa"):
            raise ctx.fail(
                f"SUVType {suv_type!r} is unknown or inconsistent with Units {units}",
                "SUVType (0054,1006)",
                "fix the header (GML goes with BW/LBM/LBMJAMES128/LBMJANMA/IBW, CM2ML with BSA)",
            )
        if stored == kind:
            factor = 1.0
        else:
            factor = _norm(ctx, kind, weight_kg, height_m, sex) / _norm(ctx, stored, weight_kg, height_m, sex)
        ctx.tags["stored_as"] = f"SUV{stored} already"
    elif units == "BQML":
        factor = _norm(ctx, kind, weight_kg, height_m, sex) / _decayed_dose(
            ctx, dose_bq=dose_bq, injection_time=injection_time, half_life_s=half_life_s
        )
        ctx.tags["decayed_dose_Bq"] = ctx.tags["RadionuclideTotalDose_Bq"] * ctx.tags["decay_factor"]
    elif units == "CNTS":
        suv_sf = _private(ds, _PHILIPS_SUV_SCALE)
        ac_sf = _private(ds, _PHILIPS_ACTIVITY_SCALE)
        ctx.tags["PhilipsSUVScaleFactor_7053_1000"] = suv_sf
        ctx.tags["PhilipsActivityConcentrationScaleFactor_7053_1009"] = ac_sf
        if suv_sf:
            factor = suv_sf
            if kind != "bw":
                factor *= _norm(ctx, kind, weight_kg, height_m, sex) / _norm(
                    ctx, "bw", weight_kg, height_m, sex
                )
        elif ac_sf:
            factor = ac_sf * (
                _norm(ctx, kind, weight_kg, height_m, sex)
                / _decayed_dose(ctx, dose_bq=dose_bq, injection_time=injection_time, half_life_s=half_life_s)
            )
        else:
            raise ctx.fail(
                "Units CNTS without a usable Philips SUV Scale Factor (7053,1000) or Activity Concentration "
                "Scale Factor (7053,1009)",
                "Units (0054,1001)",
                "counts cannot be converted to Bq/ml: export the series in BQML from the scanner console",
            )
    else:
        raise ctx.fail(
            f"Units {units or '(empty)'!r} cannot be converted to SUV (supported: BQML, CNTS with Philips "
            "scale factors, GML, CM2ML)",
            "Units (0054,1001)",
            "export the series in BQML from the scanner console",
        )
    if not math.isfinite(factor) or factor <= 0:
        raise SUVError(f"{ctx.source}: SUV factor {factor} is not a positive number; tags used: {ctx.tags}")
    slice_factors = tuple(float(factor) / d for d in ctx.slice_decay)
    return SUVFactor(float(factor), kind, ctx.tags, tuple(ctx.warnings), slice_factors)


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
