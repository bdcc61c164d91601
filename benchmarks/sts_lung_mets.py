"""Lung metastasis (19/51) in soft-tissue sarcoma from FDG-PET features we extract ourselves.

Usage::

    SMARTIMAGING_SHARED=/work/shared PYTHONPATH=src python -u benchmarks/sts_lung_mets.py
        [--cache DIR] [--jobs 2] [--repeats 5] [--quick] [--mrmr]

Data: ``/work/shared/data/ibsi_sts_validation`` (see its README): 51 FDG-PET images already in
SUVbw (NIfTI, cropped 5 cm around the tumour) with the GTV_Mass mask, and the lung-metastasis
outcome of Vallieres et al. 2015 (19 of 51 positive).

Extraction (smartimaging, per the IBSI STS validation's PET processing as the README gives it):
resampling to 3 x 3 x 3 mm (trilinear image, trilinear mask thresholded at 0.5), re-segmentation
to SUV >= 0, fixed bin width 0.5 SUV from 0 for texture and histogram, 3D-averaged texture
(``3D_avg``; ``3D`` for the zone matrices), every IBSI family plus the PET family (SUVmax, SUVpeak,
SUVmean, MTV, TLG), without Moran's I and Geary's C (quadratic in the voxel count). The bin width,
the re-segmentation and the aggregation are our choices (the README gives only the 3 mm grid).
The wide table is cached as ``DIR/sts_pet_features.csv`` (``--cache``, default a folder in the
system temp dir); delete it to re-extract.

Models (repeated nested CV, 5 outer folds x ``--repeats``, 3 inner folds; preprocessing and
selection inside the folds): 'conventional PET' (SUVmax, SUVpeak, SUVmean, MTV, TLG; L2 logistic),
'radiomics' with L1 logistic and with a random forest (near-zero-variance and |rho| > 0.9
correlation-cluster selection first), and with ``--mrmr`` radiomics with mRMR (10 features) +
L2 logistic (slow). AUC =
mean over repeats of the pooled out-of-fold AUC, 95 % CI by stratified patient bootstrap.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smartimaging.features.extract import to_wide
from smartimaging.features.pipeline import extract_with_processing
from smartimaging.features.settings import ExtractionSettings
from smartimaging.io.nifti import read_image, read_mask
from smartimaging.learn.delong import delong_auc
from smartimaging.learn.metrics import bootstrap_auc_ci
from smartimaging.learn.models import default_param_grid, make_classifier
from smartimaging.learn.validate import compare_validated, nested_cross_validate
from smartimaging.preprocess.resample import ImageProcessingSettings

PROCESSING = ImageProcessingSettings(
    spacing=(3.0, 3.0, 3.0),
    interpolation="linear",
    mask_interpolation="linear",
    mask_threshold=0.5,
    resegmentation_range=(0.0, None),
)
SETTINGS = ExtractionSettings(
    discretisation="fixed_bin_size",
    bin_width=0.5,
    bin_lower_bound=0.0,
    aggregation=("3D_avg", "3D"),
    exclude_features=("morph.moran.i", "morph.geary.c"),
)
CONVENTIONAL = ["PET_SUVmax", "PET_SUVpeak", "PET_SUVmean", "PET_MTV", "PET_TLG"]


def _data() -> Path:
    root = Path(os.environ.get("SMARTIMAGING_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
    data = root / "data" / "ibsi_sts_validation"
    if not data.is_dir():
        raise SystemExit(f"STS data not found at {data}; set SMARTIMAGING_SHARED to the shared folder.")
    return data


def _extract_one(folder: str) -> pd.DataFrame:
    case = Path(folder).name
    image = read_image(Path(folder) / "PET_image.nii.gz")
    mask = read_mask(Path(folder) / "PET_mask.nii.gz")
    return extract_with_processing(
        image, mask, processing=PROCESSING, settings=SETTINGS, case=case, roi="GTV_Mass", modality="PT"
    )


def extract_all(data: Path, cache: Path, jobs: int) -> pd.DataFrame:
    """Wide PET feature table of the 51 patients (read from / written to the cache)."""
    target = cache / "sts_pet_features.csv"
    if target.is_file():
        print(f"features from cache {target}")
        return pd.read_csv(target, index_col=0)
    folders = sorted(str(p) for p in (data / "nifti").glob("STS_*") if p.is_dir())
    t0 = time.perf_counter()
    tables = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for k, table in enumerate(pool.map(_extract_one, folders), 1):
            tables.append(table)
            print(
                f"  extracted {Path(folders[k - 1]).name} ({k}/{len(folders)}, {time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    wide = to_wide(pd.concat(tables, ignore_index=True)).drop(columns="roi").set_index("case")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    wide.to_csv(tmp)
    tmp.replace(target)
    print(
        f"extracted {wide.shape[1]} features of {len(wide)} patients in {time.perf_counter() - t0:.0f} s -> {target}"
    )
    return wide


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "smartimaging_sts_cache")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="2 repeats, fewer models")
    parser.add_argument("--mrmr", action="store_true", help="also the mRMR-10 model (slow: ~15 min here)")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 5)
    data = _data()
    wide = extract_all(data, args.cache, args.jobs)
    outcome = (
        pd.read_csv(data / "sts_lung_metastasis_outcome.csv").set_index("ID")["lung_metastasis"].astype(int)
    )
    wide = wide.loc[outcome.index]
    wide = wide.loc[:, wide.notna().all() & (wide.std() > 0)]
    y = outcome
    missing = [c for c in CONVENTIONAL if c not in wide.columns]
    if missing:
        raise SystemExit(f"conventional PET features {missing} not in the extracted table")
    print(f"\n{len(y)} patients, {int(y.sum())} with lung metastases; {wide.shape[1]} usable PET features")
    # sanity: the README's native-grid GTV SUVmax of STS_001 is 7.911 (3 mm resampling smooths the maximum)
    print(
        f"STS_001 SUVmax after 3 mm resampling {wide['PET_SUVmax'].to_dict()['STS_001']:.3f} (native grid 7.911)"
    )

    configs: list[tuple[str, list[str], str, tuple[str, ...], dict[str, list[Any]]]] = [
        ("conventional PET", CONVENTIONAL, "logistic", (), default_param_grid("logistic")),
        ("radiomics", list(wide.columns), "logistic_l1", ("nzv", "correlation"), default_param_grid("logistic_l1")),
        ("radiomics", list(wide.columns), "random_forest", ("nzv", "correlation"), {"model__min_samples_leaf": [1, 5]}),
        ("radiomics mRMR-10", list(wide.columns), "logistic", ("nzv", "correlation", "mrmr"), {"model__C": [0.1, 1.0]}),
    ]  # fmt: skip
    if not args.mrmr:
        configs = configs[:3]
    if args.quick:
        configs = configs[:2]
    print(f"{'features':<20}{'model':<15}{'AUC':>6}  {'95% CI (bootstrap)':<18} {'DeLong CI':<16}{'time':>7}")
    results = {}
    for label, cols, kind, selection, grid in configs:
        est = make_classifier(kind, random_state=0, selection=selection)  # type: ignore[arg-type]
        if kind == "random_forest":
            est.set_params(model__n_estimators=200)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = nested_cross_validate(
                wide[cols], y, estimator=est, param_grid=grid, n_splits=5, n_repeats=repeats, inner_splits=3,
                random_state=0, name=f"{label}/{kind}",
            )  # fmt: skip
        _, yy, scores, _ = res.matrices()
        auc = float(np.mean([delong_auc(yy, scores[:, k]).auc for k in range(scores.shape[1])]))
        ci = bootstrap_auc_ci(yy, scores, n_boot=1000, random_state=0)
        dl = delong_auc(yy, scores.mean(axis=1)).ci
        results[f"{label}/{kind}"] = res
        print(
            f"{label:<20}{kind:<15}{auc:6.3f}  [{ci[0]:.3f}, {ci[1]:.3f}]    [{dl[0]:.3f}, {dl[1]:.3f}]"
            f"  {time.perf_counter() - t0:6.1f}s",
            flush=True,
        )
    if len(results) >= 2:
        cmp = compare_validated(results)
        print("\nDeLong tests on the repeat-averaged out-of-fold scores:")
        for _, r in cmp.iterrows():
            print(
                f"  {r['model_a']} vs {r['model_b']}: diff {r['difference']:+.3f} [{r['ci_lo']:.3f}, {r['ci_hi']:.3f}], p = {r['p_value']:.3f}"
            )
    print(
        "\nPublished (not comparable: other features, MRI fusion, bootstrap .632+): Vallieres 2015 fused FDG-PET/MRI "
        "texture model AUC ~0.98 (verify in the paper)."
    )


if __name__ == "__main__":
    main()
