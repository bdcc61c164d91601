"""Written synthetic cohort: DICOM validity and geometry, determinism, tables, truth, SUV."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk

from smartimaging.exceptions import ConfigError
from smartimaging.image import Image
from smartimaging.io.rtstruct import read_rtstruct
from smartimaging.io.seg import read_seg
from smartimaging.synthetic import SITES, generate_cohort, make_patient
from smartimaging.synthetic.cohort import CLINICAL_COLUMNS, TRUTH_COLUMNS
from smartimaging.synthetic.dicom_write import write_pet_series

N = 3
SLICES = 48


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        root = tmp_path_factory.mktemp(f"cohort_{name}")
        summary = generate_cohort(root, n_patients=N, seed=seed, progress=False, n_slices=SLICES)
        assert summary.patient_ids == [f"SYN{i:03d}" for i in range(1, N + 1)]
        assert summary.seconds > 0
        out[name] = root
    return out


def _series(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(f) for f in sorted(folder.glob("*.dcm"))]


def _tm(value: str) -> dt.time:
    return dt.datetime.strptime(value.split(".")[0], "%H%M%S").time()


def _files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout(cohorts: dict[str, Path]) -> None:
    root = cohorts["a"]
    for pid in ("SYN001", "SYN002", "SYN003"):
        d = root / "dicom" / pid
        assert (d / "CT" / "CT_0000.dcm").is_file()
        assert len(list((d / "CT").glob("CT_*.dcm"))) == SLICES
        assert (d / "PET" / "PT_0000.dcm").is_file()
        assert (d / "RTSTRUCT" / "RS.dcm").is_file()
        assert (d / "SEG" / "SEG.dcm").is_file()
        for name in ("ct.nii.gz", "pet.nii.gz", "lesions.nii.gz"):
            assert (root / "nifti" / pid / name).is_file()
    # no temporary files left behind
    assert not [p for p in root.rglob(".*")]
    info = json.loads((root / "cohort.json").read_text())
    assert info["seed"] == 7 and info["n_patients"] == N
    assert set(info["sites"]) == set(SITES)
    assert {"b_vol", "b_het", "b_suv", "b_age", "b_marker", "b_stage"} <= set(
        info["outcome_model"]["coefficients"]
    )


def test_same_seed_identical_different_seed_differs(cohorts: dict[str, Path]) -> None:
    a, b, c = (_files(cohorts[k]) for k in "abc")
    assert a == b  # byte-identical, UIDs included
    ds_a = pydicom.dcmread(cohorts["a"] / "dicom" / "SYN001" / "PET" / "PT_0005.dcm")
    ds_c = pydicom.dcmread(cohorts["c"] / "dicom" / "SYN001" / "PET" / "PT_0005.dcm")
    assert ds_a.SOPInstanceUID != ds_c.SOPInstanceUID
    assert ds_a.StudyInstanceUID != ds_c.StudyInstanceUID
    assert ds_a.PixelData != ds_c.PixelData
    assert a["clinical.csv"] != c["clinical.csv"]


def test_ct_tags(cohorts: dict[str, Path]) -> None:
    series = _series(cohorts["a"] / "dicom" / "SYN001" / "CT")
    ds = series[0]
    assert ds.SOPClassUID == pydicom.uid.CTImageStorage
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.Modality == "CT"
    assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
    assert ds.PatientID == "SYN001"
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert hu.min() <= -990  # air around the patient
    assert 20 < np.median(hu[hu > -200]) < 80  # soft tissue
    assert len({d.SOPInstanceUID for d in series}) == SLICES
    assert len({d.SeriesInstanceUID for d in series}) == 1


def test_pet_tags(cohorts: dict[str, Path]) -> None:
    for pid in ("SYN001", "SYN002", "SYN003"):
        series = _series(cohorts["a"] / "dicom" / pid / "PET")
        ds = series[0]
        assert ds.SOPClassUID == pydicom.uid.PositronEmissionTomographyImageStorage
        assert ds.Modality == "PT"
        assert ds.Units == "BQML"
        assert ds.DecayCorrection == "START"
        assert {"DECY", "ATTN"} <= set(ds.CorrectedImage)
        assert ds.NumberOfSlices == len(series)
        assert [d.ImageIndex for d in series] == list(range(1, len(series) + 1))
        rp = ds.RadiopharmaceuticalInformationSequence[0]
        assert rp.Radiopharmaceutical == "Fluorodeoxyglucose"
        code = rp.RadionuclideCodeSequence[0]
        assert (code.CodeValue, code.CodingSchemeDesignator) == ("C-111A1", "SRT")
        assert float(rp.RadionuclideHalfLife) == pytest.approx(6586.2)
        weight = float(ds.PatientWeight)
        assert 40 < weight < 140
        assert 1.4 < float(ds.PatientSize) < 2.1
        assert ds.PatientSex in ("M", "F")
        assert 2.8e6 < float(rp.RadionuclideTotalDose) / weight < 4.2e6  # ~3.5 MBq/kg
        injection = dt.datetime.strptime(rp.RadiopharmaceuticalStartDateTime.split(".")[0], "%Y%m%d%H%M%S")
        assert injection.time() == _tm(rp.RadiopharmaceuticalStartTime)
        start = dt.datetime.combine(dt.datetime.strptime(ds.SeriesDate, "%Y%m%d").date(), _tm(ds.SeriesTime))
        assert 50.0 <= (start - injection).total_seconds() / 60.0 <= 75.0
        for d in series:  # no slice acquired before the series start
            assert _tm(d.AcquisitionTime) >= _tm(ds.SeriesTime)
        slopes = {float(d.RescaleSlope) for d in series}
        assert len(slopes) > 1  # per-slice scaling
        assert ds.Manufacturer == next(s.manufacturer for s in SITES.values() if s.name == ds.StationName)


def test_frame_of_reference_and_study_shared(cohorts: dict[str, Path]) -> None:
    d = cohorts["a"] / "dicom" / "SYN002"
    ct = pydicom.dcmread(d / "CT" / "CT_0000.dcm")
    pt = pydicom.dcmread(d / "PET" / "PT_0000.dcm")
    rs = pydicom.dcmread(d / "RTSTRUCT" / "RS.dcm")
    seg = pydicom.dcmread(d / "SEG" / "SEG.dcm")
    assert ct.FrameOfReferenceUID == pt.FrameOfReferenceUID == seg.FrameOfReferenceUID
    assert rs.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID == ct.FrameOfReferenceUID
    assert ct.StudyInstanceUID == pt.StudyInstanceUID == rs.StudyInstanceUID == seg.StudyInstanceUID
    assert ct.SeriesInstanceUID != pt.SeriesInstanceUID
    assert next(r.ROIName for r in rs.StructureSetROISequence) == "GTV_1"


@pytest.mark.parametrize("pid", ["SYN001", "SYN002", "SYN003"])
def test_simpleitk_geometry(cohorts: dict[str, Path], pid: str) -> None:
    root = cohorts["a"]
    index = int(pid[3:]) - 1
    patient = make_patient(index, seed=7, n_slices=SLICES)
    for folder, expected in (("CT", patient.ct), ("PET", patient.pet_bqml)):
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(root / "dicom" / pid / folder)))
        img = reader.Execute()
        assert img.GetSize() == expected.shape[::-1]
        np.testing.assert_allclose(img.GetSpacing(), expected.spacing, atol=1e-4)
        np.testing.assert_allclose(img.GetOrigin(), expected.origin, atol=1e-4)
        np.testing.assert_allclose(np.array(img.GetDirection()), np.eye(3).ravel(), atol=1e-9)
        arr = sitk.GetArrayFromImage(img)
        np.testing.assert_allclose(arr, expected.array, rtol=1e-5, atol=1e-3)
    site = patient.site
    assert patient.pet_bqml.spacing == pytest.approx((site.pixel_mm, site.pixel_mm, site.slice_mm))
    # same axial coverage for CT and PET (within one PET slice)
    ct_len = patient.ct.shape[0] * patient.ct.spacing[2]
    pet_len = patient.pet_bqml.shape[0] * patient.pet_bqml.spacing[2]
    assert abs(ct_len - pet_len) <= site.slice_mm


def test_clinical_csv(cohorts: dict[str, Path]) -> None:
    df = pd.read_csv(cohorts["a"] / "clinical.csv")
    assert list(df.columns) == CLINICAL_COLUMNS
    assert len(df) == N
    assert df["patient_id"].tolist() == ["SYN001", "SYN002", "SYN003"]
    assert df["age"].between(18, 100).all()
    assert set(df["sex"]) <= {"M", "F"}
    assert df["weight_kg"].between(40, 140).all()
    assert (df["tumour_marker"] > 0).all()
    assert df["stage"].isin([1, 2, 3, 4]).all()
    assert set(df["site"]) <= set(SITES)
    assert df["label"].isin([0, 1]).all() and df["event"].isin([0, 1]).all()
    assert df["time_months"].between(0.1, 60.0).all()
    # the header facts agree with the table
    ds = pydicom.dcmread(cohorts["a"] / "dicom" / "SYN001" / "PET" / "PT_0000.dcm")
    row = df.iloc[0]
    assert float(ds.PatientWeight) == pytest.approx(row["weight_kg"])
    assert (
        ds.PatientSex == row["sex"] and int(ds.PatientAge[:3]) == row["age"] and ds.StationName == row["site"]
    )


def test_truth_matches_label_images(cohorts: dict[str, Path]) -> None:
    root = cohorts["a"]
    truth = pd.read_csv(root / "truth.csv")
    assert list(truth.columns) == TRUTH_COLUMNS
    for pid, rows in truth.groupby("patient_id"):
        lab = sitk.ReadImage(str(root / "nifti" / str(pid) / "lesions.nii.gz"))
        arr = sitk.GetArrayFromImage(lab)
        vox_ml = float(np.prod(lab.GetSpacing())) / 1000.0
        assert sorted(np.unique(arr[arr > 0]).tolist()) == sorted(rows["lesion"].tolist())
        for _, r in rows.iterrows():
            assert (arr == r["lesion"]).sum() * vox_ml == pytest.approx(r["volume_pet_ml"], rel=1e-5)
            if r["volume_ml"] >= 5.0:  # discretisation matters little above a few ml
                assert r["volume_pet_ml"] == pytest.approx(r["volume_ml"], rel=0.2)
                assert r["volume_ct_ml"] == pytest.approx(r["volume_ml"], rel=0.1)
        # the primary lesion is the largest
        assert rows.sort_values("lesion")["volume_ml"].is_monotonic_decreasing


def test_rtstruct_and_seg_match_truth(cohorts: dict[str, Path]) -> None:
    root = cohorts["a"]
    patient = make_patient(0, seed=7, n_slices=SLICES)
    names = [t.roi_name for t in patient.lesions]
    ref = patient.ct.with_array(patient.ct.array)
    masks = read_rtstruct(root / "dicom" / "SYN001" / "RTSTRUCT" / "RS.dcm", ref)
    assert sorted(masks) == sorted(names)
    for i, name in enumerate(names, start=1):
        np.testing.assert_array_equal(masks[name].array, patient.ct_lesion_labels.array == i)
    segs = read_seg(root / "dicom" / "SYN001" / "SEG" / "SEG.dcm")
    assert sorted(segs) == sorted(names)
    for i, name in enumerate(names, start=1):
        seg_mask = segs[name]
        assert seg_mask.same_geometry(Image(patient.lesion_labels.array, patient.lesion_labels.spacing,
                                            patient.lesion_labels.origin))  # fmt: skip
        np.testing.assert_array_equal(seg_mask.array, patient.lesion_labels.array == i)


def test_noise_free_plateau_suv_from_dicom(tmp_path: Path) -> None:
    """SUVbw of the plateau computed from the DICOM alone equals the programmed SUV (x calibration)."""
    checked = 0
    for index in range(4):
        patient = make_patient(index, seed=3, noise=False, n_slices=SLICES)
        write_pet_series(patient, tmp_path / f"p{index}")
        series = sorted(_series(tmp_path / f"p{index}"), key=lambda d: float(d.ImagePositionPatient[2]))
        ds = series[0]
        rp = ds.RadiopharmaceuticalInformationSequence[0]
        start = dt.datetime.combine(dt.datetime.strptime(ds.SeriesDate, "%Y%m%d").date(), _tm(ds.SeriesTime))
        injection = dt.datetime.strptime(rp.RadiopharmaceuticalStartDateTime.split(".")[0], "%Y%m%d%H%M%S")
        decayed = float(rp.RadionuclideTotalDose) * math.exp(
            -math.log(2) * (start - injection).total_seconds() / float(rp.RadionuclideHalfLife)
        )
        weight_g = float(ds.PatientWeight) * 1000.0
        z0 = float(series[0].ImagePositionPatient[2])
        dz = float(series[1].ImagePositionPatient[2]) - z0
        x0, y0 = (float(v) for v in ds.ImagePositionPatient[:2])
        row_sp, col_sp = (float(v) for v in ds.PixelSpacing)
        for lesion in patient.lesions:
            x, y, z = lesion.plateau_centre_mm
            k = round((z - z0) / dz)
            sl = series[k]
            bqml = sl.pixel_array[round((y - y0) / row_sp), round((x - x0) / col_sp)] * float(
                sl.RescaleSlope
            ) + float(sl.RescaleIntercept)
            suv = bqml / (decayed / weight_g)
            # the DICOM reproduces the noise-free image through header tags and scaling exactly
            assert suv == pytest.approx(lesion.expected_suvbw_plateau * lesion.plateau_recovery, rel=2e-4)
            assert lesion.expected_suvbw_plateau == pytest.approx(lesion.suv_core * patient.site.calibration)
            if lesion.plateau_exact:  # resolution does not reach the plateau centre
                assert bqml == pytest.approx(lesion.plateau_bqml, rel=0.01)
                assert suv == pytest.approx(lesion.suv_core * patient.site.calibration, rel=0.01)
                checked += 1
    assert checked >= 3


def test_invalid_parameters(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n_patients"):
        generate_cohort(tmp_path, n_patients=0, progress=False)
    with pytest.raises(ConfigError, match="n_jobs"):
        generate_cohort(tmp_path, n_patients=1, n_jobs=0, progress=False)
    with pytest.raises(ConfigError, match="SITE_A"):
        make_patient(0, site="SITE_X")


def test_parallel_equals_serial(tmp_path: Path, cohorts: dict[str, Path]) -> None:
    generate_cohort(tmp_path, n_patients=N, seed=7, n_jobs=2, progress=False, n_slices=SLICES)
    assert _files(tmp_path) == _files(cohorts["a"])


def test_progress_bar_and_short_scan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = generate_cohort(tmp_path, n_patients=1, seed=1, progress=True, n_slices=40)
    assert "synthetic cohort" in capsys.readouterr().out
    assert len(list((tmp_path / "dicom" / "SYN001" / "CT").glob("*.dcm"))) == 40
    assert pd.read_csv(summary.truth_csv)["volume_ml"].gt(0).all()
