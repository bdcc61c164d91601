"""Header-reading speed of :func:`smartimaging.io.dicom.discover` on a DICOM tree.

Usage::

    PYTHONPATH=src python benchmarks/discover_speed.py [FOLDER] [--patients 60] [--repeat 3]

Without FOLDER the 60-patient demo cohort is generated in a temporary folder first. Prints files,
series, seconds and headers/s (best of ``--repeat`` runs; the first run also warms the OS file cache),
and, for comparison, the same files read with ``pydicom.dcmread(stop_before_pixels=True)``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import pydicom

from smartimaging.io.dicom import discover


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=None)
    parser.add_argument("--patients", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tmp = None
    folder = args.folder
    if folder is None:
        from smartimaging.synthetic import generate_cohort

        tmp = Path(tempfile.mkdtemp(prefix="discover_speed_"))
        generate_cohort(tmp, n_patients=args.patients, progress=False)
        folder = tmp / "dicom"
    try:
        best = float("inf")
        for _ in range(args.repeat):
            result = discover(folder)
            best = min(best, result.seconds)
        n = result.n_files_scanned
        print(f"discover: {n} files, {len(result.series)} series, {len(result.problems)} problems")
        print(f"discover: {best:.2f} s, {n / best:.0f} headers/s (best of {args.repeat})")
        files = [f for s in result.series for f in s.files]
        t0 = time.perf_counter()
        for f in files:
            pydicom.dcmread(f, stop_before_pixels=True)
        seconds = time.perf_counter() - t0
        print(
            f"pydicom.dcmread(stop_before_pixels=True): {seconds:.2f} s, {len(files) / seconds:.0f} headers/s"
        )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
