"""De-identification (PS3.15 Basic Profile + Retain Longitudinal Full Dates + Retain Patient
Characteristics) of a synthetic PET/CT cohort with RTSTRUCT and SEG."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from smartimaging.exceptions import SUVError
from smartimaging.io.deid import (
    BASIC_PROFILE,
    DeidError,
    deidentify,
    map_uid,
    pseudonym,
    read_mapping,
)
from smartimaging.io.dicom import SeriesInfo, discover, read_series
from smartimaging.io.rtstruct import read_rtstruct
from smartimaging.io.seg import read_seg
from smartimaging.io.suv import to_suv
from smartimaging.synthetic import generate_cohort

SALT = "test-salt"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cohort")
    generate_cohort(root, n_patients=2, seed=7, n_slices=48, progress=False)
    return root / "dicom"


@pytest.fixture(scope="module")
def deid(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    base = tmp_path_factory.mktemp("deid")
    out, mapping = base / "out", base / "private" / "mapping.csv"
    report = deidentify(cohort, out, mapping_file=mapping, salt=SALT)
    return out, mapping, report


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _elements(ds: Dataset) -> list[pydicom.DataElement]:
    """Every element of ``ds`` and its sequences, and of its file meta."""
    out = list(ds.iterall())
    if hasattr(ds, "file_meta"):
        out += list(ds.file_meta.iterall())
    return out


def _strings(elem: pydicom.DataElement) -> list[str]:
    if elem.VR in ("SQ", "OB", "OW", "OF", "OD", "OL", "UN") or elem.value is None:
        return []
    values = elem.value if elem.VM > 1 else [elem.value]
    return [str(v) for v in values]


def _by_modality(root: Path) -> dict[str, dict[str, SeriesInfo]]:
    out: dict[str, dict[str, SeriesInfo]] = {}
    for s in discover(root).series:
        out.setdefault(s.patient_id, {})[s.modality] = s
    return out


def _phi(cohort: Path) -> tuple[set[str], set[str]]:
    """Identifying strings and non-standard UIDs of the original files."""
    strings: set[str] = set()
    uids: set[str] = set()
    keywords = (
        "PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName",
        "StationName", "DeviceSerialNumber", "StudyDescription", "SeriesDescription",
    )  # fmt: skip
    for path in _files(cohort):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for elem in _elements(ds):
            if elem.keyword in keywords:
                strings.update(v for v in _strings(elem) if len(v) >= 3)  # SEG DeviceSerialNumber "0"
            if elem.VR == "UI" and elem.keyword != "ImplementationClassUID":  # software, not patient
                uids.update(v for v in _strings(elem) if v and not v.startswith("1.2.840.10008."))
    return strings, uids


def test_profile_table_keywords_are_dicom_keywords() -> None:
    assert {a for a, _ in BASIC_PROFILE.values()} <= {"D", "Z", "X", "U", "K", "C"}
    for keyword, (_, option) in BASIC_PROFILE.items():
        assert pydicom.datadict.tag_for_keyword(keyword) is not None, keyword
        assert option in ("", "T", "P")


def test_no_phi_and_no_original_uid_survives(cohort: Path, deid: tuple[Path, Path, object]) -> None:
    out, _, report = deid
    phi, original_uids = _phi(cohort)
    assert {"SYN001", "SYN002", "ACC00070001"} <= phi and len(original_uids) > 100
    files = _files(out)
    assert len(files) == len(_files(cohort)) == report.n_files  # type: ignore[attr-defined]
    removed = {k for k, (action, option) in BASIC_PROFILE.items() if action == "X" and option == ""}
    for path in files:
        assert not any(part in phi for part in path.parts)
        ds = pydicom.dcmread(path)
        for elem in _elements(ds):
            assert not elem.tag.is_private, f"{path}: private {elem.tag} survived"
            assert elem.keyword not in removed, f"{path}: {elem.keyword} should be removed"
            for value in _strings(elem):
                assert value not in phi, f"{path}: {elem.keyword} = {value!r} is identifying"
                assert value not in original_uids, f"{path}: original UID in {elem.keyword}"
            if elem.VR == "PN" and elem.keyword != "PatientName":
                assert not elem.value
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.PatientID == ds.PatientName
        assert ds.PatientID in {pseudonym(p, SALT) for p in ("SYN001", "SYN002")}
        codes = [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
        assert codes == ["113100", "113106", "113108"]
        assert ds.LongitudinalTemporalInformationModified == "UNMODIFIED"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        # the options kept what SUV needs
        assert ds.PatientWeight and ds.PatientSex and ds.StudyDate and not ds.PatientBirthDate


def test_suv_masks_and_references_survive(cohort: Path, deid: tuple[Path, Path, object]) -> None:
    out, mapping_file, _ = deid
    before, after = _by_modality(cohort), _by_modality(out)
    mapping = read_mapping(mapping_file)
    assert set(after) == {mapping["PatientID"][p] for p in before}
    for pid, series in before.items():
        new = after[mapping["PatientID"][pid]]
        assert new["PT"].series_instance_uid == mapping["UID"][series["PT"].series_instance_uid]
        pet0, pet1 = read_series(series["PT"]), read_series(new["PT"])
        np.testing.assert_array_equal(pet0.array, pet1.array)
        suv0, f0 = to_suv(pet0)
        suv1, f1 = to_suv(pet1)
        assert f1.factor == f0.factor and f1.tags["uptake_s"] == f0.tags["uptake_s"]
        np.testing.assert_array_equal(suv0.array, suv1.array)
        # RTSTRUCT (drawn on the CT) still rasterises onto the de-identified PET, identically
        rs0 = read_rtstruct(series["RTSTRUCT"].files[0], pet0)
        rs1 = read_rtstruct(new["RTSTRUCT"].files[0], pet1)
        assert list(rs0) == list(rs1) and all(np.array_equal(rs0[k].array, rs1[k].array) for k in rs0)
        assert any(m.array.any() for m in rs1.values())
        seg0 = read_seg(series["SEG"].files[0], reference=pet0)
        seg1 = read_seg(new["SEG"].files[0], reference=pet1)
        assert list(seg0) == list(seg1) and all(np.array_equal(seg0[k].array, seg1[k].array) for k in seg0)
        ref = pydicom.dcmread(new["SEG"].files[0], stop_before_pixels=True)
        pet_uids = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in new["PT"].files}
        refs = {str(e.value) for e in ref.iterall() if e.keyword == "ReferencedSOPInstanceUID"}
        assert refs and refs <= pet_uids


def test_mapping_outside_and_maps_back(cohort: Path, deid: tuple[Path, Path, object]) -> None:
    out, mapping_file, report = deid
    assert not mapping_file.resolve().is_relative_to(out.resolve())
    mapping = read_mapping(mapping_file)
    assert mapping["salt"] == {"": SALT}
    assert mapping["PatientID"] == {p: pseudonym(p, SALT) for p in ("SYN001", "SYN002")}
    assert report.patients == mapping["PatientID"]  # type: ignore[attr-defined]
    back = {new: old for old, new in mapping["UID"].items()}
    for path in _files(cohort)[:: max(1, len(_files(cohort)) // 20)]:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        new_uid = mapping["UID"][str(ds.SOPInstanceUID)]
        assert back[new_uid] == ds.SOPInstanceUID
        assert new_uid == map_uid(str(ds.SOPInstanceUID), SALT)
        assert len(new_uid) <= 64 and new_uid.startswith("2.25.")


def test_same_salt_same_uids(cohort: Path, deid: tuple[Path, Path, object], tmp_path: Path) -> None:
    out, _, _ = deid
    patient = cohort / "SYN001" / "PET"
    again = deidentify(patient, tmp_path / "a", mapping_file=tmp_path / "a.csv", salt=SALT)
    other = deidentify(patient, tmp_path / "b", mapping_file=tmp_path / "b.csv", salt="another")
    uids_a = {p.name for p in _files(tmp_path / "a")}
    assert uids_a <= {p.name for p in _files(out)} and len(uids_a) == again.n_files > 0
    assert not uids_a & {p.name for p in _files(tmp_path / "b")}
    assert again.patients == {"SYN001": pseudonym("SYN001", SALT)} != other.patients


def test_refuses_mapping_inside_output_and_overlap(cohort: Path, tmp_path: Path) -> None:
    with pytest.raises(DeidError, match="inside the output folder"):
        deidentify(cohort, tmp_path / "out", mapping_file=tmp_path / "out" / "map.csv")
    with pytest.raises(DeidError, match="overlap"):
        deidentify(cohort, cohort / "sub", mapping_file=tmp_path / "map.csv")
    with pytest.raises(DeidError, match="not found"):
        deidentify(tmp_path / "missing", tmp_path / "o", mapping_file=tmp_path / "map.csv")
    assert not (tmp_path / "out").exists()


def _edited_input(cohort: Path, root: Path) -> Path:
    """Two PET slices with private tags, nested PHI, burned-in flag, plus a non-DICOM file."""
    src = root / "in"
    src.mkdir()
    files = sorted((cohort / "SYN001" / "PET").iterdir())[:2]
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f)
        ge = ds.private_block(0x0009, "GEMS_PETD_01", create=True)
        ge.add_new(0x0D, "DT", "20240910104500")
        ge.add_new(0xB2, "SL", 4)
        ge.add_new(0xB3, "SL", 16)
        ge.add_new(0x01, "LO", "SECRET GE NOTE")
        ph = ds.private_block(0x7053, "Philips PET Private Group", create=True)
        ph.add_new(0x00, "DS", "0.000123")
        ph.add_new(0x09, "DS", "1.6")
        other = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
        other.add_new(0x10, "OB", b"Jane Doe 1959")
        ds.OtherPatientIDs = "HOSP-12345"
        ds.PatientAddress = "1 Main Street"
        ds.InstitutionAddress = "Hospital Road"
        item = Dataset()
        item.OperatorsName = "Smith^John"
        item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
        item.ReferencedSOPClassUID = ds.SOPClassUID
        ds.ReferencedImageSequence = DicomSequence([item])
        ds.ImageComments = "patient Jane Doe"
        if i == 0:
            ds.BurnedInAnnotation = "YES"
        ds.save_as(src / f.name)
    (src / "notes.txt").write_text("Jane Doe, MRN 12345\n")
    return src


def test_private_safe_list_nested_phi_and_report(cohort: Path, tmp_path: Path) -> None:
    src = _edited_input(cohort, tmp_path)
    report = deidentify(src, tmp_path / "out", mapping_file=tmp_path / "map.csv", salt=SALT)
    assert report.n_files == 2 and [p.name for p, _ in report.skipped] == ["notes.txt"]
    assert len(report.burned_in) == 1 and report.removed_private >= 4
    for path in _files(tmp_path / "out"):
        ds = pydicom.dcmread(path)
        ge = ds.private_block(0x0009, "GEMS_PETD_01")
        assert ge[0xB2].value == 4 and ge[0xB3].value == 16 and ge[0x0D].value == "20240910104500"
        assert ge.get_tag(0x01) not in ds
        ph = ds.private_block(0x7053, "Philips PET Private Group")
        assert float(ph[0x00].value) == pytest.approx(0.000123) and float(ph[0x09].value) == 1.6
        assert not any(e.tag.group == 0x0029 for e in ds)
        for keyword in ("OtherPatientIDs", "PatientAddress", "InstitutionAddress", "ImageComments"):
            assert keyword not in ds
        item = ds.ReferencedImageSequence[0]
        assert item.OperatorsName == "" and item.ReferencedSOPInstanceUID == ds.SOPInstanceUID
        assert "113111" in [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
    assert not any("Jane" in p.read_bytes().decode("latin-1") for p in _files(tmp_path / "out"))


def test_without_options_dates_and_characteristics_go(cohort: Path, tmp_path: Path) -> None:
    src = _edited_input(cohort, tmp_path)
    deidentify(
        src,
        tmp_path / "out",
        mapping_file=tmp_path / "map.csv",
        salt=SALT,
        retain_temporal=False,
        retain_patient_characteristics=False,
    )
    files = _files(tmp_path / "out")
    for path in files:
        ds = pydicom.dcmread(path)
        dates = [e for e in _elements(ds) if e.VR in ("DA", "TM", "DT") and e.value]
        assert all(str(e.value) in ("19000101", "000000") for e in dates), dates
        for keyword in ("PatientWeight", "PatientSize", "PatientAge"):
            assert keyword not in ds
        assert ds.PatientSex == "" and ds.LongitudinalTemporalInformationModified == "REMOVED"
        ge = ds.private_block(0x0009, "GEMS_PETD_01")
        assert ge[0xB2].value == 4 and ge.get_tag(0x0D) not in ds
        assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113111"]
    with pytest.raises(SUVError):
        to_suv(read_series(files))


def test_acquisition_context_keeps_only_glucose(cohort: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    f = sorted((cohort / "SYN001" / "PET").iterdir())[0]
    ds = pydicom.dcmread(f)
    glucose, note = Dataset(), Dataset()
    for item, meaning, value in ((glucose, "Glucose", "5.4"), (note, "Comment", None)):
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "X1", "99TEST", meaning
        item.ConceptNameCodeSequence = DicomSequence([code])
        if value is None:
            item.ValueType = "TEXT"
            item.TextValue = "patient Jane Doe fasting"
        else:
            item.ValueType = "NUMERIC"
            item.NumericValue = value
            item.TextValue = "Jane Doe"
    ds.AcquisitionContextSequence = DicomSequence([glucose, note])
    ds.save_as(src / f.name)
    deidentify(src, tmp_path / "out", mapping_file=tmp_path / "map.csv", salt=SALT)
    out = pydicom.dcmread(_files(tmp_path / "out")[0])
    assert len(out.AcquisitionContextSequence) == 1
    kept = out.AcquisitionContextSequence[0]
    assert float(kept.NumericValue) == 5.4 and "TextValue" not in kept
    deidentify(src, tmp_path / "o2", mapping_file=tmp_path / "m2.csv", retain_patient_characteristics=False)
    assert "AcquisitionContextSequence" not in pydicom.dcmread(_files(tmp_path / "o2")[0])


@pytest.mark.slow
def test_real_pet_sts001(shared_dir: Path, tmp_path: Path) -> None:
    root = shared_dir / "data" / "sts001_fdg_pet_raw"
    report = deidentify(root, tmp_path / "out", mapping_file=tmp_path / "map.csv", salt=SALT)
    assert report.n_files == 268 and {p.name for p, _ in report.skipped} >= {"README.md"}
    series = {s.modality: s for s in discover(tmp_path / "out").series}
    original = {s.modality: s for s in discover(root).series}
    pet0, pet1 = read_series(original["PT"]), read_series(series["PT"])
    f0, f1 = to_suv(pet0)[1], to_suv(pet1)[1]
    assert f1.factor == f0.factor == pytest.approx(2.42903e-4, rel=1e-5)
    masks = read_rtstruct(series["RTSTRUCT"].files[0], pet1, roi="GTV_Mass")
    assert int(masks["GTV_Mass"].array.sum()) == int(
        read_rtstruct(original["RTSTRUCT"].files[0], pet0, roi="GTV_Mass")["GTV_Mass"].array.sum()
    )
    ds = pydicom.dcmread(series["PT"].files[0], stop_before_pixels=True)
    assert ds.PatientID == pseudonym("STS_001", SALT) and not any(e.tag.is_private for e in ds)


def test_copy_is_untouched(cohort: Path, tmp_path: Path) -> None:
    """The input files are never modified."""
    src = tmp_path / "in"
    shutil.copytree(cohort / "SYN002" / "RTSTRUCT", src)
    before = {p.name: p.read_bytes() for p in _files(src)}
    deidentify(src, tmp_path / "out", mapping_file=tmp_path / "map.csv")
    assert {p.name: p.read_bytes() for p in _files(src)} == before


def test_cli_deid_command(cohort: Path, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from smartimaging.cli_deid import deid_command

    app = typer.Typer()
    app.command(name="deid")(deid_command)
    app.command(name="noop")(lambda: None)  # a second command keeps "deid" as a sub-command
    runner = CliRunner()
    src = cohort / "SYN002" / "RTSTRUCT"
    result = runner.invoke(
        app, ["deid", str(src), str(tmp_path / "out"), "--mapping", str(tmp_path / "m.csv"), "--salt", SALT]
    )
    assert result.exit_code == 0, result.output
    assert "1 files of 1 patients de-identified" in result.output
    assert read_mapping(tmp_path / "m.csv")["PatientID"] == {"SYN002": pseudonym("SYN002", SALT)}
    bad = runner.invoke(
        app, ["deid", str(src), str(tmp_path / "o2"), "--mapping", str(tmp_path / "o2" / "m.csv")]
    )
    assert bad.exit_code == 2 and "inside the output folder" in bad.output
    assert not (tmp_path / "o2").exists()
