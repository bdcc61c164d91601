"""DICOM Structured Report of PET lesion measurements and model outputs (TID 1500).

A measurement report (DICOM TID 1500 "Measurement Report", written with highdicom as a
Comprehensive 3D SR) carries, per lesion, one volumetric ROI measurement group (TID 1411) that
references the lesion's segment in a DICOM SEG and holds SUVmax, SUVpeak, SUVmean, the metabolic
volume (MTV) and total lesion glycolysis (TLG), coded as DICOM PS3.16 prescribes:

* SUV: concept SUVbw / SUVlbm / SUVbsa / SUVibw (DCM 126401-126405, CID 7180) with unit
  ``g/ml{SUVbw}`` etc. (UCUM, CID 85) and a Derivation (DCM 121401) of Maximum (SCT 56851009),
  Mean (SCT 373098007) or Peak Value Within ROI (DCM 126031);
* MTV: Metabolic Volume (DCM 126032) in ml; TLG: Total Lesion Glycolysis (DCM 126033) in g
  (SUVmean [g/ml] x MTV [ml]).

Each model output (e.g. the probability of a malignant or high-risk tumour) is an image-level
measurement group (TID 1501) holding a Probability (DCM 122157, unit 1) whose method names the
model, and, when the model abstained (its conformal prediction set was ambiguous), a qualitative
evaluation "Model abstained" = Yes. PACS viewers that understand TID 1500 (OHIF, 3D Slicer's
QuantitativeReporting, dcmqi) show the lesion table next to the SEG.

The report can be pushed to a PACS with :func:`smartimaging.io.pacs.push` or
``smartimaging pacs push``, together with its SEG.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import highdicom as hd
import pydicom
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from smartimaging.atomic import atomic_path
from smartimaging.exceptions import DicomError
from smartimaging.io.rtstruct import _software_version
from smartimaging.io.seg import SEG_SOP_CLASS_UID
from smartimaging.io.suv import SUVKind

__all__ = [
    "LesionMeasurement",
    "MeasurementReportContent",
    "ModelPrediction",
    "read_measurement_report",
    "write_measurement_report",
]

_SCHEME = "99SMARTIMAGING"
"""Private coding scheme for the concepts DICOM has no code for (model identity, abstention)."""

_ABSTAINED = hd.sr.CodedConcept("ABSTAIN", _SCHEME, "Model abstained")
_MODEL_METHOD = "MODEL"

_SUV_CONCEPT: dict[str, tuple[Any, Any]] = {
    "bw": (codes.DCM.Suvbw, codes.UCUM.StandardizedUptakeValueBodyWeight),
    "lbm": (codes.DCM.Suvlbm, codes.UCUM.StandardizedUptakeValueLeanBodyMassJames),
    "lbm_janma": (codes.DCM.SuvlbmJanma, codes.UCUM.StandardizedUptakeValueLeanBodyMassJanma),
    "bsa": (codes.DCM.Suvbsa, codes.UCUM.StandardizedUptakeValueBodySurfaceArea),
    "ibw": (codes.DCM.Suvibw, codes.UCUM.StandardizedUptakeValueIdealBodyWeight),
}
_ML = hd.sr.CodedConcept("ml", "UCUM", "milliliter")
_GRAM = hd.sr.CodedConcept("g", "UCUM", "gram")
_DERIVATIONS = {
    "max": codes.SCT.Maximum,
    "mean": codes.SCT.Mean,
    "peak": codes.DCM.PeakValueWithinROI,
}


@dataclass(frozen=True)
class LesionMeasurement:
    """PET measurements of one lesion, which is one segment of a DICOM SEG.

    Attributes
    ----------
    label : str
        SegmentLabel of the lesion's segment in the SEG (also the measurement group's tracking
        identifier).
    suv_max, suv_mean : float
        Maximum and mean SUV inside the lesion.
    suv_peak : float or None
        SUVpeak (mean in the 1 cm³ sphere, IBSI local intensity peak); None when not measured.
    mtv_ml : float
        Metabolic tumour volume in ml.
    tlg_g : float
        Total lesion glycolysis, SUVmean x MTV, in g.
    """

    label: str
    suv_max: float
    suv_mean: float
    suv_peak: float | None
    mtv_ml: float
    tlg_g: float


@dataclass(frozen=True)
class ModelPrediction:
    """One model output for the patient.

    Attributes
    ----------
    model : str
        Name of the model (and its version), e.g. ``"combined v1 (smartimaging 0.1.0)"``; at most
        64 characters (DICOM LO).
    probability : float
        Predicted probability of the positive class, in [0, 1].
    abstained : bool
        True when the model declines to decide (e.g. an ambiguous conformal prediction set or an
        out-of-distribution patient); the probability is still reported.
    """

    model: str
    probability: float
    abstained: bool = False


@dataclass(frozen=True)
class MeasurementReportContent:
    """What :func:`read_measurement_report` finds in a report.

    Attributes
    ----------
    lesions : list of LesionMeasurement
        One entry per volumetric ROI group, in document order.
    predictions : list of ModelPrediction
        One entry per model-output group.
    seg_sop_instance_uid : str or None
        SOPInstanceUID of the SEG the lesion groups reference (None if there are no lesions).
    suv_kind : str or None
        The SUV normalisation of the SUV values ("bw", "lbm", ...).
    """

    lesions: list[LesionMeasurement]
    predictions: list[ModelPrediction]
    seg_sop_instance_uid: str | None
    suv_kind: str | None


def _finite(value: float, what: str, path: str | os.PathLike[str]) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise DicomError(
            f"cannot write {path}: {what} is {number}; every reported measurement must be finite"
        )
    return number


def _seg_segments(seg: pydicom.Dataset, path: str | os.PathLike[str]) -> dict[str, int]:
    if str(seg.get("SOPClassUID", "")) != SEG_SOP_CLASS_UID:
        raise DicomError(
            f"cannot write {path}: the dataset given as `seg` has SOPClassUID {seg.get('SOPClassUID')!r}, "
            f"not Segmentation Storage ({SEG_SOP_CLASS_UID}); pass the SEG written with io.seg.write_seg"
        )
    return {str(item.SegmentLabel): int(item.SegmentNumber) for item in seg.SegmentSequence}


def write_measurement_report(
    lesions: Sequence[LesionMeasurement],
    seg: pydicom.Dataset,
    pet: Sequence[pydicom.Dataset],
    path: str | os.PathLike[str],
    *,
    suv_kind: SUVKind = "bw",
    predictions: Sequence[ModelPrediction] = (),
    series_description: str = "smartimaging PET measurements",
    series_number: int = 902,
    procedure: Code | hd.sr.CodedConcept = codes.SCT.PETCTFDGImagingOfWholeBody,
) -> Path:
    """Write a TID 1500 measurement report of PET lesions (and model outputs) as a DICOM SR.

    Parameters
    ----------
    lesions : sequence of LesionMeasurement
        Per-lesion measurements; each ``label`` must be a SegmentLabel of ``seg``.
    seg : pydicom.Dataset
        The DICOM SEG holding the lesions (e.g. read back after :func:`smartimaging.io.seg.write_seg`).
    pet : sequence of pydicom.Dataset
        Datasets (headers suffice) of the PET series the SEG was made on: the report belongs to the
        same patient and study and lists the series as evidence.
    path : str or os.PathLike
        Output file, written atomically.
    suv_kind : {"bw", "lbm", "lbm_janma", "bsa", "ibw"}
        SUV normalisation of the SUV values (sets the concept and the unit).
    predictions : sequence of ModelPrediction
        Model outputs to report for this patient.
    series_description : str
        SeriesDescription of the new SR series.
    series_number : int
        SeriesNumber of the new SR series.
    procedure : pydicom.sr.coding.Code or highdicom.sr.CodedConcept
        The procedure reported (DICOM CID 100); default "PET/CT FDG imaging of whole body"
        (SCT 443271005).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    DicomError
        If ``seg`` is not a SEG, a lesion label is not one of its segments, a value is not finite, a
        probability lies outside [0, 1], the SEG and PET belong to different studies, or highdicom
        rejects the content.
    ValueError
        If ``suv_kind`` is not one of the valid kinds.

    References
    ----------
    DICOM PS3.16 TID 1500, TID 1411, TID 1501; CID 7180, CID 7466, CID 85.
    """
    if suv_kind not in _SUV_CONCEPT:
        raise ValueError(f"suv_kind must be one of {list(get_args(SUVKind))}, got {suv_kind!r}")
    if not lesions and not predictions:
        raise DicomError(f"nothing to report in {path}: give at least one lesion or one model prediction")
    if len(pet) == 0:
        raise DicomError(f"cannot write {path}: no PET dataset given (pass the headers of the PET series)")
    segments = _seg_segments(seg, path)
    study_uids = {str(ds.StudyInstanceUID) for ds in pet} | {str(seg.StudyInstanceUID)}
    if len(study_uids) != 1:
        raise DicomError(
            f"cannot write {path}: the SEG and the PET series belong to different studies "
            f"(StudyInstanceUID {sorted(study_uids)}); a report covers one study"
        )
    suv_name, suv_unit = _SUV_CONCEPT[suv_kind]
    algorithm = hd.sr.AlgorithmIdentification(name="smartimaging", version=_software_version())
    pet_series = hd.sr.SourceSeriesForSegmentation(str(pet[0].SeriesInstanceUID))

    groups: list[Any] = []
    for lesion in lesions:
        if lesion.label not in segments:
            raise DicomError(
                f"cannot write {path}: lesion {lesion.label!r} is not a segment of the SEG "
                f"{seg.SOPInstanceUID} (its SegmentLabels: {sorted(segments)})"
            )
        values = [
            (suv_name, lesion.suv_max, suv_unit, "max"),
            (suv_name, lesion.suv_mean, suv_unit, "mean"),
            (suv_name, lesion.suv_peak, suv_unit, "peak"),
            (codes.DCM.MetabolicVolume, lesion.mtv_ml, _ML, None),
            (codes.DCM.TotalLesionGlycolysis, lesion.tlg_g, _GRAM, None),
        ]
        measurements = [
            hd.sr.Measurement(
                name=name,
                value=_finite(value, f"{lesion.label} {name.meaning} {derivation or ''}".strip(), path),
                unit=unit,
                derivation=_DERIVATIONS[derivation] if derivation else None,
                algorithm_id=algorithm,
            )
            for name, value, unit, derivation in values
            if value is not None
        ]
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=lesion.label),
                referenced_segment=hd.sr.ReferencedSegment(
                    sop_class_uid=SEG_SOP_CLASS_UID,
                    sop_instance_uid=str(seg.SOPInstanceUID),
                    segment_number=segments[lesion.label],
                    source_series=pet_series,
                ),
                finding_type=codes.SCT.Lesion,
                algorithm_id=algorithm,
                measurements=measurements,
            )
        )
    for prediction in predictions:
        probability = _finite(prediction.probability, f"the probability of model {prediction.model!r}", path)
        if not 0.0 <= probability <= 1.0:
            raise DicomError(
                f"cannot write {path}: model {prediction.model!r} gives probability {probability}, outside [0, 1]"
            )
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=generate_uid(), identifier=f"model {prediction.model}"[:64]
                ),
                measurements=[
                    hd.sr.Measurement(
                        name=codes.DCM.Probability,
                        value=probability,
                        unit=codes.UCUM.NoUnits,
                        method=hd.sr.CodedConcept(_MODEL_METHOD, _SCHEME, prediction.model[:64]),
                        algorithm_id=hd.sr.AlgorithmIdentification(
                            name=prediction.model[:64], version=_software_version()
                        ),
                    )
                ],
                qualitative_evaluations=[
                    hd.sr.QualitativeEvaluation(
                        _ABSTAINED, codes.SCT.Yes if prediction.abstained else codes.SCT.No
                    )
                ],
            )
        )

    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name="smartimaging", manufacturer_name="smartimaging"
        ),
    )
    try:
        report = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(observer_device_context=observer),
            procedure_reported=procedure,
            imaging_measurements=groups,
        )
        sr = hd.sr.Comprehensive3DSR(
            evidence=[seg, *pet],
            content=report,
            series_instance_uid=generate_uid(),
            series_number=series_number,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer="smartimaging",
            series_description=series_description,
            is_complete=True,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise DicomError(f"cannot build the measurement report {path}: {exc}") from exc
    with atomic_path(path) as tmp:
        sr.save_as(tmp)
    return Path(path)


def _derivation_key(measurement: Any) -> str | None:
    derivation = measurement.derivation
    if derivation is None:
        return None
    for key, code in _DERIVATIONS.items():
        if derivation.value == code.value and derivation.scheme_designator == code.scheme_designator:
            return key
    return None


def read_measurement_report(path: str | os.PathLike[str]) -> MeasurementReportContent:
    """Read back a report written by :func:`write_measurement_report`.

    Parameters
    ----------
    path : str or os.PathLike
        A DICOM SR file holding a TID 1500 measurement report.

    Returns
    -------
    MeasurementReportContent
        Lesions, model predictions, the referenced SEG and the SUV normalisation.

    Raises
    ------
    DicomError
        If the file cannot be read or is not a TID 1500 measurement report.
    """
    try:
        sr = hd.sr.srread(path)
    except Exception as exc:  # highdicom raises plain exceptions of several kinds on bad input
        raise DicomError(f"cannot read the SR {path}: {exc}") from exc
    try:
        content: Any = sr.content  # a MeasurementReport for TID 1500 content
        volumetric = content.get_volumetric_roi_measurement_groups()
        image_level = content.get_image_measurement_groups()
    except (AttributeError, ValueError, TypeError) as exc:
        raise DicomError(f"{path} is not a TID 1500 measurement report: {exc}") from exc

    kinds = {code.value: kind for kind, (code, _unit) in _SUV_CONCEPT.items()}
    lesions: list[LesionMeasurement] = []
    seg_uid: str | None = None
    suv_kind: str | None = None
    for group in volumetric:
        suv: dict[str | None, float] = {}
        mtv = tlg = math.nan
        for measurement in group.get_measurements():
            name = measurement.name
            if name.value in kinds:
                suv_kind = kinds[name.value]
                suv[_derivation_key(measurement)] = float(measurement.value)
            elif name.value == codes.DCM.MetabolicVolume.value:
                mtv = float(measurement.value)
            elif name.value == codes.DCM.TotalLesionGlycolysis.value:
                tlg = float(measurement.value)
        segment = group.referenced_segment
        if segment is not None:
            seg_uid = str(segment.referenced_sop_instance_uid)
        lesions.append(
            LesionMeasurement(
                label=str(group.tracking_identifier),
                suv_max=suv.get("max", math.nan),
                suv_mean=suv.get("mean", math.nan),
                suv_peak=suv.get("peak"),
                mtv_ml=mtv,
                tlg_g=tlg,
            )
        )
    predictions: list[ModelPrediction] = []
    for group in image_level:
        for measurement in group.get_measurements(name=codes.DCM.Probability):
            method = measurement.method
            abstained = any(
                evaluation.name.value == _ABSTAINED.value and evaluation.value.value == codes.SCT.Yes.value
                for evaluation in group.get_qualitative_evaluations()
            )
            predictions.append(
                ModelPrediction(
                    model=str(method.meaning) if method is not None else str(group.tracking_identifier),
                    probability=float(measurement.value),
                    abstained=abstained,
                )
            )
    return MeasurementReportContent(lesions, predictions, seg_uid, suv_kind)
