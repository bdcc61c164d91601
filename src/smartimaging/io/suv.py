"""Standardised uptake values from PET DICOM headers.

``SUV = C * norm / D_ref`` where ``C`` is the activity concentration (Bq/ml), ``D_ref`` the
injected dose decayed to the reference time of the image values, and ``norm`` the body
weight (g), lean body mass (g) or body surface area (cm²).

Rules (see docs/suv.md):

* Units (0054,1001) ``BQML``: values are Bq/ml. ``GML`` / ``CM2ML``: values are already SUVbw
  / SUVbsa as written by the scanner (factor 1 for the matching kind only).
* DecayCorrection (0054,1102) ``START``: values are decay-corrected to the start of the
  acquisition, so the dose is decayed from injection to the series start; when SeriesTime is
  later than the earliest AcquisitionTime of the series (a series re-created after the scan),
  the earliest acquisition time is used. ``ADMIN``: values are corrected to the injection
  time, so the dose is not decayed. ``NONE``: values are not decay-corrected; the dose is
  decayed to the acquisition start (the frame's own start for a single-frame reference).
* Injection time: RadiopharmaceuticalStartDateTime when present, else SeriesDate +
  RadiopharmaceuticalStartTime, moved one day back when it falls after the scan (an injection
  before midnight).

Anything missing or implausible raises :class:`~smartimaging.exceptions.SUVError` naming the
attribute, the file and the override to use. Overrides (``weight_kg``, ``height_m``, ``sex``,
``dose_bq``, ``injection_time``) always win and are recorded in :attr:`SUVFactor.tags`.
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

__all__ = ["SUVFactor", "SUVKind", "lean_body_mass_kg", "suv_factor", "to_suv"]

SUVKind = Literal["bw", "lbm", "lbm_janma", "bsa", "ibw"]
_KINDS = ("bw", "lbm", "lbm_janma", "bsa", "ibw")
_OVERRIDE_HINT = {
    "PatientWeight": "pass weight_kg=72 (CLI --weight-kg 72), or fill suv.weight_column in the study's clinical table",
    "PatientSize": "pass height_m=1.75 (CLI --height-m 1.75)",
    "PatientSex": "pass sex='M' or 'F' (CLI --sex M)",
    "RadionuclideTotalDose": "pass dose_bq=3.5e8 (CLI --dose-bq 3.5e8)",
    "RadiopharmaceuticalStartTime": "pass injection_time=datetime(...) (CLI --injection-time 2024-01-31T09:12:00)",
    "RadionuclideHalfLife": "check the RadiopharmaceuticalInformationSequence; F-18 is 6586.2 s",
}


@dataclass(frozen=True)
class SUVFactor:
    """The factor converting image values to SUV, and every input it was derived from.

    Attributes
    ----------
    factor : float
        Multiply the image values by it to get SUV.
    kind : str
        ``bw``, ``lbm`` (James), ``lbm_janma`` (Janmahasatian), ``bsa`` (Du Bois) or ``ibw``.
    tags : dict
        Attribute values and derived quantities used (weight, dose, times, decay factor...).
    warnings : tuple of str
        Non-fatal remarks (e.g. SeriesTime later than AcquisitionTime).
    """

    factor: float
    kind: str
    tags: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def _source(header: Dataset, source: str) -> str:
    return source or str(getattr(header, "filename", "") or "the PET header")


def _fail(keyword: str, tag: str, problem: str, where: str) -> SUVError:
    hint = _OVERRIDE_HINT.get(keyword, "")
    return SUVError(f"{where}: {keyword} {tag} {problem}" + (f"; {hint}" if hint else ""))


def _dicom_datetime(date: str, time: str) -> datetime:
    time = time.strip()
    if "." in time:
        main, frac = time.split(".", 1)
    else:
        main, frac = time, ""
    main = main.ljust(6, "0")
    base = datetime.strptime(date.strip() + main[:6], "%Y%m%d%H%M%S")
    if frac:
        base += timedelta(microseconds=int(frac[:6].ljust(6, "0")))
    return base


def _parse_dt(value: str) -> datetime:
    value = value.strip()
    # DT may carry a UTC offset (+hhmm): drop it, times within one exam share the offset
    for sign in ("+", "-"):
        if sign in value[8:]:
            value = value[: 8 + value[8:].index(sign)]
    return _dicom_datetime(value[:8], value[8:] or "000000")


def _reference_time(headers: Sequence[Dataset], where: str) -> tuple[datetime, list[str]]:
    first = headers[0]
    notes: list[str] = []
    series_date = str(first.get("SeriesDate", "") or first.get("StudyDate", "") or "")
    series_time = str(first.get("SeriesTime", "") or "")
    acq: list[datetime] = []
    for ds in headers:
        date = str(ds.get("AcquisitionDate", "") or series_date)
        time = str(ds.get("AcquisitionTime", "") or "")
        if date and time:
            acq.append(_dicom_datetime(date, time))
    if not series_date or not series_time:
        if not acq:
            raise SUVError(
                f"{where}: neither SeriesDate/SeriesTime (0008,0021)/(0008,0031) nor AcquisitionTime (0008,0032) "
                "is present: the scan time is unknown, so the injected dose cannot be decay-corrected"
            )
        return min(acq), notes
    series_dt = _dicom_datetime(series_date, series_time)
    if acq and min(acq) < series_dt:
        notes.append(
            f"SeriesTime {series_time} is later than the earliest AcquisitionTime; the acquisition time "
            f"{min(acq).time()} is used as the decay reference"
        )
        return min(acq), notes
    return series_dt, notes


def _radiopharmaceutical(header: Dataset, where: str) -> Dataset:
    seq = header.get("RadiopharmaceuticalInformationSequence")
    if not seq:
        raise SUVError(
            f"{where}: RadiopharmaceuticalInformationSequence (0054,0016) is missing: dose, half-life and "
            "injection time are unknown; pass dose_bq, injection_time and check the export settings of the scanner"
        )
    return seq[0]


def lean_body_mass_kg(weight_kg: float, height_m: float, sex: str, *, formula: str = "james") -> float:
    """Lean body mass in kg (James 1976, or Janmahasatian 2005 with ``formula='janmahasatian'``).

    >>> round(lean_body_mass_kg(70, 1.75, "M"), 2)
    56.52
    """
    h_cm = height_m * 100.0
    male = sex.upper().startswith("M")
    if formula == "james":
        return (
            1.10 * weight_kg - 128.0 * (weight_kg / h_cm) ** 2
            if male
            else 1.07 * weight_kg - 148.0 * (weight_kg / h_cm) ** 2
        )
    if formula == "janmahasatian":
        bmi = weight_kg / height_m**2
        return 9270.0 * weight_kg / ((6680.0 + 216.0 * bmi) if male else (8780.0 + 244.0 * bmi))
    raise ValueError(f"formula must be 'james' or 'janmahasatian', got {formula!r}")


def _body_size(
    kind: str, weight_kg: float, header: Dataset, where: str, height_m: float | None, sex: str | None
) -> tuple[float, dict[str, Any]]:
    """The normaliser (g for bw/lbm/ibw, cm² for bsa) and the values used."""
    if kind == "bw":
        return weight_kg * 1000.0, {}
    height = height_m if height_m is not None else float(header.get("PatientSize", 0) or 0)
    if not 0.5 <= height <= 2.6:
        raise _fail(
            "PatientSize", "(0010,1020)", f"is {height!r} m: absent or implausible for SUV{kind}", where
        )
    sex_value = sex if sex is not None else str(header.get("PatientSex", "") or "")
    if kind in ("lbm", "lbm_janma", "ibw") and sex_value.upper()[:1] not in ("M", "F"):
        raise _fail("PatientSex", "(0010,0040)", f"is {sex_value!r}: M or F is needed for SUV{kind}", where)
    info: dict[str, Any] = {"PatientSize_m": height, "PatientSex": sex_value}
    if kind in ("lbm", "lbm_janma"):
        lbm = lean_body_mass_kg(
            weight_kg, height, sex_value, formula="james" if kind == "lbm" else "janmahasatian"
        )
        info["lean_body_mass_kg"] = lbm
        return lbm * 1000.0, info
    if kind == "bsa":
        bsa_m2 = 0.007184 * weight_kg**0.425 * (height * 100.0) ** 0.725
        info["body_surface_area_m2"] = bsa_m2
        return bsa_m2 * 1e4, info
    # ideal body weight (Devine): 50 kg (male) / 45.5 kg (female) + 2.3 kg per inch over 5 feet
    inches_over = height * 100.0 / 2.54 - 60.0
    ibw = (50.0 if sex_value.upper().startswith("M") else 45.5) + 2.3 * inches_over
    info["ideal_body_weight_kg"] = ibw
    return ibw * 1000.0, info


def suv_factor(
    header: Dataset | Sequence[Dataset],
    *,
    kind: SUVKind = "bw",
    weight_kg: float | None = None,
    height_m: float | None = None,
    sex: str | None = None,
    dose_bq: float | None = None,
    injection_time: datetime | None = None,
    source: str = "",
) -> SUVFactor:
    """The factor converting a PET series' values to SUV.

    Parameters
    ----------
    header : pydicom.Dataset or sequence of Dataset
        The series' first slice, or every slice (the earliest AcquisitionTime is then used).
    kind : {'bw', 'lbm', 'lbm_janma', 'bsa', 'ibw'}
        Normalisation: body weight, lean body mass (James or Janmahasatian), body surface area
        (Du Bois), ideal body weight (Devine).
    weight_kg, height_m, sex, dose_bq, injection_time : optional
        Overrides of the header values.
    source : str
        Where the header came from (for messages); default: the header's file name.

    Returns
    -------
    SUVFactor

    Raises
    ------
    SUVError
        Missing or implausible input; the message names the attribute, the file and the override.
    """
    headers = [header] if isinstance(header, Dataset) else list(header)
    if not headers:
        raise SUVError("suv_factor: no header given")
    if kind not in _KINDS:
        raise SUVError(f"SUV kind must be one of {_KINDS}, got {kind!r}")
    first = headers[0]
    where = _source(first, source)
    tags: dict[str, Any] = {"SUV kind": kind}
    units = str(first.get("Units", "") or "").upper()
    tags["Units"] = units
    if units in ("GML", "CM2ML"):
        native = "bw" if units == "GML" else "bsa"
        if kind != native:
            raise SUVError(
                f"{where}: Units (0054,1001) is {units}: the values are already SUV{native} as computed by the "
                f"scanner; SUV{kind} cannot be derived from them. Use kind='{native}' or export Bq/ml (BQML) images."
            )
        return SUVFactor(1.0, kind, tags, (f"values already in SUV{native} (Units {units})",))
    if units != "BQML":
        raise SUVError(
            f"{where}: Units (0054,1001) is {units or 'absent'}; only BQML (Bq/ml), GML and CM2ML are supported. "
            "Export the PET in Bq/ml, or convert it with the vendor's scale factor first."
        )

    weight = weight_kg if weight_kg is not None else float(first.get("PatientWeight", 0) or 0)
    tags["PatientWeight_kg"] = weight
    if weight_kg is not None:
        tags["PatientWeight_override"] = True
    if not 1.0 <= weight <= 400.0:
        raise _fail(
            "PatientWeight",
            "(0010,1030)",
            f"is {weight!r} kg: absent, zero or implausible (1 to 400 kg)",
            where,
        )

    seq = first.get("RadiopharmaceuticalInformationSequence")
    rp = seq[0] if seq else Dataset()
    if not seq and (dose_bq is None or injection_time is None):
        _radiopharmaceutical(first, where)  # raises, naming the sequence and the overrides
    dose = dose_bq if dose_bq is not None else float(rp.get("RadionuclideTotalDose", 0) or 0)
    tags["RadionuclideTotalDose_Bq"] = dose
    if not dose > 0:
        raise _fail("RadionuclideTotalDose", "(0018,1074)", f"is {dose!r}: absent or zero", where)
    if dose < 1e5:
        raise _fail(
            "RadionuclideTotalDose",
            "(0018,1074)",
            f"is {dose:g} Bq, implausibly small for a patient injection (was it entered in MBq?)",
            where,
        )

    decay = str(first.get("DecayCorrection", "") or "").upper()
    tags["DecayCorrection"] = decay
    if decay not in ("START", "ADMIN", "NONE"):
        raise SUVError(
            f"{where}: DecayCorrection (0054,1102) is {decay or 'absent'}; expected START, ADMIN or NONE. "
            "The decay reference of the values is unknown, so no SUV can be computed reliably."
        )

    warnings: list[str] = []
    decay_factor = 1.0
    if decay in ("START", "NONE"):
        half_life = float(rp.get("RadionuclideHalfLife", 0) or 0)
        if not half_life > 0:
            raise _fail("RadionuclideHalfLife", "(0018,1075)", f"is {half_life!r}: absent or zero", where)
        ref_time, notes = _reference_time(headers, where)
        warnings += notes
        if injection_time is not None:
            inj = injection_time
        else:
            start_dt = str(rp.get("RadiopharmaceuticalStartDateTime", "") or "")
            start_t = str(rp.get("RadiopharmaceuticalStartTime", "") or "")
            if start_dt:
                inj = _parse_dt(start_dt)
            elif start_t:
                inj = _dicom_datetime(ref_time.strftime("%Y%m%d"), start_t)
                if inj > ref_time:
                    inj -= timedelta(days=1)
                    warnings.append(
                        "injection time later than the scan on the same date: taken as the day before"
                    )
            else:
                raise _fail("RadiopharmaceuticalStartTime", "(0018,1072)", "is absent", where)
        elapsed = (ref_time - inj).total_seconds()
        tags.update(
            injection_time=inj.isoformat(),
            reference_time=ref_time.isoformat(),
            uptake_s=elapsed,
            RadionuclideHalfLife_s=half_life,
        )
        if elapsed < 0:
            raise _fail(
                "RadiopharmaceuticalStartTime",
                "(0018,1072)",
                f"({inj.isoformat()}) is after the scan reference time ({ref_time.isoformat()})",
                where,
            )
        if elapsed > 24 * 3600:
            raise _fail(
                "RadiopharmaceuticalStartTime",
                "(0018,1072)",
                f"gives an uptake time of {elapsed / 3600:.1f} h (over 24 h): check the injection date and time",
                where,
            )
        decay_factor = math.exp(-math.log(2.0) * elapsed / half_life)
    tags["decay_factor"] = decay_factor
    decayed = dose * decay_factor
    tags["decayed_dose_Bq"] = decayed
    norm, info = _body_size(kind, weight, first, where, height_m, sex)
    tags.update(info)
    factor = norm / decayed
    return SUVFactor(factor, kind, tags, tuple(warnings))


def to_suv(pet: Image, *, kind: SUVKind = "bw", **overrides: Any) -> tuple[Image, SUVFactor]:
    """Convert a PET image read by :func:`smartimaging.io.dicom.read_series` to SUV.

    Uses ``pet.meta['headers']`` (every slice) or ``pet.meta['header']``; the overrides are
    those of :func:`suv_factor`. Returns the SUV image (float32, ``meta['units'] = 'SUV' + kind``)
    and the factor.
    """
    headers = pet.meta.get("headers") or ([pet.meta["header"]] if "header" in pet.meta else [])
    if not headers:
        raise SUVError(
            "to_suv: the image carries no DICOM header (meta['header']); read the PET with "
            "smartimaging.io.dicom.read_series, or use suv_factor() with the header yourself"
        )
    factor = suv_factor(headers, kind=kind, **overrides)
    values = (pet.array.astype(np.float64) * factor.factor).astype(np.float32)
    return pet.with_array(values, units=f"SUV{kind}", suv_factor=factor.factor), factor
