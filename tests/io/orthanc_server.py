"""A throw-away Orthanc server on loopback for the PACS tests.

:func:`start_orthanc` writes a temporary JSON configuration (free DICOM and HTTP ports on
127.0.0.1, a private storage folder, the DICOMweb plugin, one registered HTTP user, one known
modality for C-MOVE / C-GET) and starts Orthanc, with ``TCP_NODELAY=1`` in its environment so that
DCMTK disables Nagle's algorithm (see docs/pacs.md, "Speed"), in its own session (``setsid``) so that
:meth:`OrthancServer.stop` can end it and anything it started with one signal to its process
group. The server is always stopped by the fixture's finalizer.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ORTHANC_BINARY_CANDIDATES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
DICOMWEB_PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)

SERVER_AET = "ORTHANCTEST"
CLIENT_AET = "SMARTIMAGING"
USERNAME = "physicist"
PASSWORD = "s3cret-for-tests"
LOOPBACK = "127.0.0.1"


def find_orthanc() -> str | None:
    """Path of the Orthanc executable, or None when it is not installed."""
    for candidate in ORTHANC_BINARY_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("Orthanc")


def find_dicomweb_plugin() -> str | None:
    """Path of the Orthanc DICOMweb plugin, or None when it is not installed."""
    for candidate in DICOMWEB_PLUGIN_CANDIDATES:
        if os.path.isfile(candidate):
            return candidate
    return None


def free_port() -> int:
    """A TCP port free on loopback at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@dataclass
class OrthancServer:
    """A running Orthanc; ``stop()`` ends its whole process group."""

    process: subprocess.Popen[bytes]
    root: Path
    dicom_port: int
    http_port: int
    move_port: int
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """Root of the Orthanc REST API."""
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """Root of the DICOMweb service."""
        return f"{self.url}/dicom-web"

    def rest(self, path: str, *, method: str = "GET") -> object:
        """Call the REST API with the registered user and decode the JSON answer."""
        token = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        request = urllib.request.Request(
            self.url + path, method=method, headers={"Authorization": f"Basic {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 40) -> str:
        """Last lines of the Orthanc log (for failure messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Terminate Orthanc (SIGTERM to its process group, SIGKILL after 10 s)."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def write_config(root: Path, *, dicom_port: int, http_port: int, move_port: int, plugin: str | None) -> Path:
    """Write the Orthanc configuration used by the tests and return its path."""
    storage = root / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config: dict[str, object] = {
        "Name": "smartimaging-test",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": SERVER_AET,
        # only the registered modality may associate: an unknown calling AE is rejected
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomAlwaysAllowFind": False,
        "DicomAlwaysAllowGet": False,
        "DicomAlwaysAllowMove": False,
        "DicomCheckModalityHost": True,
        "DicomModalities": {"smartimaging": [CLIENT_AET, LOOPBACK, move_port]},
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USERNAME: PASSWORD},
        "HttpsCACertificates": "",
        "StableAge": 1,
        "Plugins": [plugin] if plugin else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        "SaveJobs": False,
        "ConcurrentJobs": 2,
    }
    path = root / "orthanc.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


def start_orthanc(root: Path, *, binary: str, plugin: str | None, timeout: float = 60.0) -> OrthancServer:
    """Start Orthanc with a fresh configuration under ``root`` and wait for its REST API."""
    dicom_port, http_port, move_port = free_port(), free_port(), free_port()
    while len({dicom_port, http_port, move_port}) < 3:
        http_port, move_port = free_port(), free_port()
    config = write_config(
        root, dicom_port=dicom_port, http_port=http_port, move_port=move_port, plugin=plugin
    )
    log_path = root / "orthanc.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [binary, str(config)],
            # DCMTK (Orthanc's DICOM stack) leaves Nagle's algorithm on unless TCP_NODELAY=1 is in its
            # environment: each DIMSE response then waits for our delayed ACK (~40 ms per instance)
            env={**os.environ, "TCP_NODELAY": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # setsid: its own process group, killed as a whole in stop()
        )
    server = OrthancServer(process, root, dicom_port, http_port, move_port, log_path)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with code {process.returncode}:\n{server.log_tail()}")
            try:
                server.rest("/system")
                if plugin is None or "dicom-web" in json.dumps(server.rest("/plugins")):
                    return server
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Orthanc did not answer within {timeout} s:\n{server.log_tail()}")
            time.sleep(0.2)
    except BaseException:
        server.stop()
        raise
