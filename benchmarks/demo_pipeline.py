"""Time the demo end to end: cohort generation, the study run, a cached re-run.

Usage::

    python benchmarks/demo_pipeline.py [--patients 60] [--jobs 2] [--out /tmp/bench_demo]

Prints wall-clock seconds and peak resident memory of each stage, and the models' AUCs.
Run it on an otherwise idle machine; the figures in the README come from this script.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from smartimaging.study.config import load_study
from smartimaging.study.demo import demo_study
from smartimaging.study.runner import run_study
from smartimaging.synthetic import generate_cohort


def _peak_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="smartimaging_bench_"))
    shutil.rmtree(out / "data", ignore_errors=True)
    shutil.rmtree(out / "results", ignore_errors=True)

    t0 = time.perf_counter()
    generate_cohort(out / "data", n_patients=args.patients, seed=0, n_jobs=args.jobs, progress=False)
    t_gen = time.perf_counter() - t0
    n_files = sum(1 for p in (out / "data" / "dicom").rglob("*.dcm"))

    study = out / "study.yaml"
    study.write_text(
        yaml.safe_dump(demo_study(out / "data", out / "results", jobs=args.jobs)), encoding="utf-8"
    )
    t0 = time.perf_counter()
    summary = run_study(load_study(study), quiet=True, jobs=args.jobs)
    t_run = time.perf_counter() - t0
    t0 = time.perf_counter()
    cached = run_study(load_study(study), quiet=True, jobs=args.jobs)
    t_cached = time.perf_counter() - t0

    print(f"patients: {args.patients}, jobs: {args.jobs}, DICOM files: {n_files}")
    print(f"generate cohort : {t_gen:7.1f} s")
    print(f"study run       : {t_run:7.1f} s  ({summary.n_ok} ok, {summary.n_failed} failed)")
    print(f"cached re-run   : {t_cached:7.1f} s  ({cached.n_cached} patients from cache)")
    print(f"per patient     : {t_run / max(1, args.patients):7.2f} s (study run)")
    print(f"peak RSS        : {_peak_mib():7.0f} MiB (largest of this process and its workers)")
    if summary.models is not None:
        for row in summary.models.table.itertuples():
            print(f"AUC {row.model:<9}: {row.auc:.3f} (95% CI {row.auc_ci_low:.3f}-{row.auc_ci_high:.3f})")
        perm = summary.models.permutation_aucs
        print(f"shuffled labels : mean AUC {sum(perm) / len(perm):.3f} over {len(perm)} permutations")
    print(f"output          : {out}")


if __name__ == "__main__":
    main()
