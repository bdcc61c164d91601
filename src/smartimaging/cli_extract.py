"""The ``smartimaging extract`` command: IBSI 1 features of one image and ROI to a CSV file.

Registered on the main application with::

    app.command(name="extract")(extract_command)

Usage::

    smartimaging extract --image IMG --mask MASK [--roi NAME] [--label N] \\
        [--settings S.yaml] --out features.csv [--wide]

``IMG`` is a volume file (NIfTI, NRRD, MetaImage) or a DICOM folder holding one image series
(a PET series is converted to SUVbw); ``MASK`` is a label image on the same grid, or an
RTSTRUCT or SEG file (see :mod:`smartimaging.features.batch`). Filters listed under
``features.filters`` in the settings file (IBSI 2, see ``docs/filters.md``) add rows whose
``image_type`` names the filter; the unfiltered image's rows say ``original``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from smartimaging.atomic import atomic_path
from smartimaging.exceptions import SmartImagingError
from smartimaging.features.batch import read_case
from smartimaging.features.extract import to_wide
from smartimaging.features.pipeline import extract_with_processing, load_study_settings
from smartimaging.features.settings import ExtractionSettings

__all__ = ["extract_command"]

_err = Console(stderr=True)


def _case_id(image: Path) -> str:
    name = image.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def extract_command(
    image: Annotated[
        Path,
        typer.Option("--image", help="Image: NIfTI/NRRD/MetaImage file, or a DICOM folder of one series."),
    ],
    mask: Annotated[
        Path, typer.Option("--mask", help="ROI: label image file, or an RTSTRUCT or SEG DICOM file.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output table (.csv, or .parquet).")],
    roi: Annotated[
        str | None,
        typer.Option("--roi", help="ROI name (RTSTRUCT structure / SEG segment; also labels rows)."),
    ] = None,
    settings: Annotated[
        Path | None,
        typer.Option(
            "--settings",
            "-s",
            help="Settings YAML: extraction keys, or image_processing and features sections (default: built-in).",
        ),
    ] = None,
    wide: Annotated[
        bool, typer.Option("--wide", help="One row per ROI instead of one row per feature.")
    ] = False,
    label: Annotated[
        int | None,
        typer.Option("--label", help="Label of the ROI in a label-image mask (default: non-zero)."),
    ] = None,
) -> None:
    """Compute IBSI 1 features of one image inside one ROI and write them as a table."""
    try:
        processing, resolved = (
            load_study_settings(settings) if settings is not None else (None, ExtractionSettings())
        )
        img, msk, roi_name, modality = read_case(image, mask, roi=roi or "", label=label)
        modality = modality or str(img.meta.get("Modality", ""))
        table = extract_with_processing(
            img,
            msk,
            processing=processing,
            settings=resolved,
            case=_case_id(image),
            roi=roi_name,
            modality=modality,
        )
    except SmartImagingError as exc:
        _err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(code=2) from exc
    result = to_wide(table) if wide else table
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".parquet":
            result.to_parquet(tmp, index=False)
        else:
            result.to_csv(tmp, index=False)
    n_rows = len(table)
    n_types = table["image_type"].nunique()
    images = f", {n_types} image types" if n_types > 1 else ""
    print(
        f"{n_rows} feature values of {msk.n_voxels} voxels ({table['family'].nunique()} families{images}) "
        f"written to {out}"
    )
