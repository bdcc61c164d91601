"""Query, retrieve and store with a PACS: DIMSE (pynetdicom) and DICOMweb (dicomweb-client).

Two kinds of node, both pydantic models that a study YAML can hold:

* :class:`DicomNode` - a classic DICOM node (host, port, AE titles): C-FIND, C-MOVE, C-GET,
  C-STORE.
* :class:`DicomWebNode` - a DICOMweb service (base URL): QIDO-RS, WADO-RS, STOW-RS. User name
  and password are read at call time from the environment variables the node *names*; they are
  never part of the settings.

:func:`pull` writes into a hidden temporary folder inside ``out_dir`` and moves the files into
place (``out_dir/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``) only when the
whole transfer succeeded; on any error the temporary folder is removed, so no partial download
is left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

import pydicom
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

from smartimaging.exceptions import SmartImagingError

__all__ = [
    "RETRIEVE_SOP_CLASSES",
    "AssociationRejectedError",
    "AuthenticationError",
    "DicomNode",
    "DicomWebNode",
    "NodeUnreachableError",
    "PacsError",
    "PacsNode",
    "PullMethod",
    "PullResult",
    "PushResult",
    "find_series",
    "find_studies",
    "pull",
    "push",
]

log = logging.getLogger(__name__)

PullMethod = Literal["c-move", "c-get", "wado"]
_PULL_METHODS: tuple[str, ...] = ("c-move", "c-get", "wado")

#: Storage SOP classes offered for C-GET and accepted by the C-MOVE Storage SCP (a DICOM
#: association holds at most 128 presentation contexts, so the list is curated).
RETRIEVE_SOP_CLASSES: tuple[str, ...] = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.128",  # Positron Emission Tomography Image Storage
    "1.2.840.10008.5.1.4.1.1.130",  # Enhanced PET Image Storage
    "1.2.840.10008.5.1.4.1.1.128.1",  # Legacy Converted Enhanced PET Image Storage
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.20",  # Nuclear Medicine Image Storage
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
    "1.2.840.10008.5.1.4.1.1.481.3",  # RT Structure Set Storage
    "1.2.840.10008.5.1.4.1.1.481.2",  # RT Dose Storage
    "1.2.840.10008.5.1.4.1.1.66.1",  # Spatial Registration Storage
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR Storage
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR Storage
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR Storage (TID 1500 measurement reports)
    "1.2.840.10008.5.1.4.1.1.11.1",  # Grayscale Softcopy Presentation State Storage
)

_STUDY_KEYS = (
    "PatientID",
    "PatientName",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
)
_SERIES_KEYS = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "NumberOfSeriesRelatedInstances",
)
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable ASCII except backslash
_SAFE_UID = re.compile(r"^[0-9][0-9.]{0,63}$")
_STORE_BATCH = 32
#: maximum PDU length we accept (bytes); pynetdicom's default is 16 382
_MAX_PDU = 1 << 20
# Study Root Query/Retrieve Information Model - FIND, MOVE, GET
FIND = "1.2.840.10008.5.1.4.1.2.2.1"
MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
GET = "1.2.840.10008.5.1.4.1.2.2.3"


class PacsError(SmartImagingError):
    """A PACS operation (query, retrieve, store) failed."""


class NodeUnreachableError(PacsError, ConnectionError):
    """Nothing answers at the node's address (closed port, wrong host, firewall)."""


class AssociationRejectedError(PacsError):
    """The DICOM node refused the association (AE titles or address not allowed)."""


class AuthenticationError(PacsError, PermissionError):
    """The DICOMweb node refused the credentials (HTTP 401 or 403)."""


def _check_ae_title(value: str, field: str) -> str:
    if not _AE_TITLE.match(value) or not value.strip():
        raise ValueError(f"{field} must be 1-16 printable ASCII characters without backslash, got {value!r}")
    return value


class DicomNode(BaseModel):
    """A DICOM node reached over DIMSE.

    Parameters
    ----------
    host : str
        Host name or IP address of the node.
    port : int
        Its DICOM port.
    ae_title : str
        Its AE title (the called AE).
    calling_ae_title : str
        Our AE title; the node must know it (with our address and, for C-MOVE, ``receive_port``).
    timeout : float
        Seconds to wait for a connection, an association and each DIMSE message.
    receive_port : int, optional
        Port of the local Storage SCP started during a C-MOVE (the move destination). Required
        for ``method="c-move"``; the node must send to ``calling_ae_title`` at this port.
    receive_address : str
        Address the C-MOVE Storage SCP listens on (``""`` means all interfaces).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    ae_title: str
    calling_ae_title: str = "SMARTIMAGING"
    timeout: float = Field(default=30.0, gt=0)
    receive_port: int | None = Field(default=None, ge=1, le=65535)
    receive_address: str = ""

    @field_validator("ae_title", "calling_ae_title")
    @classmethod
    def _ae(cls, value: str, info: Any) -> str:
        return _check_ae_title(value, info.field_name)

    @property
    def address(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"


class DicomWebNode(BaseModel):
    """A DICOMweb service (QIDO-RS, WADO-RS, STOW-RS).

    Parameters
    ----------
    url : str
        Base URL of the service, e.g. ``https://pacs.example.org/dicom-web``.
    username_env, password_env : str, optional
        Names of the environment variables holding the user name and password for HTTP basic
        authentication. They are read at each call; the credentials themselves never appear in
        settings files.
    timeout : float
        Seconds to wait for each HTTP answer.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    username_env: str | None = None
    password_env: str | None = None
    timeout: float = Field(default=30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be an http:// or https:// URL with a host, got {value!r}")
        if parts.username or parts.password:
            raise ValueError(
                "url must not contain credentials; name the environment variables that hold them "
                "with username_env and password_env"
            )
        return value.rstrip("/")

    @property
    def address(self) -> str:
        """``host:port`` of the service, for messages."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.hostname}:{port}"


PacsNode: TypeAlias = DicomNode | DicomWebNode


@dataclass(frozen=True)
class PullResult:
    """Files retrieved by :func:`pull` (final paths, sorted) and the wall time in seconds."""

    files: tuple[Path, ...]
    seconds: float


@dataclass(frozen=True)
class PushResult:
    """Files stored by :func:`push` and the wall time in seconds."""

    files: tuple[Path, ...]
    seconds: float


# ----------------------------------------------------------------------------------------------
# conversions


def _plain(value: Any) -> Any:
    """DICOM element value -> str, int, float or list of those."""
    if isinstance(value, MultiValue | list | tuple):
        return [_plain(v) for v in value]
    if value is None:
        return None
    if isinstance(value, int | float):
        return int(value) if float(value).is_integer() else float(value)
    return str(value)


def _to_dict(ds: Dataset, keys: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        value = ds.get(key)
        out[key] = _plain(value) if value not in (None, "") else None
    if out.get("ModalitiesInStudy") is not None and not isinstance(out["ModalitiesInStudy"], list):
        out["ModalitiesInStudy"] = [out["ModalitiesInStudy"]]
    return out


def _query_dataset(level: str, keys: Sequence[str], filters: dict[str, str | None]) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for key in keys:
        setattr(ds, key, filters.get(key) or "")
    return ds


def _check_method(method: str) -> None:
    if method not in _PULL_METHODS:
        raise PacsError(f"unknown pull method {method!r}; valid methods: {', '.join(_PULL_METHODS)}")


def _check_node(node: object) -> None:
    if not isinstance(node, DicomNode | DicomWebNode):
        raise PacsError(f"node must be a DicomNode or a DicomWebNode, got {type(node).__name__}")


# ----------------------------------------------------------------------------------------------
# DIMSE


def _tcp_reachable(host: str, port: int, timeout: float) -> str | None:
    """None when a TCP connection opens, else the reason it did not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def _unreachable(node: DicomNode | DicomWebNode, reason: str) -> NodeUnreachableError:
    kind = "DICOM" if isinstance(node, DicomNode) else "DICOMweb"
    return NodeUnreachableError(
        f"cannot reach the {kind} node at {node.address} ({reason}); check that the node is running, "
        "that host and port are right and that no firewall blocks the port"
    )


def _new_ae(node: DicomNode) -> Any:
    from pynetdicom import AE

    ae = AE(ae_title=node.calling_ae_title)
    ae.connection_timeout = node.timeout
    ae.acse_timeout = node.timeout
    ae.dimse_timeout = node.timeout
    ae.network_timeout = node.timeout
    # largest PDU we accept (the peer's own maximum still limits what we send): fewer fragments
    ae.maximum_pdu_size = _MAX_PDU
    return ae


def _no_delay(event: Any) -> None:
    """EVT_CONN_OPEN handler: disable Nagle's algorithm on the association's TCP socket.

    A DIMSE message goes out as several small writes (PDU header, command, data set) followed by a
    read of the response; with Nagle on, the last write waits for the peer's delayed ACK (40 ms on
    Linux), which made every C-STORE cost 40-90 ms on loopback.
    """
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:  # not a TCP socket: nothing to tune
            log.debug("TCP_NODELAY not set: %s", exc)


@contextlib.contextmanager
def _association(
    node: DicomNode,
    contexts: Sequence[tuple[str, Sequence[str] | None]],
    *,
    roles: Sequence[str] = (),
    handlers: Sequence[tuple[Any, Callable[..., Any]]] = (),
) -> Iterator[Any]:
    """Open an association proposing ``contexts`` (SOP class, transfer syntaxes) and release it."""
    from pynetdicom import build_role, evt

    ae = _new_ae(node)
    for sop_class, syntaxes in contexts:
        if syntaxes:
            ae.add_requested_context(sop_class, list(syntaxes))
        else:
            ae.add_requested_context(sop_class)
    ext_neg = [build_role(uid, scp_role=True) for uid in roles]
    # probe first: a refused TCP connection is the clearest diagnosis (and pynetdicom leaks the
    # socket of a refused connect)
    reason = _tcp_reachable(node.host, node.port, node.timeout)
    if reason is not None:
        raise _unreachable(node, reason)
    for attempt in (1, 2):
        assoc = ae.associate(
            node.host,
            node.port,
            ae_title=node.ae_title,
            max_pdu=_MAX_PDU,
            ext_neg=ext_neg or None,
            evt_handlers=[(evt.EVT_CONN_OPEN, _no_delay), *handlers],
        )
        if assoc.is_established or assoc.is_rejected:
            break
        # a node that rejects and closes at once can be seen as an abort: ask once more
        log.debug("association with %s aborted (attempt %d)", node.address, attempt)
    if assoc.is_rejected:
        prim = assoc.acceptor.primitive
        detail = (
            f"{prim.result_str}, {prim.source_str}: {prim.reason_str}" if prim is not None else "rejected"
        )
        raise AssociationRejectedError(
            f"the DICOM node at {node.address} rejected the association from calling AE "
            f"{node.calling_ae_title!r} to called AE {node.ae_title!r} ({detail}); check that the node "
            f"knows AE {node.calling_ae_title!r} with this computer's address and that {node.ae_title!r} "
            "is the node's AE title"
        )
    if not assoc.is_established:
        reason = _tcp_reachable(node.host, node.port, node.timeout)
        if reason is not None:
            raise _unreachable(node, reason)
        raise AssociationRejectedError(
            f"the DICOM node at {node.address} closed the association from calling AE "
            f"{node.calling_ae_title!r} to called AE {node.ae_title!r} without accepting it (aborted, or "
            f"no answer within {node.timeout} s); check that the node knows AE {node.calling_ae_title!r} "
            f"with this computer's address, that {node.ae_title!r} is the node's AE title, that this port "
            "is its DICOM port, and the node's log"
        )
    _keep_responses(assoc)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def _keep_responses(assoc: Any) -> None:
    """Stop pynetdicom's reactor thread from dropping a DIMSE *response* meant for a ``send_*`` call.

    pynetdicom (3.0) pauses its reactor during ``send_c_store`` and friends, but the pause check can
    read a stale flag: with a fast peer (TCP_NODELAY, loopback) the reactor then takes the response
    off the message queue, logs "Received unexpected C-STORE service message" and drops it, and the
    caller waits for the DIMSE timeout (pydicom/pynetdicom issues 435 and 875). A response is never a
    request the reactor should serve, so it is put back on the queue for the waiting call.
    """
    serve = getattr(assoc, "_serve_request", None)
    queue = getattr(getattr(assoc, "dimse", None), "msg_queue", None)
    if serve is None or queue is None:  # another pynetdicom: leave it as it is
        return

    def serve_requests_only(msg: Any, context_id: int) -> None:
        if msg is not None and not getattr(msg, "is_valid_request", True):
            queue.put((context_id, msg))
            return
        serve(msg, context_id)

    assoc._serve_request = serve_requests_only


def _accepted(assoc: Any, sop_class: str, node: DicomNode, what: str) -> None:
    if not any(cx.abstract_syntax == sop_class for cx in assoc.accepted_contexts):
        name = UID(sop_class).name
        raise AssociationRejectedError(
            f"the DICOM node at {node.address} accepted the association but not {what} ({name}) for "
            f"calling AE {node.calling_ae_title!r}; check the permissions of this AE at the node"
        )


def _status_text(status: Dataset) -> str:
    code = int(status.get("Status", -1))
    comment = status.get("ErrorComment", "")
    return f"0x{code:04X}" + (f" ({comment})" if comment else "")


def _dimse_find(node: DicomNode, query: Dataset, keys: Sequence[str]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with _association(node, [(FIND, None)]) as assoc:
        _accepted(assoc, FIND, node, "C-FIND")
        for status, identifier in assoc.send_c_find(query, FIND):
            if not status:
                raise PacsError(
                    f"C-FIND at {node.address} got no answer within {node.timeout} s or the association "
                    "was aborted; check the node's log"
                )
            code = int(status.Status)
            if code in (0xFF00, 0xFF01):
                if identifier is not None:
                    results.append(_to_dict(identifier, keys))
            elif code != 0x0000:
                raise PacsError(
                    f"C-FIND at {node.address} failed with status {_status_text(status)} "
                    f"(query level {query.QueryRetrieveLevel})"
                )
    return results


class _Receiver:
    """C-STORE handler that writes each received instance under a temporary folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: list[Path] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> int:
        try:
            ds = event.dataset
            path = _instance_path(
                self.folder, ds.StudyInstanceUID, ds.SeriesInstanceUID, event.request.AffectedSOPInstanceUID
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            # the bytes as received (with a file meta header): no re-encoding of the pixel data
            path.write_bytes(event.encoded_dataset(include_meta=True))
        except Exception as exc:  # any failure is reported to the sender and to the caller
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            return 0xA700
        with self._lock:
            self.files.append(path)
        return 0x0000


def _retrieve_identifier(study_uid: str, series_uid: str | None) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
    ds.StudyInstanceUID = study_uid
    if series_uid:
        ds.SeriesInstanceUID = series_uid
    return ds


def _check_retrieve(responses: Iterable[tuple[Dataset, Any]], node: DicomNode, what: str) -> None:
    final: Dataset | None = None
    for status, _ in responses:
        if not status:
            raise PacsError(
                f"{what} from {node.address} got no answer within {node.timeout} s or the association was "
                "aborted; check the node's log"
            )
        final = status
        if int(status.Status) not in (0xFF00, 0xFF01):
            break
    if final is None:
        raise PacsError(f"{what} from {node.address} returned no status")
    code = int(final.Status)
    failed = int(final.get("NumberOfFailedSuboperations", 0) or 0)
    if code != 0x0000 or failed:
        hint = ""
        if what == "C-MOVE":
            hint = (
                f"; check that the node knows the move destination AE {node.calling_ae_title!r} with "
                f"this computer's address and port {node.receive_port}"
            )
        raise PacsError(
            f"{what} from {node.address} ended with status {_status_text(final)}, "
            f"{failed} failed sub-operation(s){hint}"
        )


def _dimse_pull(
    node: DicomNode, tmp: Path, study_uid: str, series_uid: str | None, method: str
) -> list[Path]:
    from pynetdicom import evt

    receiver = _Receiver(tmp)
    identifier = _retrieve_identifier(study_uid, series_uid)
    if method == "c-get":
        contexts: list[tuple[str, Sequence[str] | None]] = [(GET, None)]
        contexts += [(uid, None) for uid in RETRIEVE_SOP_CLASSES]
        with _association(
            node, contexts, roles=RETRIEVE_SOP_CLASSES, handlers=[(evt.EVT_C_STORE, receiver)]
        ) as assoc:
            _accepted(assoc, GET, node, "C-GET")
            _check_retrieve(assoc.send_c_get(identifier, GET), node, "C-GET")
    else:
        if node.receive_port is None:
            raise PacsError(
                "C-MOVE needs a local Storage SCP port: set receive_port of the DICOM node (the node must "
                f"know AE {node.calling_ae_title!r} at this computer's address and that port)"
            )
        scp = _new_ae(node)
        for uid in RETRIEVE_SOP_CLASSES:
            scp.add_supported_context(uid)
        try:
            server = scp.start_server(
                (node.receive_address, node.receive_port),
                block=False,
                evt_handlers=[(evt.EVT_CONN_OPEN, _no_delay), (evt.EVT_C_STORE, receiver)],
            )
        except OSError as exc:
            raise PacsError(
                f"cannot listen on {node.receive_address or '*'}:{node.receive_port} for the C-MOVE Storage "
                f"SCP ({exc.strerror or exc}); choose a free receive_port"
            ) from exc
        try:
            with _association(node, [(MOVE, None)]) as assoc:
                _accepted(assoc, MOVE, node, "C-MOVE")
                _check_retrieve(assoc.send_c_move(identifier, node.calling_ae_title, MOVE), node, "C-MOVE")
        finally:
            server.shutdown()
    if receiver.errors:
        raise PacsError(
            f"{method.upper()} from {node.address}: {len(receiver.errors)} instance(s) could not be written "
            f"under {tmp}: {receiver.errors[0]}"
        )
    return receiver.files


def _read_for_store(paths: Sequence[Path]) -> list[Dataset]:
    out: list[Dataset] = []
    for path in paths:
        try:
            out.append(pydicom.dcmread(path))
        except Exception as exc:
            raise PacsError(f"cannot read {path} as DICOM for storing: {exc}") from exc
    return out


def _headers(paths: Sequence[Path]) -> dict[str, set[str]]:
    """SOPClassUID -> transfer syntaxes of the files (headers only)."""
    classes: dict[str, set[str]] = {}
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            sop = str(ds.SOPClassUID)
            syntax = str(ds.file_meta.TransferSyntaxUID)
        except Exception as exc:
            raise PacsError(
                f"cannot read {path} as a DICOM file with SOPClassUID and TransferSyntaxUID: {exc}"
            ) from exc
        classes.setdefault(sop, set()).add(syntax)
    return classes


def _dimse_push(node: DicomNode, paths: Sequence[Path]) -> None:
    classes = _headers(paths)
    if len(classes) > 120:
        raise PacsError(f"{len(classes)} SOP classes in one push; a DICOM association holds at most 128")
    contexts = [(sop, sorted(syntaxes)) for sop, syntaxes in classes.items()]
    failures: list[str] = []
    with _association(node, contexts) as assoc:
        for start in range(0, len(paths), _STORE_BATCH):
            batch = paths[start : start + _STORE_BATCH]
            for path, ds in zip(batch, _read_for_store(batch), strict=True):
                try:
                    status = assoc.send_c_store(ds)
                except ValueError as exc:  # no accepted presentation context
                    raise AssociationRejectedError(
                        f"the DICOM node at {node.address} does not accept {UID(ds.SOPClassUID).name} in "
                        f"transfer syntax {ds.file_meta.TransferSyntaxUID.name} ({path}): {exc}"
                    ) from exc
                if not status:
                    raise PacsError(
                        f"C-STORE of {path} to {node.address} got no answer within {node.timeout} s or the "
                        "association was aborted; check the node's log"
                    )
                if int(status.Status) not in (0x0000, 0xB000, 0xB006, 0xB007):
                    failures.append(f"{path}: status {_status_text(status)}")
    if failures:
        raise PacsError(
            f"C-STORE to {node.address}: {len(failures)} of {len(paths)} file(s) refused, first: {failures[0]}"
        )


# ----------------------------------------------------------------------------------------------
# DICOMweb


def _credential(name: str | None, field: str) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if value is None:
        raise PacsError(
            f"environment variable {name} (named by {field} of the DICOMweb node) is not set; export it "
            "with the credential before the call"
        )
    return value


def _client(node: DicomWebNode) -> Any:
    import requests
    from dicomweb_client.api import DICOMwebClient

    user = _credential(node.username_env, "username_env")
    password = _credential(node.password_env, "password_env")
    session = requests.Session()
    if user is not None or password is not None:
        session.auth = (user or "", password or "")
    # dicomweb-client retries every failed request with exponential back-off (30 s in all for a
    # closed port): probe the address first so that an unreachable node fails at once
    reason = _tcp_reachable(*_host_port(node), node.timeout)
    if reason is not None:
        raise _unreachable(node, reason)
    client = DICOMwebClient(url=node.url, session=session, timeout=node.timeout)
    client.set_http_retry_params(max_attempts=3)  # 429/408/503/504 only
    return client


@contextlib.contextmanager
def _http_errors(node: DicomWebNode, what: str) -> Iterator[None]:
    import requests

    try:
        yield
    except requests.exceptions.HTTPError as exc:
        response = exc.response
        code = response.status_code if response is not None else 0
        reason = response.reason if response is not None else ""
        if code in (401, 403):
            if node.username_env or node.password_env:
                hint = (
                    f"check the user name and password in the environment variables "
                    f"{node.username_env} and {node.password_env}"
                )
            else:
                hint = "the service needs credentials: set username_env and password_env of the node"
            raise AuthenticationError(f"{what} at {node.url} refused: HTTP {code} {reason}; {hint}") from exc
        raise PacsError(f"{what} at {node.url} failed: HTTP {code} {reason}") from exc
    except requests.exceptions.ConnectionError as exc:
        reason = _tcp_reachable(*_host_port(node), node.timeout) or "connection failed"
        raise _unreachable(node, reason) from exc
    except requests.exceptions.Timeout as exc:
        raise PacsError(f"{what} at {node.url}: no answer within {node.timeout} s") from exc
    except requests.exceptions.RequestException as exc:
        raise PacsError(f"{what} at {node.url} failed: {exc}") from exc


def _host_port(node: DicomWebNode) -> tuple[str, int]:
    host, _, port = node.address.rpartition(":")
    return host, int(port)


def _qido(
    node: DicomWebNode, level: str, keys: Sequence[str], filters: dict[str, str], study_uid: str = ""
) -> list[dict[str, Any]]:
    client = _client(node)
    with _http_errors(node, f"QIDO-RS {level} search"):
        if level == "studies":
            found = client.search_for_studies(fields=list(keys), search_filters=filters)
        else:
            found = client.search_for_series(study_uid, fields=list(keys), search_filters=filters)
    return [_to_dict(Dataset.from_json(item), keys) for item in found]


def _wado_pull(node: DicomWebNode, tmp: Path, study_uid: str, series_uid: str | None) -> list[Path]:
    client = _client(node)
    if series_uid is None:
        series = [s["SeriesInstanceUID"] for s in find_series(node, study_uid)]
    else:
        series = [series_uid]
    files: list[Path] = []
    for uid in series:
        with _http_errors(node, "WADO-RS series retrieval"):
            # "*": the instances as stored, without transcoding
            for ds in client.iter_series(study_uid, uid, media_types=(("application/dicom", "*"),)):
                path = _instance_path(tmp, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
                path.parent.mkdir(parents=True, exist_ok=True)
                ds.save_as(path, enforce_file_format=True)
                files.append(path)
    return files


def _stow_push(node: DicomWebNode, paths: Sequence[Path]) -> None:
    client = _client(node)
    _headers(paths)  # clear error for a file that is not DICOM before anything is sent
    for start in range(0, len(paths), _STORE_BATCH):
        batch = paths[start : start + _STORE_BATCH]
        with _http_errors(node, "STOW-RS"):
            response = client.store_instances(_read_for_store(batch))
        failed = response.get("FailedSOPSequence") if response is not None else None
        if failed:
            first = failed[0]
            raise PacsError(
                f"STOW-RS to {node.url}: {len(failed)} instance(s) refused, first "
                f"{first.get('ReferencedSOPInstanceUID', '?')} with reason {first.get('FailureReason', '?')}"
            )


# ----------------------------------------------------------------------------------------------
# files


def _safe(uid: Any) -> str:
    text = str(uid).strip()
    if not _SAFE_UID.match(text):
        raise PacsError(f"received an instance with an invalid UID {text!r}; it cannot name a file")
    return text


def _instance_path(root: Path, study_uid: Any, series_uid: Any, sop_uid: Any) -> Path:
    return root / _safe(study_uid) / _safe(series_uid) / f"{_safe(sop_uid)}.dcm"


@contextlib.contextmanager
def _staging(out_dir: Path) -> Iterator[Path]:
    """A hidden temporary folder inside ``out_dir``, always removed at the end."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".pull-", dir=out_dir))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish(tmp: Path, files: Sequence[Path], out_dir: Path) -> tuple[Path, ...]:
    final: list[Path] = []
    for path in files:
        target = out_dir / path.relative_to(tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        final.append(target)
    return tuple(sorted(final))


# ----------------------------------------------------------------------------------------------
# public API


def find_studies(
    node: PacsNode,
    *,
    patient_id: str | None = None,
    study_date: str | None = None,
    modality: str | None = None,
) -> list[dict[str, Any]]:
    """Find studies (C-FIND at STUDY level, or QIDO-RS ``/studies``).

    Parameters
    ----------
    node : DicomNode or DicomWebNode
        Where to search.
    patient_id : str, optional
        PatientID to match (DICOM wildcards ``*`` and ``?`` allowed).
    study_date : str, optional
        StudyDate ``YYYYMMDD`` or a range ``YYYYMMDD-YYYYMMDD``.
    modality : str, optional
        A modality that the study must contain (ModalitiesInStudy), e.g. ``PT``.

    Returns
    -------
    list of dict
        One dict per study keyed by DICOM keyword: PatientID, PatientName, StudyInstanceUID,
        StudyDate, StudyTime, StudyDescription, AccessionNumber, ModalitiesInStudy (list),
        NumberOfStudyRelatedSeries; a value the node did not return is None.

    Raises
    ------
    NodeUnreachableError
        Nothing answers at the node's address.
    AssociationRejectedError
        The DICOM node refused our AE title.
    AuthenticationError
        The DICOMweb node refused the credentials.
    PacsError
        Any other failure of the query.
    """
    _check_node(node)
    filters = {"PatientID": patient_id, "StudyDate": study_date, "ModalitiesInStudy": modality}
    if isinstance(node, DicomNode):
        return _dimse_find(node, _query_dataset("STUDY", _STUDY_KEYS, filters), _STUDY_KEYS)
    return _qido(node, "studies", _STUDY_KEYS, {k: v for k, v in filters.items() if v})


def find_series(node: PacsNode, study_uid: str) -> list[dict[str, Any]]:
    """Find the series of one study (C-FIND at SERIES level, or QIDO-RS ``/studies/{uid}/series``).

    Parameters
    ----------
    node : DicomNode or DicomWebNode
        Where to search.
    study_uid : str
        StudyInstanceUID of the study.

    Returns
    -------
    list of dict
        One dict per series keyed by DICOM keyword: StudyInstanceUID, SeriesInstanceUID,
        Modality, SeriesNumber, SeriesDescription, NumberOfSeriesRelatedInstances.

    Raises
    ------
    PacsError
        As :func:`find_studies`.
    """
    _check_node(node)
    _safe(study_uid)
    if isinstance(node, DicomNode):
        query = _query_dataset("SERIES", _SERIES_KEYS, {"StudyInstanceUID": study_uid})
        return _dimse_find(node, query, _SERIES_KEYS)
    found = _qido(node, "series", _SERIES_KEYS, {}, study_uid)
    for item in found:
        item["StudyInstanceUID"] = item["StudyInstanceUID"] or study_uid
    return found


def pull(
    node: PacsNode,
    out_dir: str | os.PathLike[str],
    *,
    study_uid: str,
    series_uid: str | None = None,
    method: PullMethod = "c-get",
) -> PullResult:
    """Retrieve a study or one series into ``out_dir``.

    Files land in ``out_dir/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` as
    they were sent (no re-encoding for C-MOVE and C-GET). They are received in a hidden temporary
    folder inside ``out_dir`` and moved into place only when the whole retrieval succeeded.

    Parameters
    ----------
    node : DicomNode or DicomWebNode
        Where to retrieve from (``"c-move"`` and ``"c-get"`` need a DicomNode, ``"wado"`` a
        DicomWebNode).
    out_dir : str or os.PathLike
        Destination folder (created).
    study_uid : str
        StudyInstanceUID.
    series_uid : str, optional
        SeriesInstanceUID; None retrieves the whole study.
    method : {"c-move", "c-get", "wado"}
        C-MOVE to a Storage SCP started here on ``node.receive_port``, C-GET on the same
        association, or WADO-RS.

    Returns
    -------
    PullResult
        Final paths of the files and the time taken.

    Raises
    ------
    NodeUnreachableError, AssociationRejectedError, AuthenticationError
        See :func:`find_studies`.
    PacsError
        Unknown method, method not suited to the node, failed sub-operations, nothing found.
        No file is left in ``out_dir`` after an error.
    """
    _check_node(node)
    _check_method(method)
    _safe(study_uid)
    if series_uid is not None:
        _safe(series_uid)
    if method == "wado" and not isinstance(node, DicomWebNode):
        raise PacsError("method 'wado' needs a DicomWebNode (url); use 'c-get' or 'c-move' with a DicomNode")
    if method != "wado" and not isinstance(node, DicomNode):
        raise PacsError(f"method {method!r} needs a DicomNode (host, port, AE title); use 'wado' with a URL")
    t0 = time.perf_counter()
    out = Path(out_dir)
    what = f"study {study_uid}" + (f" series {series_uid}" if series_uid else "")
    with _staging(out) as tmp:
        if isinstance(node, DicomNode):
            files = _dimse_pull(node, tmp, study_uid, series_uid, method)
        else:
            files = _wado_pull(node, tmp, study_uid, series_uid)
        if not files:
            raise PacsError(f"{method.upper()} from {node.address}: no instance found for {what}")
        final = _publish(tmp, files, out)
    seconds = time.perf_counter() - t0
    log.info("pulled %d file(s) of %s with %s in %.2f s", len(final), what, method, seconds)
    return PullResult(files=final, seconds=seconds)


def push(node: PacsNode, paths: Iterable[str | os.PathLike[str]]) -> PushResult:
    """Store DICOM files at a node (C-STORE, or STOW-RS for a DicomWebNode).

    Parameters
    ----------
    node : DicomNode or DicomWebNode
        Destination.
    paths : iterable of str or os.PathLike
        DICOM files (folders are searched recursively for files).

    Returns
    -------
    PushResult
        The files sent and the time taken.

    Raises
    ------
    NodeUnreachableError, AssociationRejectedError, AuthenticationError
        See :func:`find_studies`.
    PacsError
        A file is not DICOM, or the node refused one or more instances.
    """
    _check_node(node)
    files: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")))
        elif p.is_file():
            files.append(p)
        else:
            raise PacsError(f"cannot push {p}: no such file or folder")
    if not files:
        raise PacsError("nothing to push: no file given")
    t0 = time.perf_counter()
    if isinstance(node, DicomNode):
        _dimse_push(node, files)
    else:
        _stow_push(node, files)
    return PushResult(files=tuple(files), seconds=time.perf_counter() - t0)
