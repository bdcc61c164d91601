"""The per-patient part of a study: PET to SUV, lesion masks, features.

:func:`process_patient` is a pure function of its inputs (series, settings, clinical
overrides), so it can run in a worker process and its result can be cached. Every failure is
caught and returned as a :class:`PatientResult` with the stage and the reason: one bad patient
never stops a cohort.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from smartimaging.exceptions import DicomError, EmptyMaskError, SegmentationError, SmartImagingError
from smartimaging.features.extract import OUTPUT_COLUMNS, extract
from smartimaging.features.pet import PATIENT_FEATURES, patient_metrics
from smartimaging.features.settings import ExtractionSettings
from smartimaging.image import Image, Mask, resample_to
from smartimaging.io.dicom import SeriesInfo, read_series
from smartimaging.io.rtstruct import read_rtstruct
from smartimaging.io.seg import read_seg
from smartimaging.io.suv import to_suv
from smartimaging.segment.threshold import refine_contour
from smartimaging.study.config import SegmentationConfig, StudyConfig

__all__ = ["PatientResult", "PatientTask", "process_patient"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PatientTask:
    """Everything one patient's processing needs (picklable, for worker processes)."""

    patient_id: str
    series: tuple[SeriesInfo, ...]
    config: StudyConfig
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class PatientResult:
    """Outcome of one patient's processing.

    ``status`` is ``"ok"`` or ``"failed"``; on failure ``stage`` and ``reason`` say where and why.
    """

    patient_id: str
    status: str
    features: pd.DataFrame | None = None
    stage: str = ""
    reason: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    cached: bool = False


def _pick_series(task: PatientTask, modality: str) -> list[SeriesInfo]:
    found = [s for s in task.series if s.modality == modality]
    return sorted(found, key=lambda s: s.series_instance_uid)


def _roi_matcher(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise SmartImagingError(
            f"segmentation.roi {pattern!r} is not a valid regular expression: {exc}"
        ) from exc


def _masks_from_rtstruct(task: PatientTask, pet: Image, seg_cfg: SegmentationConfig) -> dict[str, Mask]:
    rts = _pick_series(task, "RTSTRUCT")
    if not rts:
        raise SegmentationError(f"no RTSTRUCT series for patient {task.patient_id}")
    path = rts[0].files[0]
    return read_rtstruct(path, pet, roi=seg_cfg.roi)


def _masks_from_seg(task: PatientTask, pet: Image, seg_cfg: SegmentationConfig) -> dict[str, Mask]:
    segs = _pick_series(task, "SEG")
    if not segs:
        raise SegmentationError(f"no DICOM SEG series for patient {task.patient_id}")
    path = segs[0].files[0]
    matcher = _roi_matcher(seg_cfg.roi)
    masks = {name: m for name, m in read_seg(path).items() if matcher.fullmatch(name)}
    if not masks:
        raise SegmentationError(
            f"no segment of {path} matches segmentation.roi {seg_cfg.roi!r}; segments present: "
            f"{sorted(read_seg(path))}"
        )
    return {name: (m if m.same_geometry(pet) else resample_to(m, pet)) for name, m in masks.items()}


def _masks_by_threshold(task: PatientTask, suv: Image, seg_cfg: SegmentationConfig) -> dict[str, Mask]:
    getter = _masks_from_seg if seg_cfg.threshold_contour_source == "seg" else _masks_from_rtstruct
    contours = getter(task, suv, seg_cfg)
    out: dict[str, Mask] = {}
    for name, contour in contours.items():
        if contour.n_voxels == 0:
            continue
        out[name] = refine_contour(
            suv, contour, fraction=seg_cfg.threshold_fraction, margin_mm=seg_cfg.threshold_margin_mm
        )
    return out


_MASK_SOURCES = {"rtstruct": _masks_from_rtstruct, "seg": _masks_from_seg, "threshold": _masks_by_threshold}


def lesion_masks(task: PatientTask, suv: Image) -> tuple[str, dict[str, Mask]]:
    """Lesion masks on the SUV grid from the first configured source available.

    Returns the source used and the non-empty masks by ROI name.
    """
    seg_cfg = task.config.segmentation
    reasons = []
    for source in seg_cfg.source:
        try:
            masks = _MASK_SOURCES[source](task, suv, seg_cfg)
        except SegmentationError as exc:
            reasons.append(f"{source}: {exc}")
            continue
        nonempty = {k: v for k, v in masks.items() if v.n_voxels > 0}
        if nonempty:
            return source, nonempty
        reasons.append(f"{source}: every matching ROI is empty on the PET grid")
    raise EmptyMaskError(f"no lesion mask for patient {task.patient_id}: " + "; ".join(reasons))


def _primary(masks: Mapping[str, Mask], primary_roi: str | None) -> str:
    if primary_roi is not None:
        matcher = _roi_matcher(primary_roi)
        names = [n for n in masks if matcher.fullmatch(n)]
        if not names:
            raise EmptyMaskError(
                f"segmentation.primary_roi {primary_roi!r} matches none of the ROIs {sorted(masks)}"
            )
        return names[0]
    return max(masks, key=lambda n: (masks[n].n_voxels, n))


def _run(task: PatientTask, result: PatientResult) -> None:
    cfg = task.config
    result.stage = "read PET"
    pets = _pick_series(task, "PT")
    if not pets:
        present = sorted({s.modality for s in task.series}) or ["nothing"]
        raise DicomError(
            f"no PET series (Modality PT) for patient {task.patient_id}; found {', '.join(present)}. "
            "Add the PET series to the input folder or remove the patient from the study."
        )
    if len(pets) > 1:
        log.warning(
            "patient %s has %d PET series; using %s", task.patient_id, len(pets), pets[0].series_instance_uid
        )
    pet = read_series(pets[0])

    result.stage = "SUV"
    suv, factor = to_suv(pet, kind=cfg.suv.type, **dict(task.overrides))
    result.info["suv_factor"] = factor.factor
    result.info["suv_tags"] = {k: str(v) for k, v in factor.tags.items()}

    result.stage = "segmentation"
    source, masks = lesion_masks(task, suv)
    primary = _primary(masks, cfg.segmentation.primary_roi)
    result.info.update(mask_source=source, rois=sorted(masks), primary_roi=primary)

    result.stage = "features"
    settings = ExtractionSettings.model_validate(cfg.features)
    tidy = extract(suv, masks[primary], settings=settings, case=task.patient_id, roi=primary, modality="PT")
    labels = np.zeros(suv.shape, dtype=np.int32)
    for i, name in enumerate(sorted(masks), start=1):
        labels[masks[name].array & (labels == 0)] = i
    label_img = suv.with_array(labels)
    whole = patient_metrics(suv, label_img)
    defs = {f.key: f for f in PATIENT_FEATURES}
    patient_rows = pd.DataFrame(
        {
            "case": task.patient_id,
            "roi": "patient",
            "modality": "PT",
            "image_type": "original",
            "family": "PET",
            "feature": [defs[k].name for k in whole],
            "ibsi_id": "",
            "aggregation": "",
            "value": [float(v) for v in whole.values()],
            "key": list(whole),
        },
        columns=list(OUTPUT_COLUMNS),
    )
    result.features = pd.concat([tidy, patient_rows], ignore_index=True)
    result.info["primary_volume_ml"] = masks[primary].volume_ml
    n_cc = ndimage.label(masks[primary].array)[1]
    result.info["primary_components"] = int(n_cc)


def process_patient(task: PatientTask) -> PatientResult:
    """Run the per-patient stages; never raises for a data problem.

    Parameters
    ----------
    task : PatientTask
        The patient's series, the study settings and per-patient overrides (e.g. weight).

    Returns
    -------
    PatientResult
        ``status="ok"`` with the tidy feature table, or ``status="failed"`` with the stage and
        the reason (the exception's message, which names the file and the fix).
    """
    t0 = time.perf_counter()
    result = PatientResult(patient_id=task.patient_id, status="ok")
    try:
        _run(task, result)
        result.stage = ""
    except SmartImagingError as exc:
        result.status, result.reason = "failed", str(exc)
    except Exception as exc:  # an unexpected error in one patient must not stop the cohort
        log.exception("unexpected error for patient %s", task.patient_id)
        result.status, result.reason = "failed", f"unexpected {type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - t0
    return result


def tasks_from_series(
    series: Sequence[SeriesInfo], config: StudyConfig, overrides: Mapping[str, Mapping[str, Any]]
) -> list[PatientTask]:
    """Group discovered series into one task per PatientID (sorted by ID)."""
    by_patient: dict[str, list[SeriesInfo]] = {}
    for s in series:
        by_patient.setdefault(s.patient_id, []).append(s)
    return [
        PatientTask(pid, tuple(by_patient[pid]), config, dict(overrides.get(pid, {})))
        for pid in sorted(by_patient)
    ]
