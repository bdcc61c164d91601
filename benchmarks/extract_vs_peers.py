"""Time the full IBSI 1 extraction of smartimaging against PyRadiomics and Pictologics.

Usage::

    python benchmarks/extract_vs_peers.py [--cases synthetic|sts|all] [--repeats 3] [--sts-repeats 1]
                                          [--rounds 1] [--jobs 2]

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

Each tool is timed in a process of its own (spawned, one tool at a time, so they never run
together): a library's idle worker threads keep spinning for a while after it returns
(OpenBLAS after a large dot product, the OpenMP threads of Numba's parallel loops), and in one
shared process they slowed whichever tool ran next by 10-40 %. The machine's own speed drifts
by 20-30 % over minutes on a shared virtual machine; with ``--rounds N`` the tools take turns N
times, each round in fresh processes, and each case's figure is the median over all its runs.

Peak memory of one extraction of the largest synthetic ROI is measured per tool with
``tracemalloc`` (NumPy and Python allocations; Numba's and C++ allocations are not seen),
and each tool process's peak RSS is printed.

PyRadiomics (PyPI ``pyradiomics-bhklab``) and Pictologics (PyPI ``pictologics``, Python >=
3.12) are optional: a missing peer is reported as 'not installed'. The 51 STS PETs are read
from ``$SMARTIMAGING_SHARED/data/ibsi_sts_validation`` (default ``../shared`` beside the
repository).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
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


def time_it(run: Runner, repeats: int) -> tuple[list[float], int]:
    """``repeats`` timings of ``run`` (s) and the number of values it returned."""
    times, n = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = run()
        times.append(time.perf_counter() - t0)
    return times, n


def peak_mib(run: Runner) -> float:
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def _fmt(x: float | None, w: int = 8, p: int = 3) -> str:
    return f"{'-':>{w}}" if x is None else f"{x:{w}.{p}f}"


def _make_tool(tool: str, bin_width: float) -> tuple[Prepare | None, str]:
    """A tool by name, built in the process that times it."""
    if tool == "ours":
        return prepare_ours(our_settings(bin_width)), "ours"
    if tool == "ours-matched":
        return prepare_ours(our_settings(bin_width, matched=True)), "ours-matched"
    if tool == "pyradiomics":
        return prepare_pyradiomics(bin_width)
    return prepare_pictologics(bin_width)


def _cases(which: str, max_sts: int) -> list[tuple[str, Image, Mask]]:
    return synthetic_cases() if which == "synthetic" else sts_cases()[:max_sts]


def time_tool(tool: str, which: str, repeats: int, bin_width: float, max_sts: int) -> dict[str, object]:
    """Time one tool on every case of ``which`` (run in a process of its own).

    Returns the tool's version (``info``; ``None`` times when it is not installed), its
    warm-up time, the per-case timings (``None`` where it failed), the number of values per
    case, the traced peak memory of one extraction of the last case and the process's peak RSS.
    """
    import numba

    prep, info = _make_tool(tool, bin_width)
    out: dict[str, object] = {"info": info, "times": None, "numba_threads": numba.get_num_threads()}
    if prep is None:
        return out
    warm_img, warm_mask = synthetic_lesion(300, seed=99)
    t0 = time.perf_counter()
    prep(warm_img, warm_mask)()  # Numba JIT, caches
    out["warmup"] = time.perf_counter() - t0
    cases = _cases(which, max_sts)
    times: list[list[float] | None] = []
    nfeat = 0
    for label, image, mask in cases:
        try:
            case_times, nfeat = time_it(prep(image, mask), repeats)
            times.append(case_times)
        except Exception as exc:  # a peer failing on one case must not stop the benchmark
            print(f"  {tool} failed on {label}: {type(exc).__name__}: {exc}", flush=True)
            times.append(None)
    out.update(times=times, nfeat=nfeat, labels=[c[0] for c in cases], voxels=[c[2].n_voxels for c in cases])
    if which == "synthetic":
        image, mask = cases[-1][1], cases[-1][2]
        out["peak_mib"] = peak_mib(prep(image, mask))
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


def bench(
    which: str, tools: list[str], repeats: int, bin_width: float, max_sts: int, rounds: int = 1
) -> tuple[dict[str, list[float | None]], dict[str, dict[str, object]]]:
    """Time every tool on every case, each tool in a spawned process; print one row per case.

    With ``rounds`` > 1 the tools take turns (A B C D A B C D ...), each round in fresh
    processes, and each case's figure is the median over all its runs: a slow spell of the
    machine then falls on every tool rather than on one.
    """
    runs: dict[str, dict[str, object]] = {}
    all_times: dict[str, list[list[float] | None]] = {}
    first_times: dict[str, list[list[float] | None]] = {}  # each case's first run, per round
    spawn = multiprocessing.get_context("spawn")
    for r in range(rounds):
        for tool in tools:
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                run = pool.submit(time_tool, tool, which, repeats, bin_width, max_sts).result()
            runs[tool] = run
            if run["times"] is None:
                if r == 0:
                    print(f"{tool}: {run['info']}")
                continue
            new = list(run["times"])  # type: ignore[call-overload]
            old = all_times.setdefault(tool, [[] for _ in new])
            all_times[tool] = [
                None if a is None or b is None else a + b for a, b in zip(old, new, strict=True)
            ]
            old_first = first_times.setdefault(tool, [[] for _ in new])
            first_times[tool] = [
                None if a is None or b is None else [*a, b[0]] for a, b in zip(old_first, new, strict=True)
            ]
            print(
                f"{tool} (round {r + 1}/{rounds}): {run['info']}, warm-up {run['warmup']:.2f} s, "
                f"peak RSS {run['rss_mib']:.0f} MiB, Numba threads {run['numba_threads']}",
                flush=True,
            )
    names = [t for t in tools if runs[t]["times"] is not None]
    peers = [t for t in names if not t.startswith("ours")]
    head = f"{'case':<16}{'voxels':>8}" + "".join(f"{t + ' ms':>15} " for t in names)
    head += "".join(f"{t + '/' + BASELINE[t]:>26}" for t in peers)
    print(head)
    times: dict[str, list[float | None]] = {
        t: [None if v is None else statistics.median(v) for v in all_times[t]] for t in names
    }
    first = runs[names[0]]
    for i, (label, voxels) in enumerate(zip(first["labels"], first["voxels"], strict=True)):  # type: ignore[call-overload]
        line = f"{label:<16}{voxels:>8}" + "".join(
            _fmt(None if times[t][i] is None else 1e3 * times[t][i], 15, 2) + " "  # type: ignore[operator]
            for t in names
        )
        for t in peers:
            r, ours = times[t][i], times[BASELINE[t]][i]
            line += _fmt(None if r is None or not ours else r / ours, 26, 1)
        print(line)
    print("features per case: " + ", ".join(f"{t} {runs[t]['nfeat']}" for t in names))
    for t in names:
        runs[t]["first"] = [None if v is None else statistics.median(v) for v in first_times[t]]
    return times, runs


def print_ratios(times: dict[str, list[float | None]], what: str, labels: list[str]) -> None:
    """Cohort totals and each peer's per-case ratio to its baseline (naming the cases below the goal)."""
    print(f"{what}: cohort totals (serial, sum of per-case times):")
    for t, vals in times.items():
        ok = [v for v in vals if v is not None]
        print(f"  {t:<14}{sum(ok):8.2f} s over {len(ok)} cases")
    for t in (t for t in times if not t.startswith("ours")):
        ours_times = times[BASELINE[t]]
        pairs = [
            (p / o, label)
            for p, o, label in zip(times[t], ours_times, labels, strict=True)
            if p is not None and o
        ]
        ratios = [r for r, _ in pairs]
        if ratios:
            goal = 10.0 if t == "pyradiomics" else 1.0
            below = ", ".join(f"{label} {r:.2f}x" for r, label in pairs if r < goal)
            print(
                f"  {t}/{BASELINE[t]} per case: median {statistics.median(ratios):.1f}, "
                f"range {min(ratios):.1f}-{max(ratios):.1f}, "
                f">= 10x in {sum(r >= 10 for r in ratios)}, >= 1x in {sum(r >= 1 for r in ratios)} "
                f"of {len(ratios)} cases" + (f"; below {goal:g}x: {below}" if below else "")
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", choices=["synthetic", "sts", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per synthetic case (median)")
    parser.add_argument("--sts-repeats", type=int, default=1, help="timed runs per STS case")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for the batched STS run")
    parser.add_argument("--bin-width", type=float, default=0.25, help="fixed bin width in SUV")
    parser.add_argument("--max-sts", type=int, default=51, help="use only the first N STS patients")
    parser.add_argument("--no-peers", action="store_true", help="time smartimaging only")
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds of the tools taking turns, each in fresh processes"
    )
    args = parser.parse_args()

    tools = ["ours", "ours-matched"] + ([] if args.no_peers else ["pyradiomics", "pictologics"])
    print(f"versions: python {sys.version.split()[0]}, numpy {np.__version__}")
    print(
        f"threads: ours {os.environ.get('SMARTIMAGING_THREADS', '2')} per case (for ROIs >= {THREAD_MIN_VOXELS} "
        "voxels: morphology in the second thread, then both take the other families), "
        f"Pictologics: Numba's parallel kernels; cores {os.cpu_count()}"
    )
    print(
        f"settings: fixed bin width {args.bin_width} SUV from 0, 3D, distance 1, no resampling in the tools"
    )
    print(
        "each tool timed in a spawned process of its own; imports, input conversion and one warm-up run excluded"
    )

    if args.cases in ("synthetic", "all"):
        print(f"\n## synthetic PET lesions, 4 mm grid, median of {args.rounds} x {args.repeats} runs")
        _, runs = bench("synthetic", tools, args.repeats, args.bin_width, args.max_sts, args.rounds)
        label, mask = synthetic_cases()[-1][0], synthetic_cases()[-1][2]
        print(f"\npeak traced memory of one extraction of {label} ({mask.n_voxels} voxels):")
        for t, run in runs.items():
            if "peak_mib" in run:
                print(f"  {t:<14}{run['peak_mib']:8.1f} MiB (tracemalloc)")

    if args.cases in ("sts", "all"):
        t0 = time.perf_counter()
        cases = sts_cases()[: args.max_sts]
        print(
            f"\n## {len(cases)} STS PETs resampled to 3 mm, median of {args.rounds} x {args.sts_repeats} runs per case "
            f"(read + resample {time.perf_counter() - t0:.1f} s per process, excluded)"
        )
        times, runs = bench("sts", tools, args.sts_repeats, args.bin_width, args.max_sts, args.rounds)
        labels = [label for label, _, _ in cases]
        print_ratios(times, "medians", labels)
        # a cohort is extracted once: each case's first run in its process (new array sizes:
        # fresh memory from the system, Moran's I / Geary's C weight spectra of a new shape)
        print_ratios({t: runs[t]["first"] for t in times}, "first run of each case", labels)  # type: ignore[misc]
        batch_cases = [Case(label, image, mask, roi="GTV", modality="PT") for label, image, mask in cases]
        for name, settings in (
            ("ours-matched", our_settings(args.bin_width, matched=True)),
            ("ours", our_settings(args.bin_width)),
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


if __name__ == "__main__":
    main()
