"""``smartimaging pacs find|pull|push``: the PACS functions of :mod:`smartimaging.io.pacs` on the command line.

Register in the main CLI with ``app.add_typer(pacs_app, name="pacs")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, cast

import typer
from pydantic import ValidationError
from rich.console import Console

from smartimaging.exceptions import SmartImagingError

if TYPE_CHECKING:
    from smartimaging.io.pacs import PacsNode, PullMethod

__all__ = ["pacs_app"]

pacs_app = typer.Typer(
    help="Query, retrieve and store with a PACS: DIMSE (--host/--port/--aet) or DICOMweb (--url).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_err = Console(stderr=True)

Host = Annotated[str | None, typer.Option("--host", help="DICOM node host name or address.")]
Port = Annotated[int | None, typer.Option("--port", help="DICOM node port.")]
Aet = Annotated[str | None, typer.Option("--aet", help="AE title of the DICOM node (called AE).")]
CallingAet = Annotated[str, typer.Option("--calling-aet", help="Our AE title (calling AE).")]
ReceivePort = Annotated[
    int | None, typer.Option("--receive-port", help="Port of the local Storage SCP for C-MOVE.")
]
Url = Annotated[str | None, typer.Option("--url", help="DICOMweb base URL (instead of --host).")]
UserEnv = Annotated[
    str | None, typer.Option("--username-env", help="Environment variable holding the DICOMweb user name.")
]
PasswordEnv = Annotated[
    str | None, typer.Option("--password-env", help="Environment variable holding the DICOMweb password.")
]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to wait for the node.")]


def _fail(message: str) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code=2)


def _node(
    host: str | None,
    port: int | None,
    aet: str | None,
    calling_aet: str,
    receive_port: int | None,
    url: str | None,
    username_env: str | None,
    password_env: str | None,
    timeout: float,
) -> PacsNode:
    from smartimaging.io.pacs import DicomNode, DicomWebNode

    try:
        if url is not None:
            if host is not None or port is not None or aet is not None:
                _fail("give either --url (DICOMweb) or --host/--port/--aet (DIMSE), not both")
            return DicomWebNode(
                url=url, username_env=username_env, password_env=password_env, timeout=timeout
            )
        if host is None or port is None or aet is None:
            _fail("give --host, --port and --aet of a DICOM node, or --url of a DICOMweb service")
        return DicomNode(
            host=host,
            port=port,
            ae_title=aet,
            calling_ae_title=calling_aet,
            receive_port=receive_port,
            timeout=timeout,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        _fail(f"invalid node settings: {problems}")


def _is_dicom(path: Path) -> bool:
    """A DICOM Part 10 file: the 'DICM' prefix after the 128-byte preamble."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _dicom_files(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Files given, and the DICOM files of folders given (sorted); the non-DICOM files of folders."""
    files: list[Path] = []
    skipped: list[Path] = []
    for item in paths:
        if not item.is_dir():
            files.append(item)  # a file named explicitly is sent (or refused) as it is
            continue
        for f in sorted(f for f in item.rglob("*") if f.is_file() and not f.name.startswith(".")):
            (files if _is_dicom(f) else skipped).append(f)
    return files, skipped


@pacs_app.command()
def find(
    host: Host = None,
    port: Port = None,
    aet: Aet = None,
    calling_aet: CallingAet = "SMARTIMAGING",
    url: Url = None,
    username_env: UserEnv = None,
    password_env: PasswordEnv = None,
    timeout: Timeout = 30.0,
    patient_id: Annotated[str | None, typer.Option("--patient-id", help="PatientID (wildcards * ?).")] = None,
    study_date: Annotated[
        str | None, typer.Option("--study-date", help="YYYYMMDD or YYYYMMDD-YYYYMMDD.")
    ] = None,
    modality: Annotated[
        str | None, typer.Option("--modality", help="A modality in the study, e.g. PT.")
    ] = None,
    study: Annotated[
        str | None, typer.Option("--study", help="StudyInstanceUID: list its series instead of studies.")
    ] = None,
) -> None:
    """List studies (or the series of one study) as tab-separated lines."""
    from smartimaging.io.pacs import find_series, find_studies

    node = _node(host, port, aet, calling_aet, None, url, username_env, password_env, timeout)
    try:
        if study is not None:
            rows = find_series(node, study)
            columns = ["SeriesInstanceUID", "Modality", "SeriesNumber", "NumberOfSeriesRelatedInstances"]
            columns.append("SeriesDescription")
        else:
            rows = find_studies(
                node,
                patient_id=patient_id,
                study_date=study_date,
                modality=modality,
            )
            columns = ["PatientID", "StudyDate", "StudyInstanceUID", "ModalitiesInStudy", "StudyDescription"]
    except SmartImagingError as exc:
        _fail(str(exc))
    print("\t".join(columns))
    for row in rows:
        cells = [row.get(c) for c in columns]
        print("\t".join("" if v is None else "\\".join(v) if isinstance(v, list) else str(v) for v in cells))


@pacs_app.command()
def pull(
    out: Annotated[Path, typer.Argument(help="Destination folder.")],
    study: Annotated[str, typer.Option("--study", help="StudyInstanceUID to retrieve.")],
    series: Annotated[str | None, typer.Option("--series", help="Only this SeriesInstanceUID.")] = None,
    method: Annotated[
        str | None,
        typer.Option("--method", help="c-get, c-move or wado (default: c-get, or wado with --url)."),
    ] = None,
    host: Host = None,
    port: Port = None,
    aet: Aet = None,
    calling_aet: CallingAet = "SMARTIMAGING",
    receive_port: ReceivePort = None,
    url: Url = None,
    username_env: UserEnv = None,
    password_env: PasswordEnv = None,
    timeout: Timeout = 30.0,
) -> None:
    """Retrieve a study or a series (no partial files are left on failure)."""
    from smartimaging.io.pacs import pull as do_pull

    node = _node(host, port, aet, calling_aet, receive_port, url, username_env, password_env, timeout)
    chosen = method or ("wado" if url is not None else "c-get")
    try:
        result = do_pull(node, out, study_uid=study, series_uid=series, method=cast("PullMethod", chosen))
    except SmartImagingError as exc:
        _fail(str(exc))
    print(f"{len(result.files)} file(s) retrieved into {out} with {chosen} in {result.seconds:.1f} s")


@pacs_app.command()
def push(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files or folders.")],
    host: Host = None,
    port: Port = None,
    aet: Aet = None,
    calling_aet: CallingAet = "SMARTIMAGING",
    url: Url = None,
    username_env: UserEnv = None,
    password_env: PasswordEnv = None,
    timeout: Timeout = 30.0,
) -> None:
    """Store DICOM files (C-STORE, or STOW-RS with --url); in folders, files that are not DICOM are skipped."""
    from smartimaging.io.pacs import push as do_push

    node = _node(host, port, aet, calling_aet, None, url, username_env, password_env, timeout)
    files, skipped = _dicom_files(paths)
    if skipped:
        print(f"skipped {len(skipped)} file(s) that are not DICOM: {', '.join(str(p) for p in skipped[:5])}")
    try:
        result = do_push(node, files)
    except SmartImagingError as exc:
        _fail(str(exc))
    how = "STOW-RS" if url is not None else "C-STORE"
    print(f"{len(result.files)} file(s) stored with {how} in {result.seconds:.1f} s")
