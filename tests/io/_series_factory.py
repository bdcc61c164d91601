"""Write small synthetic CT / PET DICOM series with pydicom, for the io tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PET_STORAGE = "1.2.840.10008.5.1.4.1.1.128"


def make_series(
    folder: Path,
    volume: np.ndarray,
    *,
    modality: str = "CT",
    spacing: tuple[float, float, float] = (0.8, 0.9, 2.5),
    origin: tuple[float, float, float] = (-100.0, -50.0, 20.0),
    direction: np.ndarray | None = None,
    slopes: Sequence[float] | None = None,
    intercept: float = 0.0,
    patient_id: str = "P1",
    study_uid: str | None = None,
    names: Sequence[str] | None = None,
    skip: Sequence[int] = (),
    extra: dict[str, object] | None = None,
) -> list[Path]:
    """Write ``volume`` (z, y, x stored integers) as one file per slice; return the written paths.

    ``direction`` columns are the x, y and slice-normal axes; ``slopes`` one RescaleSlope per slice;
    ``skip`` slice indices not written (to simulate a missing slice); ``names`` file names per slice.
    """
    folder.mkdir(parents=True, exist_ok=True)
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float)
    study_uid = study_uid or generate_uid()
    series_uid, for_uid = generate_uid(), generate_uid()
    sop_class = CT_STORAGE if modality == "CT" else PET_STORAGE
    paths = []
    for k in range(volume.shape[0]):
        if k in skip:
            continue
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.PatientID = patient_id
        ds.PatientName = "Test^Patient"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = for_uid
        ds.Modality = modality
        ds.SeriesDescription = f"{modality} test"
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = "20250101"
        ds.SeriesTime = ds.AcquisitionTime = "110000"
        ds.InstanceNumber = k + 1
        pos = np.asarray(origin) + direction[:, 2] * spacing[2] * k
        ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*direction[:, 0], *direction[:, 1])]
        ds.PixelSpacing = [str(spacing[1]), str(spacing[0])]
        ds.SliceThickness = str(spacing[2])
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = str(slopes[k] if slopes is not None else 1.0)
        ds.RescaleIntercept = str(intercept)
        for key, value in (extra or {}).items():
            setattr(ds, key, value)
        ds.PixelData = np.ascontiguousarray(volume[k].astype(np.int16)).tobytes()
        name = names[k] if names is not None else f"slice_{k:03d}.dcm"
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
