"""The per-patient part of a study: PET to SUV, lesion masks, features.

:func:`process_patient` is a pure function of its inputs (series, settings, clinical
overrides), so it can run in a worker process and its result can be cached. Every failure is
caught and returned as a :class:`PatientResult` with the stage and the reason: one bad patient
never stops a cohort.
"""

from __future__ import annotations

import glob
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from smartimaging.exceptions import (
    ConfigError,
    DicomError,
    EmptyMaskError,
    SegmentationError,
    SmartImagingError,
    SUVError,
)
from smartimaging.features.extract import OUTPUT_COLUMNS, extract
from smartimaging.features.pet import PATIENT_FEATURES, patient_metrics
from smartimaging.features.settings import ExtractionSettings
from smartimaging.image import Image, Mask, resample_to
from smartimaging.io.dicom import SeriesInfo, read_series
from smartimaging.io.nifti import ImageFileError, read_image
from smartimaging.io.rtstruct import read_rtstruct
from smartimaging.io.seg import read_seg
from smartimaging.io.suv import factor_from_values, to_suv
from smartimaging.segment.methods import segment_lesion
from smartimaging.segment.threshold import refine_contour
from smartimaging.segment.wholebody import detect_lesions
from smartimaging.study.config import SegmentationConfig, StudyConfig

__all__ = ["PatientResult", "PatientTask", "process_patient", "tasks_from_nifti", "tasks_from_series"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PatientTask:
    """Everything one patient's processing needs (picklable, for worker processes)."""

    patient_id: str
    series: tuple[SeriesInfo, ...]
    config: StudyConfig
    overrides: Mapping[str, Any] = field(default_factory=dict)
    nifti: tuple[Path, Path] | None = None
    """(PET image in SUV, lesion label map) files when the input is NIfTI; ``series`` is then empty."""

    def input_files(self) -> list[Path]:
        """Every input file of the patient (for the cache key and the provenance)."""
        if self.nifti is not None:
            return [p for p in self.nifti if p.is_file()]
        return [Path(f) for s in self.series for f in s.files]


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
    segments = read_seg(path)
    masks = {name: m for name, m in segments.items() if matcher.fullmatch(name)}
    if not masks:
        raise SegmentationError(
            f"no segment of {path} matches segmentation.roi {seg_cfg.roi!r}; segments present: {sorted(segments)}"
        )
    return {name: (m if m.same_geometry(pet) else resample_to(m, pet)) for name, m in masks.items()}


def _method_kwargs(task: PatientTask, suv: Image, seg_cfg: SegmentationConfig) -> tuple[str, dict[str, Any]]:
    """Method name and keyword arguments of :func:`segment_lesion` from the study file."""
    method = seg_cfg.method
    if method is None:
        return "relative", {"fraction": seg_cfg.threshold_fraction}
    params = method.model_dump(exclude={"name"})
    if method.name == "percist":
        liver_cfg = seg_cfg.model_copy(update={"roi": params.pop("liver_roi")})
        getter = _masks_from_seg if seg_cfg.threshold_contour_source == "seg" else _masks_from_rtstruct
        try:
            livers = [m for m in getter(task, suv, liver_cfg).values() if m.n_voxels > 0]
        except SegmentationError as exc:
            raise SegmentationError(
                f"PERCIST liver reference (segmentation.method.liver_roi): {exc}"
            ) from exc
        if not livers:
            raise SegmentationError(
                f"segmentation.method.liver_roi {liver_cfg.roi!r} matches no non-empty ROI for patient "
                f"{task.patient_id}: the PERCIST method needs the liver reference region"
            )
        params["liver"] = livers[0]
    return method.name, params


def _masks_by_threshold(task: PatientTask, suv: Image, seg_cfg: SegmentationConfig) -> dict[str, Mask]:
    getter = _masks_from_seg if seg_cfg.threshold_contour_source == "seg" else _masks_from_rtstruct
    contours = getter(task, suv, seg_cfg)
    name, params = _method_kwargs(task, suv, seg_cfg)
    liver = params.get("liver")
    out: dict[str, Mask] = {}
    for roi, contour in contours.items():
        if contour.n_voxels == 0 or (liver is not None and contour is liver):
            continue
        if seg_cfg.method is None:  # the original behaviour, unchanged
            out[roi] = refine_contour(
                suv, contour, fraction=seg_cfg.threshold_fraction, margin_mm=seg_cfg.threshold_margin_mm
            )
            continue
        out[roi] = segment_lesion(
            suv, method=name, contour=contour, margin_mm=seg_cfg.threshold_margin_mm, **params
        )
    return out


def _masks_whole_body(task: PatientTask, suv: Image, seg_cfg: SegmentationConfig) -> dict[str, Mask]:
    wb = seg_cfg.whole_body
    found = detect_lesions(suv, threshold=wb.threshold, exclude=wb.exclude, min_volume_ml=wb.min_volume_ml)
    if found.table.empty:
        raise SegmentationError(
            f"whole-body detection found no lesion at SUV {wb.threshold:g} for patient {task.patient_id}"
        )
    return found.lesion_masks()


_MASK_SOURCES = {
    "rtstruct": _masks_from_rtstruct,
    "seg": _masks_from_seg,
    "threshold": _masks_by_threshold,
    "whole_body": _masks_whole_body,
}


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


# SUV above this in a NIfTI said to hold SUV means the file holds activity concentration
_MAX_PLAUSIBLE_SUV = 500.0


def _needed_for_nifti(key: str, kind: str, decay_corrected_to: str) -> bool:
    """Whether a clinical-table value is needed for SUV of a NIfTI image in Bq/ml."""
    return {
        "dose_bq": True,
        "weight_kg": kind != "ibw",
        "height_m": kind != "bw",
        "sex": kind in ("lbm", "lbm_janma", "ibw"),
        "uptake_s": decay_corrected_to == "start",
    }.get(key, False)


def _nifti_suv_and_masks(task: PatientTask, result: PatientResult) -> tuple[Image, str, dict[str, Mask]]:
    """The PET image (already SUV) and the lesion masks by ROI name from the NIfTI files."""
    nifti = task.config.input.nifti
    assert nifti is not None and task.nifti is not None
    image_path, mask_path = task.nifti
    result.stage = "read NIfTI"
    image = read_image(image_path)
    if nifti.units == "BQML":
        result.stage = "SUV"
        values = dict(task.overrides)
        kind = task.config.suv.type
        for key, column in task.config.suv.columns().items():
            if key not in values and _needed_for_nifti(key, kind, nifti.decay_corrected_to):
                raise SUVError(
                    f"{image_path}: SUV{kind} of a Bq/ml image needs column {column!r} of the clinical table "
                    f"{task.config.input.clinical}, which is empty or absent for patient {task.patient_id}; fill it"
                )
        factor = factor_from_values(
            kind=task.config.suv.type,
            dose_bq=values.get("dose_bq"),
            weight_kg=values.get("weight_kg"),
            height_m=values.get("height_m"),
            sex=values.get("sex"),
            uptake_s=values.get("uptake_s"),
            half_life_s=nifti.half_life_s,
            decay_corrected_to=nifti.decay_corrected_to,
            source=f"{image_path} (patient {task.patient_id}, clinical table {task.config.input.clinical})",
        )
        suv = image.with_array((image.array.astype(np.float64) * factor.factor).astype(np.float32))
        result.info["suv_factor"] = factor.factor
        result.info["suv_tags"] = {"source": f"NIfTI in Bq/ml: {image_path}"} | {
            k: str(v) for k, v in factor.tags.items()
        }
    else:
        suv = image.with_array(image.array.astype(np.float32, copy=False))
        peak = float(np.max(suv.array)) if suv.array.size else 0.0
        if peak > _MAX_PLAUSIBLE_SUV:
            raise ImageFileError(
                f"{image_path}: maximum value {peak:.4g} is not a plausible SUV (input.nifti.units is SUV); "
                "the file probably holds activity concentration (Bq/ml): set input.nifti.units: BQML with the "
                "dose, weight and uptake columns (suv.dose_column, ...), or read the DICOM series instead."
            )
        result.info["suv_factor"] = 1.0
        result.info["suv_tags"] = {"source": f"NIfTI in SUV: {image_path}"}
    result.stage = "segmentation"
    label_img = read_image(mask_path)
    values = np.rint(label_img.array).astype(np.int64)
    present = sorted(int(v) for v in np.unique(values) if v != 0)
    wanted = nifti.labels if nifti.labels is not None else {v: f"label_{v}" for v in present}
    matcher = _roi_matcher(task.config.segmentation.roi)
    masks: dict[str, Mask] = {}
    for value, name in sorted(wanted.items()):
        if value not in present or not matcher.fullmatch(name):
            continue
        m = Mask(values == value, label_img.spacing, label_img.origin, label_img.direction.copy())
        m = m if m.same_geometry(suv) else resample_to(m, suv)
        if m.n_voxels > 0:
            masks[name] = m
    if not masks:
        raise EmptyMaskError(
            f"{mask_path}: no non-empty lesion label; labels present {present}, labels used "
            f"{dict(sorted(wanted.items()))}, segmentation.roi {task.config.segmentation.roi!r}"
        )
    return suv, "nifti", masks


def _dicom_suv_and_masks(task: PatientTask, result: PatientResult) -> tuple[Image, str, dict[str, Mask]]:
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
    return suv, source, masks


def _thumbnail(task: PatientTask, suv: Image, masks: Mapping[str, Mask], primary: str) -> str | None:
    """Base64 PNG of the segmentation overlay (PET MIP + fused slice) for the report; None if it cannot be drawn.

    The overlay is for review only: a CT that cannot be read or drawn is left out (PET alone), and a
    failure to draw is logged, never a reason to fail the patient.
    """
    import base64

    from smartimaging.report.overlays import patient_thumbnail_png

    ct_on_pet = None
    cts = _pick_series(task, "CT")
    if cts:
        try:
            ct_on_pet = resample_to(read_series(cts[0]), suv, interpolator="linear", default_value=-1000.0)
        except SmartImagingError as exc:
            log.warning("patient %s: CT left out of the overlay (%s)", task.patient_id, exc)
    try:
        png = patient_thumbnail_png(suv, masks, primary=primary, ct=ct_on_pet, title=task.patient_id)
    except SmartImagingError as exc:
        log.warning("patient %s: no segmentation overlay (%s)", task.patient_id, exc)
        return None
    return base64.b64encode(png).decode("ascii")


def _run(task: PatientTask, result: PatientResult) -> None:
    cfg = task.config
    reader = _nifti_suv_and_masks if task.nifti is not None else _dicom_suv_and_masks
    suv, source, masks = reader(task, result)
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
    if cfg.report_overlays:
        result.stage = "overlay"
        result.info["thumbnail_png_b64"] = _thumbnail(task, suv, masks, primary)
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


def tasks_from_nifti(
    config: StudyConfig,
    patient_ids: Sequence[str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[PatientTask]:
    """One task per patient for NIfTI input (sorted by ID).

    Parameters
    ----------
    config : StudyConfig
        Study settings with ``input.nifti`` (absolute path templates).
    patient_ids : sequence of str, optional
        The patients (the clinical table's IDs). By default every ID for which the image
        template matches a file.
    overrides : mapping, optional
        Per-patient SUV values (weight_kg, height_m, sex, dose_bq, uptake_s) from the clinical
        table, used when ``input.nifti.units`` is BQML.

    Returns
    -------
    list of PatientTask
        A patient whose files are missing still gets a task: it fails at the reading stage with
        a message naming the missing file.

    Raises
    ------
    ConfigError
        ``input.nifti`` is not set, or no image file matches the template.
    """
    nifti = config.input.nifti
    if nifti is None:
        raise ConfigError("tasks_from_nifti needs input.nifti in the study settings")
    if patient_ids is None:
        before, after = nifti.images.split("{patient_id}")
        pattern = re.compile(re.escape(before) + r"(?P<pid>[^/]+)" + re.escape(after))
        found = (pattern.fullmatch(p) for p in glob.glob(glob.escape(before) + "*" + glob.escape(after)))
        patient_ids = sorted({m.group("pid") for m in found if m is not None})
        if not patient_ids:
            raise ConfigError(f"input.nifti.images: no file matches {nifti.images}")
    return [
        PatientTask(
            pid,
            (),
            config,
            dict((overrides or {}).get(pid, {})),
            nifti=(nifti.path("images", pid), nifti.path("masks", pid)),
        )
        for pid in sorted(patient_ids)
    ]
