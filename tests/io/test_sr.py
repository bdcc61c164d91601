"""DICOM SR (TID 1500) of PET lesion measurements and model outputs.

A synthetic patient's lesions (its ground-truth SEG) are measured with the feature engine, written as
a measurement report that references each lesion's segment, read back (values, codes, references), and
pushed with the SEG to a real Orthanc on loopback, from which the SR is retrieved intact.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from orthanc_server import CLIENT_AET, LOOPBACK, SERVER_AET, find_orthanc, start_orthanc
from pydicom.sr.codedict import codes

from smartimaging.exceptions import DicomError
from smartimaging.features.pet import lesion_metrics
from smartimaging.io.dicom import read_series
from smartimaging.io.pacs import DicomNode, find_series, pull, push
from smartimaging.io.seg import read_seg
from smartimaging.io.sr import (
    LesionMeasurement,
    ModelPrediction,
    read_measurement_report,
    write_measurement_report,
)
from smartimaging.io.suv import to_suv
from smartimaging.synthetic import generate_cohort


class Patient:
    def __init__(self, root: Path) -> None:
        folder = root / "dicom" / "SYN001"
        self.pet_headers = [
            pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((folder / "PET").glob("*.dcm"))
        ]
        self.seg_path = folder / "SEG" / "SEG.dcm"
        self.seg = pydicom.dcmread(self.seg_path)
        image = read_series(sorted((folder / "PET").glob("*.dcm")))
        suv, _ = to_suv(image)
        masks = read_seg(self.seg_path, reference=suv)
        self.lesions = []
        for label, mask in masks.items():
            m = lesion_metrics(suv, mask)
            self.lesions.append(
                LesionMeasurement(
                    label=label,
                    suv_max=m["PET.SUVmax"],
                    suv_mean=m["PET.SUVmean"],
                    suv_peak=m["PET.SUVpeak"],
                    mtv_ml=m["PET.MTV"],
                    tlg_g=m["PET.TLG"],
                )
            )


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Patient:
    root = tmp_path_factory.mktemp("sr_cohort")
    generate_cohort(root, n_patients=1, seed=0, n_slices=48, progress=False)
    return Patient(root)


def test_report_round_trip_values_codes_and_references(patient: Patient, tmp_path: Path) -> None:
    assert len(patient.lesions) >= 1
    predictions = [
        ModelPrediction("combined v1", 0.83),
        ModelPrediction("radiomics v1", 0.41, abstained=True),
    ]
    path = write_measurement_report(
        patient.lesions, patient.seg, patient.pet_headers, tmp_path / "sr.dcm", predictions=predictions
    )
    back = read_measurement_report(path)
    assert back.suv_kind == "bw"
    assert back.seg_sop_instance_uid == str(patient.seg.SOPInstanceUID)
    assert [le.label for le in back.lesions] == [le.label for le in patient.lesions]
    for got, want in zip(back.lesions, patient.lesions, strict=True):
        for field in ("suv_max", "suv_mean", "suv_peak", "mtv_ml", "tlg_g"):
            assert math.isclose(getattr(got, field), getattr(want, field), rel_tol=1e-6), field
        assert got.suv_max >= got.suv_peak >= 0 and got.suv_max >= got.suv_mean
    assert back.predictions == predictions

    # the DICOM side, as a viewer reads it
    sr = hd.sr.srread(path)
    ds = pydicom.dcmread(path)
    assert ds.Modality == "SR" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert ds.StudyInstanceUID == patient.seg.StudyInstanceUID and ds.PatientID == patient.seg.PatientID
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(patient.lesions)
    for group, lesion in zip(groups, patient.lesions, strict=True):
        segment = group.referenced_segment
        numbers = {str(s.SegmentLabel): int(s.SegmentNumber) for s in patient.seg.SegmentSequence}
        assert segment.referenced_segment_numbers == [numbers[lesion.label]]
        names = {(m.name.value, getattr(m.derivation, "value", None)) for m in group.get_measurements()}
        assert names == {
            ("126401", "56851009"),  # SUVbw, Maximum
            ("126401", "373098007"),  # SUVbw, Mean
            ("126401", "126031"),  # SUVbw, Peak Value Within ROI
            ("126032", None),  # Metabolic Volume
            ("126033", None),  # Total Lesion Glycolysis
        }
        units = {m.name.value: m.unit.value for m in group.get_measurements()}
        assert units == {"126401": "g/ml{SUVbw}", "126032": "ml", "126033": "g"}
    evidence = {
        series.SeriesInstanceUID
        for study in ds.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
    }
    assert {str(patient.seg.SeriesInstanceUID), str(patient.pet_headers[0].SeriesInstanceUID)} <= evidence


def test_other_suv_kinds_set_concept_and_unit(patient: Patient, tmp_path: Path) -> None:
    path = write_measurement_report(
        patient.lesions[:1], patient.seg, patient.pet_headers, tmp_path / "sr.dcm", suv_kind="lbm_janma"
    )
    back = read_measurement_report(path)
    assert back.suv_kind == "lbm_janma"
    group = hd.sr.srread(path).content.get_volumetric_roi_measurement_groups()[0]
    suv = [m for m in group.get_measurements() if m.name.value == codes.DCM.SuvlbmJanma.value]
    assert len(suv) == 3 and {m.unit.value for m in suv} == {"g/ml{SUVlbm(Janma)}"}


def test_bad_input_is_named(patient: Patient, tmp_path: Path) -> None:
    lesion = patient.lesions[0]
    wrong = LesionMeasurement("GTV_99", 5.0, 2.0, 4.0, 3.0, 6.0)
    with pytest.raises(DicomError, match=r"GTV_99.*not a segment.*SegmentLabels"):
        write_measurement_report([wrong], patient.seg, patient.pet_headers, tmp_path / "a.dcm")
    nan = LesionMeasurement(lesion.label, float("nan"), 2.0, 4.0, 3.0, 6.0)
    with pytest.raises(DicomError, match="must be finite"):
        write_measurement_report([nan], patient.seg, patient.pet_headers, tmp_path / "b.dcm")
    with pytest.raises(DicomError, match=r"outside \[0, 1\]"):
        write_measurement_report(
            [], patient.seg, patient.pet_headers, tmp_path / "c.dcm", predictions=[ModelPrediction("m", 1.5)]
        )
    with pytest.raises(DicomError, match="not Segmentation Storage"):
        write_measurement_report([lesion], patient.pet_headers[0], patient.pet_headers, tmp_path / "d.dcm")
    with pytest.raises(ValueError, match="suv_kind must be one of"):
        write_measurement_report(
            [lesion], patient.seg, patient.pet_headers, tmp_path / "e.dcm", suv_kind="sul"
        )  # type: ignore[arg-type]
    other = pydicom.dcmread(patient.pet_headers[0].filename, stop_before_pixels=True)
    other.StudyInstanceUID = "1.2.3.4"
    with pytest.raises(DicomError, match="different studies"):
        write_measurement_report([lesion], patient.seg, [other], tmp_path / "f.dcm")
    assert not any(tmp_path.iterdir())  # nothing half-written
    with pytest.raises(DicomError, match="cannot read the SR"):
        read_measurement_report(patient.seg_path)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DicomNode]:
    binary = find_orthanc()
    if binary is None:
        message = "Orthanc is not installed (scripts/ensure_orthanc.sh installs it)"
        if os.environ.get("SMARTIMAGING_REQUIRE_ORTHANC"):
            pytest.fail(message + " and SMARTIMAGING_REQUIRE_ORTHANC is set")
        pytest.skip(message)
    server = start_orthanc(tmp_path_factory.mktemp("orthanc_sr"), binary=binary, plugin=None)
    try:
        yield DicomNode(
            host=LOOPBACK,
            port=server.dicom_port,
            ae_title=SERVER_AET,
            calling_ae_title=CLIENT_AET,
            receive_port=server.move_port,
            receive_address=LOOPBACK,
            timeout=30,
        )
    finally:
        server.stop()


def test_seg_and_report_pushed_to_pacs_come_back_intact(
    patient: Patient, orthanc: DicomNode, tmp_path: Path
) -> None:
    report = write_measurement_report(
        patient.lesions,
        patient.seg,
        patient.pet_headers,
        tmp_path / "out" / "sr.dcm",
        predictions=[ModelPrediction("combined v1", 0.7)],
    )
    pushed = push(orthanc, [patient.seg_path, report])
    assert len(pushed.files) == 2
    study = str(patient.seg.StudyInstanceUID)
    modalities = {row["Modality"] for row in find_series(orthanc, study)}
    assert {"SEG", "SR"} <= modalities
    sr_series = pydicom.dcmread(report).SeriesInstanceUID
    got = pull(orthanc, tmp_path / "pulled", study_uid=study, series_uid=str(sr_series), method="c-get")
    assert len(got.files) == 1
    back = read_measurement_report(got.files[0])
    want = read_measurement_report(report)
    assert back == want
    assert np.isclose(back.lesions[0].suv_max, patient.lesions[0].suv_max)
