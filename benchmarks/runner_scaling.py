"""The study runner at scale: time and peak memory with 1 process, all cores, and Dask, as the cohort grows.

Usage::

    python benchmarks/runner_scaling.py [--sizes 60 250] [--jobs N] [--out DIR] [--with-model]

For each cohort size a synthetic cohort is generated (seed 0; the first patients of a larger cohort
are those of a smaller one), then the study is run from an empty cache with each executor:
``processes`` with 1 job, ``processes`` with ``--jobs`` (default: all cores), and ``dask`` (a local
cluster of ``--jobs`` workers). Per-patient work only (features) unless ``--with-model``. It prints
wall-clock seconds, seconds per patient, CPU seconds of the whole process tree (user + system;
unlike wall time, robust to other load on the machine), and the peak memory of the whole process tree
(this process plus every worker, sampled every 0.2 s with psutil: PSS, and the RSS sum that
double-counts the library pages forked workers share), and checks that every executor
gives identical features. Extrapolate to 1,000 patients from the per-patient cost (the runner's
per-patient work is independent; the cohort-level steps are linear in the number of patients).
Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import resource
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
    """Peak memory of this process and all its descendants, sampled in a thread.

    ``peak`` is the largest sum of proportional set sizes (PSS: a page shared by k processes counts
    1/k in each, so forked workers' shared library pages are not counted once per worker);
    ``peak_rss`` the largest plain sum of resident sizes, which double-counts shared pages.
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak = 0
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process(os.getpid())
        while not self._stop.is_set():
            pss = rss = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    full = proc.memory_full_info()
                except psutil.Error:
                    continue
                pss += getattr(full, "pss", full.rss)
                rss += full.rss
            self.peak = max(self.peak, pss)
            self.peak_rss = max(self.peak_rss, rss)
            time.sleep(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its reaped children so far."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def run_once(
    data: Path, out: Path, *, executor: str, jobs: int, with_model: bool
) -> tuple[float, float, float, float, pd.DataFrame]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    settings = demo_study(data, out / "results", jobs=jobs)
    settings["executor"] = executor
    if not with_model:
        settings["model"] = None
    study = out / "study.yaml"
    study.write_text(yaml.safe_dump(settings), encoding="utf-8")
    with TreeMemory() as memory:
        t0, c0 = time.perf_counter(), _cpu_seconds()
        summary = run_study(load_study(study), quiet=True)
        seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    if summary.n_failed:
        raise RuntimeError(f"{summary.n_failed} patient(s) failed; see {out / 'results' / 'failures.csv'}")
    features = pd.read_parquet(out / "results" / "features.parquet").sort_values(["case", "key"])
    return seconds, cpu, memory.peak / 2**20, memory.peak_rss / 2**20, features.reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[60, 250])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--with-model", action="store_true", help="also fit and validate the models")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="smartimaging_scaling_"))
    print(f"cores: {os.cpu_count()}, jobs: {args.jobs}, output: {root}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (timings need an idle machine; CPU seconds do not)")
    print(
        f"{'patients':>8} {'executor':<16} {'seconds':>8} {'s/patient':>9} {'CPU s':>8} {'CPU s/pt':>8} "
        f"{'PSS MiB':>8} {'RSS MiB':>8}"
    )
    for size in args.sizes:
        data = root / f"cohort_{size}"
        if not (data / "cohort.json").is_file():
            t0 = time.perf_counter()
            generate_cohort(data, n_patients=size, seed=0, n_jobs=args.jobs, progress=False)
            print(f"{size:>8} {'(generate)':<16} {time.perf_counter() - t0:8.1f}")
        reference = None
        for executor, jobs in (("processes", 1), ("processes", args.jobs), ("dask", args.jobs)):
            label = f"{executor} x{jobs}"
            seconds, cpu, peak, peak_rss, features = run_once(
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
            print(
                f"{size:>8} {label:<16} {seconds:8.1f} {seconds / size:9.3f} {cpu:8.1f} {cpu / size:8.3f} "
                f"{peak:8.0f} {peak_rss:8.0f}"
            )
    print("every executor gave identical features")


if __name__ == "__main__":
    main()
