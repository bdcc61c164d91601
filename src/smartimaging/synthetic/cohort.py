"""Generate and write a whole synthetic PET/CT cohort: DICOM, NIfTI, clinical table, truth.

Layout of ``out_dir``::

    dicom/<PatientID>/CT/CT_0000.dcm ...       CT Image Storage, HU
    dicom/<PatientID>/PET/PT_0000.dcm ...      PET Image Storage, Bq/ml (BQML), decay-corrected to START
    dicom/<PatientID>/RTSTRUCT/RS.dcm          ground-truth lesions on the CT grid (GTV_1, GTV_2, ...)
    dicom/<PatientID>/SEG/SEG.dcm              ground-truth lesions on the PET grid (one segment each)
    nifti/<PatientID>/ct.nii.gz, pet.nii.gz, lesions.nii.gz
    clinical.csv, truth.csv, cohort.json
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pydicom
import SimpleITK as sitk

from smartimaging import __version__
from smartimaging.atomic import atomic_path, atomic_write, write_text
from smartimaging.exceptions import ConfigError
from smartimaging.image import Image, Mask
from smartimaging.io.rtstruct import write_rtstruct
from smartimaging.io.seg import write_seg
from smartimaging.synthetic.dicom_write import publish_mode, synthetic_uid, write_ct_series, write_pet_series
from smartimaging.synthetic.outcomes import CENTRING, COEFFICIENTS
from smartimaging.synthetic.patient import SITES, SyntheticPatient, make_patient

__all__ = ["CLINICAL_COLUMNS", "GENERATOR_VERSION", "TRUTH_COLUMNS", "CohortSummary", "generate_cohort"]

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "1.0"

CLINICAL_COLUMNS = [
    "patient_id", "age", "sex", "weight_kg", "tumour_marker", "stage", "site", "label", "time_months", "event",
]  # fmt: skip

TRUTH_COLUMNS = [
    "patient_id", "lesion", "roi_name", "site", "organ", "shape", "centre_x_mm", "centre_y_mm", "centre_z_mm",
    "volume_ml", "volume_pet_ml", "volume_ct_ml", "suvmax_programmed", "suv_core", "suv_rim", "suv_necrosis",
    "heterogeneity", "texture_amplitude", "plateau_x_mm", "plateau_y_mm", "plateau_z_mm", "plateau_radius_mm",
    "plateau_exact", "plateau_recovery", "plateau_bqml", "decayed_dose_bq", "weight_kg", "calibration", "expected_suvbw_plateau",
]  # fmt: skip

_STANDARD_UID_ROOT = "1.2.840.10008."
_DERIVED_DATETIME_KEYWORDS = frozenset({"ContributionDateTime", "InstanceCreationDateTime"})
_DERIVED_TIME_KEYWORDS = (
    ("InstanceCreationDate", "InstanceCreationTime"),
    ("StructureSetDate", "StructureSetTime"),
    ("SeriesDate", "SeriesTime"),
    ("ContentDate", "ContentTime"),
)


@dataclass(frozen=True)
class CohortSummary:
    """What :func:`generate_cohort` wrote."""

    out_dir: Path
    n_patients: int
    seed: int
    patient_ids: list[str]
    clinical_csv: Path
    truth_csv: Path
    cohort_json: Path
    seconds: float


def _write_nifti(image: Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        sitk.WriteImage(image.to_sitk(), str(tmp), True)
    publish_mode(path)


def _make_deterministic(path: Path, p: SyntheticPatient, kind: str, known: set[str]) -> None:
    """Replace the random UIDs and wall-clock dates of a derived object by seed-derived ones.

    The RTSTRUCT and SEG writers create fresh UIDs and today's date; a synthetic cohort must be
    reproducible, so every UID that is neither standard nor one of the patient's own is mapped, in
    order of appearance, to a UID derived from the seed, and creation dates are set from the scan.
    """
    ds = pydicom.dcmread(path)
    mapping: dict[str, str] = {}
    when = p.series_datetime + dt.timedelta(hours=2)

    def visit(dataset: pydicom.Dataset) -> None:
        # raw elements: converting every value (e.g. long ContourData lists) would be slow
        for raw in list(dataset.elements()):
            if raw.VR == "SQ":
                for item in dataset[raw.tag].value:
                    visit(item)
            elif raw.VR == "DT" and dataset[raw.tag].keyword in _DERIVED_DATETIME_KEYWORDS:
                dataset[raw.tag].value = when.strftime("%Y%m%d%H%M%S")
            elif raw.VR == "UI":
                elem = dataset[raw.tag]
                if not elem.value:
                    continue
                old = str(elem.value)
                if old.startswith(_STANDARD_UID_ROOT) or old in known:
                    continue
                if old not in mapping:
                    mapping[old] = synthetic_uid(p.seed, p.patient_id, kind, len(mapping))
                elem.value = mapping[old]

    visit(ds)
    for date_kw, time_kw in _DERIVED_TIME_KEYWORDS:
        if date_kw in ds:
            setattr(ds, date_kw, when.strftime("%Y%m%d"))
        if time_kw in ds:
            setattr(ds, time_kw, when.strftime("%H%M%S"))
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    publish_mode(path)


def _lesion_masks(labels: Image, names: list[str]) -> dict[str, Mask]:
    return {
        name: Mask(labels.array == i + 1, labels.spacing, labels.origin, labels.direction.copy())
        for i, name in enumerate(names)
    }


def _write_patient(index: int, out_dir: str, seed: int, n_slices: int) -> dict[str, Any]:
    """Generate and write one patient; returns its clinical row and truth rows."""
    p = make_patient(index, seed=seed, n_slices=n_slices)
    root = Path(out_dir)
    ddir = root / "dicom" / p.patient_id
    ct_ds = write_ct_series(p, ddir / "CT")
    pet_ds = write_pet_series(p, ddir / "PET")
    known = {str(d.SOPInstanceUID) for d in (*ct_ds, *pet_ds)}
    known |= {str(ct_ds[0].SeriesInstanceUID), str(pet_ds[0].SeriesInstanceUID)}
    known |= {str(ct_ds[0].StudyInstanceUID), str(ct_ds[0].FrameOfReferenceUID)}
    names = [t.roi_name for t in p.lesions]
    rs_path = ddir / "RTSTRUCT" / "RS.dcm"
    write_rtstruct(
        _lesion_masks(p.ct_lesion_labels, names),
        ct_ds,
        rs_path,
        series_description="Ground truth lesions (synthetic)",
        structure_set_label="GROUND_TRUTH",
    )
    _make_deterministic(rs_path, p, "rtstruct", known)
    seg_path = ddir / "SEG" / "SEG.dcm"
    write_seg(
        _lesion_masks(p.lesion_labels, names),
        pet_ds,
        seg_path,
        series_description="Ground truth lesions (synthetic)",
    )
    _make_deterministic(seg_path, p, "seg", known)

    ndir = root / "nifti" / p.patient_id
    _write_nifti(p.ct, ndir / "ct.nii.gz")
    _write_nifti(p.pet_bqml, ndir / "pet.nii.gz")
    _write_nifti(p.lesion_labels, ndir / "lesions.nii.gz")

    clinical = {
        "patient_id": p.patient_id,
        "age": p.age,
        "sex": p.sex,
        "weight_kg": p.weight_kg,
        "tumour_marker": p.clinical.tumour_marker,
        "stage": p.clinical.stage,
        "site": p.site.name,
        "label": p.clinical.label,
        "time_months": p.clinical.time_months,
        "event": p.clinical.event,
    }
    truth = []
    for t in p.lesions:
        truth.append(
            {
                "patient_id": t.patient_id,
                "lesion": t.lesion,
                "roi_name": t.roi_name,
                "site": p.site.name,
                "organ": t.organ,
                "shape": t.shape,
                "centre_x_mm": round(t.centre_mm[0], 3),
                "centre_y_mm": round(t.centre_mm[1], 3),
                "centre_z_mm": round(t.centre_mm[2], 3),
                "volume_ml": round(t.volume_ml, 3),
                "volume_pet_ml": round(t.volume_pet_ml, 6),
                "volume_ct_ml": round(t.volume_ct_ml, 6),
                "suvmax_programmed": round(t.suvmax_programmed, 4),
                "suv_core": round(t.suv_core, 5),
                "suv_rim": round(t.suv_rim, 4),
                "suv_necrosis": None if t.suv_necrosis is None else round(t.suv_necrosis, 4),
                "heterogeneity": round(t.heterogeneity, 4),
                "texture_amplitude": round(t.texture_amplitude, 4),
                "plateau_x_mm": round(t.plateau_centre_mm[0], 3),
                "plateau_y_mm": round(t.plateau_centre_mm[1], 3),
                "plateau_z_mm": round(t.plateau_centre_mm[2], 3),
                "plateau_radius_mm": round(t.plateau_radius_mm, 3),
                "plateau_exact": int(t.plateau_exact),
                "plateau_recovery": round(t.plateau_recovery, 5),
                "plateau_bqml": round(t.plateau_bqml, 3),
                "decayed_dose_bq": round(t.decayed_dose_bq, 1),
                "weight_kg": t.weight_kg,
                "calibration": t.calibration,
                "expected_suvbw_plateau": round(t.expected_suvbw_plateau, 5),
            }
        )
    return {"clinical": clinical, "truth": truth, "site": p.site.name}


def _run(
    indices: list[int], out_dir: str, seed: int, n_slices: int, n_jobs: int, progress: bool
) -> dict[int, dict[str, Any]]:
    results: dict[int, dict[str, Any]] = {}

    def tasks() -> Iterable[tuple[int, dict[str, Any]]]:
        if n_jobs == 1:
            for i in indices:
                yield i, _write_patient(i, out_dir, seed, n_slices)
            return
        with cf.ProcessPoolExecutor(max_workers=n_jobs) as pool:
            futures = {pool.submit(_write_patient, i, out_dir, seed, n_slices): i for i in indices}
            for fut in cf.as_completed(futures):
                yield futures[fut], fut.result()

    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("[bold]synthetic cohort"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        ) as bar:
            task = bar.add_task("patients", total=len(indices))
            for i, res in tasks():
                results[i] = res
                bar.advance(task)
    else:
        for i, res in tasks():
            results[i] = res
    return results


def generate_cohort(
    out_dir: str | os.PathLike[str],
    *,
    n_patients: int = 60,
    seed: int = 0,
    n_jobs: int = 1,
    progress: bool = True,
    n_slices: int = 80,
) -> CohortSummary:
    """Generate a synthetic FDG PET/CT cohort and write it under ``out_dir``.

    Each patient is independent and deterministic given ``(seed, index)``: the same seed gives
    byte-identical files with identical UIDs whatever ``n_jobs``. See ``docs/synthetic.md``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Output folder (created; existing files of the same names are replaced atomically).
    n_patients : int
        Number of patients (1-999), IDs ``SYN001`` ...
    seed : int
        Cohort seed (non-negative).
    n_jobs : int
        Worker processes (1 = in this process).
    progress : bool
        Show a progress bar (rich).
    n_slices : int
        CT slices of 3 mm per patient (at least 40; fewer makes a faster, shorter scan).

    Returns
    -------
    CohortSummary

    Raises
    ------
    ConfigError
        If a parameter is out of range.
    """
    if not 1 <= n_patients <= 999:
        raise ConfigError(f"n_patients must be between 1 and 999, got {n_patients}")
    if seed < 0:
        raise ConfigError(f"seed must be non-negative, got {seed}")
    if n_jobs < 1:
        raise ConfigError(f"n_jobs must be at least 1, got {n_jobs}")
    if n_slices < 40:
        raise ConfigError(f"n_slices must be at least 40, got {n_slices}")
    t0 = time.perf_counter()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    results = _run(list(range(n_patients)), str(root), seed, n_slices, n_jobs, progress)
    ordered = [results[i] for i in range(n_patients)]

    clinical = pd.DataFrame([r["clinical"] for r in ordered], columns=CLINICAL_COLUMNS)
    truth = pd.DataFrame([row for r in ordered for row in r["truth"]], columns=TRUTH_COLUMNS)
    clinical_csv = root / "clinical.csv"
    truth_csv = root / "truth.csv"
    with atomic_write(clinical_csv, "w", encoding="utf-8", newline="") as fh:
        clinical.to_csv(fh, index=False)
    with atomic_write(truth_csv, "w", encoding="utf-8", newline="") as fh:
        truth.to_csv(fh, index=False)
    info = {
        "generator": "smartimaging.synthetic",
        "generator_version": GENERATOR_VERSION,
        "smartimaging_version": __version__,
        "seed": seed,
        "n_patients": n_patients,
        "n_slices": n_slices,
        "outcome_model": {
            "coefficients": COEFFICIENTS,
            "centring_mean_sd": {k: list(v) for k, v in CENTRING.items()},
            "description": "see docs/synthetic.md and smartimaging.synthetic.outcomes",
        },
        "sites": {name: dataclasses.asdict(s) for name, s in SITES.items()},
        "patients": {r["clinical"]["patient_id"]: r["site"] for r in ordered},
        "f18_half_life_s": 6586.2,
        "suv_definition": "SUVbw = Bq/ml / (dose * exp(-ln2 * (SeriesTime - RadiopharmaceuticalStartTime) / T1/2) "
        "/ (weight_kg * 1000)); stored Bq/ml include each site's calibration factor",
    }
    cohort_json = write_text(root / "cohort.json", json.dumps(info, indent=2, sort_keys=True) + "\n")
    for path in (clinical_csv, truth_csv, cohort_json):
        publish_mode(path)
    seconds = time.perf_counter() - t0
    logger.info("synthetic cohort of %d patients written to %s in %.1f s", n_patients, root, seconds)
    return CohortSummary(
        out_dir=root,
        n_patients=n_patients,
        seed=seed,
        patient_ids=[str(r["clinical"]["patient_id"]) for r in ordered],
        clinical_csv=clinical_csv,
        truth_csv=truth_csv,
        cohort_json=cohort_json,
        seconds=seconds,
    )
