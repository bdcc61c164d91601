"""PACS round trip of the synthetic demo cohort through a temporary Orthanc on loopback.

Times, for the whole cohort: C-STORE upload, C-FIND (studies and series), C-MOVE, C-GET, WADO-RS
and STOW-RS, printing seconds, files/s and MB/s, and checks that every retrieved instance has the
voxel data of the original file.

Usage::

    PYTHONPATH=src python benchmarks/pacs_roundtrip.py [--patients 60] [--cohort DIR] [--work DIR]

``--cohort`` takes an existing cohort folder (``generate_cohort`` output, or any DICOM tree);
otherwise the 60-patient demo cohort is generated into the work folder. Orthanc and the
orthanc-dicomweb plugin must be installed (``scripts/ensure_orthanc.sh``). The server is the one
the tests start (``tests/io/orthanc_server.py``): same configuration.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "io"))

from orthanc_server import (  # noqa: E402
    CLIENT_AET,
    LOOPBACK,
    PASSWORD,
    SERVER_AET,
    USERNAME,
    find_dicomweb_plugin,
    find_orthanc,
    start_orthanc,
)

from smartimaging.io.pacs import DicomNode, DicomWebNode, find_series, find_studies, pull, push  # noqa: E402


def _pixels_by_uid(paths: list[Path]) -> dict[str, bytes]:
    out = {}
    for p in paths:
        ds = pydicom.dcmread(p)
        out[str(ds.SOPInstanceUID)] = (
            np.ascontiguousarray(ds.pixel_array).tobytes() if "PixelData" in ds else b""
        )
    return out


def _line(what: str, seconds: float, n_files: int, n_bytes: int) -> str:
    rate = n_files / seconds if seconds > 0 else float("inf")
    mbps = n_bytes / 1e6 / seconds if seconds > 0 else float("inf")
    return f"{what:<22} {seconds:8.2f} s  {rate:8.1f} files/s  {mbps:7.1f} MB/s  ({n_files} files)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=60)
    parser.add_argument("--cohort", type=Path, default=None, help="existing DICOM tree (default: generate)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--no-verify", action="store_true", help="skip the voxel comparison")
    args = parser.parse_args()

    binary, plugin = find_orthanc(), find_dicomweb_plugin()
    if binary is None or plugin is None:
        print("Orthanc or its DICOMweb plugin is missing: run scripts/ensure_orthanc.sh", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="pacs_roundtrip_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.cohort is None:
        from smartimaging.synthetic import generate_cohort

        t0 = time.perf_counter()
        generate_cohort(work / "cohort", n_patients=args.patients, progress=False)
        print(f"generated {args.patients} patients in {time.perf_counter() - t0:.1f} s")
        dicom = work / "cohort" / "dicom"
    else:
        dicom = args.cohort / "dicom" if (args.cohort / "dicom").is_dir() else args.cohort
    files = sorted(p for p in dicom.rglob("*") if p.is_file() and p.name != "DICOMDIR")
    n_bytes = sum(p.stat().st_size for p in files)
    print(f"cohort: {len(files)} files, {n_bytes / 1e6:.1f} MB under {dicom}")

    server = start_orthanc(work / "orthanc", binary=binary, plugin=plugin)
    os.environ["SMARTIMAGING_BENCH_USER"], os.environ["SMARTIMAGING_BENCH_PW"] = USERNAME, PASSWORD
    node = DicomNode(
        host=LOOPBACK,
        port=server.dicom_port,
        ae_title=SERVER_AET,
        calling_ae_title=CLIENT_AET,
        receive_port=server.move_port,
        receive_address=LOOPBACK,
        timeout=120,
    )
    web = DicomWebNode(
        url=server.dicomweb_url,
        username_env="SMARTIMAGING_BENCH_USER",
        password_env="SMARTIMAGING_BENCH_PW",
        timeout=600,
    )
    lines: list[str] = []
    try:
        t0 = time.perf_counter()
        push(node, files)
        lines.append(_line("C-STORE (upload)", time.perf_counter() - t0, len(files), n_bytes))

        t0 = time.perf_counter()
        studies = find_studies(node)
        series = [s for st in studies for s in find_series(node, st["StudyInstanceUID"])]
        t_find = time.perf_counter() - t0
        lines.append(f"{'C-FIND':<22} {t_find:8.2f} s  ({len(studies)} studies, {len(series)} series)")

        original = None if args.no_verify else _pixels_by_uid(files)
        for method, where in (("c-move", node), ("c-get", node), ("wado", web)):
            out = work / f"pulled_{method}"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            got: list[Path] = []
            for st in studies:
                got += pull(where, out, study_uid=st["StudyInstanceUID"], method=method).files  # type: ignore[arg-type]
            seconds = time.perf_counter() - t0
            size = sum(p.stat().st_size for p in got)
            name = {"c-move": "C-MOVE", "c-get": "C-GET", "wado": "WADO-RS"}[method]
            check = ""
            if original is not None:
                same = _pixels_by_uid(got) == original
                check = "  voxels equal" if same else "  VOXELS DIFFER"
                if not same:
                    lines.append(_line(name, seconds, len(got), size) + check)
                    raise SystemExit("\n".join(lines))
            lines.append(_line(name, seconds, len(got), size) + check)

        for st in studies:  # empty the server, then upload again through STOW-RS
            server.rest(f"/studies/{_orthanc_study_id(server, st['StudyInstanceUID'])}", method="DELETE")
        t0 = time.perf_counter()
        push(web, files)
        seconds = time.perf_counter() - t0
        stored = len(server.rest("/instances"))  # type: ignore[arg-type]
        lines.append(
            _line("STOW-RS (upload)", seconds, len(files), n_bytes) + f"  ({stored} instances stored)"
        )
    finally:
        server.stop()
        print("\n".join(lines))
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _orthanc_study_id(server: object, study_uid: str) -> str:
    import json
    import urllib.request

    from orthanc_server import OrthancServer

    assert isinstance(server, OrthancServer)
    import base64

    token = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        server.url + "/tools/lookup",
        data=study_uid.encode(),
        method="POST",
        headers={"Authorization": f"Basic {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())[0]["ID"])


if __name__ == "__main__":
    raise SystemExit(main())
