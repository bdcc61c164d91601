"""``smartimaging deid IN OUT --mapping FILE``: de-identify a DICOM folder (a thin face over
:func:`smartimaging.io.deid.deidentify`).

Register it in :mod:`smartimaging.cli` with ``app.command(name="deid")(deid_command)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from smartimaging.exceptions import SmartImagingError

__all__ = ["deid_command"]

_err = Console(stderr=True)


def deid_command(
    in_dir: Annotated[Path, typer.Argument(help="Folder with the original DICOM files (any layout).")],
    out_dir: Annotated[Path, typer.Argument(help="Output folder for the de-identified files.")],
    mapping: Annotated[
        Path,
        typer.Option(
            "--mapping",
            "-m",
            help="CSV file for the private mapping (original IDs and UIDs to pseudonyms); "
            "must lie outside OUT. Keep it private.",
        ),
    ],
    salt: Annotated[
        str | None,
        typer.Option(
            "--salt",
            envvar="SMARTIMAGING_DEID_SALT",
            help="Secret for the UID and pseudonym hashes: the same salt gives the same UIDs "
            "(default: random, recorded in the mapping file).",
        ),
    ] = None,
) -> None:
    """De-identify DICOM files (PS3.15 Basic Profile, keeping dates and patient characteristics for SUV)."""
    from smartimaging.io.deid import deidentify

    try:
        report = deidentify(in_dir, out_dir, mapping_file=mapping, salt=salt)
    except SmartImagingError as exc:
        _err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(code=2) from exc
    print(
        f"{report.n_files} files of {len(report.patients)} patients de-identified into {report.out_dir}; "
        f"{report.n_uids} UIDs replaced; mapping in {report.mapping_file}"
    )
    if report.skipped:
        print(f"{len(report.skipped)} files skipped (not DICOM or unreadable), e.g. {report.skipped[0][0]}")
    for path in report.burned_in:
        print(f"warning: {path} has BurnedInAnnotation YES: check its pixels for identifying text")
