"""The ``smartimaging segment evaluate`` command: agreement of predicted and reference masks.

Registered on the ``segment`` command group with::

    from smartimaging.cli_segeval import register as register_segeval
    register_segeval(segment_app)

Usage::

    smartimaging segment evaluate PRED TRUTH [--out metrics.csv] [--tolerance-mm 2]
        [--min-overlap 0] [--reference IMAGE] [--roi NAME]

``PRED`` and ``TRUTH`` are two mask files (NIfTI, NRRD, DICOM SEG, DICOM RTSTRUCT) or two
folders of them paired by file name (see :mod:`smartimaging.segment.evaluation`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console

from smartimaging.atomic import atomic_path
from smartimaging.exceptions import SmartImagingError

__all__ = ["evaluate_command", "register", "summary_lines"]

_err = Console(stderr=True)


def summary_lines(table: pd.DataFrame) -> list[str]:
    """Cohort summary of an evaluation table (means over the cases where a metric is defined)."""
    lines = [f"{len(table)} case(s)"]
    for col, label in (
        ("dice", "Dice"),
        ("hd95_mm", "HD95 (mm)"),
        ("assd_mm", "ASSD (mm)"),
        ("surface_dice", "surface Dice"),
        ("false_positive_volume_ml", "FP volume (ml)"),
        ("false_negative_volume_ml", "FN volume (ml)"),
    ):
        values = table[col].dropna()
        if len(values):
            lines.append(f"{label}: mean {values.mean():.4g}, median {values.median():.4g} (n={len(values)})")
    n_true = int(table["n_true"].sum())
    if n_true:
        lines.append(
            f"lesion sensitivity: {int(table['n_detected'].sum())}/{n_true} = {table['n_detected'].sum() / n_true:.3f}"
        )
    if len(table):
        lines.append(f"false positives per patient: {table['n_false_positive'].mean():.3g}")
    return lines


def evaluate_command(
    pred: Annotated[Path, typer.Argument(help="Predicted mask file, or a folder of them.")],
    truth: Annotated[Path, typer.Argument(help="Reference mask file, or a folder paired by file name.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the per-case table here (.csv).")
    ] = None,
    tolerance_mm: Annotated[
        float, typer.Option("--tolerance-mm", min=0.0, help="Tolerance of the surface Dice, mm.")
    ] = 2.0,
    min_overlap: Annotated[
        float,
        typer.Option(
            "--min-overlap",
            min=0.0,
            max=1.0,
            help="Least covered fraction for a lesion to count as detected.",
        ),
    ] = 0.0,
    reference: Annotated[
        Path | None,
        typer.Option("--reference", help="Image volume whose grid DICOM SEG/RTSTRUCT masks are read onto."),
    ] = None,
    roi: Annotated[
        str | None, typer.Option("--roi", help="ROI / segment name or pattern in DICOM masks (default: all).")
    ] = None,
) -> None:
    """Dice, HD95, ASSD, surface Dice, autoPET FP/FN volumes and lesion detection of PRED against TRUTH."""
    from smartimaging.segment.evaluation import evaluate_paths

    try:
        table = evaluate_paths(
            pred, truth, reference=reference, roi=roi, tolerance_mm=tolerance_mm, min_overlap=min_overlap
        )
    except SmartImagingError as exc:
        _err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    if out is not None:
        with atomic_path(out) as tmp:
            table.to_csv(tmp, index=False)
    for line in summary_lines(table):
        print(line)
    if out is not None:
        print(f"per-case metrics written to {out}")


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to the ``segment`` command group ``app``."""
    app.command("evaluate")(evaluate_command)
