"""Write a synthetic patient's CT and PET as DICOM series (CT Image Storage, PET Image Storage).

UIDs are derived from the cohort seed, the patient ID and the object (name-based UUIDs under the
``2.25`` root), so the same seed gives the same UIDs and byte-identical files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, PositronEmissionTomographyImageStorage

from smartimaging.synthetic.patient import F18_HALF_LIFE_S, SyntheticPatient

__all__ = ["publish_mode", "synthetic_uid", "write_ct_series", "write_pet_series"]

_NAMESPACE = uuid.UUID("5b0e7c1e-7d0a-4c55-9a39-3f1c2b9d8e11")
_IMPLEMENTATION_UID = "2.25.97203985763208542781069231093437513861"
_BED_LENGTH_MM = 150.0
_BED_SECONDS = 150
_PIXEL_DATA = 0x7FE00010


def synthetic_uid(seed: int, patient_id: str, *parts: object) -> str:
    """A deterministic DICOM UID: ``2.25.<name-based UUID of (seed, patient, parts)>``."""
    name = "/".join(["smartimaging-synthetic", str(seed), patient_id, *map(str, parts)])
    return f"2.25.{uuid.uuid5(_NAMESPACE, name).int}"


def _ds(value: float) -> str:
    """A decimal string of at most 16 characters."""
    text = f"{value:.10g}"
    if len(text) > 16:
        text = f"{value:.8g}"
    return text


def _date(d: dt.date) -> str:
    return d.strftime("%Y%m%d")


def _time(t: dt.datetime) -> str:
    return t.strftime("%H%M%S.00")


def _patient_study(p: SyntheticPatient) -> Dataset:
    """Patient, study and frame-of-reference attributes shared by every object of a patient."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = f"SYNTHETIC^{p.patient_id}"
    ds.PatientID = p.patient_id
    ds.PatientBirthDate = _date(p.birth_date)
    ds.PatientSex = p.sex
    ds.PatientAge = f"{p.age:03d}Y"
    ds.PatientWeight = _ds(p.weight_kg)
    ds.PatientSize = _ds(p.height_m)
    ds.StudyInstanceUID = synthetic_uid(p.seed, p.patient_id, "study")
    ds.StudyDate = _date(p.ct_datetime.date())
    ds.StudyTime = _time(p.ct_datetime)
    ds.StudyID = "1"
    ds.AccessionNumber = f"ACC{p.seed:04d}{p.index + 1:04d}"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "PET/CT FDG whole body (synthetic)"
    ds.FrameOfReferenceUID = synthetic_uid(p.seed, p.patient_id, "frame_of_reference")
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = p.site.manufacturer
    ds.ManufacturerModelName = p.site.model
    ds.InstitutionName = p.site.institution
    ds.StationName = p.site.name
    ds.DeviceSerialNumber = f"{p.site.name}-0001"
    ds.SoftwareVersions = "smartimaging-synthetic 1"
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "WHOLEBODY"
    return ds


def _image_pixel(ds: Dataset, rows: int, cols: int, *, signed: bool) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0


def _file_meta(sop_class_uid: str, sop_instance_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(_IMPLEMENTATION_UID)
    meta.ImplementationVersionName = "SMARTIMG_SYN1"
    return meta


def _new_io() -> DicomBytesIO:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    return fp


def _encode(ds: Dataset) -> dict[int, bytes]:
    """Explicit VR little endian encoding of each top-level element, by tag."""
    out: dict[int, bytes] = {}
    for elem in ds:
        fp = _new_io()
        write_data_element(fp, elem)
        out[int(elem.tag)] = fp.getvalue()
    return out


class _SeriesEncoder:
    """Write the slices of a series fast: the shared elements are encoded once.

    Writing a Part 10 file is the 128-byte preamble, ``DICM``, the file meta group and the data
    set's elements in increasing tag order; here the elements common to every slice are encoded
    once and merged with the few that change per slice (the result is the same bytes as
    :meth:`pydicom.Dataset.save_as` with explicit VR little endian).
    """

    def __init__(self, base: Dataset) -> None:
        self.base = base
        self.encoded = _encode(base)

    def write(self, per_slice: Dataset, path: Path) -> Dataset:
        elements = dict(self.encoded)
        elements.update(_encode(per_slice))
        fp = _new_io()
        fp.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(fp, _file_meta(self.base.SOPClassUID, per_slice.SOPInstanceUID))
        body = b"".join(elements[tag] for tag in sorted(elements))
        # the series folder as a whole is made visible atomically (see _atomic_dir)
        with open(path, "wb") as fh:
            fh.write(fp.getvalue())
            fh.write(body)
        # a header-only dataset of the slice (no pixel data) for the RTSTRUCT/SEG references
        header = Dataset()
        header.update(self.base)
        for elem in per_slice:
            if elem.keyword != "PixelData":
                header[elem.tag] = elem
        return header


def publish_mode(path: Path) -> None:
    """Give ``path`` the permissions of a normally created file or folder (temporary files and
    folders are created private, readable by their owner only)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


@contextlib.contextmanager
def _atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target`` as a whole.

    A series is many files; writing them into a temporary folder and renaming the folder makes
    the complete series appear at once (one rename instead of one per file), and a killed run
    leaves only a hidden temporary folder, never a half-written series.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    publish_mode(tmp)
    try:
        yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_ct_series(patient: SyntheticPatient, directory: str | os.PathLike[str]) -> list[Dataset]:
    """Write the CT as one file per slice ``CT_0000.dcm`` ... (stored = HU + 1024, uint16).

    Parameters
    ----------
    patient : SyntheticPatient
        The patient.
    directory : path
        Output folder (created).

    Returns
    -------
    list of pydicom.Dataset
        The headers (without pixel data) of the written slices, in increasing ``z`` (the
        reference for an RTSTRUCT).
    """
    with _atomic_dir(Path(directory)) as out:
        return _write_ct(patient, out)


def _write_ct(p: SyntheticPatient, out: Path) -> list[Dataset]:
    img = p.ct
    nz, ny, nx = img.shape
    base = _patient_study(p)
    base.SOPClassUID = CTImageStorage
    base.Modality = "CT"
    base.SeriesInstanceUID = synthetic_uid(p.seed, p.patient_id, "ct_series")
    base.SeriesNumber = 2
    base.SeriesDescription = "CT WB 3.0 mm (attenuation correction)"
    base.SeriesDate = base.AcquisitionDate = base.ContentDate = _date(p.ct_datetime.date())
    base.SeriesTime = base.AcquisitionTime = base.ContentTime = _time(p.ct_datetime)
    base.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    base.AcquisitionNumber = 1
    base.KVP = "120"
    base.XRayTubeCurrent = 80
    base.ConvolutionKernel = "B30f" if p.site.name == "SITE_A" else "STANDARD"
    base.SliceThickness = _ds(img.spacing[2])
    base.SpacingBetweenSlices = _ds(img.spacing[2])
    base.PixelSpacing = [_ds(img.spacing[1]), _ds(img.spacing[0])]
    base.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    _image_pixel(base, ny, nx, signed=False)
    base.RescaleIntercept = "-1024"
    base.RescaleSlope = "1"
    base.RescaleType = "HU"
    base.WindowCenter = "40"
    base.WindowWidth = "400"
    stored = (img.array.astype(np.int32) + 1024).clip(0, 65535).astype(np.uint16)
    encoder = _SeriesEncoder(base)
    datasets: list[Dataset] = []
    for k in range(nz):
        ds = Dataset()
        ds.SOPInstanceUID = synthetic_uid(p.seed, p.patient_id, "ct", k)
        ds.InstanceNumber = k + 1
        z = img.origin[2] + k * img.spacing[2]
        ds.ImagePositionPatient = [_ds(img.origin[0]), _ds(img.origin[1]), _ds(z)]
        ds.SliceLocation = _ds(z)
        ds.add_new(_PIXEL_DATA, "OW", np.ascontiguousarray(stored[k], dtype="<u2").tobytes())
        datasets.append(encoder.write(ds, out / f"CT_{k:04d}.dcm"))
    return datasets


def _radiopharmaceutical(p: SyntheticPatient) -> Dataset:
    item = Dataset()
    item.Radiopharmaceutical = "Fluorodeoxyglucose"
    item.RadiopharmaceuticalRoute = "Intravenous route"
    item.RadiopharmaceuticalStartTime = _time(p.injection_datetime)
    item.RadiopharmaceuticalStartDateTime = p.injection_datetime.strftime("%Y%m%d%H%M%S.00")
    item.RadionuclideTotalDose = _ds(p.dose_bq)
    item.RadionuclideHalfLife = _ds(F18_HALF_LIFE_S)
    item.RadionuclidePositronFraction = "0.9673"
    code = Dataset()
    code.CodeValue = "C-111A1"
    code.CodingSchemeDesignator = "SRT"
    code.CodeMeaning = "^18^Fluorine"
    item.RadionuclideCodeSequence = DicomSequence([code])
    drug = Dataset()
    drug.CodeValue = "C-B1031"
    drug.CodingSchemeDesignator = "SRT"
    drug.CodeMeaning = "Fluorodeoxyglucose F^18^"
    item.RadiopharmaceuticalCodeSequence = DicomSequence([drug])
    return item


def write_pet_series(patient: SyntheticPatient, directory: str | os.PathLike[str]) -> list[Dataset]:
    """Write the PET as one file per slice ``PT_0000.dcm`` ... in Bq/ml (Units BQML).

    Pixel data are int16 with a per-slice ``RescaleSlope`` (intercept 0) so that each slice's
    maximum fits; ``stored * RescaleSlope`` equals :attr:`SyntheticPatient.pet_bqml` (float32).
    Images are decay-corrected to the series start (``DecayCorrection`` START); slices of later
    bed positions have later ``AcquisitionTime`` and their ``FrameReferenceTime``/``DecayFactor``.

    Parameters
    ----------
    patient : SyntheticPatient
        The patient.
    directory : path
        Output folder (created).

    Returns
    -------
    list of pydicom.Dataset
        The headers (without pixel data) of the written slices, in increasing ``z`` (the
        reference for a SEG).
    """
    with _atomic_dir(Path(directory)) as out:
        return _write_pet(patient, out)


def _write_pet(p: SyntheticPatient, out: Path) -> list[Dataset]:
    img = p.pet_bqml
    nz, ny, nx = img.shape
    base = _patient_study(p)
    base.SOPClassUID = PositronEmissionTomographyImageStorage
    base.Modality = "PT"
    base.SeriesInstanceUID = synthetic_uid(p.seed, p.patient_id, "pet_series")
    base.SeriesNumber = 3
    base.SeriesDescription = f"PET WB AC {p.site.reconstruction}"
    base.SeriesDate = base.ContentDate = _date(p.series_datetime.date())
    base.SeriesTime = base.ContentTime = _time(p.series_datetime)
    base.ImageType = ["ORIGINAL", "PRIMARY"]
    base.SeriesType = ["WHOLE BODY", "IMAGE"]
    base.Units = "BQML"
    base.CountsSource = "EMISSION"
    base.DecayCorrection = "START"
    base.CorrectedImage = ["DECY", "ATTN", "SCAT", "DTIM", "RAN", "NORM"]
    base.RandomsCorrectionMethod = "DLYD"
    base.AttenuationCorrectionMethod = "CT-based"
    base.ScatterCorrectionMethod = "Model-based"
    base.ReconstructionMethod = p.site.reconstruction
    base.ConvolutionKernel = f"Gaussian {p.site.fwhm_mm:.1f} mm"
    base.NumberOfSlices = nz
    base.ActualFrameDuration = _BED_SECONDS * 1000
    base.SliceSensitivityFactor = "1"
    base.AcquisitionNumber = 1
    base.SliceThickness = _ds(img.spacing[2])
    base.PixelSpacing = [_ds(img.spacing[1]), _ds(img.spacing[0])]
    base.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    _image_pixel(base, ny, nx, signed=True)
    base.RescaleIntercept = "0"
    base.RadiopharmaceuticalInformationSequence = DicomSequence([_radiopharmaceutical(p)])
    z_bottom = img.origin[2] - img.spacing[2] / 2.0
    encoder = _SeriesEncoder(base)
    datasets: list[Dataset] = []
    for k in range(nz):
        ds = Dataset()
        slope = p.pet_slopes[k]
        ds.SOPInstanceUID = synthetic_uid(p.seed, p.patient_id, "pet", k)
        ds.InstanceNumber = k + 1
        ds.ImageIndex = k + 1
        z = img.origin[2] + k * img.spacing[2]
        ds.ImagePositionPatient = [_ds(img.origin[0]), _ds(img.origin[1]), _ds(z)]
        ds.SliceLocation = _ds(z)
        bed = int((z - z_bottom) // _BED_LENGTH_MM)
        start = p.series_datetime + dt.timedelta(seconds=bed * _BED_SECONDS)
        ds.AcquisitionDate = _date(start.date())
        ds.AcquisitionTime = _time(start)
        ref_s = bed * _BED_SECONDS + _BED_SECONDS / 2.0
        ds.FrameReferenceTime = _ds(ref_s * 1000.0)
        ds.DecayFactor = _ds(math.exp(math.log(2.0) * ref_s / F18_HALF_LIFE_S))
        ds.RescaleSlope = slope
        ds.add_new(_PIXEL_DATA, "OW", np.ascontiguousarray(p.pet_stored[k], dtype="<i2").tobytes())
        datasets.append(encoder.write(ds, out / f"PT_{k:04d}.dcm"))
    return datasets


def reference_datasets(datasets: Sequence[Dataset]) -> list[Dataset]:
    """The datasets in order of increasing ``ImagePositionPatient`` z (helper for RTSTRUCT/SEG writers)."""
    return sorted(datasets, key=lambda d: float(d.ImagePositionPatient[2]))
