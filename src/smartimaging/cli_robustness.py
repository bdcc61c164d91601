"""The ``smartimaging robustness`` command: feature ICCs under segmentations and perturbations.

Registered on the main application with::

    from smartimaging.cli_robustness import robustness_command
    app.command("robustness")(robustness_command)

Usage::

    smartimaging robustness (--images DIR --masks DIR | --study STUDY.yaml) --out DIR
        [--segmentation contour,relative:0.4,relative:0.5,fixed:2.5]
        [--perturb dilate,erode,noise,translate,rotate,combined]
        [--adapt-fraction 0.1,0.2 | --adapt-mm 4,8] [--noise-sd estimate] [--angles -10,10]
        [--translations 0.25,0.5] [--combined 4] [--settings S.yaml] [--modality PT]
        [--threshold 0.75] [--criterion lower] [--icc "ICC(2,1)"] [--group all] [--seed 0] [-j N]

With ``--study``, the patients, their SUV images and lesion masks come from the study file as
``smartimaging run`` reads them (DICOM series with SUV conversion and the configured mask
sources, or NIfTI input); the contour is the patient's primary ROI
(``segmentation.primary_roi``, default the largest), and the study's ``features`` settings, seed
and jobs are used unless ``--settings``, ``--seed`` or ``--jobs`` are given.

Writes ``icc.csv``, ``stable_features.csv``, ``features.csv``, ``conditions.csv`` and
``failures.csv`` into ``--out`` (see :mod:`smartimaging.robustness.study`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, NoReturn, cast

import typer
from rich.console import Console

from smartimaging.exceptions import SmartImagingError
from smartimaging.image import Image, Mask

if TYPE_CHECKING:
    from smartimaging.features.settings import ExtractionSettings
    from smartimaging.robustness.study import CaseSource
    from smartimaging.study.patient import PatientTask

__all__ = ["StudyCase", "robustness_command", "study_cases"]

_err = Console(stderr=True)


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"{option} takes numbers separated by commas, got {text!r}") from None


def _fail(message: str) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


@dataclass(frozen=True)
class StudyCase:
    """One patient of a study file, loaded as ``smartimaging run`` loads it (a ``CaseSource``)."""

    task: PatientTask

    @property
    def case(self) -> str:
        """The PatientID."""
        return self.task.patient_id

    def load(self) -> tuple[Image, Mask, str]:
        """SUV image, the primary lesion mask and ``'PT'``."""
        # the study's own per-patient reader, so that SUV and masks are exactly those of a run
        from smartimaging.study.patient import suv_and_masks

        images = suv_and_masks(self.task)
        return images.suv, images.masks[images.primary], "PT"


def study_cases(path: Path) -> tuple[list[CaseSource], ExtractionSettings, int, int]:
    """The patients, extraction settings, seed and jobs of a study file."""
    from smartimaging.features.settings import ExtractionSettings
    from smartimaging.io.dicom import discover
    from smartimaging.study.config import load_study
    from smartimaging.study.patient import tasks_from_nifti, tasks_from_series
    from smartimaging.study.runner import clinical_overrides, read_clinical

    config = load_study(path)
    clinical = read_clinical(config)
    if config.input.nifti is not None:
        tasks = tasks_from_nifti(config, None if clinical is None else list(clinical.index))
    else:
        if config.input.dicom_dir is None or not config.input.dicom_dir.is_dir():
            raise SmartImagingError(f"input.dicom_dir of {path}: folder not found: {config.input.dicom_dir}")
        tasks = tasks_from_series(
            discover(config.input.dicom_dir).series, config, clinical_overrides(config, clinical)
        )
    settings = ExtractionSettings.model_validate(config.features)
    return [StudyCase(t) for t in tasks], settings, config.seed, config.jobs


def robustness_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    images: Annotated[
        Path | None, typer.Option("--images", help="Folder of images (volume files or DICOM series folders).")
    ] = None,
    masks: Annotated[
        Path | None,
        typer.Option("--masks", help="Folder of the given contours, paired with the images by name."),
    ] = None,
    study: Annotated[
        Path | None,
        typer.Option("--study", help="Study YAML: patients, SUV, lesion masks and feature settings."),
    ] = None,
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
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of the noise and of the combined draws (default 0).")
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", min=1, help="Worker processes (default 1).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Features under several segmentations and MIRP-style perturbations: ICCs and a stable-feature list."""
    from smartimaging.features.batch import Case
    from smartimaging.features.pipeline import load_study_settings
    from smartimaging.robustness.perturb import perturbation_set
    from smartimaging.robustness.study import (
        cases_from_folders,
        robustness_study,
        stable_features,
        write_results,
    )

    if (study is None) == (images is None or masks is None) or (study is not None and (images or masks)):
        _fail("give either --images and --masks, or --study")
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
        cases: list[CaseSource] | list[Case]
        extraction: ExtractionSettings | None = None
        study_seed, study_jobs = 0, 1
        if study is not None:
            cases_s, extraction, study_seed, study_jobs = study_cases(study)
            cases = cases_s
        else:
            assert images is not None and masks is not None
            cases = cases_from_folders(images, masks, modality=modality, roi=roi)
        seed = study_seed if seed is None else seed
        jobs = study_jobs if jobs is None else jobs
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
        processing = None
        if settings is not None:
            processing, extraction = load_study_settings(settings)
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
