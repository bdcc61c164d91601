"""``smartimaging suv``: convert one PET (a DICOM series, or a NIfTI/NRRD image in Bq/ml) to an SUV NIfTI,
printing the factor and its inputs.

Register it in cli.py with ``app.command("suv")(suv_command)``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from smartimaging.exceptions import SmartImagingError, SUVError

__all__ = ["SUV_TYPES", "convert_pet_dir", "convert_pet_image", "suv_command"]

#: suffixes read as an image file (Bq/ml) rather than a DICOM folder
IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")

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
    injection_time: datetime | None = None,
    half_life_s: float | None = None,
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
    weight_kg, height_m, sex, dose_bq, injection_time, half_life_s : optional
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
        for k, v in {
            "weight_kg": weight_kg,
            "height_m": height_m,
            "sex": sex,
            "dose_bq": dose_bq,
            "injection_time": injection_time,
            "half_life_s": half_life_s,
        }.items()
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


def convert_pet_image(
    image: Path,
    *,
    kind: str = "bw",
    out: Path,
    dose_bq: float | None = None,
    weight_kg: float | None = None,
    height_m: float | None = None,
    sex: str | None = None,
    uptake_s: float | None = None,
    half_life_s: float = 6586.2,
    decay_corrected_to: str = "start",
) -> list[str]:
    """Convert a PET image file in Bq/ml (NIfTI, NRRD, MetaImage) to SUV and write ``out``.

    Parameters
    ----------
    image : Path
        PET image holding activity concentration (Bq/ml).
    kind : {'bw', 'lbm', 'lbm_janma', 'bsa', 'ibw'}
        SUV normalisation.
    out : Path
        Output image (``.nii.gz``), written atomically.
    dose_bq, weight_kg, height_m, sex, uptake_s, half_life_s, decay_corrected_to
        See :func:`smartimaging.io.suv.factor_from_values`.

    Returns
    -------
    list of str
        The lines to print.

    Raises
    ------
    SmartImagingError
        Unreadable image, or a value needed for ``kind`` missing (the message names the option).
    """
    from smartimaging.io.nifti import read_image, write_image
    from smartimaging.io.suv import SUVKind, factor_from_values

    if kind not in SUV_TYPES:
        raise SUVError(f"--type must be one of {sorted(SUV_TYPES)}, got {kind!r}")
    if decay_corrected_to not in ("start", "admin"):
        raise SUVError(f"--decay-corrected-to must be 'start' or 'admin', got {decay_corrected_to!r}")
    pet = read_image(image)
    factor = factor_from_values(
        kind=cast(SUVKind, SUV_TYPES[kind]),
        dose_bq=dose_bq,
        weight_kg=weight_kg,
        height_m=height_m,
        sex=sex,
        uptake_s=uptake_s,
        half_life_s=half_life_s,
        decay_corrected_to=cast(Any, decay_corrected_to),
        source=str(image),
    )
    write_image(pet.with_array((pet.array.astype("float64") * factor.factor).astype("float32")), out)
    lines = [
        f"PET image {image} (Bq/ml, {'x'.join(str(n) for n in pet.shape)})",
        f"SUV{kind} factor: {factor.factor:.6g}",
    ]
    lines.append("values used:")
    lines += [f"  {key}: {_format(value)}" for key, value in factor.tags.items()]
    lines += [f"warning: {w}" for w in factor.warnings]
    lines.append(f"written: {out}")
    return lines


def suv_command(
    pet: Annotated[
        Path,
        typer.Argument(
            help="Folder with one PET DICOM series, or a PET image file in Bq/ml (.nii.gz, .nrrd)."
        ),
    ],
    type: Annotated[
        str, typer.Option("--type", "-t", help="SUV normalisation: bw, lbm (James), lbm_janma, bsa or ibw.")
    ] = "bw",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output NIfTI.")] = Path("suv.nii.gz"),
    weight_kg: Annotated[
        float | None, typer.Option("--weight-kg", help="Patient weight (kg); overrides PatientWeight.")
    ] = None,
    height_m: Annotated[
        float | None, typer.Option("--height-m", help="Patient height (m); overrides PatientSize.")
    ] = None,
    sex: Annotated[
        str | None, typer.Option("--sex", help="Patient sex (M, F or O); overrides PatientSex.")
    ] = None,
    dose_bq: Annotated[
        float | None, typer.Option("--dose-bq", help="Injected activity (Bq, taken as given).")
    ] = None,
    dose_mbq: Annotated[float | None, typer.Option("--dose-mbq", help="Injected activity (MBq).")] = None,
    injection_time: Annotated[
        str | None,
        typer.Option("--injection-time", help="DICOM: injection date-time (ISO, 2025-01-31T09:12:00)."),
    ] = None,
    uptake_min: Annotated[
        float | None, typer.Option("--uptake-min", help="Image file: minutes from injection to scan start.")
    ] = None,
    half_life_s: Annotated[
        float | None,
        typer.Option("--half-life-s", help="Radionuclide half-life (s); image file default F-18 6586.2."),
    ] = None,
    decay_corrected_to: Annotated[
        str,
        typer.Option(
            "--decay-corrected-to", help="Image file: values decay corrected to 'start' or 'admin'."
        ),
    ] = "start",
) -> None:
    """Convert a PET series or Bq/ml image to SUV (NIfTI); print the factor and every value it used."""
    try:
        if dose_bq is not None and dose_mbq is not None:
            raise SUVError("give the dose once: --dose-bq or --dose-mbq, not both")
        dose = dose_bq if dose_mbq is None else dose_mbq * 1e6
        if pet.is_file() and pet.name.lower().endswith(IMAGE_SUFFIXES):
            if injection_time is not None:
                raise SUVError(
                    f"{pet}: --injection-time applies to DICOM input (the scan time is in the headers); for an "
                    "image file give --uptake-min"
                )
            lines = convert_pet_image(
                pet,
                kind=type,
                out=out,
                dose_bq=dose,
                weight_kg=weight_kg,
                height_m=height_m,
                sex=sex,
                uptake_s=None if uptake_min is None else uptake_min * 60.0,
                half_life_s=6586.2 if half_life_s is None else half_life_s,
                decay_corrected_to=decay_corrected_to,
            )
        else:
            if uptake_min is not None:
                raise SUVError(
                    f"{pet}: --uptake-min applies to a Bq/ml image file; DICOM input takes the times from the "
                    "headers (override the injection with --injection-time)"
                )
            try:
                injected = None if injection_time is None else datetime.fromisoformat(injection_time)
            except ValueError:
                raise SUVError(
                    f"--injection-time {injection_time!r} is not an ISO date-time (e.g. 2025-01-31T09:12:00)"
                ) from None
            lines = convert_pet_dir(
                pet,
                kind=type,
                out=out,
                weight_kg=weight_kg,
                height_m=height_m,
                sex=sex,
                dose_bq=dose,
                injection_time=injected,
                half_life_s=half_life_s,
            )
    except SmartImagingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    for line in lines:
        typer.echo(line)
