"""A study read from NIfTI files (PET already in SUV, lesion label maps) gives the features of
the same study read from DICOM.

The synthetic cohort's ``nifti/<pid>/pet.nii.gz`` holds Bq/ml; SUV needs the DICOM headers, so
the test converts it with the SUVbw factor that io.suv computes from the patient's PET series
and writes ``pet_suv.nii.gz``. The DICOM run uses the DICOM SEG (the same PET-grid label map).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from smartimaging.exceptions import ConfigError
from smartimaging.io.dicom import discover, read_series
from smartimaging.io.nifti import read_image, write_image
from smartimaging.io.suv import to_suv
from smartimaging.study.config import load_study
from smartimaging.study.runner import run_study
from smartimaging.synthetic import generate_cohort

pytestmark = pytest.mark.slow


def _study(tmp: Path, name: str, inp: dict[str, Any], **extra: Any) -> Path:
    path = tmp / f"{name}.yaml"
    settings = {"name": name, "input": inp, "output_dir": str(tmp / f"out_{name}"), "model": None, **extra}
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def _lesion_and_patient_values(out: Path) -> pd.DataFrame:
    tidy = pd.read_csv(out / "features.csv")
    tidy["is_patient"] = tidy["roi"] == "patient"  # ROI names differ: SEG labels vs label_<n>
    cols = ["case", "is_patient", "image_type", "family", "feature", "aggregation"]
    tidy[["image_type", "family", "feature", "aggregation"]] = (
        tidy[["image_type", "family", "feature", "aggregation"]].fillna("").astype(str)
    )
    tidy["case"] = tidy["case"].astype(str)
    return tidy.sort_values(cols).reset_index(drop=True)[[*cols, "value"]]


def test_study_from_suv_nifti_equals_study_from_dicom(tmp_path: Path) -> None:
    cohort = tmp_path / "cohort"
    generate_cohort(cohort, n_patients=3, n_slices=48, progress=False)
    found = discover(cohort / "dicom")
    pids = sorted({s.patient_id for s in found.series})
    assert len(pids) == 3
    for series in found.series:
        if series.modality != "PT":
            continue
        _, factor = to_suv(read_series(series))
        bqml = read_image(cohort / "nifti" / series.patient_id / "pet.nii.gz")
        assert float(bqml.array.max()) > 1000.0  # activity concentration, not SUV
        suv = bqml.with_array((bqml.array.astype(np.float64) * factor.factor).astype(np.float32))
        write_image(suv, cohort / "nifti" / series.patient_id / "pet_suv.nii.gz")

    seg_only = {"segmentation": {"source": ["seg"]}}
    dicom = run_study(
        load_study(_study(tmp_path, "dicom", {"dicom_dir": str(cohort / "dicom")}, **seg_only)), quiet=True
    )
    nifti_input = {
        "clinical": str(cohort / "clinical.csv"),
        "nifti": {
            "images": "cohort/nifti/{patient_id}/pet_suv.nii.gz",
            "masks": "cohort/nifti/{patient_id}/lesions.nii.gz",
        },
    }
    nifti = run_study(load_study(_study(tmp_path, "nifti", nifti_input)), quiet=True)
    assert (dicom.n_ok, nifti.n_patients, nifti.n_ok, nifti.n_failed) == (3, 3, 3, 0)

    a = _lesion_and_patient_values(tmp_path / "out_dicom")
    b = _lesion_and_patient_values(tmp_path / "out_nifti")
    pd.testing.assert_frame_equal(a.drop(columns="value"), b.drop(columns="value"))
    assert len(a) > 100
    np.testing.assert_allclose(b["value"].to_numpy(), a["value"].to_numpy(), rtol=1e-4, atol=1e-9)
    rois = set(pd.read_csv(tmp_path / "out_nifti" / "features.csv")["roi"])
    assert "patient" in rois and all(r == "patient" or r.startswith("label_") for r in rois)

    # without a clinical table the patients come from the files matching the template
    nifti_input.pop("clinical")
    nifti_input["nifti"]["labels"] = {1: "primary"}
    globbed = run_study(load_study(_study(tmp_path, "glob", nifti_input)), quiet=True)
    assert (globbed.n_patients, globbed.n_ok) == (3, 3)
    assert set(pd.read_csv(tmp_path / "out_glob" / "features.csv")["roi"]) == {"primary", "patient"}

    # a Bq/ml image declared as SUV is caught, not turned into features
    nifti_input["nifti"]["images"] = "cohort/nifti/{patient_id}/pet.nii.gz"
    wrong = run_study(load_study(_study(tmp_path, "bqml", nifti_input)), quiet=True)
    assert wrong.n_failed == 3
    assert wrong.failures["reason"].str.contains("not a plausible SUV").all()


def test_nifti_input_in_bqml_without_columns_is_refused_with_the_reason(tmp_path: Path) -> None:
    nifti = {"images": "n/{patient_id}/pet.nii.gz", "masks": "n/{patient_id}/m.nii.gz", "units": "BQML"}
    with pytest.raises(ConfigError, match=r"units BQML .* needs the clinical-table columns.*suv.dose_column"):
        load_study(_study(tmp_path, "b", {"nifti": nifti}))
    with pytest.raises(ConfigError, match="placeholder"):
        load_study(_study(tmp_path, "c", {"nifti": {"images": "pet.nii.gz", "masks": "m/{patient_id}.nii"}}))
    with pytest.raises(ConfigError, match="not both"):
        load_study(_study(tmp_path, "d", {"dicom_dir": "x", "nifti": {**nifti, "units": "SUV"}}))
