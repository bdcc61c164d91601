"""input.pacs and input.nifti in the study file: node kinds, methods, credentials, paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from smartimaging.exceptions import ConfigError
from smartimaging.io.pacs import DicomNode, DicomWebNode
from smartimaging.study.config import StudyConfig, load_study

DIMSE = {"host": "pacs.example.org", "port": 11112, "ae_title": "PACS"}
WEB = {"url": "https://pacs.example.org/dicom-web", "username_env": "PACS_USER", "password_env": "PACS_PW"}


def _load(tmp_path: Path, inp: dict[str, Any]) -> StudyConfig:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"input": inp, "model": None}), encoding="utf-8")
    return load_study(path)


def test_node_kind_is_told_by_url_or_host_and_the_method_defaults_to_it(tmp_path: Path) -> None:
    dimse = _load(tmp_path, {"dicom_dir": "pulled", "pacs": {"node": DIMSE}}).input
    assert dimse.pacs is not None
    assert isinstance(dimse.pacs.node, DicomNode) and dimse.pacs.method == "c-get"
    assert dimse.dicom_dir == (tmp_path / "pulled").resolve()
    web = _load(tmp_path, {"dicom_dir": "pulled", "pacs": {"node": WEB, "patient_ids": ["P1"]}}).input
    assert web.pacs is not None
    assert isinstance(web.pacs.node, DicomWebNode) and web.pacs.method == "wado"
    assert web.pacs.patient_ids == ["P1"]
    with pytest.raises(ConfigError, match="needs either 'url'"):
        _load(tmp_path, {"dicom_dir": "pulled", "pacs": {"node": {"port": 104}}})


@pytest.mark.parametrize(
    ("node", "method", "message"),
    [
        (WEB, "c-get", "method 'c-get' needs a DIMSE node"),
        (WEB, "c-move", "method 'c-move' needs a DIMSE node"),
        (DIMSE, "wado", "method 'wado' needs a DICOMweb node"),
        (DIMSE, "c-move", "needs node.receive_port"),
        (DIMSE, "c-find", "c-find"),
    ],
)
def test_a_method_not_suited_to_the_node_is_named(
    tmp_path: Path, node: dict, method: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, {"dicom_dir": "pulled", "pacs": {"node": node, "method": method}})


@pytest.mark.parametrize("key", ["password", "username", "token"])
def test_a_credential_in_the_study_file_is_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match=f"'input.pacs.node.dicomweb.{key}'.*credentials are never written"):
        _load(tmp_path, {"dicom_dir": "pulled", "pacs": {"node": {**WEB, key: "s3cret"}}})
    with pytest.raises(ConfigError, match="credentials are never written"):
        _load(tmp_path, {"dicom_dir": "pulled", "pacs": {"node": {**DIMSE, key: "s3cret"}}})
    with pytest.raises(ConfigError, match="url must not contain credentials"):
        _load(
            tmp_path, {"dicom_dir": "pulled", "pacs": {"node": {"url": "https://u:pw@pacs.example.org/dw"}}}
        )


def test_unknown_pacs_key_and_missing_input_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'input\.pacs\.study'"):
        _load(tmp_path, {"dicom_dir": "pulled", "pacs": {"node": DIMSE, "study": "x"}})
    with pytest.raises(ConfigError, match="study_date"):
        _load(tmp_path, {"dicom_dir": "pulled", "pacs": {"node": DIMSE, "study_date": "2024-01-01"}})
    with pytest.raises(ConfigError, match="input needs dicom_dir"):
        _load(tmp_path, {"pacs": {"node": DIMSE}})


def test_nifti_templates_are_resolved_against_the_study_folder(tmp_path: Path) -> None:
    nifti = {"images": "n/{patient_id}/pet.nii.gz", "masks": "n/{patient_id}/m.nii.gz", "labels": {2: "node"}}
    cfg = _load(tmp_path, {"nifti": nifti}).input.nifti
    assert cfg is not None
    assert cfg.path("images", "P7") == (tmp_path / "n" / "P7" / "pet.nii.gz").resolve()
    assert cfg.labels == {2: "node"} and cfg.units == "SUV"
    with pytest.raises(ConfigError, match="distinct ROI names"):
        _load(tmp_path, {"nifti": {**nifti, "labels": {1: "a", 2: "a"}}})
