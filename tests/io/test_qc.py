"""Acquisition QC from DICOM headers: synthetic multi-site cohort, edited headers, STS_001."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from smartimaging.io.dicom import SeriesInfo, discover
from smartimaging.io.qc import (
    QC_COLUMNS,
    cohort_qc,
    headers_qc,
    parse_filter_fwhm,
    parse_reconstruction,
    qc_summary,
    series_qc,
    suggest_batches,
)
from smartimaging.synthetic import generate_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # seed 7: SYN001 and SYN002 at SITE_B, SYN003 at SITE_A (cohort.json)
    root = tmp_path_factory.mktemp("qc_cohort")
    generate_cohort(root, n_patients=3, seed=7, n_slices=48, progress=False)
    return root / "dicom"


@pytest.fixture(scope="module")
def table(cohort: Path) -> pd.DataFrame:
    return cohort_qc(discover(cohort))


def _pet_headers(cohort: Path, patient: str = "SYN001") -> list[Dataset]:
    files = sorted((cohort / patient / "PET").iterdir())
    return [pydicom.dcmread(f, stop_before_pixels=True) for f in files]


def _hand_uptake_min(ds: Dataset) -> float:
    """SeriesDate/Time minus RadiopharmaceuticalStartDateTime, by hand."""
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    scan = datetime.strptime(ds.SeriesDate + ds.SeriesTime[:6], "%Y%m%d%H%M%S")
    inj = datetime.strptime(rp.RadiopharmaceuticalStartDateTime[:14], "%Y%m%d%H%M%S")
    return (scan - inj).total_seconds() / 60.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("OSEM3D 4i16s", (4, 16, None, None)),
        ("PSF+TOF 3i21s", (3, 21, True, True)),
        ("OSEM 3D 3i21s TOF", (3, 21, True, None)),
        ("OSEM 2D 2i16s", (2, 16, None, None)),
        ("OSEM 2 iterations 24 subsets", (2, 24, None, None)),
        ("TrueX 2 iter 21 sub", (2, 21, None, True)),
        ("VPFXS", (None, None, True, True)),
        ("VPFX", (None, None, True, False)),
        ("VPHD", (None, None, False, False)),
        ("BLOB-OS-TF", (None, None, True, None)),
        ("OSEM non-TOF", (None, None, False, None)),
        ("OSEM", (None, None, None, None)),
        ("", (None, None, None, None)),
    ],
)
def test_parse_reconstruction(text: str, expected: tuple[object, ...]) -> None:
    got = parse_reconstruction(text)
    assert (got["iterations"], got["subsets"], got["tof"], got["psf"]) == expected


@pytest.mark.parametrize(
    ("kernel", "fwhm"),
    [("Gaussian 6.0 mm", 6.0), ("XYZ Gauss5.00", 5.0), ("All-pass", None), ("B30f", None), ("", None)],
)
def test_parse_filter_fwhm(kernel: str, fwhm: float | None) -> None:
    assert parse_filter_fwhm(kernel) == fwhm


def test_cohort_table_rows_and_values(cohort: Path, table: pd.DataFrame) -> None:
    assert list(table.columns) == list(QC_COLUMNS)
    assert len(table) == 6 and sorted(table.Modality) == ["CT"] * 3 + ["PT"] * 3  # no RTSTRUCT/SEG
    pet = table[table.Modality == "PT"].set_index("PatientID")
    assert list(pet.Manufacturer) == ["Nordlicht Imaging", "Nordlicht Imaging", "Helios Medical Systems"]
    assert pet.loc["SYN003", "ReconstructionMethod"] == "OSEM 3D 3i21s TOF"
    assert (pet.loc["SYN003", "iterations"], pet.loc["SYN003", "subsets"]) == (3, 21)
    assert bool(pet.loc["SYN003", "tof"]) and pd.isna(pet.loc["SYN001", "tof"])
    assert (pet.loc["SYN001", "iterations"], pet.loc["SYN001", "subsets"]) == (2, 16)
    assert pet.loc["SYN003", "matrix"] == "125x125" and pet.loc["SYN001", "matrix"] == "96x96"
    assert pet.loc["SYN001", "filter_fwhm_mm"] == 8.0 and pet.loc["SYN003", "SliceThickness"] == 4.0
    for pid in pet.index:
        ds = _pet_headers(cohort, pid)[0]
        rp = ds.RadiopharmaceuticalInformationSequence[0]
        dose = float(rp.RadionuclideTotalDose) / 1e6
        assert pet.loc[pid, "RadionuclideTotalDose_MBq"] == pytest.approx(dose)
        assert pet.loc[pid, "dose_per_kg_MBq"] == pytest.approx(dose / float(ds.PatientWeight))
        uptake = _hand_uptake_min(ds)
        assert pet.loc[pid, "uptake_min"] == pytest.approx(uptake, abs=1e-9)
        assert bool(pet.loc[pid, "flag_uptake"]) == (not 55.0 <= uptake <= 75.0)
        assert not pet.loc[pid, "flag_dose_per_kg"] and pet.loc[pid, "qc_errors"] == ""
    # SYN002's uptake (53.9 min) is outside the EANM window and says so
    assert pet.loc["SYN002", "flag_uptake"] and "uptake 53.9 min" in pet.loc["SYN002", "flags"]
    ct = table[table.Modality == "CT"].set_index("PatientID")
    assert ct.loc["SYN003", "ConvolutionKernel"] == "B30f" and ct.loc["SYN001", "KVP"] == 120.0
    assert not ct.flag_uptake.any()


def test_summary_shows_what_varies(table: pd.DataFrame) -> None:
    summary = qc_summary(table).set_index(["Modality", "attribute"])
    for attribute in (
        "Manufacturer",
        "ManufacturerModelName",
        "ReconstructionMethod",
        "matrix",
        "iterations",
    ):
        assert summary.loc[("PT", attribute), "varies"], attribute
        assert summary.loc[("PT", attribute), "n_distinct"] == 2
    for attribute in ("Units", "DecayCorrection", "Radiopharmaceutical"):
        assert not summary.loc[("PT", attribute), "varies"]
    assert summary.loc[("PT", "ReconstructionMethod"), "values"] == "OSEM 2D 2i16s (2); OSEM 3D 3i21s TOF (1)"
    assert summary.loc[("PT", "tof"), "n_missing"] == 2
    assert summary.loc[("CT", "ConvolutionKernel"), "varies"]
    assert ("CT", "ReconstructionMethod") not in summary.index


def test_suggest_batches(table: pd.DataFrame) -> None:
    pet = table[table.Modality == "PT"]
    batches = suggest_batches(pet)
    assert batches.name == "batch" and list(batches.index) == list(pet.index)
    assert batches.nunique() == 2
    by_patient = dict(zip(pet.PatientID, batches, strict=True))
    assert by_patient["SYN001"] == by_patient["SYN002"] == "Nordlicht Imaging | NL Vision 450 | OSEM 2D 2i16s"
    assert suggest_batches(pet, keys=("Units",)).nunique() == 1
    with pytest.raises(KeyError, match="not QC columns"):
        suggest_batches(pet, keys=("Scanner",))


def test_uptake_90_min_flagged_and_missing_weight_recorded(cohort: Path) -> None:
    headers = _pet_headers(cohort)
    edited = [copy.deepcopy(ds) for ds in headers]
    scan = datetime.strptime(headers[0].SeriesDate + headers[0].SeriesTime[:6], "%Y%m%d%H%M%S")
    for ds in edited:
        rp = ds.RadiopharmaceuticalInformationSequence[0]
        inj = scan - timedelta(minutes=90)
        rp.RadiopharmaceuticalStartDateTime = inj.strftime("%Y%m%d%H%M%S")
        rp.RadiopharmaceuticalStartTime = inj.strftime("%H%M%S")
        del ds.PatientWeight
    row = headers_qc(edited)
    assert row["uptake_min"] == pytest.approx(90.0) and row["flag_uptake"]
    assert "uptake 90.0 min outside 55-75 min (EANM)" in row["flags"]
    assert row["PatientWeight_kg"] is None and row["dose_per_kg_MBq"] is None
    assert "PatientWeight" in row["missing"] and row["flag_missing"]
    assert "PatientWeight (0010,1030)" in row["qc_errors"] and row["suvbw_factor"] is None


def test_edited_files_on_disk_never_raise(cohort: Path, tmp_path: Path) -> None:
    files = sorted((cohort / "SYN001" / "PET").iterdir())[:3]
    paths = []
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f)
        del ds.RadiopharmaceuticalInformationSequence
        ds.Units = "CNTS"
        path = tmp_path / f"{i}.dcm"
        ds.save_as(path)
        paths.append(path)
    (tmp_path / "broken.dcm").write_bytes(b"not dicom")
    files_on_disk = (*paths, tmp_path / "broken.dcm")
    info = SeriesInfo("SYN001", "1.2", "1.2.3", "PT", "", "", "", files_on_disk, n_files=len(files_on_disk))
    row = series_qc(info)
    assert row["n_files"] == 3 and "broken.dcm: unreadable header" in row["qc_errors"]
    assert "RadiopharmaceuticalInformationSequence" in row["missing"] and row["uptake_min"] is None
    assert "Units (0054,1001)" in row["qc_errors"] and "CNTS" in row["qc_errors"]
    first_only = series_qc(info, all_headers=False)
    assert first_only["n_files"] == 1


def _glucose_item(value: str, units: str) -> Dataset:
    item = Dataset()
    item.ValueType = "NUMERIC"
    concept, unit = Dataset(), Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "2339-0", "LN", "Glucose"
    unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = units, "UCUM", units
    item.ConceptNameCodeSequence = DicomSequence([concept])
    item.MeasurementUnitsCodeSequence = DicomSequence([unit])
    item.NumericValue = value
    return item


def test_blood_glucose_and_private_reconstruction(cohort: Path) -> None:
    ds = copy.deepcopy(_pet_headers(cohort)[0])
    ds.AcquisitionContextSequence = DicomSequence([_glucose_item("5.5", "mmol/L")])
    ds.ReconstructionMethod = "OSEM"
    block = ds.private_block(0x0009, "GEMS_PETD_01", create=True)
    block.add_new(0xB2, "SL", 2)
    block.add_new(0xB3, "SL", 24)
    row = headers_qc([ds])
    assert row["BloodGlucose_mmol_l"] == 5.5 and row["BloodGlucose"] == "5.5 mmol/L"
    assert row["BloodGlucose_source"].startswith("AcquisitionContextSequence") and not row["flag_glucose"]
    assert (row["iterations"], row["subsets"]) == (2, 24)
    assert "GEMS_PETD_01 (0009,xxB2)" in row["reconstruction_source"]
    ds.AcquisitionContextSequence = DicomSequence([_glucose_item("250", "mg/dL")])
    row = headers_qc([ds])
    assert row["BloodGlucose_mmol_l"] == pytest.approx(250 / 18.016) and row["flag_glucose"]
    assert "blood glucose 250 mg/dL above 11 mmol/l" in row["flags"]
    # enhanced PET: PETReconstructionSequence in the shared functional groups, TOF from its flag
    rec = Dataset()
    rec.NumberOfIterations, rec.NumberOfSubsets, rec.TimeOfFlightInformationUsed = 4, 8, "NO"
    shared = Dataset()
    shared.PETReconstructionSequence = DicomSequence([rec])
    del ds[block.get_tag(0xB2)], ds[block.get_tag(0xB3)]
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    ds.ReconstructionMethod = "OSEM TOF"
    row = headers_qc([ds])
    assert (row["iterations"], row["subsets"], row["tof"]) == (4, 8, False)


def test_dose_per_kg_flag(cohort: Path) -> None:
    ds = copy.deepcopy(_pet_headers(cohort)[0])
    ds.PatientWeight = "100"
    ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose = "150000000"
    row = headers_qc([ds])
    assert row["dose_per_kg_MBq"] == pytest.approx(1.5) and row["flag_dose_per_kg"]
    assert not headers_qc([ds], dose_per_kg_range=(1.0, 4.0))["flag_dose_per_kg"]


def test_sts001_real_pet(shared_dir: Path) -> None:
    table = cohort_qc(discover(shared_dir / "data" / "sts001_fdg_pet_raw"))
    assert list(table.Modality) == ["PT"]
    row = table.iloc[0]
    assert (row.Manufacturer, row.ManufacturerModelName) == ("GE MEDICAL SYSTEMS", "Discovery ST")
    # README: 11:20:11 - 10:35:00 = 2711 s; 3.88777e8 Bq; 71 kg; SUVbw factor 2.42903e-4
    assert row.uptake_min == pytest.approx(2711 / 60.0, abs=1e-9) and row.flag_uptake
    assert row.RadionuclideTotalDose_MBq == pytest.approx(388.777472)
    assert row.dose_per_kg_MBq == pytest.approx(388.777472 / 71.0) and row.flag_dose_per_kg
    assert row.suvbw_factor == pytest.approx(2.42903e-4, rel=1e-5)
    assert (row.matrix, row.pixel_spacing_mm, row.SliceThickness) == ("128x128", "4.6875x4.6875", 3.27)
    assert row.ReconstructionMethod == "OSEM" and pd.isna(row.iterations) and pd.isna(row.tof)
    assert (row.Units, row.DecayCorrection, row.n_files) == ("BQML", "START", 267)
    assert row.qc_errors == "" and "ConvolutionKernel" not in row.missing


def test_uptake_uses_the_suv_reference_time_rule(cohort: Path) -> None:
    """A series re-created after the scan: QC's uptake is the SUV's (earliest acquisition), not SeriesTime."""
    from smartimaging.io.suv import suv_factor, uptake_time

    headers = [copy.deepcopy(ds) for ds in _pet_headers(cohort)[:3]]
    series = datetime.strptime(headers[0].SeriesDate + headers[0].SeriesTime[:6], "%Y%m%d%H%M%S")
    for i, ds in enumerate(headers):
        ds.SeriesTime = (series + timedelta(minutes=30)).strftime("%H%M%S")
        # the first header is not the earliest acquisition
        ds.AcquisitionTime = (series + timedelta(minutes=2 - i)).strftime("%H%M%S")
        for keyword in ("FrameReferenceTime", "AcquisitionDateTime"):
            if keyword in ds:
                delattr(ds, keyword)
    row = headers_qc(headers)
    expected = uptake_time(headers).uptake_s
    assert row["uptake_min"] == pytest.approx(expected / 60.0, abs=1e-9)
    assert expected == suv_factor(headers).tags["uptake_s"]
    assert row["uptake_min"] == pytest.approx(_hand_uptake_min(_pet_headers(cohort)[0]))
    # the first header alone would give a later time (2 min more)
    assert headers_qc(headers[:1])["uptake_min"] == pytest.approx(row["uptake_min"] + 2.0)
