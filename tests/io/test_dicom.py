"""Tests of DICOM discovery and series reading, on series written in the test and on IBSI data."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from _series_factory import make_series
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from smartimaging.exceptions import DicomError
from smartimaging.io.dicom import discover, read_series


def _volume(shape: tuple[int, int, int] = (6, 5, 7), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 3000, size=shape).astype(np.int16)


def _oblique() -> np.ndarray:
    a = np.deg2rad(20.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    b = np.deg2rad(10.0)
    rot2 = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(b), -np.sin(b)], [0.0, np.sin(b), np.cos(b)]])
    return rot2 @ rot


@pytest.fixture
def mixed_folder(tmp_path: Path) -> dict[str, object]:
    """A CT and a PET series of one patient, a second patient, odd names, shuffled, plus junk files."""
    study = generate_uid()
    ct_vol, pet_vol = _volume((6, 5, 7), 1), _volume((4, 3, 3), 2)
    rnd = random.Random(3)
    ct_names = [f"IM{n}" for n in rnd.sample(range(1000, 9999), 6)]
    ct = make_series(tmp_path / "a" / "b", ct_vol, study_uid=study, names=ct_names)
    pet = make_series(
        tmp_path / "a", pet_vol, modality="PT", study_uid=study, names=[f"x.{i}" for i in "qwer"]
    )
    other = make_series(tmp_path / "p2", _volume((2, 3, 3), 4), patient_id="P2")
    (tmp_path / "a" / "notes.txt").write_text("not dicom at all")
    good = ct[0].read_bytes()
    (tmp_path / "a" / "b" / "truncated.dcm").write_bytes(good[:300])
    # cut inside the pixel data: discovery groups it (headers are intact), read_series rejects it
    (tmp_path / "p2" / "cut_pixels.dcm").write_bytes(other[0].read_bytes()[:-7])
    # a DICOMDIR (skipped by name) and a directory record set under another name (skipped by SOP class)
    (tmp_path / "DICOMDIR").write_bytes(b"junk that is not even DICOM")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dirds = Dataset()
    dirds.file_meta = meta
    dirds.FileSetID = "JUNK"
    dirds.save_as(tmp_path / "dirrecords", enforce_file_format=True)
    return {"ct": ct, "pet": pet, "other": other, "study": study, "ct_vol": ct_vol, "root": tmp_path}


def test_discover_groups_series_and_reports_problems(mixed_folder: dict[str, object]) -> None:
    root = mixed_folder["root"]
    assert isinstance(root, Path)
    result = discover(root)
    by_mod = {(s.patient_id, s.modality): s for s in result.series}
    assert sorted(by_mod) == [("P1", "CT"), ("P1", "PT"), ("P2", "CT")]
    assert set(by_mod["P1", "CT"].files) == set(mixed_folder["ct"])  # type: ignore[call-overload]
    assert by_mod["P1", "CT"].n_files == 6
    assert set(by_mod["P1", "PT"].files) == set(mixed_folder["pet"])  # type: ignore[call-overload]
    assert (
        by_mod["P1", "CT"].study_instance_uid
        == by_mod["P1", "PT"].study_instance_uid
        == mixed_folder["study"]
    )
    assert by_mod["P1", "PT"].sop_class_uid == "1.2.840.10008.5.1.4.1.1.128"
    problems = {p.path.name: p.reason for p in result.problems}
    assert set(problems) == {"notes.txt", "truncated.dcm"}
    assert "not a DICOM file" in problems["notes.txt"]
    assert "truncated" in problems["truncated.dcm"] or "corrupt" in problems["truncated.dcm"]
    assert all(p.path.is_file() for p in result.problems)
    p2 = by_mod["P2", "CT"]
    assert p2.n_files == 3
    with pytest.raises(DicomError, match=r"cut_pixels\.dcm.*pixel data"):
        read_series(p2)


def test_discover_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DicomError, match="does not exist"):
        discover(tmp_path / "nope")


def _sitk_read(paths: list[Path]) -> sitk.Image:
    folder = str(paths[0].parent)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
    reader.SetOutputPixelType(sitk.sitkFloat64)
    return reader.Execute()


@pytest.mark.parametrize("oblique", [False, True])
def test_read_series_geometry_matches_intent_and_simpleitk(tmp_path: Path, oblique: bool) -> None:
    vol = _volume((6, 5, 7), 5)
    direction = _oblique() if oblique else np.eye(3)
    spacing, origin = (0.8, 0.9, 2.5), (-100.0, -50.0, 20.0)
    paths = make_series(tmp_path, vol, spacing=spacing, origin=origin, direction=direction, intercept=-1024)
    shuffled = paths[:]
    random.Random(0).shuffle(shuffled)
    img = read_series(shuffled)
    np.testing.assert_allclose(img.spacing, spacing, atol=1e-6)
    np.testing.assert_allclose(img.origin, origin, atol=1e-5)
    np.testing.assert_allclose(img.direction, direction, atol=1e-6)
    np.testing.assert_array_equal(img.array, vol.astype(np.float32) - 1024)
    assert img.meta["files"] == paths
    assert img.meta["modality"] == "CT"
    assert "PixelData" not in img.meta["header"]
    ref = _sitk_read(paths)
    np.testing.assert_allclose(img.spacing, ref.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(img.origin, ref.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(img.direction.ravel(), ref.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(img.array, sitk.GetArrayFromImage(ref))


def test_read_series_from_discovery_and_reversed_normal(tmp_path: Path) -> None:
    # slices written with decreasing z: reading must still sort along the normal
    vol = _volume((5, 4, 4), 6)
    flip = np.diag([1.0, -1.0, -1.0])  # normal along -z
    paths = make_series(tmp_path, vol, direction=flip, origin=(0.0, 0.0, 0.0))
    info = discover(tmp_path).series[0]
    img = read_series(info)
    np.testing.assert_array_equal(img.array, vol)
    np.testing.assert_allclose(img.direction, flip, atol=1e-9)
    np.testing.assert_allclose(img.index_to_physical([0, 0, 4]), [0.0, 0.0, -10.0], atol=1e-6)
    assert img.meta["series_instance_uid"] == info.series_instance_uid
    assert len(img.meta["headers"]) == len(paths)


def test_per_slice_rescale_slope(tmp_path: Path) -> None:
    vol = np.full((4, 3, 3), 100, dtype=np.int16)
    slopes = [0.5, 1.0, 2.0, 3.25]
    paths = make_series(tmp_path, vol, modality="PT", slopes=slopes)
    img = read_series(paths[::-1])
    np.testing.assert_allclose(img.array[:, 0, 0], [50.0, 100.0, 200.0, 325.0])


def test_missing_slice_names_gap(tmp_path: Path) -> None:
    paths = make_series(tmp_path, _volume((6, 3, 3)), spacing=(1.0, 1.0, 2.0), origin=(0, 0, 10.0), skip=[3])
    with pytest.raises(DicomError, match=r"missing slice.*between 14\.000 and 18\.000 mm"):
        read_series(paths)


def test_duplicate_slice(tmp_path: Path) -> None:
    paths = make_series(tmp_path / "a", _volume((3, 3, 3)))
    ds = pydicom.dcmread(paths[1])
    ds.SOPInstanceUID = generate_uid()
    dup = tmp_path / "a" / "dup.dcm"
    ds.save_as(dup)
    with pytest.raises(DicomError, match=r"duplicate slice position.*dup\.dcm|dup\.dcm.*duplicate"):
        read_series([*paths, dup])


def test_inconsistent_matrix_and_spacing(tmp_path: Path) -> None:
    paths = make_series(tmp_path, _volume((3, 3, 3)))
    ds = pydicom.dcmread(paths[2])
    ds.PixelSpacing = ["1.5", "1.5"]
    ds.save_as(paths[2])
    with pytest.raises(DicomError, match=rf"{paths[2].name}.*PixelSpacing"):
        read_series(paths)


def test_gantry_tilt_rejected(tmp_path: Path) -> None:
    paths = make_series(tmp_path, _volume((3, 3, 3)), extra={"GantryDetectorTilt": "15"})
    with pytest.raises(DicomError, match=r"GantryDetectorTilt"):
        read_series(paths)


def test_missing_pixel_data_and_unreadable_file(tmp_path: Path) -> None:
    paths = make_series(tmp_path, _volume((3, 3, 3)))
    ds = pydicom.dcmread(paths[1])
    del ds.PixelData
    ds.save_as(paths[1])
    with pytest.raises(DicomError, match=rf"{paths[1].name}.*no pixel data"):
        read_series(paths)
    junk = tmp_path / "junk.dcm"
    junk.write_text("hello")
    with pytest.raises(DicomError, match=r"junk\.dcm"):
        read_series([paths[0], junk])


def test_mixed_series_rejected(tmp_path: Path) -> None:
    a = make_series(tmp_path / "a", _volume((2, 3, 3)))
    b = make_series(tmp_path / "b", _volume((2, 3, 3)))
    with pytest.raises(DicomError, match="different series"):
        read_series([*a, *b])


def test_multiframe_enhanced_file(tmp_path: Path) -> None:
    vol = _volume((4, 3, 5), 9)
    paths = make_series(tmp_path / "s", vol, spacing=(0.7, 0.6, 3.0), origin=(1.0, 2.0, 3.0))
    ds = pydicom.dcmread(paths[0])
    ds.NumberOfFrames = 4
    shared = Dataset()
    ori, meas = Dataset(), Dataset()
    ori.ImageOrientationPatient = ds.ImageOrientationPatient
    meas.PixelSpacing = ds.PixelSpacing
    meas.SliceThickness = "3.0"
    shared.PlaneOrientationSequence = [ori]
    shared.PixelMeasuresSequence = [meas]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    order = [2, 0, 3, 1]  # frames stored out of order
    for k in order:
        fr, pos, trans = Dataset(), Dataset(), Dataset()
        pos.ImagePositionPatient = [1.0, 2.0, 3.0 + 3.0 * k]
        trans.RescaleSlope, trans.RescaleIntercept = "2", "-5"
        fr.PlanePositionSequence = [pos]
        fr.PixelValueTransformationSequence = [trans]
        frames.append(fr)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = np.ascontiguousarray(vol[order]).tobytes()
    mf = tmp_path / "enhanced.dcm"
    ds.save_as(mf)
    img = read_series([mf])
    np.testing.assert_array_equal(img.array, vol * 2.0 - 5)
    np.testing.assert_allclose(img.spacing, (0.7, 0.6, 3.0))
    np.testing.assert_allclose(img.origin, (1.0, 2.0, 3.0))
    del ds.PerFrameFunctionalGroupsSequence
    ds.save_as(mf)
    with pytest.raises(DicomError, match="PerFrameFunctionalGroupsSequence"):
        read_series([mf])


@pytest.mark.shared
def test_ibsi_ct_phantom_equals_nifti(shared_dir: Path) -> None:
    folder = shared_dir / "ibsi" / "ibsi1" / "ct_phantom" / "dicom" / "image"
    result = discover(folder)
    assert len(result.series) == 1 and not result.problems
    img = read_series(result.series[0])
    ref = sitk.ReadImage(str(shared_dir / "ibsi" / "ibsi1" / "ct_phantom" / "nifti" / "image.nii.gz"))
    np.testing.assert_allclose(img.spacing, ref.GetSpacing(), atol=1e-3)
    np.testing.assert_allclose(img.origin, ref.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(img.direction.ravel(), ref.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(img.array, sitk.GetArrayFromImage(ref).astype(np.float32))


def test_uneven_spacing_and_sheared_series(tmp_path: Path) -> None:
    paths = make_series(tmp_path / "u", _volume((5, 3, 3)), spacing=(1.0, 1.0, 2.0), origin=(0, 0, 0))
    ds = pydicom.dcmread(paths[2])
    ds.ImagePositionPatient = [0.0, 0.0, 4.6]  # 2.0 mm steps except 4.6 - 2.0 and 6.0 - 4.6
    ds.save_as(paths[2])
    with pytest.raises(DicomError, match=r"uneven slice spacing.*2\.000 and 4\.600 mm"):
        read_series(paths)
    paths = make_series(tmp_path / "s", _volume((4, 3, 3)), spacing=(1.0, 1.0, 2.0), origin=(0, 0, 0))
    for k, p in enumerate(paths):  # origins drift in y: a tilted acquisition without the tilt tag
        ds = pydicom.dcmread(p)
        ds.ImagePositionPatient = [0.0, 0.5 * k, 2.0 * k]
        ds.save_as(p)
    with pytest.raises(DicomError, match=r"GantryDetectorTilt"):
        read_series(paths)


def test_discover_with_progress_bar(tmp_path: Path) -> None:
    make_series(tmp_path, _volume((2, 3, 3)))
    result = discover(tmp_path, progress=True)
    assert [s.n_files for s in result.series] == [2]
    assert result.n_files_scanned == 2


@pytest.mark.parametrize("private_bytes", [0, 15_000, 40_000])
def test_discovery_reads_headers_beyond_the_first_block(tmp_path: Path, private_bytes: int) -> None:
    """Identifying attributes after a long private element (past the 16 KiB read at once) are still found."""
    paths = make_series(tmp_path, _volume((3, 4, 5)), modality="PT")
    for path in paths:
        ds = pydicom.dcmread(path)
        if private_bytes:
            ds.private_block(0x0009, "BIG VENDOR", create=True).add_new(0x01, "OB", b"\x01" * private_bytes)
        ds.SeriesDescription = "after the private block"
        ds.save_as(path)
    found = discover(tmp_path)
    assert not found.problems and len(found.series) == 1
    s = found.series[0]
    ds = pydicom.dcmread(paths[0], stop_before_pixels=True)
    assert (s.patient_id, s.study_instance_uid, s.series_instance_uid, s.modality) == (
        ds.PatientID,
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
        "PT",
    )
    assert s.series_description == "after the private block" and s.n_files == 3
    assert s.frame_of_reference_uid == ds.FrameOfReferenceUID
