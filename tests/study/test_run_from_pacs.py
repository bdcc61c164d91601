"""A study whose images come from a PACS node (a private Orthanc on loopback).

The 3-patient synthetic cohort is pushed to Orthanc with C-STORE; a study whose input is the
node (C-GET) must give exactly the features of a study run on the local DICOM folder, and a
second run pulls nothing. Without Orthanc the test is skipped, unless
SMARTIMAGING_REQUIRE_ORTHANC is set (then it fails).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))

from orthanc_server import (
    CLIENT_AET,
    LOOPBACK,
    PASSWORD,
    SERVER_AET,
    USERNAME,
    OrthancServer,
    find_dicomweb_plugin,
    find_orthanc,
    free_port,
    start_orthanc,
)

from smartimaging.io.pacs import DicomNode, NodeUnreachableError, PacsError, push
from smartimaging.study.config import load_study
from smartimaging.study.runner import run_study
from smartimaging.synthetic import generate_cohort

pytestmark = [pytest.mark.xdist_group("orthanc"), pytest.mark.slow]

USER_ENV = "SMARTIMAGING_TEST_PACS_USER"
PASSWORD_ENV = "SMARTIMAGING_TEST_PACS_PASSWORD"


def _study(tmp: Path, name: str, inp: dict[str, Any]) -> Path:
    path = tmp / f"{name}.yaml"
    settings = {"name": name, "input": inp, "output_dir": str(tmp / f"out_{name}"), "model": None}
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def _values(out: Path) -> pd.DataFrame:
    tidy = pd.read_csv(out / "features.csv")
    cols = ["case", "roi", "image_type", "family", "feature", "aggregation"]
    tidy[cols] = tidy[cols].fillna("").astype(str)
    return tidy.sort_values(cols).reset_index(drop=True)[[*cols, "value"]]


@dataclass
class Pacs:
    server: OrthancServer
    node: dict[str, Any]  # the DIMSE node as written in a study file
    cohort: Path
    n_files: int
    local: Path  # output folder of the run on the local DICOM folder


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    binary, plugin = find_orthanc(), find_dicomweb_plugin()
    if binary is None or plugin is None:
        missing = "Orthanc" if binary is None else "the Orthanc DICOMweb plugin"
        message = f"{missing} is not installed (scripts/ensure_orthanc.sh installs it)"
        if os.environ.get("SMARTIMAGING_REQUIRE_ORTHANC"):
            pytest.fail(message + " and SMARTIMAGING_REQUIRE_ORTHANC is set")
        pytest.skip(message)
    root = tmp_path_factory.mktemp("run_from_pacs")
    cohort = root / "cohort"
    generate_cohort(cohort, n_patients=3, n_slices=48, progress=False)
    local = run_study(load_study(_study(root, "local", {"dicom_dir": str(cohort / "dicom")})), quiet=True)
    assert (local.n_patients, local.n_ok) == (3, 3)
    server = start_orthanc(root / "orthanc", binary=binary, plugin=plugin)
    try:
        node = {
            "host": LOOPBACK,
            "port": server.dicom_port,
            "ae_title": SERVER_AET,
            "calling_ae_title": CLIENT_AET,
            "timeout": 30,
        }
        pushed = push(DicomNode.model_validate(node), [cohort / "dicom"])
        assert len(pushed.files) > 0
        yield Pacs(server, node, cohort, len(pushed.files), root / "out_local")
    finally:
        server.stop()


def _n_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def test_study_from_pacs_equals_study_from_local_dicom(pacs: Pacs, tmp_path: Path) -> None:
    pulled_dir = tmp_path / "pulled"
    pacs_yaml = _study(
        tmp_path, "pacs", {"dicom_dir": str(pulled_dir), "pacs": {"node": pacs.node, "modality": "PT"}}
    )
    cfg = load_study(pacs_yaml)
    assert cfg.input.pacs is not None and cfg.input.pacs.method == "c-get"
    first = run_study(cfg, quiet=True)

    assert (first.n_patients, first.n_ok, first.n_failed) == (3, 3, 0)
    assert len(list((tmp_path / "out_pacs" / "pacs").glob("*.json"))) == 3
    assert _n_files(pulled_dir) == pacs.n_files
    a, b = _values(tmp_path / "out_pacs"), _values(pacs.local)
    pd.testing.assert_frame_equal(a.drop(columns="value"), b.drop(columns="value"))
    pd.testing.assert_frame_equal(a[["value"]], b[["value"]])

    # second run: every study is complete locally, nothing is pulled again
    mtimes = {p: p.stat().st_mtime_ns for p in pulled_dir.rglob("*") if p.is_file()}
    second = run_study(cfg, quiet=True)
    assert second.n_ok == 3 and second.n_cached == 3
    assert {p: p.stat().st_mtime_ns for p in pulled_dir.rglob("*") if p.is_file()} == mtimes
    log = (tmp_path / "out_pacs" / "run.log").read_text(encoding="utf-8")
    assert "0 pulled (0 files), 3 already complete, 0 failed" in log
    marker = json.loads(next((tmp_path / "out_pacs" / "pacs").glob("*.json")).read_text())
    assert marker["n_files"] > 0


def test_study_from_dicomweb_with_credentials_from_the_environment(
    pacs: Pacs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = {"url": pacs.server.dicomweb_url, "username_env": USER_ENV, "password_env": PASSWORD_ENV}
    pids = sorted(pd.read_csv(pacs.cohort / "clinical.csv")["patient_id"].astype(str))
    cfg = load_study(
        _study(
            tmp_path,
            "web",
            {"dicom_dir": str(tmp_path / "pulled"), "pacs": {"node": web, "patient_ids": pids[:2]}},
        )
    )
    monkeypatch.delenv(USER_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(PacsError, match=USER_ENV):
        run_study(cfg, quiet=True)
    monkeypatch.setenv(USER_ENV, USERNAME)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    summary = run_study(cfg, quiet=True)
    assert (summary.n_patients, summary.n_ok, summary.n_failed) == (2, 2, 0)
    a = _values(tmp_path / "out_web")
    b = _values(pacs.local)
    b = b[b["case"].isin(pids[:2])].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert "2 pulled" in (tmp_path / "out_web" / "run.log").read_text(encoding="utf-8")


def test_unreachable_pacs_stops_the_run_naming_the_address(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    node = {"host": LOOPBACK, "port": port, "ae_title": "NOBODY", "timeout": 2}
    cfg = load_study(
        _study(tmp_path, "down", {"dicom_dir": str(tmp_path / "pulled"), "pacs": {"node": node}})
    )
    with pytest.raises(NodeUnreachableError, match=f"{LOOPBACK}:{port}"):
        run_study(cfg, quiet=True)
