"""Reading real PET data through the whole io chain (series, SUV, RTSTRUCT onto the PET grid)."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartimaging.exceptions import SmartImagingError
from smartimaging.image import Image
from smartimaging.io.dicom import discover, read_series
from smartimaging.io.rtstruct import read_rtstruct
from smartimaging.io.suv import to_suv


@pytest.fixture(scope="module")
def sts001(shared_dir: Path) -> tuple[Image, Path]:
    found = discover(shared_dir / "data" / "sts001_fdg_pet_raw")
    pet = read_series(next(s for s in found.series if s.modality == "PT"))
    rtstruct = next(s for s in found.series if s.modality == "RTSTRUCT").files[0]
    return pet, rtstruct


def test_real_pet_with_rounded_slice_positions_and_per_slice_slopes(sts001: tuple[Image, Path]) -> None:
    # STS_001 stores slice steps of 3.27 mm with a few of 3.19 / 3.29 mm (rounding), 267 distinct slopes
    pet, _ = sts001
    assert pet.shape == (267, 128, 128)
    assert pet.spacing[0] == pytest.approx(4.6875) and pet.spacing[2] == pytest.approx(3.27, abs=0.01)
    assert len({float(h.RescaleSlope) for h in pet.meta["headers"]}) == 267


def test_gtv_suv_values_through_rtstruct_match_mirp(sts001: tuple[Image, Path]) -> None:
    # README of sts001_fdg_pet_raw (MIRP, native grid, GTV_Mass): SUVmax 7.911, SUVmin 0.169, SUVmean 2.555
    pet, rtstruct = sts001
    suv, factor = to_suv(pet)
    assert factor.factor == pytest.approx(2.42903e-4, rel=1e-5)
    gtv = read_rtstruct(rtstruct, pet, roi="GTV_Mass")["GTV_Mass"]
    values = suv.array[gtv.array]
    assert values.max() == pytest.approx(7.911, abs=5e-4)
    assert values.min() == pytest.approx(0.169, abs=5e-4)
    assert values.mean() == pytest.approx(2.555, abs=5e-4)


def test_rtstruct_of_another_frame_of_reference_is_refused(sts001: tuple[Image, Path]) -> None:
    pet, rtstruct = sts001
    other = pet.with_array(pet.array, frame_of_reference_uid="1.2.3.4")
    with pytest.raises(SmartImagingError, match=r"1\.2\.3\.4"):
        read_rtstruct(rtstruct, other, roi="GTV_Mass")
