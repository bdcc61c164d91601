"""Command-line interface: a thin face over the Python API (no logic lives here)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from smartimaging.cli_bundle import register as register_bundle
from smartimaging.cli_deid import deid_command
from smartimaging.cli_extract import extract_command
from smartimaging.cli_pacs import pacs_app
from smartimaging.cli_radiogenomics import register as register_radiogenomics
from smartimaging.cli_robustness import robustness_command
from smartimaging.cli_segeval import register as register_segeval
from smartimaging.cli_segment import segment_app
from smartimaging.cli_segnet import register as register_segnet
from smartimaging.cli_suv import suv_command
from smartimaging.cli_train import register as register_train
from smartimaging.exceptions import SmartImagingError

app = typer.Typer(
    name="smartimaging",
    help="PET/CT smart imaging: from DICOM to validated, explained radiomics models and reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_err = Console(stderr=True)

Jobs = Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars (for scripts).")]


def _default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _fail(exc: SmartImagingError) -> None:
    _err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code=2)


app.command("suv")(suv_command)
app.command("extract")(extract_command)
app.command("deid")(deid_command)
app.add_typer(pacs_app, name="pacs")


@app.command()
def version() -> None:
    """Print the versions of smartimaging and its dependencies."""
    from smartimaging import show_versions

    show_versions()


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Output folder of the cohort.")],
    patients: Annotated[int, typer.Option("--patients", "-n", min=1, help="Number of patients.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same cohort).")] = 0,
    jobs: Jobs = 1,
    quiet: Quiet = False,
) -> None:
    """Generate the synthetic PET/CT cohort as DICOM (CT, PET, RTSTRUCT, SEG), NIfTI and a clinical table."""
    from smartimaging.synthetic import generate_cohort

    try:
        summary = generate_cohort(out, n_patients=patients, seed=seed, n_jobs=jobs, progress=not quiet)
    except SmartImagingError as exc:
        _fail(exc)
    print(f"{summary.n_patients} patients written to {summary.out_dir} in {summary.seconds:.1f} s")


@app.command()
def run(
    study: Annotated[Path, typer.Argument(help="Study YAML file.")],
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", min=1, help="Worker processes (default: the study's).")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Run a study described by one YAML file: ingest, SUV, masks, features, models, report."""
    from smartimaging.study.config import load_study
    from smartimaging.study.runner import run_study, summary_lines

    try:
        summary = run_study(load_study(study), quiet=quiet, jobs=jobs)
    except SmartImagingError as exc:
        _fail(exc)
    for line in summary_lines(summary):
        print(line)


@app.command()
def demo(
    out: Annotated[Path, typer.Argument(help="Output folder.")] = Path("demo_output"),
    patients: Annotated[int, typer.Option("--patients", "-n", min=10, help="Cohort size.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="Worker processes (default: all cores, at most 8)."),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Generate the synthetic cohort and run the whole pipeline on it, ending in report.html."""
    from smartimaging.study.demo import run_demo
    from smartimaging.study.runner import summary_lines

    try:
        summary = run_demo(out, n_patients=patients, seed=seed, jobs=jobs or _default_jobs(), quiet=quiet)
    except SmartImagingError as exc:
        _fail(exc)
    for line in summary_lines(summary):
        print(line)


register_bundle(app)
register_radiogenomics(app)
register_train(app)
app.command("robustness")(robustness_command)
register_segnet(segment_app)
register_segeval(segment_app)
app.add_typer(segment_app, name="segment")


def main() -> None:  # pragma: no cover - console entry point alias
    """Entry point for ``python -m smartimaging``."""
    sys.exit(app())
