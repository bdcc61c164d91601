"""The ``smartimaging robustness`` command: feature ICCs under segmentations and perturbations.

Registered on the main application with::

    from smartimaging.cli_robustness import robustness_command
    app.command("robustness")(robustness_command)

Usage::

    smartimaging robustness --images DIR --masks DIR --out DIR
        [--segmentation contour,relative:0.4,relative:0.5,fixed:2.5]
        [--perturb dilate,erode,noise,translate,rotate,combined]
        [--adapt-fraction 0.1,0.2 | --adapt-mm 4,8] [--noise-sd estimate] [--angles -10,10]
        [--translations 0.25,0.5] [--combined 4] [--settings S.yaml] [--modality PT]
        [--threshold 0.75] [--criterion lower] [--icc "ICC(2,1)"] [--group all] [--seed 0] [-j N]

Writes ``icc.csv``, ``stable_features.csv``, ``features.csv``, ``conditions.csv`` and
``failures.csv`` into ``--out`` (see :mod:`smartimaging.robustness.study`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, NoReturn, cast

import typer
from rich.console import Console

from smartimaging.exceptions import SmartImagingError

__all__ = ["robustness_command"]

_err = Console(stderr=True)


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"{option} takes numbers separated by commas, got {text!r}") from None


def _fail(message: str) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def robustness_command(
    images: Annotated[
        Path, typer.Option("--images", help="Folder of images (volume files or DICOM series folders).")
    ],
    masks: Annotated[
        Path, typer.Option("--masks", help="Folder of the given contours, paired with the images by name.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    segmentation: Annotated[
        str,
        typer.Option(
            "--segmentation",
            help="Segmentation methods: contour, relative:F (fraction of SUVmax), fixed:T (SUV).",
        ),
    ] = "relative:0.4,relative:0.5,fixed:2.5",
    perturb: Annotated[
        str,
        typer.Option(
            "--perturb", help="Perturbations: dilate, erode, noise, translate, rotate, combined; '' for none."
        ),
    ] = "dilate,erode,noise,translate,rotate",
    adapt_fraction: Annotated[
        str, typer.Option("--adapt-fraction", help="Volume fractions of dilate/erode.")
    ] = "0.1,0.2",
    adapt_mm: Annotated[
        str | None,
        typer.Option("--adapt-mm", help="Distances (mm) of dilate/erode instead of volume fractions."),
    ] = None,
    noise_sd: Annotated[
        str, typer.Option("--noise-sd", help="Noise standard deviation (image units) or 'estimate'.")
    ] = "estimate",
    noise_repetitions: Annotated[int, typer.Option("--noise-repetitions", min=1)] = 2,
    angles: Annotated[str, typer.Option("--angles", help="Axial rotation angles, degrees.")] = "-10,10",
    translations: Annotated[
        str, typer.Option("--translations", help="Grid shifts, fractions of a voxel.")
    ] = "0.25,0.5",
    combined: Annotated[int, typer.Option("--combined", min=0, help="Number of combined perturbations.")] = 4,
    settings: Annotated[
        Path | None, typer.Option("--settings", help="Feature settings YAML (image_processing / features).")
    ] = None,
    modality: Annotated[
        str, typer.Option("--modality", help="Modality of the images (PT adds PET metrics).")
    ] = "PT",
    roi: Annotated[str, typer.Option("--roi", help="ROI name or pattern in RTSTRUCT/SEG masks.")] = "",
    threshold: Annotated[float, typer.Option("--threshold", help="Least ICC of a stable feature.")] = 0.75,
    criterion: Annotated[
        str, typer.Option("--criterion", help="'lower' (CI lower bound) or 'point' (ICC estimate).")
    ] = "lower",
    icc_type: Annotated[
        str, typer.Option("--icc", help="ICC(2,1) (agreement) or ICC(3,1) (consistency).")
    ] = "ICC(2,1)",
    group: Annotated[
        str,
        typer.Option(
            "--group", help="Group whose ICC decides stability: all, segmentation, or a perturbation."
        ),
    ] = "all",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the noise and of the combined draws.")] = 0,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes.")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Features under several segmentations and MIRP-style perturbations: ICCs and a stable-feature list."""
    from smartimaging.features.pipeline import load_study_settings
    from smartimaging.robustness.perturb import perturbation_set
    from smartimaging.robustness.study import (
        cases_from_folders,
        robustness_study,
        stable_features,
        write_results,
    )

    if criterion not in ("lower", "point"):
        _fail(f"--criterion must be 'lower' or 'point', got {criterion!r}")
    if icc_type not in ("ICC(2,1)", "ICC(3,1)"):
        _fail(f"--icc must be 'ICC(2,1)' or 'ICC(3,1)', got {icc_type!r}")
    crit = cast(Literal["lower", "point"], criterion)
    kind = cast(Literal["ICC(2,1)", "ICC(3,1)"], icc_type)
    noise: float | Literal["estimate"] = "estimate"
    if noise_sd != "estimate":
        try:
            noise = float(noise_sd)
        except ValueError:
            _fail(f"--noise-sd must be a number or 'estimate', got {noise_sd!r}")
    kinds = [k.strip() for k in perturb.split(",") if k.strip()]
    try:
        perturbations = perturbation_set(
            kinds,
            adapt_fractions=_floats(adapt_fraction, "--adapt-fraction"),
            adapt_mm=_floats(adapt_mm, "--adapt-mm") if adapt_mm else None,
            noise_repetitions=noise_repetitions,
            noise_sd=noise,
            translations=_floats(translations, "--translations"),
            angles_deg=_floats(angles, "--angles"),
            n_combined=combined,
            seed=seed,
        )
        processing, extraction = load_study_settings(settings) if settings is not None else (None, None)
        cases = cases_from_folders(images, masks, modality=modality, roi=roi)
        result = robustness_study(
            cases,
            segmentations=[s.strip() for s in segmentation.split(",") if s.strip()],
            perturbations=perturbations,
            settings=extraction,
            processing=processing,
            seed=seed,
            n_jobs=jobs,
            progress=not quiet,
        )
        paths = write_results(
            result,
            out,
            group=group,
            icc_type=kind,
            threshold=threshold,
            criterion=crit,
        )
    except (SmartImagingError, ValueError) as exc:
        _fail(str(exc))
    n_cases = result.features["case"].nunique()
    print(f"{n_cases} patient(s), {len(result.conditions)} conditions, {len(result.failures)} failure(s)")
    label = "CI lower bound" if criterion == "lower" else "point estimate"
    for g in dict.fromkeys(result.icc["group"]):
        st = stable_features(result.icc, group=g, icc_type=kind, threshold=threshold, criterion=crit)
        print(f"{g}: {int(st['stable'].sum())}/{len(st)} features with {icc_type} {label} >= {threshold:g}")
    for c, cond, reason in result.failures.itertuples(index=False):
        _err.print(f"[yellow]failed:[/] {c} {cond}: {reason}", highlight=False, soft_wrap=True)
    print(f"written: {', '.join(str(p) for p in paths.values())}")
