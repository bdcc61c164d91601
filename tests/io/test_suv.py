"""SUV rules, checked on a real FDG PET (TCIA STS_001, values from its README / MIRP) and on edited headers."""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from smartimaging.exceptions import SUVError
from smartimaging.image import Image
from smartimaging.io.dicom import discover, read_series
from smartimaging.io.rtstruct import read_rtstruct
from smartimaging.io.suv import lean_body_mass_kg, suv_factor, to_suv


def _header(**changes: object) -> Dataset:
    """An FDG PET header: 70 kg, 350 MBq at 10:00:00, scan at 11:00:00, START, BQML."""
    ds = Dataset()
    ds.filename = "/data/PT_0001.dcm"
    ds.Modality = "PT"
    ds.Units = "BQML"
    ds.DecayCorrection = "START"
    ds.PatientWeight = 70
    ds.PatientSize = 1.75
    ds.PatientSex = "M"
    ds.SeriesDate = "20240131"
    ds.SeriesTime = "110000"
    ds.AcquisitionDate = "20240131"
    ds.AcquisitionTime = "110000"
    rp = Dataset()
    rp.RadiopharmaceuticalStartTime = "100000"
    rp.RadionuclideTotalDose = 350e6
    rp.RadionuclideHalfLife = 6586.2
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([rp])
    for key, value in changes.items():
        if key.startswith("rp_"):
            setattr(rp, key[3:], value)
        elif value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    return ds


def _expected_bw(
    weight: float = 70, dose: float = 350e6, seconds: float = 3600, half: float = 6586.2
) -> float:
    return weight * 1000 / (dose * np.exp(-np.log(2) * seconds / half))


def test_suvbw_decay_start_by_hand() -> None:
    f = suv_factor(_header())
    assert f.factor == pytest.approx(_expected_bw(), rel=1e-12)
    assert f.tags["uptake_s"] == 3600 and f.tags["DecayCorrection"] == "START"


def test_decay_admin_does_not_decay_the_dose() -> None:
    assert suv_factor(_header(DecayCorrection="ADMIN")).factor == pytest.approx(70_000 / 350e6)


def test_injection_before_midnight() -> None:
    h = _header(SeriesTime="003000", AcquisitionTime="003000", rp_RadiopharmaceuticalStartTime="233000")
    f = suv_factor(h)
    assert f.factor == pytest.approx(_expected_bw(), rel=1e-12)
    assert any("day before" in w for w in f.warnings)


def test_start_datetime_is_preferred_over_time() -> None:
    h = _header(
        rp_RadiopharmaceuticalStartDateTime="20240131093000", rp_RadiopharmaceuticalStartTime="100000"
    )
    assert suv_factor(h).factor == pytest.approx(_expected_bw(seconds=5400), rel=1e-12)


def test_series_time_later_than_acquisition_uses_the_earliest_acquisition() -> None:
    slices = [_header(SeriesTime="120000", AcquisitionTime=t) for t in ("110500", "110000", "110230")]
    f = suv_factor(slices)
    assert f.factor == pytest.approx(_expected_bw(), rel=1e-12)
    assert f.warnings


def test_overrides_win_and_are_recorded() -> None:
    f = suv_factor(
        _header(PatientWeight=0), weight_kg=80, dose_bq=300e6, injection_time=datetime(2024, 1, 31, 10)
    )
    assert f.factor == pytest.approx(_expected_bw(weight=80, dose=300e6), rel=1e-12)
    assert f.tags["PatientWeight_override"] is True


def test_gml_is_already_suv() -> None:
    assert suv_factor(_header(Units="GML")).factor == 1.0
    with pytest.raises(SUVError, match="already SUVbw"):
        suv_factor(_header(Units="GML"), kind="lbm")


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"PatientWeight": 0}, r"PT_0001\.dcm: PatientWeight \(0010,1030\) .*weight_kg=72.*weight_column"),
        ({"PatientWeight": None}, r"PatientWeight \(0010,1030\)"),
        ({"rp_RadionuclideTotalDose": 0}, r"RadionuclideTotalDose \(0018,1074\).*dose_bq"),
        ({"rp_RadionuclideTotalDose": 350.0}, r"entered in MBq"),
        ({"rp_RadionuclideHalfLife": 0}, r"RadionuclideHalfLife \(0018,1075\)"),
        ({"rp_RadiopharmaceuticalStartDateTime": "20240131120000"}, r"after the scan reference time"),
        ({"Units": "CNTS"}, r"Units \(0054,1001\) is CNTS"),
        ({"DecayCorrection": "XYZ"}, r"DecayCorrection \(0054,1102\) is XYZ"),
        ({"RadiopharmaceuticalInformationSequence": None}, r"RadiopharmaceuticalInformationSequence"),
        ({"rp_RadiopharmaceuticalStartDateTime": "20240129100000"}, r"over 24 h"),
    ],
)
def test_bad_inputs_name_the_tag_the_file_and_the_override(changes: dict[str, object], pattern: str) -> None:
    with pytest.raises(SUVError, match=pattern):
        suv_factor(_header(**changes))


def test_lbm_bsa_ibw_need_height_and_sex() -> None:
    with pytest.raises(SUVError, match=r"PatientSize \(0010,1020\)"):
        suv_factor(_header(PatientSize=0), kind="lbm")
    with pytest.raises(SUVError, match=r"PatientSex \(0010,0040\)"):
        suv_factor(_header(PatientSex="O"), kind="ibw")
    assert lean_body_mass_kg(70, 1.75, "M") == pytest.approx(1.1 * 70 - 128 * (70 / 175) ** 2)
    assert lean_body_mass_kg(60, 1.65, "F", formula="janmahasatian") == pytest.approx(
        9270 * 60 / (8780 + 244 * 60 / 1.65**2)
    )


def test_to_suv_needs_a_header() -> None:
    with pytest.raises(SUVError, match="read_series"):
        to_suv(Image(np.ones((2, 2, 2)), spacing=(1, 1, 1)))


@pytest.fixture(scope="module")
def sts001(shared_dir: Path) -> tuple[Image, Path]:
    root = shared_dir / "data" / "sts001_fdg_pet_raw"
    found = discover(root)
    pet = read_series(next(s for s in found.series if s.modality == "PT"))
    rts = next(s for s in found.series if s.modality == "RTSTRUCT")
    return pet, rts.files[0]


def test_sts001_suvbw_factor_and_gtv_values(sts001: tuple[Image, Path]) -> None:
    # README: factor = 71000 g / 2.9230e8 Bq = 2.42903e-4; GTV_Mass SUVmax 7.911, SUVmin 0.169, SUVmean 2.555 (MIRP)
    pet, rtstruct = sts001
    suv, factor = to_suv(pet)
    assert factor.factor == pytest.approx(2.42903e-4, rel=1e-5)
    gtv = read_rtstruct(rtstruct, pet, roi="GTV_Mass")["GTV_Mass"]
    values = suv.array[gtv.array]
    assert values.max() == pytest.approx(7.911, abs=5e-4)
    assert values.min() == pytest.approx(0.169, abs=5e-4)
    assert values.mean() == pytest.approx(2.555, abs=5e-4)


@pytest.mark.parametrize(
    ("kind", "low", "high"),
    [("bsa", 0.195, 0.200), ("lbm", 5.9, 6.1), ("lbm_janma", 5.8, 5.9), ("ibw", 6.6, 6.7)],
)
def test_sts001_other_normalisations_match_mirp(
    sts001: tuple[Image, Path], kind: str, low: float, high: float
) -> None:
    # MIRP's accepted SUVmax ranges in GTV_Mass (README of sts001_fdg_pet_raw); SUVbsa in m²-based units
    pet, rtstruct = sts001
    suv, _ = to_suv(pet, kind=kind)  # type: ignore[arg-type]
    gtv = read_rtstruct(rtstruct, pet, roi="GTV_Mass")["GTV_Mass"]
    peak = float(suv.array[gtv.array].max())
    if kind == "bsa":
        # ours is DICOM CM2ML (BSA in cm² / dose); the README: MIRP's 0.1975 is "10x smaller" than CM2ML
        peak /= 10.0
    assert low < peak < high


def test_header_is_not_modified(sts001: tuple[Image, Path]) -> None:
    pet, _ = sts001
    before = copy.deepcopy(pet.meta["header"])
    to_suv(pet, weight_kg=60)
    assert pet.meta["header"] == before
    assert isinstance(pet.meta["header"], pydicom.Dataset)
