"""Results back to the clinic: a DICOM SEG of the lesions and a TID 1500 SR of their measurements.

:func:`write_patient_results` writes, for one patient,

* ``<patient>_SEG.dcm``: a DICOM Segmentation (one AUTOMATIC segment per lesion, labelled with
  the ROI name) on the grid of the PET series it references;
* ``<patient>_SR.dcm``: a Comprehensive 3D SR holding a TID 1500 measurement report
  (:mod:`smartimaging.io.sr`): per lesion SUVmax, SUVpeak, SUVmean, MTV and TLG, referencing the
  lesion's segment of the SEG and the PET series; and the model's output (probability; the
  decision and its threshold in the model's name, and whether the model abstained).

The lesion values are those of the features table where it has them (the primary lesion's
``PET.*`` features, the values the model saw), otherwise computed with
:func:`smartimaging.features.pet.lesion_metrics` on the same SUV image, which gives the same
numbers. Both files can be sent to a PACS with ``smartimaging pacs push`` (or
``smartimaging predict ... --push-to``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pydicom

from smartimaging.exceptions import SmartImagingError
from smartimaging.features.pet import lesion_metrics
from smartimaging.image import Image, Mask
from smartimaging.io.dicom import SeriesInfo
from smartimaging.io.sr import LesionMeasurement, ModelPrediction, write_measurement_report
from smartimaging.io.suv import SUVKind
from smartimaging.segment.export import write_masks

__all__ = ["model_prediction", "result_paths", "write_patient_results"]

_KEYS = {
    "suv_max": "PET.SUVmax",
    "suv_mean": "PET.SUVmean",
    "suv_peak": "PET.SUVpeak",
    "mtv_ml": "PET.MTV",
    "tlg_g": "PET.TLG",
}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "patient"


def result_paths(out_dir: str | os.PathLike[str], patient_id: str) -> list[Path]:
    """The SEG and SR files :func:`write_patient_results` writes for ``patient_id`` in ``out_dir``."""
    out = Path(out_dir)
    return [out / f"{_safe(patient_id)}_SEG.dcm", out / f"{_safe(patient_id)}_SR.dcm"]


def model_prediction(prediction: Any, *, model: str, target: str) -> ModelPrediction:
    """The SR's model output of a bundle prediction.

    Parameters
    ----------
    prediction : smartimaging.study.bundle.Prediction
        Its ``probability``, ``label``, ``threshold`` and ``abstain`` are used.
    model : str
        Model name (e.g. ``"combined logistic"``).
    target : str
        The predicted clinical variable.

    Returns
    -------
    ModelPrediction
        The probability, the abstention, and a name holding the decision and its threshold,
        e.g. ``"combined logistic: label=1 (p>=0.412)"`` (at most 64 characters).
    """
    decision = "abstained" if prediction.abstain else f"{target}={int(prediction.label)}"
    suffix = f": {decision} (p>={float(prediction.threshold):.3f})"
    name = model[: max(1, 64 - len(suffix))] + suffix
    return ModelPrediction(
        model=name[:64], probability=float(prediction.probability), abstained=bool(prediction.abstain)
    )


def _lesion(name: str, suv: Image, mask: Mask, features: pd.DataFrame | None) -> LesionMeasurement:
    values: dict[str, float] = {}
    if features is not None and not features.empty:
        rows = features[(features["roi"] == name) & (features["image_type"] == "original")]
        by_key = dict(zip(rows["key"], rows["value"], strict=True))
        values = {field: float(by_key[key]) for field, key in _KEYS.items() if key in by_key}
    if len(values) < len(_KEYS):
        computed = lesion_metrics(suv, mask)
        for field, key in _KEYS.items():
            values.setdefault(field, float(computed[key]))
    peak = values["suv_peak"]
    return LesionMeasurement(
        label=name,
        suv_max=values["suv_max"],
        suv_mean=values["suv_mean"],
        suv_peak=peak if math.isfinite(peak) else None,
        mtv_ml=values["mtv_ml"],
        tlg_g=values["tlg_g"],
    )


def write_patient_results(
    pet_series: SeriesInfo | Sequence[pydicom.Dataset],
    suv: Image,
    masks: Mapping[str, Mask],
    features: pd.DataFrame | None,
    prediction: ModelPrediction | None,
    out_dir: str | os.PathLike[str],
    *,
    suv_kind: SUVKind = "bw",
    method: str = "relative",
    patient_id: str | None = None,
) -> list[Path]:
    """Write a patient's lesions as a DICOM SEG and their measurements (and the model output) as a TID 1500 SR.

    Parameters
    ----------
    pet_series : SeriesInfo or sequence of pydicom.Dataset
        The PET series the SUV image was computed from (its files are read), or its datasets.
    suv : Image
        The SUV image (on the PET grid).
    masks : mapping of str to Mask
        Lesion masks on the SUV grid by ROI name (SEG segment labels, SR tracking identifiers).
    features : DataFrame or None
        The patient's tidy feature table; its ``PET.*`` rows of a lesion are reported as they are.
    prediction : ModelPrediction or None
        The model output (see :func:`model_prediction`); None to report the lesions only.
    out_dir : str or os.PathLike
        Output folder (created); the files are named by :func:`result_paths` and written atomically.
    suv_kind : {"bw", "lbm", "lbm_janma", "bsa", "ibw"}
        SUV normalisation (the SR's concept and unit).
    method : str
        Segmentation method, recorded as the SEG's algorithm (``smartimaging <method>``).
    patient_id : str, optional
        For the file names; default the PET's PatientID.

    Returns
    -------
    list of pathlib.Path
        The SEG, then the SR.

    Raises
    ------
    SmartImagingError
        If there is no mask, the PET files cannot be read, a mask is not on the PET grid
        (GeometryMismatchError), a lesion name is not a valid DICOM label, or a value is not
        finite (DicomError).
    """
    if not masks:
        raise SmartImagingError(f"no lesion mask to write into {out_dir}: nothing to report")
    pet: list[pydicom.Dataset]
    if isinstance(pet_series, SeriesInfo):
        try:
            pet = [pydicom.dcmread(f) for f in pet_series.files]
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise SmartImagingError(
                f"cannot read the PET series {pet_series.series_instance_uid}: {exc}"
            ) from exc
    else:
        pet = list(pet_series)
    if not pet:
        raise SmartImagingError(f"no PET dataset given for the results in {out_dir}")
    pid = patient_id if patient_id is not None else str(pet[0].get("PatientID", "patient"))
    seg_path, sr_path = result_paths(out_dir, pid)
    try:
        write_masks(masks, seg_path, fmt="seg", reference=pet, method=method, grid=suv)
    except ValueError as exc:  # an invalid segment label
        raise SmartImagingError(f"cannot write the SEG {seg_path}: {exc}") from exc
    seg = pydicom.dcmread(seg_path)
    lesions = [_lesion(name, suv, mask, features) for name, mask in masks.items()]
    write_measurement_report(
        lesions,
        seg,
        pet,
        sr_path,
        suv_kind=suv_kind,
        predictions=[prediction] if prediction is not None else [],
    )
    return [seg_path, sr_path]
