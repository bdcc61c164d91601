"""IBSI 1 CT radiomics phantom, configurations A to E, end to end: settings file -> image
processing -> feature extraction, against the IBSI 1 consensus reference values.

Reference values (``data/ibsi1_ct_phantom_reference.csv``: config, key, aggregation, IBSI id,
value, tolerance) are the IBSI 1 consensus values as transcribed in the IBSI reference
implementation's test suite, repository ``oncoray/mirp``:

* A (local intensity, statistics, intensity histogram, IVH) and C (every family, 3D
  aggregations, without Moran's I / Geary's C, which that file comments out):
  ``test/ibsi_1_test.py`` at commit ``08efc26b5a2163209a118d525303b60bd9e778b1``;
* A (morphology and the 2D / 2.5D texture aggregations) and E:
  ``test/data/reference_values/ibsi_1_chest_config_{a,e}.csv`` at commit
  ``d5ecffc0aaddf27a007117c17e2bac243b710f43``;
* B: ``test/data/ibsi_1_reference_values/ibsi_1_chest_config_b.csv`` at commit
  ``1f1c5cdd1363e5a354bbd1c7657f59cee9b668f7``; D: the ``..._config_d.csv`` beside it at commit
  ``ba820737c724ad33672689eb9245862dded5d137``.

Rows without a reference value in those files (oriented minimum bounding box and minimum-volume
enclosing ellipsoid densities, IVH area under the curve) are not encoded; the image and mask
diagnostics rows are checked by ``tests/preprocess``.

Matching rule (as in MIRP's ``within_tolerance``): the value, or the value rounded to three
significant digits, lies within the tolerance of the reference. (The CT phantom references are
given to three significant digits with a tolerance; the digital phantom's rule is in
``_ibsi.py``.)
"""

from __future__ import annotations

import csv
import math
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smartimaging.features.batch import read_case
from smartimaging.features.pipeline import extract_with_processing, load_study_settings
from smartimaging.image import Image, Mask

REPO = Path(__file__).resolve().parents[2]
REFERENCE_CSV = Path(__file__).parent / "data" / "ibsi1_ct_phantom_reference.csv"


def _reference() -> list[dict[str, str]]:
    with REFERENCE_CSV.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


REFERENCE = _reference()
CONFIGS = ("A", "B", "C", "D", "E")


def _matches(value: float, reference: float, tolerance: float) -> bool:
    if abs(value - reference) <= tolerance:
        return True
    if value == 0 or not math.isfinite(value):
        return False
    rounded = round(value, 3 - math.floor(math.log10(abs(value))) - 1)
    return abs(rounded - reference) <= tolerance


@cache
def _nifti(root: Path) -> tuple[Image, Mask]:
    import SimpleITK as sitk

    nifti = root / "ibsi" / "ibsi1" / "ct_phantom" / "nifti"
    image = Image.from_sitk(sitk.ReadImage(str(nifti / "image.nii.gz")))
    # The NIfTI image is float32; IBSI advises rounding it to whole HU before use.
    image = image.with_array(np.rint(np.asarray(image.array, dtype=np.float64)))
    mask = Mask.from_image(Image.from_sitk(sitk.ReadImage(str(nifti / "mask.nii.gz"))))
    return image, mask


def _features(root: Path, config: str) -> pd.DataFrame:
    image, mask = _nifti(root)
    processing, settings = load_study_settings(REPO / "examples" / "ibsi" / f"ibsi1_config_{config}.yaml")
    return extract_with_processing(image, mask, processing=processing, settings=settings)


def _lookup(table: pd.DataFrame, key: str, aggregation: str) -> float:
    rows = table[(table["key"] == key) & (table["aggregation"] == aggregation)]
    assert len(rows) == 1, f"{key} ({aggregation or 'no aggregation'}) occurs {len(rows)} times"
    return float(rows["value"].iloc[0])


def test_reference_table_is_complete() -> None:
    counts = {c: sum(r["config"] == c for r in REFERENCE) for c in CONFIGS}
    print(f"IBSI CT phantom reference values encoded: {counts}")
    assert counts == {"A": 346, "B": 346, "C": 208, "D": 210, "E": 210}
    assert all(r["ibsi_id"] for r in REFERENCE)
    assert len({(r["config"], r["key"], r["aggregation"]) for r in REFERENCE}) == len(REFERENCE)


@pytest.mark.shared
@pytest.mark.parametrize("config", CONFIGS)
def test_config_nifti_every_reference_value(shared_dir: Path, config: str) -> None:
    """Every encoded value of one configuration, with a count of matches in the failure message."""
    table = _features(shared_dir, config)
    refs = [r for r in REFERENCE if r["config"] == config]
    failed = []
    for ref in refs:
        value = _lookup(table, ref["key"], ref["aggregation"])
        if not _matches(value, float(ref["value"]), float(ref["tolerance"])):
            failed.append(
                f"{ref['key']} {ref['aggregation']} ({ref['ibsi_id']}): {value:.6g} vs {ref['value']} ± {ref['tolerance']}"
            )
    print(f"config {config} (NIfTI): {len(refs) - len(failed)}/{len(refs)} reference values matched")
    assert not failed, failed


@pytest.mark.shared
def test_config_c_dicom_rtstruct_matches_nifti(shared_dir: Path) -> None:
    """DICOM series + RTSTRUCT (rasterised here) give the reference values within IBSI tolerance."""
    ct = shared_dir / "ibsi" / "ibsi1" / "ct_phantom" / "dicom"
    image, mask, _, _ = read_case(ct / "image", ct / "rtstruct" / "DCM_RS_00060.dcm", roi="GTV-1")
    processing, settings = load_study_settings(REPO / "examples" / "ibsi" / "ibsi1_config_C.yaml")
    table = extract_with_processing(image, mask, processing=processing, settings=settings)
    refs = [r for r in REFERENCE if r["config"] == "C"]
    failed = []
    for ref in refs:
        value = _lookup(table, ref["key"], ref["aggregation"])
        if not _matches(value, float(ref["value"]), float(ref["tolerance"])):
            failed.append(
                f"{ref['key']} {ref['aggregation']}: {value:.6g} vs {ref['value']} ± {ref['tolerance']}"
            )
    print(f"config C via DICOM + RTSTRUCT: {len(refs) - len(failed)}/{len(refs)} reference values matched")
    assert not failed, failed
