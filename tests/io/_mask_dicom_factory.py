"""Build small, standard-conforming CT Image Storage series in memory for the mask I/O tests."""

from __future__ import annotations

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from smartimaging.image import Image, Mask


def make_ct_series(
    shape_zyx: tuple[int, int, int] = (12, 48, 40),
    spacing_xyz: tuple[float, float, float] = (0.9, 0.9, 2.5),
    origin_xyz: tuple[float, float, float] = (-17.3, 21.7, -104.25),
    direction: np.ndarray | None = None,
    seed: int = 0,
    shuffle: bool = True,
) -> tuple[list[pydicom.Dataset], Image]:
    """A CT series (one dataset per slice, with pixel data) and the Image of its grid.

    ``direction`` columns are the row, column and slice-normal directions (LPS); the slices
    are returned in a shuffled order when ``shuffle`` so that writers must sort them.
    """
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape_zyx
    d = np.eye(3) if direction is None else np.asarray(direction, dtype=float)
    grid = Image(np.zeros(shape_zyx, dtype=np.int16), spacing_xyz, origin_xyz, d)
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    pixels = rng.integers(-1000, 1000, size=shape_zyx, dtype=np.int16)
    out = []
    for k in range(nz):
        sop_uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientName = "Test^Phantom"
        ds.PatientID = "SI-0001"
        ds.PatientBirthDate = "19600101"
        ds.PatientSex = "F"
        ds.StudyInstanceUID = study_uid
        ds.StudyDate = "20240102"
        ds.StudyTime = "101500"
        ds.StudyID = "1"
        ds.AccessionNumber = "A1"
        ds.ReferringPhysicianName = ""
        ds.Modality = "CT"
        ds.Manufacturer = "smartimaging-tests"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 2
        ds.InstanceNumber = k + 1
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.PatientPosition = "HFS"
        ds.ImagePositionPatient = [float(v) for v in grid.index_to_physical([0, 0, k])]
        ds.ImageOrientationPatient = [float(v) for v in np.concatenate([d[:, 0], d[:, 1]])]
        ds.PixelSpacing = [spacing_xyz[1], spacing_xyz[0]]
        ds.SliceThickness = spacing_xyz[2]
        ds.KVP = 120
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.PixelData = pixels[k].tobytes()
        out.append(ds)
    if shuffle:
        out = [out[i] for i in rng.permutation(nz)]
    return out, grid


def make_masks(grid: Image) -> dict[str, Mask]:
    """A sphere, an ellipsoidal ring (a hole through it) and a concave (L/U-shaped) region."""
    nz, ny, nx = grid.shape
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    sz, sy, sx = grid.spacing_zyx
    # physical distances from chosen centres (mm)
    sphere = ((x - 12) * sx) ** 2 + ((y - 14) * sy) ** 2 + ((z - 5) * sz) ** 2 <= 8.0**2
    ell = ((x - 26) * sx / 9.0) ** 2 + ((y - 32) * sy / 11.0) ** 2 + ((z - 6) * sz / 10.0) ** 2 <= 1.0
    hole = ((x - 26) * sx) ** 2 + ((y - 32) * sy) ** 2 <= 3.5**2
    ring = ell & ~hole
    concave = np.zeros(grid.shape, dtype=bool)
    concave[2:9, 36:46, 4:20] = True
    concave[2:9, 39:46, 8:16] = False  # a U opening towards +y
    masks = {"sphere": sphere, "ring": ring, "concave": concave}
    return {k: Mask(v, grid.spacing, grid.origin, grid.direction.copy()) for k, v in masks.items()}
