"""The demo: generate the embedded synthetic cohort, write its study file, run it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from smartimaging import __version__
from smartimaging.atomic import write_text
from smartimaging.study.config import load_study
from smartimaging.study.runner import RunSummary, run_study
from smartimaging.synthetic import generate_cohort
from smartimaging.synthetic.cohort import GENERATOR_VERSION

__all__ = ["demo_study", "run_demo"]

#: Clinical columns of the synthetic cohort used by the clinical and combined models.
DEMO_CLINICAL_COLUMNS = ["age", "sex", "tumour_marker", "stage"]


def demo_study(data_dir: Path, output_dir: Path, *, seed: int = 0, jobs: int = 1) -> dict[str, object]:
    """The study settings of the demo (as a plain mapping, written to ``study.yaml``)."""
    return {
        "name": "smartimaging demo (synthetic FDG PET/CT cohort)",
        "seed": seed,
        "jobs": jobs,
        "input": {
            "dicom_dir": str(data_dir / "dicom"),
            "clinical": str(data_dir / "clinical.csv"),
            "id_column": "patient_id",
        },
        "output_dir": str(output_dir),
        "suv": {"type": "bw"},
        "segmentation": {"source": ["rtstruct", "seg"], "roi": "GTV_.*"},
        "features": {},
        "model": {
            "target": "label",
            "clinical_columns": DEMO_CLINICAL_COLUMNS,
            # two classifiers on identical folds, selection refitted inside every training fold
            "kinds": ["logistic", "lightgbm"],
            "selection": ["nzv", {"name": "fdr", "alpha": 0.05}],
            "validation": "cv",
            "n_splits": 5,
            "n_repeats": 3,
            "inner_splits": 2,
            "n_permutations": 10,
            "importance_repeats": 2,
            # survival models of the same sets: C-index, Kaplan-Meier of risk groups with log-rank
            "survival": {"time": "time_months", "event": "event", "kinds": ["cox"], "time_unit": "months"},
        },
    }


def _cohort_matches(data_dir: Path, n_patients: int, seed: int) -> bool:
    """Whether ``data_dir`` holds the cohort this version would generate (same size, seed, generator)."""
    meta = data_dir / "cohort.json"
    if not meta.is_file():
        return False
    info = json.loads(meta.read_text(encoding="utf-8"))
    return bool(
        info.get("n_patients") == n_patients
        and info.get("seed") == seed
        and info.get("generator_version") == GENERATOR_VERSION
        and info.get("smartimaging_version") == __version__
    )


def run_demo(
    out: Path, *, n_patients: int = 60, seed: int = 0, jobs: int = 1, quiet: bool = False
) -> RunSummary:
    """Generate (or reuse) the synthetic cohort under ``out/data`` and run the demo study.

    The study file is written to ``out/study.yaml`` so that the run can be repeated with
    ``smartimaging run out/study.yaml``; results go to ``out/results``.
    """
    out = Path(out).resolve()
    data_dir = out / "data"
    if not _cohort_matches(data_dir, n_patients, seed):
        generate_cohort(data_dir, n_patients=n_patients, seed=seed, n_jobs=jobs, progress=not quiet)
    study_path = out / "study.yaml"
    write_text(
        study_path,
        yaml.safe_dump(demo_study(data_dir, out / "results", seed=seed, jobs=jobs), sort_keys=False),
    )
    return run_study(load_study(study_path), quiet=quiet, jobs=jobs)
