"""Dice (and HD95 when available) of every semi-automatic method, and whole-body detection figures.

Usage::

    python benchmarks/segmentation_methods.py [--n-patients 20] [--n-slices 80] [--skip-sts]

* Synthetic cohort (``smartimaging.synthetic.make_patient(i, seed=0)``, in memory): every lesion,
  seeded by a point at the lesion's programmed centre (``--seed point``) or by the true contour
  (``--seed contour``: the method refines a "rough manual ROI" inside its box + 10 mm), against
  the ground-truth label on the PET grid. SUV = Bq/ml x weight / decayed dose (SUVbw as
  programmed). PERCIST uses a 3 cm sphere in the right liver lobe away from the lesions.
  Whole-body detection: sensitivity (true lesions touched by a detected lesion) and false
  positives per patient, for SUV 2.5 and PERCIST thresholds, with the anatomy rules and with the
  phantom's organ masks (heart, bladder, kidneys).
* 51 soft-tissue-sarcoma FDG PETs (IBSI validation set, ``$SMARTIMAGING_SHARED/data/
  ibsi_sts_validation``, images already in SUVbw and cropped 5 cm around the GTV): each
  method refines the GTV_Mass contour (the contour seed), against that GTV. PERCIST is skipped
  (no liver in the crop).

HD95 (mm) is printed when ``smartimaging.segment.metrics.hd95`` exists.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from smartimaging.image import Image, Mask, resample_to
from smartimaging.segment.methods import segment_lesion
from smartimaging.segment.metrics import dice
from smartimaging.segment.wholebody import detect_lesions

try:
    from smartimaging.segment.metrics import hd95 as _hd95  # type: ignore[attr-defined]
except ImportError:  # the robust helper's metrics are not merged yet
    _hd95 = None

HD95: Callable[[Mask, Mask], float] | None = _hd95

Rows = dict[str, list[tuple[float, float, bool]]]
"""method label -> (Dice, HD95, failed) per lesion"""

#: (row label, method, parameters)
METHODS: list[tuple[str, str, dict[str, Any]]] = [
    ("fixed SUV 2.5", "fixed", {"threshold": 2.5}),
    ("relative 40% SUVmax", "relative", {"fraction": 0.40}),
    ("relative 41% SUVmax", "relative", {"fraction": 0.41}),
    ("relative 50% SUVmax", "relative", {"fraction": 0.50}),
    ("relative 50% SUVpeak", "relative", {"fraction": 0.50, "reference": "peak"}),
    ("adaptive (Nestle, beta 0.15)", "adaptive", {"beta": 0.15}),
    ("adaptive (Nestle, beta 0.3)", "adaptive", {"beta": 0.3}),
    ("PERCIST liver", "percist", {}),
    ("gradient watershed", "gradient", {}),
    ("region growing 50%", "region_growing", {"fraction": 0.5}),
]


def _shared() -> Path:
    return Path(os.environ.get("SMARTIMAGING_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


def _suv(p: Any) -> Image:
    return p.pet_bqml.with_array(p.pet_bqml.array * p.weight_kg * 1000.0 / p.decayed_dose_bq)


def _liver_point(p: Any) -> tuple[float, float, float]:
    c0, s0 = p.body.organs()["liver"]
    cands = [
        c0 + np.array([dx, 0.0, dz])
        for dx in (-0.4 * s0[0], -0.2 * s0[0], 0.0)
        for dz in (0.0, 0.3 * s0[2], -0.3 * s0[2])
    ]
    les = [np.array(t.centre_mm) for t in p.lesions]
    best = max(cands, key=lambda c: min(float(np.linalg.norm(c - q)) for q in les))
    return (float(best[0]), float(best[1]), float(best[2]))


def _organs(p: Any, suv: Image) -> dict[str, Mask]:
    org = p.body.organs()
    zz, yy, xx = np.indices(suv.shape)
    pts = suv.index_to_physical(np.stack([xx, yy, zz], -1).reshape(-1, 3)).reshape(*suv.shape, 3)
    out = {}
    for name, keys in {
        "heart": ["heart"],
        "bladder": ["bladder"],
        "kidneys": ["kidney_left", "kidney_right"],
    }.items():
        arr = np.zeros(suv.shape, bool)
        for k in keys:
            c, s = org[k]
            arr |= (((pts - c) / s) ** 2).sum(-1) <= 1
        out[name] = Mask(arr, suv.spacing, suv.origin, suv.direction.copy())
    return out


def _score(rows: Rows, label: str, mask: Mask | None, truth: Mask) -> None:
    if mask is None:
        rows.setdefault(label, []).append((0.0, float("nan"), True))
        return
    d = dice(mask, truth)
    h = HD95(mask, truth) if HD95 is not None and mask.n_voxels else float("nan")
    rows.setdefault(label, []).append((d, h, False))


def _run_methods(
    suv: Image,
    truth: Mask,
    rows: Rows,
    seed: dict[str, Any],
    extra: dict[str, Any],
) -> None:
    for label, method, params in METHODS:
        if method == "percist" and "liver_point_mm" not in extra:
            continue
        kw = {**params, **(extra if method == "percist" else {})}
        try:
            mask = segment_lesion(suv, method=method, **seed, **kw)
        except Exception as exc:  # a failure counts as Dice 0 and is reported
            print(f"    {label}: {type(exc).__name__}: {str(exc)[:120]}", file=sys.stderr)
            mask = None
        _score(rows, label, mask, truth)


def _table(title: str, rows: Rows) -> None:
    print(f"\n{title}")
    head = f"{'method':32s} {'n':>4s} {'Dice median':>11s} {'IQR':>13s} {'mean':>6s} {'fail':>4s}"
    if HD95 is not None:
        head += f" {'HD95 median mm':>15s}"
    print(head)
    for label, _, _ in METHODS:
        if label not in rows:
            continue
        d = np.array([r[0] for r in rows[label]])
        q1, q3 = np.percentile(d, [25, 75])
        fails = sum(r[2] for r in rows[label])
        line = f"{label:32s} {d.size:4d} {np.median(d):11.3f} {q1:6.3f}-{q3:6.3f} {d.mean():6.3f} {fails:4d}"
        if HD95 is not None:
            h = np.array([r[1] for r in rows[label]])
            line += f" {np.nanmedian(h):15.1f}"
        print(line)


def synthetic(n_patients: int, n_slices: int, seed_kind: str) -> None:
    from smartimaging.synthetic import make_patient

    rows: Rows = {}
    primaries: Rows = {}
    wb: dict[str, list[int]] = {}
    t0 = time.perf_counter()
    for i in range(n_patients):
        p = make_patient(i, seed=0, n_slices=n_slices)
        suv = _suv(p)
        liver = _liver_point(p)
        for k, lesion in enumerate(p.lesions, start=1):
            truth = Mask(p.lesion_labels.array == k, suv.spacing, suv.origin, suv.direction.copy())
            if truth.n_voxels == 0:
                continue
            seed = {"seed_mm": lesion.centre_mm} if seed_kind == "point" else {"contour": truth}
            _run_methods(suv, truth, rows, seed, {"liver_point_mm": liver})
            if k == 1:
                for label in rows:
                    primaries.setdefault(label, []).append(rows[label][-1])
        ct = resample_to(p.ct, suv, default_value=-1000.0)
        organs = _organs(p, suv)
        for name, kw in (
            ("SUV 2.5, anatomy rules", {"threshold": 2.5, "ct": ct}),
            ("PERCIST, anatomy rules", {"threshold": "percist", "liver_point_mm": liver, "ct": ct}),
            (
                "PERCIST, organ masks",
                {"threshold": "percist", "liver_point_mm": liver, "organ_masks": organs},
            ),
            ("SUV 2.5, organ masks", {"threshold": 2.5, "organ_masks": organs, "ct": ct}),
        ):
            found = detect_lesions(suv, **kw)  # type: ignore[arg-type]
            lab, det = p.lesion_labels.array, found.labels.array
            hit: set[int] = set()
            fp = 0
            for j in range(1, int(det.max()) + 1):
                under = np.unique(lab[det == j])
                under = under[under > 0]
                hit.update(int(v) for v in under) if under.size else None
                fp += 0 if under.size else 1
            c = wb.setdefault(name, [0, 0, 0])
            c[0] += int(lab.max())
            c[1] += len(hit)
            c[2] += fp
    print(
        f"synthetic cohort: {n_patients} patients, {n_slices} slices, seed = {seed_kind} ({time.perf_counter() - t0:.0f} s)"
    )
    _table(f"all lesions (seed: {seed_kind})", rows)
    _table(f"primaries (lesion 1; seed: {seed_kind})", primaries)
    print("\nwhole-body detection (synthetic)")
    print(f"{'rule':28s} {'lesions':>7s} {'detected':>8s} {'sensitivity':>11s} {'FP/patient':>10s}")
    for name, (n, h, f) in wb.items():
        print(f"{name:28s} {n:7d} {h:8d} {h / max(n, 1):11.2f} {f / n_patients:10.2f}")


def sts(shared: Path) -> None:
    from smartimaging.io.nifti import read_image, read_mask

    root = shared / "data" / "ibsi_sts_validation" / "nifti"
    if not root.is_dir():
        print(f"\nSTS: {root} not found (set SMARTIMAGING_SHARED); skipped")
        return
    rows: Rows = {}
    t0 = time.perf_counter()
    cases = sorted(root.iterdir())
    for case in cases:
        img = read_image(case / "PET_image.nii.gz")
        suv = img.with_array(img.array.astype(np.float64))
        truth = read_mask(case / "PET_mask.nii.gz")
        truth = truth if truth.same_geometry(suv) else Mask.from_image(resample_to(truth, suv))
        _run_methods(suv, truth, rows, {"contour": truth}, {})
    print(
        f"\n51 STS FDG PETs vs GTV_Mass (contour seed, box + 10 mm; {len(cases)} cases, {time.perf_counter() - t0:.0f} s)"
    )
    _table("STS", rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-patients", type=int, default=20)
    ap.add_argument("--n-slices", type=int, default=80)
    ap.add_argument("--seed", choices=["point", "contour"], default="point")
    ap.add_argument("--skip-sts", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args()
    print(
        f"HD95: {'smartimaging.segment.metrics.hd95' if HD95 else 'not available (metrics.hd95 not merged)'}"
    )
    if not args.skip_synthetic:
        synthetic(args.n_patients, args.n_slices, args.seed)
    if not args.skip_sts:
        sts(_shared())


if __name__ == "__main__":
    main()
