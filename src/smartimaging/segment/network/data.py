"""Inputs of the segmentation network: cases, the network grid, intensity preprocessing, cohort loading.

Nothing here imports torch: the arrays are NumPy, ``(channel, z, y, x)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from smartimaging.exceptions import GeometryMismatchError, SegmentationError
from smartimaging.image import Image, Mask, check_same_geometry, resample_to
from smartimaging.preprocess.resample import ibsi_grid, resample_image, resample_mask
from smartimaging.segment.network.config import NetworkConfig

if TYPE_CHECKING:
    from smartimaging.synthetic.patient import SyntheticPatient

__all__ = [
    "CT_OUTSIDE_HU",
    "MIN_CT_COVERAGE",
    "NetworkInput",
    "TrainingCase",
    "case_from_synthetic",
    "load_cohort",
    "network_input",
    "read_ct_dir",
    "read_pet_dir",
]

#: CT value (HU) given to network-grid voxels outside the CT field of view (air).
CT_OUTSIDE_HU = -1000.0


@dataclass(frozen=True, eq=False)
class TrainingCase:
    """One training example: PET in SUV, CT in HU (or None) and the ground-truth lesion mask.

    Attributes
    ----------
    pet : Image
        PET in SUV (``meta['units']`` starting with ``'SUV'``).
    ct : Image or None
        CT in HU, on any grid overlapping the PET (resampled in physical space).
    mask : Mask
        Lesion ground truth on the PET grid.
    case_id : str
        Name used in messages and the training summary.
    """

    pet: Image
    ct: Image | None
    mask: Mask
    case_id: str = ""


@dataclass(frozen=True, eq=False)
class NetworkInput:
    """A case on the network grid.

    Attributes
    ----------
    array : numpy.ndarray
        float32 ``(channel, z, y, x)``: scaled SUV, then (if used) windowed CT.
    grid : Image
        The network grid (zeros; its geometry places ``array`` in patient space).
    label : numpy.ndarray or None
        uint8 ``(1, z, y, x)`` lesion labels on the grid, when a mask was given.
    """

    array: np.ndarray
    grid: Image
    label: np.ndarray | None = None


def check_suv(pet: Image, where: str = "pet") -> None:
    """Raise :class:`SegmentationError` unless ``pet.meta['units']`` says SUV (or is absent)."""
    units = str(pet.meta.get("units", "") or "")
    if units and not units.upper().startswith("SUV"):
        raise SegmentationError(
            f"{where}: the PET is in {units!r}, the network works on SUV; convert it first "
            "(smartimaging.io.suv.to_suv, or `smartimaging suv`)"
        )


def _scale_suv(values: np.ndarray, config: NetworkConfig) -> np.ndarray:
    return (np.clip(values, 0.0, config.suv_clip) / config.suv_clip).astype(np.float32)


def _scale_ct(values: np.ndarray, config: NetworkConfig) -> np.ndarray:
    low, high = config.ct_window
    return ((np.clip(values, low, high) - low) / (high - low)).astype(np.float32)


#: Least fraction of the network grid the CT must cover.
MIN_CT_COVERAGE = 0.5


def _ct_on_grid(ct: Image, grid: Image, where: str) -> np.ndarray:
    modality = str(ct.meta.get("modality", "CT") or "CT").upper()
    if modality != "CT":
        raise SegmentationError(f"{where}: the CT channel got a {modality} image; pass the CT (HU)")
    # NaN marks voxels outside the CT field of view, so that coverage can be checked
    moved = resample_to(
        ct.with_array(ct.array.astype(np.float32)), grid, interpolator="linear", default_value=np.nan
    )
    inside = np.isfinite(moved.array)
    coverage = float(inside.mean())
    if coverage < MIN_CT_COVERAGE:
        raise SegmentationError(
            f"{where}: the CT covers only {100 * coverage:.0f} % of the PET field of view "
            f"(CT origin {ct.origin}, PET grid origin {grid.origin} mm); check that both series share a "
            "frame of reference and belong to the same study"
        )
    return np.where(inside, moved.array, CT_OUTSIDE_HU)


def network_input(
    pet: Image,
    ct: Image | None = None,
    mask: Mask | None = None,
    *,
    config: NetworkConfig,
    where: str = "pet",
) -> NetworkInput:
    """Resample a case onto the network grid and scale its intensities.

    The grid has ``config.spacing`` and is centred on the PET grid (IBSI "align grid centres").
    SUV is interpolated linearly and scaled as ``clip(SUV, 0, suv_clip) / suv_clip``; the CT is
    resampled in physical space onto the same grid (linear, air outside its field of view) and
    windowed as ``(clip(HU, low, high) - low) / (high - low)``; the mask, which must lie on the PET
    grid, is interpolated as a fraction map and kept at >= 0.5.

    Parameters
    ----------
    pet : Image
        PET in SUV.
    ct : Image, optional
        CT in HU; required when ``config.channels`` holds ``'ct'``, refused otherwise. It must
        cover at least half of the PET field of view.
    mask : Mask, optional
        Ground truth on the PET grid.
    config : NetworkConfig
        Spacing, channels and intensity settings.
    where : str
        Name of the case for error messages.

    Returns
    -------
    NetworkInput

    Raises
    ------
    SegmentationError
        PET not in SUV, a CT missing / given against ``config.channels``, an image of another
        modality as CT, or a CT that covers less than half of the PET field of view.
    GeometryMismatchError
        ``mask`` not on the PET grid.
    """
    check_suv(pet, where)
    wants_ct = "ct" in config.channels
    if wants_ct and ct is None:
        raise SegmentationError(
            f"{where}: the network uses channels {list(config.channels)} but no CT was given; "
            "pass the CT (--ct CT_DIR) or use a PET-only model"
        )
    if not wants_ct and ct is not None:
        raise SegmentationError(
            f"{where}: the network uses PET only (channels {list(config.channels)}) but a CT was given; "
            "leave the CT out or use a model trained with channels ('pet', 'ct')"
        )
    if mask is not None:
        check_same_geometry(pet, mask, what=f"{where}: PET and ground-truth mask")
    pet_grid = resample_image(pet, spacing=config.spacing, interpolation="linear")
    channels = [_scale_suv(pet_grid.array, config)]
    grid = ibsi_grid(pet, spacing=config.spacing)
    if ct is not None:
        channels.append(_scale_ct(_ct_on_grid(ct, grid, where), config))
    label = None
    if mask is not None:
        label = resample_mask(mask, spacing=config.spacing).array[None].astype(np.uint8)
    return NetworkInput(np.stack(channels).astype(np.float32), grid, label)


def case_from_synthetic(patient: SyntheticPatient) -> TrainingCase:
    """A training case from an in-memory synthetic patient (:func:`smartimaging.synthetic.make_patient`).

    SUVbw is computed as the DICOM route would: ``Bq/ml * weight_kg * 1000 / decayed_dose_bq``
    (the decayed dose at the series start, which the series is decay-corrected to).

    Parameters
    ----------
    patient : SyntheticPatient
        The patient.

    Returns
    -------
    TrainingCase
        PET in SUVbw, CT in HU, all lesions as one mask on the PET grid.
    """
    factor = patient.weight_kg * 1000.0 / patient.decayed_dose_bq
    suv = patient.pet_bqml.with_array(
        (patient.pet_bqml.array.astype(np.float64) * factor).astype(np.float32), units="SUVbw"
    )
    mask = Mask.from_image(patient.lesion_labels)
    return TrainingCase(suv, patient.ct, mask, patient.patient_id)


def _one_series(folder: Path, modality: str) -> list[Path]:
    from smartimaging.io.dicom import discover

    found = discover(folder)
    series = [s for s in found.series if s.modality.upper() == modality]
    if len(series) != 1:
        listed = "; ".join(f"{s.modality} '{s.series_description}' ({s.n_files} files)" for s in found.series)
        what = f"no {modality} series" if not series else f"{len(series)} {modality} series"
        raise SegmentationError(
            f"{folder}: {what} found (series there: {listed or 'none'}); "
            f"point the path at a folder holding exactly one {modality} series"
        )
    return [Path(p) for p in series[0].files]


def read_pet_dir(folder: str | os.PathLike[str]) -> Image:
    """Read the one PET series under ``folder`` and convert it to SUVbw.

    Raises
    ------
    SegmentationError
        No or several PET series.
    DicomError, SUVError
        Unreadable series or SUV not computable.
    """
    from smartimaging.io.dicom import read_series
    from smartimaging.io.suv import to_suv

    suv, _ = to_suv(read_series(_one_series(Path(folder), "PT")), kind="bw")
    return suv


def read_ct_dir(folder: str | os.PathLike[str]) -> Image:
    """Read the one CT series under ``folder`` (HU).

    Raises
    ------
    SegmentationError
        No or several CT series.
    DicomError
        Unreadable series.
    """
    from smartimaging.io.dicom import read_series

    return read_series(_one_series(Path(folder), "CT"))


def load_cohort(
    folder: str | os.PathLike[str], *, patient_ids: Sequence[str] | None = None, with_ct: bool = True
) -> list[TrainingCase]:
    """Training cases from a cohort folder in the synthetic cohort's layout.

    For each ``<folder>/dicom/<PatientID>/``: the PET series under ``PET/`` (converted to SUVbw), the
    CT series under ``CT/`` and the lesion labels ``<folder>/nifti/<PatientID>/lesions.nii.gz`` (on the
    PET grid; every non-zero label is lesion).

    Parameters
    ----------
    folder : path
        Cohort root (what :func:`smartimaging.synthetic.generate_cohort` writes).
    patient_ids : sequence of str, optional
        Load only these patients (in this order); by default all, sorted by ID.
    with_ct : bool
        Read the CT (set False for a PET-only network).

    Returns
    -------
    list of TrainingCase

    Raises
    ------
    SegmentationError
        The layout is not found, a patient asked for is missing, or a mask is absent.
    """
    from smartimaging.io.nifti import read_mask

    root = Path(folder)
    dicom = root / "dicom"
    if not dicom.is_dir():
        raise SegmentationError(
            f"{root}: no 'dicom' folder; a training cohort needs dicom/<PatientID>/PET, "
            "dicom/<PatientID>/CT and nifti/<PatientID>/lesions.nii.gz (the layout of `smartimaging synth`)"
        )
    available = sorted(p.name for p in dicom.iterdir() if p.is_dir())
    ids = list(patient_ids) if patient_ids is not None else available
    missing = [pid for pid in ids if pid not in available]
    if missing:
        raise SegmentationError(f"{dicom}: patients {missing} not found; available: {available[:20]}")
    if not ids:
        raise SegmentationError(f"{dicom}: no patient folders found")
    cases = []
    for pid in ids:
        label_path = root / "nifti" / pid / "lesions.nii.gz"
        if not label_path.is_file():
            raise SegmentationError(f"{label_path}: ground-truth lesion labels not found for {pid}")
        pet = read_pet_dir(dicom / pid / "PET")
        ct = read_ct_dir(dicom / pid / "CT") if with_ct else None
        mask = read_mask(label_path)
        if not pet.same_geometry(mask):
            raise GeometryMismatchError(
                f"{label_path}: the lesion labels are not on the PET grid of {pid} "
                f"(shape {mask.shape} vs {pet.shape}, spacing {mask.spacing} vs {pet.spacing})"
            )
        cases.append(TrainingCase(pet, ct, mask, pid))
    return cases
