"""The study runner at scale: time and peak memory with 1 process, all cores, and Dask, as the cohort grows.

Usage::

    python benchmarks/runner_scaling.py [--sizes 60 250] [--jobs N] [--out DIR] [--with-model]

For each cohort size a synthetic cohort is generated (seed 0; the first patients of a larger cohort
are those of a smaller one), then the study is run from an empty cache with each executor:
``processes`` with 1 job, ``processes`` with ``--jobs`` (default: all cores), and ``dask`` (a local
cluster of ``--jobs`` workers). Per-patient work only (features) unless ``--with-model``. It prints
wall-clock seconds, seconds per patient, and the peak resident memory of the whole process tree
(this process plus every worker, sampled every 50 ms with psutil), and checks that every executor
gives identical features. Extrapolate to 1,000 patients from the per-patient cost (the runner's
per-patient work is independent; the cohort-level steps are linear in the number of patients).
Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import yaml

from smartimaging.study.config import load_study
from smartimaging.study.demo import demo_study
from smartimaging.study.runner import run_study
from smartimaging.synthetic import generate_cohort


class TreeMemory:
    """Peak resident memory of this process and all its descendants, sampled in a thread."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process(os.getpid())
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_once(
    data: Path, out: Path, *, executor: str, jobs: int, with_model: bool
) -> tuple[float, float, pd.DataFrame]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    settings = demo_study(data, out / "results", jobs=jobs)
    settings["executor"] = executor
    if not with_model:
        settings["model"] = None
    study = out / "study.yaml"
    study.write_text(yaml.safe_dump(settings), encoding="utf-8")
    with TreeMemory() as memory:
        t0 = time.perf_counter()
        summary = run_study(load_study(study), quiet=True)
        seconds = time.perf_counter() - t0
    if summary.n_failed:
        raise RuntimeError(f"{summary.n_failed} patient(s) failed; see {out / 'results' / 'failures.csv'}")
    features = pd.read_parquet(out / "results" / "features.parquet").sort_values(["case", "key"])
    return seconds, memory.peak / 2**20, features.reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[60, 250])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--with-model", action="store_true", help="also fit and validate the models")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="smartimaging_scaling_"))
    print(f"cores: {os.cpu_count()}, jobs: {args.jobs}, output: {root}")
    print(f"{'patients':>8} {'executor':<16} {'seconds':>8} {'s/patient':>9} {'peak MiB':>9}")
    for size in args.sizes:
        data = root / f"cohort_{size}"
        if not (data / "cohort.json").is_file():
            t0 = time.perf_counter()
            generate_cohort(data, n_patients=size, seed=0, n_jobs=args.jobs, progress=False)
            print(f"{size:>8} {'(generate)':<16} {time.perf_counter() - t0:8.1f}")
        reference = None
        for executor, jobs in (("processes", 1), ("processes", args.jobs), ("dask", args.jobs)):
            label = f"{executor} x{jobs}"
            seconds, peak, features = run_once(
                data,
                root / f"run_{size}_{executor}_{jobs}",
                executor=executor,
                jobs=jobs,
                with_model=args.with_model,
            )
            if reference is None:
                reference = features
            else:
                pd.testing.assert_frame_equal(features, reference)
            print(f"{size:>8} {label:<16} {seconds:8.1f} {seconds / size:9.3f} {peak:9.0f}")
    print("every executor gave identical features")


if __name__ == "__main__":
    main()
