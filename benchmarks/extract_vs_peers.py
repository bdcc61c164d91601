"""Time the full IBSI 1 extraction of smartimaging against PyRadiomics and Pictologics.

Usage::

    python benchmarks/extract_vs_peers.py [--cases synthetic|sts|all] [--repeats 3] [--jobs 2]

Every tool gets the same ROIs and settings: fixed bin width (``--bin-width``, SUV, bins from
0), 3D, neighbourhood distance 1, no resampling inside the tools (the STS PETs are resampled
to 3 mm isotropic beforehand with :mod:`smartimaging.preprocess.resample`). Imports, input
conversion (NumPy -> SimpleITK / Pictologics images) and one JIT warm-up run per tool are
excluded; each case is then timed with ``time.perf_counter`` (median of ``--repeats``; times in ms).

Two configurations of ours are timed: ``ours``, the full IBSI 1 set (218 values for PET:
every family, GLCM/GLRLM both 3D_avg and 3D_vmrg, Moran's I and Geary's C, PET metrics),
compared with PyRadiomics (107 features); and ``ours-matched``, the feature set of the
Pictologics configuration (no Moran's I / Geary's C, which Pictologics computes in O(n^2) and
is left out of its timing; GLCM/GLRLM 3D_vmrg only; no PET metrics), compared with
Pictologics. Ours may use a second thread per case (``SMARTIMAGING_THREADS``: for ROIs of
at least 5,000 voxels, morphology, GLCM and GLRLM beside the other families, or morphology
alone when it computes Moran's I / Geary's C), Pictologics uses Numba's parallel threads (as
many as cores); the thread counts are printed.

Peak memory of one extraction of the largest synthetic ROI is measured per tool with
``tracemalloc`` (NumPy and Python allocations; Numba's and C++ allocations are not seen),
and the process's peak RSS is printed at the end.

PyRadiomics (PyPI ``pyradiomics-bhklab``) and Pictologics (PyPI ``pictologics``, Python >=
3.12) are optional: a missing peer is reported as 'not installed'. The 51 STS PETs are read
from ``$SMARTIMAGING_SHARED/data/ibsi_sts_validation`` (default ``../shared`` beside the
repository).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

from smartimaging.features import pet
from smartimaging.features.batch import Case, extract_batch
from smartimaging.features.extract import FAMILY_TABLE, THREAD_MIN_VOXELS, extract
from smartimaging.features.settings import ExtractionSettings
from smartimaging.image import Image, Mask
from smartimaging.preprocess.resample import resample_image, resample_mask

Runner = Callable[[], int]

#: Which of our configurations each peer is compared with: PyRadiomics with our full IBSI 1 set
#: (it computes 107 features), Pictologics with the same feature set as its configuration.
BASELINE = {"pyradiomics": "ours", "pictologics": "ours-matched"}
Prepare = Callable[[Image, Mask], Runner]


def _shared_dir() -> Path:
    env = os.environ.get("SMARTIMAGING_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


# ---------------------------------------------------------------- cases


def synthetic_lesion(n_target: int, seed: int) -> tuple[Image, Mask]:
    """A textured, lumpy ellipsoidal PET lesion of about ``n_target`` voxels on a 4 mm grid."""
    rng = np.random.default_rng(seed)
    radii = np.array([1.0, 0.8, 0.65])
    scale = (n_target / (4.0 / 3.0 * np.pi * radii.prod())) ** (1.0 / 3.0)
    r = radii * scale
    half = int(np.ceil(r.max() * 1.3)) + 3
    z, y, x = np.mgrid[-half : half + 1, -half : half + 1, -half : half + 1].astype(np.float64)
    dist = np.sqrt((x / r[0]) ** 2 + (y / r[1]) ** 2 + (z / r[2]) ** 2)
    from scipy import ndimage

    bumps = ndimage.gaussian_filter(rng.normal(size=dist.shape), 2.0)
    bumps /= np.abs(bumps).max()
    mask = dist + 0.15 * bumps <= 1.0
    texture = ndimage.gaussian_filter(rng.normal(size=dist.shape), 1.0)
    suv = 1.0 + 8.0 * np.exp(-2.0 * dist**2) + 1.5 * texture / texture.std()
    suv = np.clip(suv + rng.normal(scale=0.3, size=suv.shape), 0.05, None)
    spacing = (4.0, 4.0, 4.0)
    return Image(suv, spacing, meta={"modality": "PT"}), Mask(mask, spacing)


def synthetic_cases() -> list[tuple[str, Image, Mask]]:
    return [
        (f"synthetic {n // 1000 or 0.5}k", *synthetic_lesion(n, seed=i))
        for i, n in enumerate((500, 4000, 30000))
    ]


def sts_cases(spacing_mm: float = 3.0) -> list[tuple[str, Image, Mask]]:
    import SimpleITK as sitk

    root = _shared_dir() / "data" / "ibsi_sts_validation" / "nifti"
    if not root.is_dir():
        sys.exit(
            f"STS cohort not found at {root}: set SMARTIMAGING_SHARED to the folder holding "
            "data/ibsi_sts_validation, or run with --cases synthetic"
        )
    out = []
    for folder in sorted(root.glob("STS_*")):
        img = Image.from_sitk(sitk.ReadImage(str(folder / "PET_image.nii.gz")))
        msk = Mask.from_image(Image.from_sitk(sitk.ReadImage(str(folder / "PET_mask.nii.gz"))))
        sp = (spacing_mm, spacing_mm, spacing_mm)
        img3 = resample_image(img, spacing=sp, interpolation="linear")
        msk3 = resample_mask(msk, spacing=sp, interpolation="linear", threshold=0.5)
        out.append((folder.name, img3, msk3))
    return out


# ---------------------------------------------------------------- tools


#: Moran's I and Geary's C: Pictologics computes them by an O(n^2) loop (minutes at 30k voxels),
#: so its timed configuration leaves them out, and so does ours when matched to it.
SPATIAL_AUTOCORRELATION = ("Moran's I index", "Geary's C measure")


def our_settings(bin_width: float, matched: bool = False) -> ExtractionSettings:
    """Our full IBSI 1 set, or (``matched``) the features of the Pictologics configuration.

    Matched: no Moran's I / Geary's C, no PET metrics, and one aggregation per texture family
    (GLCM and GLRLM merged over the 13 directions, 3D_vmrg, as Pictologics computes them).
    """
    if not matched:
        return ExtractionSettings(
            discretisation="fixed_bin_size", bin_width=bin_width, bin_lower_bound=0.0, distance=1
        )
    return ExtractionSettings(
        families=tuple(f for f in FAMILY_TABLE if f != pet.FAMILY),
        discretisation="fixed_bin_size",
        bin_width=bin_width,
        bin_lower_bound=0.0,
        distance=1,
        aggregation=("3D_vmrg", "3D"),
        exclude_features=SPATIAL_AUTOCORRELATION,
    )


def prepare_ours(settings: ExtractionSettings) -> Prepare:
    def prepare(image: Image, mask: Mask) -> Runner:
        return lambda: len(extract(image, mask, settings=settings, modality="PT"))

    return prepare


def prepare_pyradiomics(bin_width: float) -> tuple[Prepare | None, str]:
    try:
        import logging

        import radiomics
        from radiomics.featureextractor import RadiomicsFeatureExtractor
    except ImportError:
        return None, "not installed"
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractor = RadiomicsFeatureExtractor(binWidth=bin_width, distances=[1], force2D=False, label=1)
    extractor.disableAllFeatures()
    extractor.enableAllFeatures()  # every default class: firstorder, shape, glcm, glrlm, glszm, gldm, ngtdm

    def prepare(image: Image, mask: Mask) -> Runner:
        simg = image.to_sitk()
        smask = Image(mask.array.astype(np.uint8), mask.spacing, mask.origin, mask.direction).to_sitk()

        def run() -> int:
            res = extractor.execute(simg, smask)
            return sum(1 for k in res if not k.startswith("diagnostics"))

        return run

    return prepare, f"pyradiomics {radiomics.__version__}"


def prepare_pictologics(bin_width: float) -> tuple[Prepare | None, str]:
    try:
        import pictologics
        from pictologics import RadiomicsPipeline
        from pictologics.loader import Image as PImage
    except ImportError:
        return None, "not installed"
    config = [
        {"step": "discretise", "params": {"method": "FBS", "bin_width": bin_width, "min_val": 0.0}},
        {
            "step": "extract_features",
            "params": {
                "families": ["intensity", "morphology", "texture", "histogram", "ivh"],
                "include_spatial_intensity": False,  # Moran's I / Geary's C: >7 min at 30k voxels in a trial
                "include_local_intensity": True,
            },
        },
    ]
    pipeline = RadiomicsPipeline()
    pipeline.add_config("bench", config)

    def prepare(image: Image, mask: Mask) -> Runner:
        # Pictologics images are (x, y, z) arrays
        pimg = PImage(
            array=np.ascontiguousarray(image.array.transpose(2, 1, 0)),
            spacing=tuple(image.spacing),
            origin=tuple(image.origin),
            direction=image.direction,
            modality="PT",
        )
        pmask = PImage(
            array=np.ascontiguousarray(mask.array.transpose(2, 1, 0).astype(np.uint8)),
            spacing=tuple(mask.spacing),
            origin=tuple(mask.origin),
            direction=mask.direction,
            modality="mask",
        )

        def run() -> int:
            res = pipeline.run(pimg, pmask, config_names=["bench"])
            return int(res["bench"].notna().sum())

        return run

    return prepare, f"pictologics {pictologics.__version__}"


# ---------------------------------------------------------------- timing


def time_it(run: Runner, repeats: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), n


def peak_mib(run: Runner) -> float:
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def _fmt(x: float | None, w: int = 8, p: int = 3) -> str:
    return f"{'-':>{w}}" if x is None else f"{x:{w}.{p}f}"


def bench(
    cases: list[tuple[str, Image, Mask]],
    tools: dict[str, Prepare],
    repeats: int,
    show: bool,
) -> dict[str, list[float | None]]:
    """Time every tool on every case; print one row per case when ``show``."""
    names = list(tools)
    peers = [t for t in names if not t.startswith("ours")]
    times: dict[str, list[float | None]] = {t: [] for t in names}
    nfeat: dict[str, int] = {}
    if show:
        head = f"{'case':<16}{'voxels':>8}" + "".join(f"{t + ' ms':>15} " for t in names)
        head += "".join(f"{t + '/' + BASELINE[t]:>26}" for t in peers)
        print(head)
    for label, image, mask in cases:
        row: dict[str, float | None] = {}
        for t in names:
            try:
                run = tools[t](image, mask)
                row[t], nfeat[t] = time_it(run, repeats)
            except Exception as exc:  # a peer failing on one case must not stop the benchmark
                print(f"  {t} failed on {label}: {type(exc).__name__}: {exc}")
                row[t] = None
            times[t].append(row[t])
        if show:
            line = f"{label:<16}{mask.n_voxels:>8}" + "".join(
                _fmt(None if row[t] is None else 1e3 * row[t], 15, 2) + " " for t in names
            )
            for t in peers:
                r, ours = row[t], row[BASELINE[t]]
                line += _fmt(None if r is None or not ours else r / ours, 26, 1)
            print(line)
    print("features per case: " + ", ".join(f"{t} {nfeat.get(t, 0)}" for t in names))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", choices=["synthetic", "sts", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per synthetic case (median)")
    parser.add_argument("--sts-repeats", type=int, default=1, help="timed runs per STS case")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for the batched STS run")
    parser.add_argument("--bin-width", type=float, default=0.25, help="fixed bin width in SUV")
    parser.add_argument("--max-sts", type=int, default=51, help="use only the first N STS patients")
    parser.add_argument("--no-peers", action="store_true", help="time smartimaging only")
    args = parser.parse_args()

    ours_full = our_settings(args.bin_width)
    tools: dict[str, Prepare] = {
        "ours": prepare_ours(ours_full),
        "ours-matched": prepare_ours(our_settings(args.bin_width, matched=True)),
    }
    versions = [f"python {sys.version.split()[0]}", f"numpy {np.__version__}"]
    if not args.no_peers:
        for name, maker in (("pyradiomics", prepare_pyradiomics), ("pictologics", prepare_pictologics)):
            prep, info = maker(args.bin_width)
            print(f"{name}: {info}")
            if prep is not None:
                tools[name] = prep
                versions.append(info)
    print("versions: " + ", ".join(versions))
    import numba

    print(
        f"threads: ours {os.environ.get('SMARTIMAGING_THREADS', '2')} per case (for ROIs >= {THREAD_MIN_VOXELS} voxels: "
        f"morphology, GLCM, GLRLM beside the other families; morphology alone with Moran's I / Geary's C), "
        f"Numba {numba.get_num_threads()} "
        f"(Pictologics' parallel kernels), cores {os.cpu_count()}"
    )
    print(
        f"settings: fixed bin width {args.bin_width} SUV from 0, 3D, distance 1, no resampling in the tools"
    )

    # one warm-up run per tool (Numba JIT, caches), excluded from every timing
    warm_img, warm_mask = synthetic_lesion(300, seed=99)
    for t, prep in tools.items():
        t0 = time.perf_counter()
        prep(warm_img, warm_mask)()
        print(f"warm-up {t}: {time.perf_counter() - t0:.2f} s")

    if args.cases in ("synthetic", "all"):
        print(f"\n## synthetic PET lesions, 4 mm grid, median of {args.repeats}")
        cases = synthetic_cases()
        bench(cases, tools, args.repeats, show=True)
        label, image, mask = cases[-1]
        print(f"\npeak traced memory of one extraction of {label} ({mask.n_voxels} voxels):")
        for t, prep in tools.items():
            print(f"  {t:<14}{peak_mib(prep(image, mask)):8.1f} MiB (tracemalloc)")

    if args.cases in ("sts", "all"):
        t0 = time.perf_counter()
        cases = sts_cases()[: args.max_sts]
        print(
            f"\n## {len(cases)} STS PETs resampled to 3 mm (read + resample {time.perf_counter() - t0:.1f} s, excluded)"
        )
        times = bench(cases, tools, args.sts_repeats, show=True)
        print("cohort totals (serial, sum of per-case times):")
        for t, vals in times.items():
            ok = [v for v in vals if v is not None]
            print(f"  {t:<14}{sum(ok):8.2f} s over {len(ok)} cases")
        for t in (t for t in times if not t.startswith("ours")):
            ours_times = times[BASELINE[t]]
            ratios = [p / o for p, o in zip(times[t], ours_times, strict=True) if p is not None and o]
            if ratios:
                print(
                    f"  {t}/{BASELINE[t]} per case: median {statistics.median(ratios):.1f}, "
                    f"range {min(ratios):.1f}-{max(ratios):.1f}, "
                    f">= 10x in {sum(r >= 10 for r in ratios)}, >= 1x in {sum(r >= 1 for r in ratios)} "
                    f"of {len(ratios)} cases"
                )
        batch_cases = [Case(label, image, mask, roi="GTV", modality="PT") for label, image, mask in cases]
        for name, settings in (
            ("ours-matched", our_settings(args.bin_width, matched=True)),
            ("ours", ours_full),
        ):
            for jobs in sorted({1, args.jobs}):
                t0 = time.perf_counter()
                result = extract_batch(batch_cases, settings=settings, n_jobs=jobs)
                dt = time.perf_counter() - t0
                print(
                    f"  {name} extract_batch n_jobs={jobs}: {dt:.2f} s "
                    f"({len(result.table)} rows, {len(result.failures)} failures)",
                    flush=True,
                )

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    print(
        f"\npeak RSS: this process {own:.0f} MiB (every tool timed in this run), batch workers {kids:.0f} MiB"
    )


if __name__ == "__main__":
    main()
