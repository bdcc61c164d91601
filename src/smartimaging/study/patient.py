"""The per-patient part of a study: PET to SUV, lesion masks, features, overlay.

Public building blocks (what ``smartimaging run``, ``robustness --study`` and ``predict`` share):

* :func:`suv_and_masks` -- the patient's SUV image and lesion masks (:class:`PatientImages`);
* :func:`patient_features` -- the tidy feature table of the primary lesion and the patient-level
  PET metrics;
* :func:`process_patient` -- both, plus the report's overlay, through the stage cache
  (:mod:`smartimaging.study.cache`) when the task names one.

:func:`process_patient` is a pure function of its inputs (series, settings, clinical
overrides), so it can run in a worker process and its stages can be cached. Every failure is
caught and returned as a :class:`PatientResult` with the stage and the reason: one bad patient
never stops a cohort.
"""

from __future__ import annotations

import glob
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from smartimaging import __version__
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
from smartimaging.study.cache import (
    STAGES,
    StageCache,
    files_digest,
    stage_key,
    table_from_bytes,
    table_to_bytes,
)
from smartimaging.study.config import SegmentationConfig, StudyConfig

__all__ = [
    "PatientImages",
    "PatientResult",
    "PatientTask",
    "load_cached_result",
    "patient_features",
    "process_patient",
    "stage_keys",
    "suv_and_masks",
    "tasks_from_nifti",
    "tasks_from_series",
]

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
    cache_dir: Path | None = None
    """Stage cache folder (see :mod:`smartimaging.study.cache`); None: no caching."""
    inputs_digest: str = ""
    """SHA-256 of the input files (:func:`smartimaging.study.cache.files_digest`); computed when empty."""

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
    stages: dict[str, str] = field(default_factory=dict)
    """Per cached stage: ``"hit"`` (read from the cache), ``"computed"``, or ``"reused"`` (not
    needed: every stage computed from it came from the cache)."""


@dataclass
class PatientImages:
    """A patient's SUV image and lesion masks, as :func:`suv_and_masks` makes them.

    Attributes
    ----------
    suv : Image
        SUV image (float32) on the PET grid.
    source : str
        Where the masks come from: ``rtstruct``, ``seg``, ``threshold``, ``whole_body`` or ``nifti``.
    masks : dict of str to Mask
        The non-empty lesion masks on the SUV grid, by ROI name.
    primary : str
        ROI whose lesion features are extracted (``segmentation.primary_roi``, default the largest).
    info : dict
        ``suv_factor``, ``suv_tags``, ``mask_source``, ``rois``, ``primary_roi``,
        ``primary_volume_ml``, ``primary_components`` and ``pet_series_uid`` (DICOM input).
    pet : SeriesInfo or None
        The PET series read (DICOM input); None for NIfTI input.
    """

    suv: Image
    source: str
    masks: dict[str, Mask]
    primary: str
    info: dict[str, Any] = field(default_factory=dict)
    pet: SeriesInfo | None = None


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


_Stage = Callable[[str], None]


def _nifti_suv_and_masks(
    task: PatientTask, stage: _Stage, info: dict[str, Any]
) -> tuple[Image, str, dict[str, Mask]]:
    """The PET image (already SUV) and the lesion masks by ROI name from the NIfTI files."""
    nifti = task.config.input.nifti
    assert nifti is not None and task.nifti is not None
    image_path, mask_path = task.nifti
    stage("read NIfTI")
    image = read_image(image_path)
    if nifti.units == "BQML":
        stage("SUV")
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
        info["suv_factor"] = factor.factor
        info["suv_tags"] = {"source": f"NIfTI in Bq/ml: {image_path}"} | {
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
        info["suv_factor"] = 1.0
        info["suv_tags"] = {"source": f"NIfTI in SUV: {image_path}"}
    stage("segmentation")
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


def _dicom_suv_and_masks(
    task: PatientTask, stage: _Stage, info: dict[str, Any]
) -> tuple[Image, str, dict[str, Mask]]:
    cfg = task.config
    stage("read PET")
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
    info["pet_series_uid"] = pets[0].series_instance_uid

    stage("SUV")
    suv, factor = to_suv(pet, kind=cfg.suv.type, **dict(task.overrides))
    info["suv_factor"] = factor.factor
    info["suv_tags"] = {k: str(v) for k, v in factor.tags.items()}

    stage("segmentation")
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


def suv_and_masks(task: PatientTask, *, on_stage: Callable[[str], None] | None = None) -> PatientImages:
    """A patient's SUV image and lesion masks, exactly as ``smartimaging run`` makes them.

    Parameters
    ----------
    task : PatientTask
        The patient's series (or NIfTI files), the study settings and the clinical overrides.
    on_stage : callable, optional
        Called with the name of each step as it starts (``"read PET"``, ``"SUV"``,
        ``"segmentation"``, ...), so that a caller can say where a failure happened.

    Returns
    -------
    PatientImages
        SUV image, mask source, non-empty masks by ROI, the primary ROI and the provenance info.

    Raises
    ------
    DicomError, SUVError, ImageFileError
        The PET cannot be read or converted to SUV (the message names the file and the fix).
    SegmentationError, EmptyMaskError
        No configured mask source gives a non-empty lesion mask, or ``segmentation.primary_roi``
        matches no ROI.
    """
    stage = on_stage or (lambda _name: None)
    info: dict[str, Any] = {}
    reader = _nifti_suv_and_masks if task.nifti is not None else _dicom_suv_and_masks
    suv, source, masks = reader(task, stage, info)
    primary = _primary(masks, task.config.segmentation.primary_roi)
    info.update(
        mask_source=source,
        rois=sorted(masks),
        primary_roi=primary,
        primary_volume_ml=masks[primary].volume_ml,
        primary_components=int(ndimage.label(masks[primary].array)[1]),
    )
    pet = _pet_series(task, info.get("pet_series_uid"))
    return PatientImages(suv=suv, source=source, masks=masks, primary=primary, info=info, pet=pet)


def _pet_series(task: PatientTask, uid: Any) -> SeriesInfo | None:
    return next((s for s in task.series if s.series_instance_uid == uid), None)


def patient_features(task: PatientTask, images: PatientImages) -> pd.DataFrame:
    """The tidy feature table of a patient: the primary lesion's features, then the patient-level metrics.

    Parameters
    ----------
    task : PatientTask
        The patient (its ID and the study's ``features`` settings are used).
    images : PatientImages
        From :func:`suv_and_masks` (or the stage cache).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`smartimaging.features.extract.OUTPUT_COLUMNS`; the patient-level rows have
        ``roi = "patient"``.

    Raises
    ------
    FeatureError, EmptyMaskError
        If a feature cannot be computed on the primary lesion.
    """
    suv, masks, primary = images.suv, images.masks, images.primary
    settings = ExtractionSettings.model_validate(task.config.features)
    tidy = extract(suv, masks[primary], settings=settings, case=task.patient_id, roi=primary, modality="PT")
    labels = np.zeros(suv.shape, dtype=np.int32)
    for i, name in enumerate(sorted(masks), start=1):
        labels[masks[name].array & (labels == 0)] = i
    whole = patient_metrics(suv, suv.with_array(labels))
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
    return pd.concat([tidy, patient_rows], ignore_index=True)


def _masks_settings(task: PatientTask) -> dict[str, Any]:
    cfg = task.config
    nifti = cfg.input.nifti
    return {
        "inputs": task.inputs_digest or files_digest(task.input_files()),
        "nifti": None if nifti is None else nifti.model_dump(mode="json", exclude={"images", "masks"}),
        "suv": cfg.suv.model_dump(mode="json"),
        "segmentation": cfg.segmentation.model_dump(mode="json"),
        "overrides": {k: str(v) for k, v in sorted(task.overrides.items())},
    }


def stage_keys(task: PatientTask) -> dict[str, str]:
    """Cache key of each stage of a patient (``overlay`` only with ``report_overlays``).

    ``masks``: input files' contents, SUV/segmentation/NIfTI settings, clinical overrides and the
    package version; ``features``: the masks key and the extraction settings; ``overlay``: the
    masks key.
    """
    masks = stage_key("masks", _masks_settings(task), version=__version__)
    features = ExtractionSettings.model_validate(task.config.features).model_dump(mode="json")
    keys = {"masks": masks, "features": stage_key("features", {"features": features}, parent=masks)}
    if task.config.report_overlays:
        keys["overlay"] = stage_key("overlay", {"overlay": 1}, parent=masks)
    return keys


def _images_to_entry(images: PatientImages) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    names = list(images.masks)
    suv = images.suv
    for name in names:
        if not images.masks[name].same_geometry(suv):  # never happens: masks are resampled to the SUV grid
            raise SegmentationError(f"mask {name!r} is not on the SUV grid; cannot cache it")
    bits = np.stack([np.packbits(images.masks[n].array.astype(bool, copy=False).ravel()) for n in names])
    arrays = {
        "suv": np.ascontiguousarray(suv.array),
        "masks": bits,
        "spacing": np.asarray(suv.spacing, dtype=np.float64),
        "origin": np.asarray(suv.origin, dtype=np.float64),
        "direction": np.asarray(suv.direction, dtype=np.float64),
    }
    return arrays, {"names": names, "source": images.source, "primary": images.primary, "info": images.info}


def _images_from_entry(
    task: PatientTask, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> PatientImages:
    suv_arr = arrays["suv"]
    geometry = (tuple(arrays["spacing"]), tuple(arrays["origin"]), arrays["direction"])
    suv = Image(suv_arr, geometry[0], geometry[1], geometry[2].copy())
    n = int(np.prod(suv_arr.shape))
    masks = {
        name: Mask(
            np.unpackbits(arrays["masks"][i], count=n).astype(bool).reshape(suv_arr.shape),
            geometry[0],
            geometry[1],
            geometry[2].copy(),
        )
        for i, name in enumerate(meta["names"])
    }
    info = dict(meta["info"])
    return PatientImages(
        suv,
        str(meta["source"]),
        masks,
        str(meta["primary"]),
        info,
        _pet_series(task, info.get("pet_series_uid")),
    )


def _roundtrip(features: pd.DataFrame) -> pd.DataFrame:
    """The table as the cache gives it back, so that computed and cached results are identical."""
    return table_from_bytes(table_to_bytes(features))  # type: ignore[no-any-return]


def load_cached_result(task: PatientTask, keys: Mapping[str, str] | None = None) -> PatientResult | None:
    """The patient's result when its ``features`` (and ``overlay``) stages are all in the cache, else None.

    The SUV and masks are not read: the features entry carries the masks stage's info.
    """
    if task.cache_dir is None:
        return None
    cache = StageCache(task.cache_dir)
    keys = dict(keys or stage_keys(task))
    feats = cache.load("features", task.patient_id, keys["features"])
    if feats is None:
        return None
    info = dict(feats.meta["info"])
    if "overlay" in keys:
        overlay = cache.load("overlay", task.patient_id, keys["overlay"])
        if overlay is None:
            return None
        info["thumbnail_png_b64"] = overlay.meta["thumbnail_png_b64"]
    stages = {s: ("reused" if s == "masks" else "hit") for s in STAGES if s in keys}
    return PatientResult(
        task.patient_id,
        "ok",
        table_from_bytes(feats.arrays["table"]),
        info=info,
        cached=True,
        stages=stages,
    )


def _store(
    cache: StageCache,
    stage: str,
    pid: str,
    key: str,
    arrays: Mapping[str, np.ndarray],
    meta: Mapping[str, Any],
) -> None:
    """Store an entry; a cache that cannot be written (disk full, read-only) only costs a recomputation."""
    try:
        cache.store(stage, pid, key, arrays, meta)
    except OSError as exc:
        log.warning(
            "patient %s: the %s stage could not be cached (%s); it will be recomputed next run",
            pid,
            stage,
            exc,
        )


def _run(task: PatientTask, result: PatientResult) -> None:
    cfg = task.config
    cache = StageCache(task.cache_dir) if task.cache_dir is not None else None
    keys = stage_keys(task) if cache is not None else {}
    pid = task.patient_id
    images: PatientImages | None = None

    def set_stage(name: str) -> None:
        result.stage = name

    def get_images() -> PatientImages:
        nonlocal images
        if images is None:
            entry = cache.load("masks", pid, keys["masks"]) if cache is not None else None
            if entry is not None:
                images = _images_from_entry(task, entry.arrays, entry.meta)
                result.stages["masks"] = "hit"
            else:
                images = suv_and_masks(task, on_stage=set_stage)
                result.stages["masks"] = "computed"
                if cache is not None:
                    _store(cache, "masks", pid, keys["masks"], *_images_to_entry(images))
        return images

    feats = cache.load("features", pid, keys["features"]) if cache is not None else None
    if feats is not None:
        result.features = table_from_bytes(feats.arrays["table"])
        result.info.update(feats.meta["info"])
        result.stages["features"] = "hit"
    else:
        imgs = get_images()
        result.info.update(imgs.info)
        result.stage = "features"
        blob = table_to_bytes(patient_features(task, imgs))
        result.features = table_from_bytes(blob)
        result.stages["features"] = "computed"
        if cache is not None:
            _store(cache, "features", pid, keys["features"], {"table": blob}, {"info": imgs.info})
    if cfg.report_overlays:
        overlay = cache.load("overlay", pid, keys["overlay"]) if cache is not None else None
        if overlay is not None:
            thumbnail = overlay.meta["thumbnail_png_b64"]
            result.stages["overlay"] = "hit"
        else:
            imgs = get_images()
            result.stage = "overlay"
            thumbnail = _thumbnail(task, imgs.suv, imgs.masks, imgs.primary)
            result.stages["overlay"] = "computed"
            if cache is not None:
                _store(cache, "overlay", pid, keys["overlay"], {}, {"thumbnail_png_b64": thumbnail})
        result.info["thumbnail_png_b64"] = thumbnail
    if cache is not None:
        result.stages.setdefault("masks", "reused")


def process_patient(task: PatientTask) -> PatientResult:
    """Run the per-patient stages (through the stage cache when ``task.cache_dir`` is set); never raises for a data problem.

    Each stage's result is stored in the cache as soon as it is computed, so a run killed after
    this patient's masks resumes from them.

    Parameters
    ----------
    task : PatientTask
        The patient's series, the study settings and per-patient overrides (e.g. weight).

    Returns
    -------
    PatientResult
        ``status="ok"`` with the tidy feature table, or ``status="failed"`` with the stage and
        the reason (the exception's message, which names the file and the fix); ``stages`` says
        which stages came from the cache.
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
