"""Results back to the clinic: ``smartimaging predict --out`` writes a DICOM SEG and a TID 1500 SR.

A bundle is exported from a 12-patient synthetic study; ``predict`` on one of its patients writes
the SEG (referencing the PET series, one segment per lesion) and the SR, whose SUVmax, SUVpeak,
MTV and TLG equal the study's feature table and whose model output equals the prediction. With
Orthanc on loopback (skipped when it is not installed, unless SMARTIMAGING_REQUIRE_ORTHANC is set)
``--push-to`` and ``pacs push DIR`` store both, and the SR read back from Orthanc has the values.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
import yaml
from typer.testing import CliRunner

from smartimaging.cli import app
from smartimaging.cli_pacs import pacs_app
from smartimaging.features.pet import lesion_metrics
from smartimaging.io.dicom import discover
from smartimaging.io.seg import read_seg
from smartimaging.io.sr import read_measurement_report
from smartimaging.study.config import load_study
from smartimaging.study.demo import demo_study
from smartimaging.study.patient import suv_and_masks, tasks_from_series
from smartimaging.study.results_dicom import result_paths, write_patient_results
from smartimaging.synthetic import generate_cohort

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))

from orthanc_server import (
    CLIENT_AET,
    LOOPBACK,
    SERVER_AET,
    OrthancServer,
    find_dicomweb_plugin,
    find_orthanc,
    start_orthanc,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("orthanc")]

PATIENT = "SYN004"
KEYS = {"suv_max": "PET.SUVmax", "suv_peak": "PET.SUVpeak", "mtv_ml": "PET.MTV", "tlg_g": "PET.TLG"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(cohort, study file, bundle) of a 12-patient study."""
    root = tmp_path_factory.mktemp("results_dicom")
    cohort = root / "cohort"
    generate_cohort(cohort, n_patients=12, seed=2, n_slices=48, progress=False)
    settings = demo_study(cohort, root / "results", jobs=2)
    settings["model"] = settings["model"] | {"n_splits": 2, "n_repeats": 1, "n_permutations": 0}  # type: ignore[operator]
    settings["report_overlays"] = False
    study = root / "study.yaml"
    study.write_text(yaml.safe_dump(settings), encoding="utf-8")
    res = CliRunner().invoke(app, ["export", str(study), "--out", str(root / "model.zip"), "--quiet"])
    assert res.exit_code == 0, res.output
    return cohort, study, root / "model.zip"


def _clinical(cohort: Path) -> list[str]:
    table = pd.read_csv(cohort / "clinical.csv", dtype={"patient_id": str}).set_index("patient_id")
    row = table.loc[PATIENT, ["age", "sex", "tumour_marker", "stage"]]
    return [arg for k, v in row.items() for arg in ("--clinical", f"{k}={v}")]


def _table(study: Path) -> pd.DataFrame:
    tidy = pd.read_csv(load_study(study).output_dir / "features.csv")
    return tidy[tidy["case"] == PATIENT]


def _check_sr(sr_path: Path, seg: pydicom.Dataset, tidy: pd.DataFrame, prediction: dict[str, object]) -> None:
    report = read_measurement_report(sr_path)
    lesions = {lesion.label: lesion for lesion in report.lesions}
    primary = str(tidy.loc[tidy["roi"] != "patient", "roi"].iloc[0])
    assert primary in lesions and report.suv_kind == "bw"
    assert report.seg_sop_instance_uid == seg.SOPInstanceUID
    rows = tidy[(tidy["roi"] == primary) & (tidy["image_type"] == "original")].set_index("key")["value"]
    for field, key in KEYS.items():
        assert getattr(lesions[primary], field) == pytest.approx(float(rows[key]), rel=1e-12), key
    assert lesions[primary].suv_mean == pytest.approx(float(rows["PET.SUVmean"]), rel=1e-12)
    (model,) = report.predictions
    assert model.probability == pytest.approx(float(prediction["probability"]), rel=1e-12)
    assert model.abstained == bool(prediction["abstain"])
    decision = "abstained" if prediction["abstain"] else f"label={prediction['label']}"
    assert f"combined logistic: {decision} (p>=" in model.model
    # the SR names the PET series and the SEG as evidence
    sr = hd.sr.srread(sr_path)
    evidence = {
        str(item.SeriesInstanceUID)
        for item in sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    }
    assert seg.SeriesInstanceUID in evidence and seg.ReferencedSeriesSequence[0].SeriesInstanceUID in evidence


def test_predict_writes_a_seg_and_an_sr_with_the_feature_values(
    trained: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    cohort, study, bundle = trained
    out = tmp_path / "clinic"
    res = CliRunner().invoke(
        app,
        ["predict", str(bundle), str(cohort / "dicom" / PATIENT), *_clinical(cohort), "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    seg_path, sr_path = result_paths(out, PATIENT)
    assert f"wrote {seg_path}" in res.output and f"wrote {sr_path}" in res.output
    prediction = json.loads((out / "prediction.json").read_text(encoding="utf-8"))

    seg = pydicom.dcmread(seg_path)
    pet = next(s for s in discover(cohort / "dicom" / PATIENT).series if s.modality == "PT")
    assert seg.Modality == "SEG" and seg.PatientID == PATIENT
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == pet.series_instance_uid
    assert seg.StudyInstanceUID == pet.study_instance_uid
    # the segments are the run's masks
    config = load_study(study)
    images = suv_and_masks(tasks_from_series(discover(cohort / "dicom" / PATIENT).series, config, {})[0])
    segments = read_seg(seg_path, reference=images.suv)
    assert set(segments) == set(images.masks)
    for name, mask in images.masks.items():
        np.testing.assert_array_equal(segments[name].array, mask.array)
    _check_sr(sr_path, seg, _table(study), prediction)


def test_lesions_without_a_feature_table_are_measured_on_the_suv(
    trained: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    cohort, study, _ = trained
    task = tasks_from_series(discover(cohort / "dicom" / PATIENT).series, load_study(study), {})[0]
    images = suv_and_masks(task)
    assert images.pet is not None
    files = write_patient_results(images.pet, images.suv, images.masks, None, None, tmp_path)
    assert files == result_paths(tmp_path, PATIENT)
    report = read_measurement_report(files[1])
    assert report.predictions == []
    for lesion in report.lesions:
        expected = lesion_metrics(images.suv, images.masks[lesion.label])
        assert lesion.suv_max == pytest.approx(expected["PET.SUVmax"], rel=1e-12)
        assert lesion.tlg_g == pytest.approx(expected["PET.TLG"], rel=1e-12)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    binary, plugin = find_orthanc(), find_dicomweb_plugin()
    if binary is None or plugin is None:
        message = (
            "Orthanc (with its DICOMweb plugin) is not installed (scripts/ensure_orthanc.sh installs it)"
        )
        if os.environ.get("SMARTIMAGING_REQUIRE_ORTHANC"):
            pytest.fail(message + " and SMARTIMAGING_REQUIRE_ORTHANC is set")
        pytest.skip(message)
    server = start_orthanc(tmp_path_factory.mktemp("orthanc_results"), binary=binary, plugin=plugin)
    try:
        yield server
    finally:
        server.stop()


def test_predict_pushes_seg_and_sr_to_pacs(
    trained: tuple[Path, Path, Path], orthanc: OrthancServer, tmp_path: Path
) -> None:
    from smartimaging.io.pacs import DicomNode, find_series, pull

    cohort, study, bundle = trained
    out = tmp_path / "clinic"
    target = f"{SERVER_AET}@{LOOPBACK}:{orthanc.dicom_port}"
    args = ["predict", str(bundle), str(cohort / "dicom" / PATIENT), *_clinical(cohort), "--out", str(out)]
    res = CliRunner().invoke(app, [*args, "--push-to", target])
    assert res.exit_code == 0, res.output + orthanc.log_tail()
    assert f"sent 2 file(s) to {target}" in res.output
    node = DicomNode(host=LOOPBACK, port=orthanc.dicom_port, ae_title=SERVER_AET, calling_ae_title=CLIENT_AET)
    seg = pydicom.dcmread(result_paths(out, PATIENT)[0])
    series = {
        str(s["Modality"]): str(s["SeriesInstanceUID"]) for s in find_series(node, seg.StudyInstanceUID)
    }
    assert set(series) == {"SEG", "SR"}

    # read the SR back from the PACS: the values are the feature table's
    pulled = pull(node, tmp_path / "pulled", study_uid=seg.StudyInstanceUID, series_uid=series["SR"])
    (sr_file,) = pulled.files
    prediction = json.loads((out / "prediction.json").read_text(encoding="utf-8"))
    _check_sr(Path(sr_file), seg, _table(study), prediction)

    # `pacs push DIR` sends the SEG and SR of the folder and skips prediction.json
    res = CliRunner().invoke(
        pacs_app,
        ["push", str(out), "--host", LOOPBACK, "--port", str(orthanc.dicom_port), "--aet", SERVER_AET],
    )
    assert res.exit_code == 0, res.output
    assert "2 file(s) stored with C-STORE" in res.output and "skipped 1 file(s)" in res.output
    assert "prediction.json" in res.output

    bad = CliRunner().invoke(app, [*args, "--push-to", "nohost:4242"])
    assert bad.exit_code != 0 and "AET@HOST:PORT" in bad.output
