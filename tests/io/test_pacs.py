"""PACS query/retrieve/store against a real Orthanc on loopback (DIMSE and DICOMweb).

The module fixture starts Orthanc (with the DICOMweb plugin) on free loopback ports, pushes a
2-patient synthetic cohort with C-STORE, and every test talks to it. Without Orthanc installed
the tests are skipped, unless SMARTIMAGING_REQUIRE_ORTHANC is set (then they fail): the CI test
command installs it with scripts/ensure_orthanc.sh.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
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
from pydantic import ValidationError
from typer.testing import CliRunner

from smartimaging.cli_pacs import pacs_app
from smartimaging.image import Mask
from smartimaging.io.dicom import SeriesInfo, discover, read_series
from smartimaging.io.pacs import (
    AssociationRejectedError,
    AuthenticationError,
    DicomNode,
    DicomWebNode,
    NodeUnreachableError,
    PacsError,
    find_series,
    find_studies,
    pull,
    push,
)
from smartimaging.io.seg import read_seg, write_seg
from smartimaging.synthetic import generate_cohort

pytestmark = [pytest.mark.xdist_group("orthanc"), pytest.mark.slow]

USER_ENV = "SMARTIMAGING_TEST_PACS_USER"
PASSWORD_ENV = "SMARTIMAGING_TEST_PACS_PASSWORD"
TIMINGS: dict[str, float] = {}


@dataclass
class Pacs:
    server: OrthancServer
    dimse: DicomNode
    web: DicomWebNode
    cohort: Path
    local: dict[str, SeriesInfo]  # SeriesInstanceUID -> series on disk
    studies: dict[str, str]  # PatientID -> StudyInstanceUID


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    binary, plugin = find_orthanc(), find_dicomweb_plugin()
    if binary is None or plugin is None:
        missing = "Orthanc" if binary is None else "the Orthanc DICOMweb plugin"
        message = (
            f"{missing} is not installed (scripts/ensure_orthanc.sh installs orthanc and orthanc-dicomweb)"
        )
        if os.environ.get("SMARTIMAGING_REQUIRE_ORTHANC"):
            pytest.fail(message + " and SMARTIMAGING_REQUIRE_ORTHANC is set")
        pytest.skip(message)
    root = tmp_path_factory.mktemp("pacs")
    cohort = root / "cohort"
    generate_cohort(cohort, n_patients=2, n_slices=48, progress=False)
    found = discover(cohort / "dicom")
    assert not found.problems
    server = start_orthanc(root / "orthanc", binary=binary, plugin=plugin)
    try:
        dimse = DicomNode(
            host=LOOPBACK,
            port=server.dicom_port,
            ae_title=SERVER_AET,
            calling_ae_title=CLIENT_AET,
            receive_port=server.move_port,
            receive_address=LOOPBACK,
            timeout=30,
        )
        web = DicomWebNode(url=server.dicomweb_url, username_env=USER_ENV, password_env=PASSWORD_ENV)
        try:
            pushed = push(dimse, [cohort / "dicom"])
        except PacsError as exc:
            raise AssertionError(f"{exc}\nOrthanc log:\n{server.log_tail()}") from exc
        TIMINGS["push C-STORE"] = pushed.seconds
        assert len(pushed.files) == sum(s.n_files for s in found.series) == 171
        studies = {s.patient_id: s.study_instance_uid for s in found.series}
        yield Pacs(server, dimse, web, cohort, {s.series_instance_uid: s for s in found.series}, studies)
    finally:
        server.stop()
        if TIMINGS:
            print(
                "\nPACS round trip, 2-patient cohort (s): "
                + ", ".join(f"{k} {v:.2f}" for k, v in TIMINGS.items())
            )


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER_ENV, USERNAME)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


def no_files(folder: Path) -> bool:
    """True when ``folder`` holds no file at any depth (hidden staging folders included)."""
    return not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))


def closed_port() -> int:
    """A loopback port on which nothing listens."""
    port = free_port()
    with socket.socket() as s:
        assert s.connect_ex((LOOPBACK, port)) != 0
    return port


# ------------------------------------------------------------------------------------------------
# node settings


def test_node_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="extra"):
        DicomNode(host=LOOPBACK, port=104, ae_title="PACS", password="x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="ae_title"):
        DicomNode(host=LOOPBACK, port=104, ae_title="A" * 17)
    with pytest.raises(ValidationError, match="port"):
        DicomNode(host=LOOPBACK, port=0, ae_title="PACS")
    with pytest.raises(ValidationError, match="environment variables"):
        DicomWebNode(url="http://user:pw@127.0.0.1:8042/dicom-web")
    with pytest.raises(ValidationError, match="http"):
        DicomWebNode(url="ftp://127.0.0.1/dicom-web")
    node = DicomWebNode(url="http://127.0.0.1:8042/dicom-web/", username_env="U")
    assert node.url == "http://127.0.0.1:8042/dicom-web" and node.address == "127.0.0.1:8042"


def test_method_and_node_kind_are_checked(tmp_path: Path) -> None:
    dimse = DicomNode(host=LOOPBACK, port=104, ae_title="PACS")
    web = DicomWebNode(url="http://127.0.0.1:8042/dicom-web")
    with pytest.raises(PacsError, match="c-move, c-get, wado"):
        pull(dimse, tmp_path, study_uid="1.2.3", method="ftp")  # type: ignore[arg-type]
    with pytest.raises(PacsError, match="DicomWebNode"):
        pull(dimse, tmp_path, study_uid="1.2.3", method="wado")
    with pytest.raises(PacsError, match="DicomNode"):
        pull(web, tmp_path, study_uid="1.2.3", method="c-get")
    with pytest.raises(PacsError, match="invalid UID"):
        pull(dimse, tmp_path, study_uid="../../etc", method="c-get")
    with pytest.raises(PacsError, match="receive_port"):
        pull(dimse, tmp_path, study_uid="1.2.3", method="c-move")
    assert no_files(tmp_path)


# ------------------------------------------------------------------------------------------------
# query


def test_c_find_studies_and_series(pacs: Pacs) -> None:
    studies = find_studies(pacs.dimse)
    assert {s["PatientID"]: s["StudyInstanceUID"] for s in studies} == pacs.studies
    for s in studies:
        assert sorted(s["ModalitiesInStudy"]) == ["CT", "PT", "RTSTRUCT", "SEG"]
        assert s["NumberOfStudyRelatedSeries"] == 4
    one = find_studies(pacs.dimse, patient_id="SYN001")
    assert [s["StudyInstanceUID"] for s in one] == [pacs.studies["SYN001"]]
    assert find_studies(pacs.dimse, patient_id="NOBODY") == []
    date = one[0]["StudyDate"]
    assert [s["PatientID"] for s in find_studies(pacs.dimse, study_date=date)] == ["SYN001"]
    assert len(find_studies(pacs.dimse, modality="PT")) == 2
    assert find_studies(pacs.dimse, modality="MR") == []

    for study_uid in pacs.studies.values():
        series = find_series(pacs.dimse, study_uid)
        assert len(series) == 4
        for s in series:
            local = pacs.local[s["SeriesInstanceUID"]]
            assert s["StudyInstanceUID"] == study_uid == local.study_instance_uid
            assert s["Modality"] == local.modality
            assert s["NumberOfSeriesRelatedInstances"] == local.n_files


def test_qido_matches_c_find(pacs: Pacs, credentials: None) -> None:
    def key(rows: list[dict[str, object]], column: str) -> list[object]:
        return sorted(str(r[column]) for r in rows)

    assert key(find_studies(pacs.web), "StudyInstanceUID") == key(
        find_studies(pacs.dimse), "StudyInstanceUID"
    )
    assert [s["PatientID"] for s in find_studies(pacs.web, patient_id="SYN002")] == ["SYN002"]
    assert len(find_studies(pacs.web, modality="PT")) == 2
    for study_uid in pacs.studies.values():
        web = {s["SeriesInstanceUID"]: s for s in find_series(pacs.web, study_uid)}
        dimse = {s["SeriesInstanceUID"]: s for s in find_series(pacs.dimse, study_uid)}
        assert web.keys() == dimse.keys()
        for uid, row in web.items():
            assert row["Modality"] == dimse[uid]["Modality"]
            assert row["StudyInstanceUID"] == study_uid


# ------------------------------------------------------------------------------------------------
# retrieve: identical files, identical voxels


@pytest.mark.parametrize("method", ["c-move", "c-get", "wado"])
def test_pull_round_trip_identical_voxels(pacs: Pacs, credentials: None, tmp_path: Path, method: str) -> None:
    node = pacs.web if method == "wado" else pacs.dimse
    seconds = 0.0
    n_files = 0
    for study_uid in pacs.studies.values():
        result = pull(node, tmp_path, study_uid=study_uid, method=method)  # type: ignore[arg-type]
        seconds += result.seconds
        n_files += len(result.files)
        assert all(p.is_file() and p.parent.parent.name == study_uid for p in result.files)
    TIMINGS[f"pull {method}"] = seconds
    assert n_files == 171
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # staging folder removed

    pulled = {s.series_instance_uid: s for s in discover(tmp_path).series}
    assert pulled.keys() == pacs.local.keys()
    for uid, mine in pacs.local.items():
        theirs = pulled[uid]
        sop = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in mine.files}
        assert {f.stem for f in theirs.files} == sop
        if mine.modality not in ("CT", "PT"):
            continue
        a, b = read_series(mine), read_series(theirs)
        assert a.array.shape == b.array.shape
        np.testing.assert_array_equal(a.array, b.array)
        np.testing.assert_array_equal(a.spacing, b.spacing)
        np.testing.assert_array_equal(a.origin, b.origin)
        np.testing.assert_array_equal(a.direction, b.direction)


def test_pull_one_series_c_get(pacs: Pacs, tmp_path: Path) -> None:
    pet = next(s for s in pacs.local.values() if s.modality == "PT" and s.patient_id == "SYN002")
    result = pull(
        pacs.dimse,
        tmp_path,
        study_uid=pet.study_instance_uid,
        series_uid=pet.series_instance_uid,
        method="c-get",
    )
    assert len(result.files) == pet.n_files
    assert {p.parent.name for p in result.files} == {pet.series_instance_uid}
    # the bytes as stored: C-GET does not re-encode
    original = {pydicom.dcmread(f).SOPInstanceUID: f for f in pet.files}
    sample = result.files[0]
    assert pydicom.dcmread(sample).PixelData == pydicom.dcmread(original[sample.stem]).PixelData


def test_pull_of_unknown_study_fails_without_files(pacs: Pacs, tmp_path: Path) -> None:
    with pytest.raises(PacsError, match=r"C-GET .*status 0xC000"):
        pull(pacs.dimse, tmp_path, study_uid="1.2.3.4.5.6.7", method="c-get")
    assert no_files(tmp_path)


# ------------------------------------------------------------------------------------------------
# store a SEG with STOW-RS, find it with QIDO-RS, read it back


def test_stow_seg_then_qido_and_wado(pacs: Pacs, credentials: None, tmp_path: Path) -> None:
    pet = next(s for s in pacs.local.values() if s.modality == "PT" and s.patient_id == "SYN001")
    image = read_series(pet)
    array = np.zeros(image.array.shape, dtype=bool)
    array[10:14, 40:52, 30:45] = True
    mask = Mask(array, image.spacing, image.origin, image.direction.copy())
    reference = [pydicom.dcmread(f) for f in pet.files]
    seg_path = write_seg(
        {"lesion": mask}, reference, tmp_path / "seg.dcm", series_description="pacs test SEG"
    )
    seg_uid = str(pydicom.dcmread(seg_path, stop_before_pixels=True).SeriesInstanceUID)

    stored = push(pacs.web, [seg_path])
    TIMINGS["push SEG STOW-RS"] = stored.seconds
    found = {s["SeriesInstanceUID"]: s for s in find_series(pacs.web, pet.study_instance_uid)}
    assert found[seg_uid]["Modality"] == "SEG"
    assert found[seg_uid]["SeriesDescription"] == "pacs test SEG"

    back = pull(
        pacs.web, tmp_path / "back", study_uid=pet.study_instance_uid, series_uid=seg_uid, method="wado"
    )
    assert len(back.files) == 1
    masks = read_seg(back.files[0], reference=image)
    np.testing.assert_array_equal(masks["lesion"].array, array)


# ------------------------------------------------------------------------------------------------
# errors: clear messages, no partial files


def test_unknown_calling_ae_is_rejected(pacs: Pacs, tmp_path: Path) -> None:
    stranger = pacs.dimse.model_copy(update={"calling_ae_title": "STRANGER"})
    with pytest.raises(
        AssociationRejectedError, match=r"(rejected|closed) the association from calling AE 'STRANGER'"
    ) as info:
        pull(stranger, tmp_path, study_uid=pacs.studies["SYN001"], method="c-get")
    assert f"{LOOPBACK}:{pacs.server.dicom_port}" in str(info.value)
    assert no_files(tmp_path)
    with pytest.raises(AssociationRejectedError, match="STRANGER"):
        find_studies(stranger)


def test_wrong_called_ae_is_rejected(pacs: Pacs) -> None:
    wrong = pacs.dimse.model_copy(update={"ae_title": "NOTORTHANC"})
    with pytest.raises(AssociationRejectedError, match=r"NOTORTHANC.*AE title"):
        find_studies(wrong)


def test_wrong_credentials_give_401(pacs: Pacs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER_ENV, USERNAME)
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    with pytest.raises(AuthenticationError, match=rf"HTTP 401.*{USER_ENV}.*{PASSWORD_ENV}"):
        find_studies(pacs.web)
    with pytest.raises(AuthenticationError, match="401"):
        pull(pacs.web, tmp_path, study_uid=pacs.studies["SYN001"], method="wado")
    assert no_files(tmp_path)
    anonymous = DicomWebNode(url=pacs.server.dicomweb_url)
    with pytest.raises(AuthenticationError, match="needs credentials"):
        find_studies(anonymous)


def test_unset_credential_variable_is_named(pacs: Pacs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(USER_ENV, raising=False)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    with pytest.raises(PacsError, match=f"environment variable {USER_ENV}.*not set"):
        find_studies(pacs.web)


def test_unreachable_nodes(tmp_path: Path, credentials: None) -> None:
    port = closed_port()
    dimse = DicomNode(host=LOOPBACK, port=port, ae_title="PACS", timeout=5)
    with pytest.raises(
        NodeUnreachableError, match=rf"cannot reach the DICOM node at {LOOPBACK}:{port}.*running"
    ):
        pull(dimse, tmp_path, study_uid="1.2.3", method="c-get")
    with pytest.raises(NodeUnreachableError, match=f"{LOOPBACK}:{port}"):
        find_studies(dimse)
    web = DicomWebNode(
        url=f"http://{LOOPBACK}:{port}/dicom-web", username_env=USER_ENV, password_env=PASSWORD_ENV
    )
    with pytest.raises(NodeUnreachableError, match=rf"DICOMweb node at {LOOPBACK}:{port}"):
        pull(web, tmp_path, study_uid="1.2.3", series_uid="1.2.3.4", method="wado")
    assert no_files(tmp_path)


def test_c_move_to_wrong_port_fails_without_files(pacs: Pacs, tmp_path: Path) -> None:
    # Orthanc sends to the registered port, where nobody listens: every sub-operation fails
    elsewhere = pacs.dimse.model_copy(update={"receive_port": closed_port()})
    with pytest.raises(PacsError, match=r"C-MOVE .*status .*move destination"):
        pull(elsewhere, tmp_path, study_uid=pacs.studies["SYN002"], method="c-move")
    assert no_files(tmp_path)


def test_push_refuses_non_dicom(pacs: Pacs, tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not DICOM")
    with pytest.raises(PacsError, match=r"notes\.txt"):
        push(pacs.dimse, [bad])
    with pytest.raises(PacsError, match="no such file"):
        push(pacs.dimse, [tmp_path / "missing.dcm"])


# ------------------------------------------------------------------------------------------------
# command line


def test_cli_find_pull_push(pacs: Pacs, credentials: None, tmp_path: Path) -> None:
    runner = CliRunner()
    node = ["--host", LOOPBACK, "--port", str(pacs.server.dicom_port), "--aet", SERVER_AET]
    res = runner.invoke(pacs_app, ["find", *node, "--patient-id", "SYN001"])
    assert res.exit_code == 0, res.output
    assert pacs.studies["SYN001"] in res.output and pacs.studies["SYN002"] not in res.output

    res = runner.invoke(pacs_app, ["find", *node, "--study", pacs.studies["SYN002"]])
    assert res.exit_code == 0, res.output
    assert res.output.count("\n") == 5 and "SEG" in res.output

    web = ["--url", pacs.server.dicomweb_url, "--username-env", USER_ENV, "--password-env", PASSWORD_ENV]
    ct = next(s for s in pacs.local.values() if s.modality == "CT" and s.patient_id == "SYN002")
    res = runner.invoke(
        pacs_app,
        ["pull", str(tmp_path), *web, "--study", ct.study_instance_uid, "--series", ct.series_instance_uid],
    )
    assert res.exit_code == 0, res.output
    assert f"{ct.n_files} file(s) retrieved" in res.output and "wado" in res.output

    res = runner.invoke(pacs_app, ["push", str(tmp_path), *node])
    assert res.exit_code == 0, res.output
    assert f"{ct.n_files} file(s) stored with C-STORE" in res.output

    res = runner.invoke(pacs_app, ["find", *node, "--calling-aet", "STRANGER"])
    assert res.exit_code == 2 and "association from calling AE 'STRANGER'" in res.output
    res = runner.invoke(pacs_app, ["find", "--host", LOOPBACK])
    assert res.exit_code == 2 and "--aet" in res.output
    res = runner.invoke(pacs_app, ["pull", str(tmp_path / "x"), *node, "--study", "1.2", "--method", "zip"])
    assert res.exit_code == 2 and "c-move, c-get, wado" in res.output


def test_associations_disable_nagle(pacs: Pacs) -> None:
    """Our side of every association runs with TCP_NODELAY (Nagle + delayed ACK cost ~40 ms per message)."""
    import socket

    from smartimaging.io.pacs import _MAX_PDU, _association

    verification = "1.2.840.10008.1.1"
    with _association(pacs.dimse, [(verification, None)]) as assoc:
        sock = assoc.dul.socket.socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert assoc.requestor.maximum_length == _MAX_PDU
        status = assoc.send_c_echo()
        assert int(status.Status) == 0


def test_reactor_never_drops_a_response() -> None:
    """A response taken by pynetdicom's reactor goes back to the queue for the waiting send_* call."""
    import queue
    from io import BytesIO
    from types import SimpleNamespace

    from pynetdicom.dimse_primitives import C_STORE

    from smartimaging.io.pacs import _keep_responses

    served: list[object] = []
    assoc = SimpleNamespace(
        _serve_request=lambda msg, cx: served.append(msg), dimse=SimpleNamespace(msg_queue=queue.Queue())
    )
    _keep_responses(assoc)
    response, request = C_STORE(), C_STORE()
    response.MessageIDBeingRespondedTo, response.Status = 1, 0x0000
    request.MessageID, request.AffectedSOPClassUID = 1, "1.2.840.10008.5.1.4.1.1.128"
    request.AffectedSOPInstanceUID, request.Priority, request.DataSet = "1.2.3", 2, BytesIO(b"\x00")
    assert not response.is_valid_request and request.is_valid_request
    assoc._serve_request(response, 3)
    assert served == [] and assoc.dimse.msg_queue.get_nowait() == (3, response)
    assoc._serve_request(request, 3)
    assert served == [request]
