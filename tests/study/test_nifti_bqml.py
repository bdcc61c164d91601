"""NIfTI PET in Bq/ml: SUV from the clinical table's dose, weight, height, sex and uptake columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from smartimaging.exceptions import ConfigError, SUVError
from smartimaging.io.dicom import discover, read_series
from smartimaging.io.nifti import read_image
from smartimaging.io.suv import suv_factor, to_suv, uptake_time
from smartimaging.study.config import load_study
from smartimaging.study.patient import suv_and_masks, tasks_from_nifti
from smartimaging.study.runner import clinical_overrides, read_clinical
from smartimaging.synthetic import generate_cohort

COLUMNS = {
    "dose_column": "dose_mbq",
    "weight_column": "weight_kg",
    "height_column": "height_m",
    "sex_column": "sex",
    "uptake_column": "uptake_min",
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two synthetic patients; the clinical table gets the dose, height and uptake of their DICOM headers."""
    root = tmp_path_factory.mktemp("bqml")
    generate_cohort(root, n_patients=2, n_slices=40, progress=False)
    table = pd.read_csv(root / "clinical.csv", dtype={"patient_id": str}).set_index("patient_id")
    for series in discover(root / "dicom").series:
        if series.modality != "PT":
            continue
        headers = read_series(series).meta["headers"]
        rp = headers[0].RadiopharmaceuticalInformationSequence[0]
        table.loc[series.patient_id, "dose_mbq"] = float(rp.RadionuclideTotalDose) / 1e6
        table.loc[series.patient_id, "weight_kg"] = float(headers[0].PatientWeight)
        table.loc[series.patient_id, "height_m"] = float(headers[0].get("PatientSize") or 1.75)
        table.loc[series.patient_id, "uptake_min"] = uptake_time(headers).uptake_s / 60.0
    table.to_csv(root / "clinical.csv")
    return root


def _study(root: Path, name: str, suv: dict[str, Any], units: str = "BQML", **clinical: Any) -> Path:
    inp: dict[str, Any] = {
        "nifti": {
            "images": str(root / "nifti" / "{patient_id}" / "pet.nii.gz"),
            "masks": str(root / "nifti" / "{patient_id}" / "lesions.nii.gz"),
            "units": units,
        },
        **clinical,
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"input": inp, "suv": suv, "model": None}), encoding="utf-8")
    return path


def _suv_images(study: Path) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    cfg = load_study(study)
    clinical = read_clinical(cfg)
    out = {}
    for task in tasks_from_nifti(cfg, list(clinical.index), clinical_overrides(cfg, clinical)):
        images = suv_and_masks(task)
        out[task.patient_id] = (images.suv.array, images.info)
    return out


@pytest.mark.parametrize("kind", ["bw", "lbm", "bsa"])
def test_bqml_nifti_gives_the_suv_of_the_dicom_series(cohort: Path, kind: str) -> None:
    study = _study(cohort, f"ok_{kind}", {"type": kind, **COLUMNS}, clinical=str(cohort / "clinical.csv"))
    images = _suv_images(study)
    for series in discover(cohort / "dicom").series:
        if series.modality != "PT":
            continue
        pet = read_series(series)
        # same weight/height/sex as the table (the header's height may be absent: the table's is used)
        row = pd.read_csv(cohort / "clinical.csv", dtype={"patient_id": str}).set_index("patient_id")
        row = row.loc[series.patient_id]
        expected = suv_factor(pet.meta["headers"], kind=kind, height_m=row.height_m).factor
        array, info = images[series.patient_id]
        assert info["suv_factor"] == pytest.approx(expected, rel=1e-9)
        bqml = read_image(cohort / "nifti" / series.patient_id / "pet.nii.gz").array
        np.testing.assert_allclose(array, bqml * expected, rtol=1e-6)
        if kind == "bw":
            # and the voxels match the DICOM SUV up to the DICOM's integer storage
            dicom_suv, _ = to_suv(pet)
            assert np.abs(array - dicom_suv.array).max() < 1e-3 * float(dicom_suv.array.max())


def test_bqml_nifti_config_names_the_missing_columns(cohort: Path) -> None:
    with pytest.raises(ConfigError, match=r"suv.dose_column.*suv.weight_column.*suv.uptake_column"):
        load_study(_study(cohort, "none", {"type": "bw"}, clinical=str(cohort / "clinical.csv")))
    with pytest.raises(ConfigError, match=r"suv.sex_column \(the sex"):
        cols = {k: v for k, v in COLUMNS.items() if k != "sex_column"}
        load_study(_study(cohort, "nosex", {"type": "lbm", **cols}, clinical=str(cohort / "clinical.csv")))
    with pytest.raises(ConfigError, match=r"need input.clinical"):
        load_study(_study(cohort, "notable", {"type": "bw", **COLUMNS}))
    with pytest.raises(ConfigError, match=r"uptake_column applies to NIfTI input in Bq/ml"):
        load_study(_study(cohort, "suvunits", {"uptake_column": "u"}, units="SUV", clinical="c.csv"))
    # admin decay needs no uptake time
    path = _study(cohort, "admin", {"dose_column": "d", "weight_column": "w"}, clinical="c.csv")
    raw = yaml.safe_load(path.read_text())
    raw["input"]["nifti"]["decay_corrected_to"] = "admin"
    path.write_text(yaml.safe_dump(raw))
    assert load_study(path).input.nifti.decay_corrected_to == "admin"  # type: ignore[union-attr]


def test_bqml_nifti_empty_cell_and_bad_column_are_named(cohort: Path, tmp_path: Path) -> None:
    table = pd.read_csv(cohort / "clinical.csv", dtype={"patient_id": str})
    table.loc[0, "uptake_min"] = np.nan
    table.to_csv(tmp_path / "clinical.csv", index=False)
    study = _study(cohort, "empty", {"type": "bw", **COLUMNS}, clinical=str(tmp_path / "clinical.csv"))
    with pytest.raises(
        SUVError, match=rf"column 'uptake_min' .* empty or absent for patient {table.patient_id[0]}"
    ):
        _suv_images(study)
    table["uptake_min"] = table["uptake_min"].astype(object)
    table.loc[0, "uptake_min"] = "about an hour"
    table.to_csv(tmp_path / "clinical.csv", index=False)
    with pytest.raises(
        ConfigError, match=r"column 'uptake_min', patient .*'about an hour' is not a valid number"
    ):
        _suv_images(study)
    bad = _study(cohort, "bad", {**COLUMNS, "dose_column": "activity"}, clinical=str(cohort / "clinical.csv"))
    with pytest.raises(ConfigError, match=r"suv.dose_column 'activity' is not a column"):
        _suv_images(bad)


def test_dicom_overrides_from_the_clinical_columns(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {
            "pid": ["P1", "P2"],
            "w": [72.5, None],
            "h": [1.8, 1.6],
            "s": ["m", "F"],
            "d": [350.0, 400.0],
            "inj": ["2025-01-31T09:12:00", ""],
        }
    )
    table.to_csv(tmp_path / "c.csv", index=False)
    path = tmp_path / "s.yaml"
    suv = {
        "weight_column": "w",
        "height_column": "h",
        "sex_column": "s",
        "dose_column": "d",
        "injection_time_column": "inj",
    }
    inp = {"dicom_dir": "dicom", "clinical": "c.csv", "id_column": "pid"}
    path.write_text(yaml.safe_dump({"input": inp, "suv": suv, "model": None}), encoding="utf-8")
    cfg = load_study(path)
    got = clinical_overrides(cfg, read_clinical(cfg))
    assert got["P1"] == {
        "weight_kg": 72.5,
        "height_m": 1.8,
        "sex": "M",
        "dose_bq": pytest.approx(3.5e8),
        "injection_time": pd.Timestamp("2025-01-31T09:12:00").to_pydatetime(),
    }
    assert got["P2"] == {
        "height_m": 1.6,
        "sex": "F",
        "dose_bq": pytest.approx(4e8),
    }  # empty cells: the header
    raw = yaml.safe_load(path.read_text())
    raw["suv"]["uptake_column"] = "u"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="uptake_column applies to NIfTI input"):
        load_study(path)
