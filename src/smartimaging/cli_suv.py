"""``smartimaging suv``: convert one PET DICOM series to an SUV NIfTI, printing the factor and its inputs.

Register it in cli.py with ``app.command("suv")(suv_command)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

import typer

from smartimaging.exceptions import SmartImagingError, SUVError

__all__ = ["SUV_TYPES", "convert_pet_dir", "suv_command"]

#: CLI names of the normalisations and the :func:`smartimaging.io.suv.suv_factor` kinds.
SUV_TYPES = {"bw": "bw", "lbm": "lbm", "lbm_janma": "lbm_janma", "bsa": "bsa", "ibw": "ibw"}


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def convert_pet_dir(
    pet_dir: Path,
    *,
    kind: str = "bw",
    out: Path,
    weight_kg: float | None = None,
    height_m: float | None = None,
    sex: str | None = None,
    dose_bq: float | None = None,
) -> list[str]:
    """Find the one PT series under ``pet_dir``, convert it to SUV and write ``out`` (NIfTI).

    Parameters
    ----------
    pet_dir : Path
        Folder holding exactly one PET (Modality PT) series, in any layout.
    kind : {'bw', 'lbm', 'lbm_janma', 'bsa', 'ibw'}
        SUV normalisation.
    out : Path
        Output image (``.nii.gz``), written atomically.
    weight_kg, height_m, sex, dose_bq : optional
        Overrides of the header values.

    Returns
    -------
    list of str
        The lines to print: factor, every tag used, warnings, the output path.

    Raises
    ------
    SmartImagingError
        No or several PT series, unreadable DICOM, or an SUV that cannot be computed reliably.
    """
    import SimpleITK as sitk

    from smartimaging.atomic import atomic_path
    from smartimaging.io.dicom import discover, read_series
    from smartimaging.io.suv import SUVKind, to_suv

    if kind not in SUV_TYPES:
        raise SUVError(f"--type must be one of {sorted(SUV_TYPES)}, got {kind!r}")
    found = discover(pet_dir)
    pets = [s for s in found.series if s.modality.upper() == "PT"]
    if len(pets) != 1:
        listed = "; ".join(
            f"{s.modality} {s.series_instance_uid} '{s.series_description}' ({s.n_files} files)"
            for s in found.series
        )
        problem = "no PET (Modality PT) series" if not pets else f"{len(pets)} PET series"
        raise SUVError(
            f"{pet_dir}: {problem} found; series there: {listed or 'none'}. "
            "Point PET_DIR at a folder holding exactly one PET series."
        )
    series = pets[0]
    pet = read_series(series)
    overrides = {
        k: v
        for k, v in {"weight_kg": weight_kg, "height_m": height_m, "sex": sex, "dose_bq": dose_bq}.items()
        if v is not None
    }
    suv, factor = to_suv(pet, kind=cast(SUVKind, SUV_TYPES[kind]), **overrides)
    with atomic_path(out) as tmp:
        sitk.WriteImage(suv.to_sitk(), str(tmp), True)
    lines = [
        f"PET series {series.series_instance_uid} ({series.n_files} files, {pet.array.shape[0]} slices)",
        f"SUV{kind} factor: {factor.factor:.6g}",
    ]
    if factor.slice_factors:
        lines.append(
            f"  per-slice factors: {min(factor.slice_factors):.6g} to {max(factor.slice_factors):.6g} "
            f"({len(set(factor.slice_factors))} distinct)"
        )
    lines.append("tags used:")
    lines += [f"  {key}: {_format(value)}" for key, value in factor.tags.items()]
    lines += [f"warning: {w}" for w in factor.warnings]
    lines.append(f"written: {out}")
    return lines


def suv_command(
    pet_dir: Annotated[Path, typer.Argument(help="Folder with one PET DICOM series.")],
    type: Annotated[
        str, typer.Option("--type", "-t", help="SUV normalisation: bw, lbm (James), lbm_janma, bsa or ibw.")
    ] = "bw",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output NIfTI.")] = Path("suv.nii.gz"),
    weight_kg: Annotated[
        float | None, typer.Option("--weight-kg", help="Override PatientWeight (kg).")
    ] = None,
    height_m: Annotated[float | None, typer.Option("--height-m", help="Override PatientSize (m).")] = None,
    sex: Annotated[str | None, typer.Option("--sex", help="Override PatientSex (M, F or O).")] = None,
    dose_bq: Annotated[
        float | None, typer.Option("--dose-bq", help="Override RadionuclideTotalDose (Bq, taken as given).")
    ] = None,
) -> None:
    """Convert a PET series to SUV (NIfTI); print the factor and every DICOM tag it used."""
    try:
        lines = convert_pet_dir(
            pet_dir, kind=type, out=out, weight_kg=weight_kg, height_m=height_m, sex=sex, dose_bq=dose_bq
        )
    except SmartImagingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    for line in lines:
        typer.echo(line)
