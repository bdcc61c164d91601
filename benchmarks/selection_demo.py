"""Does feature selection let the combined clinical + radiomics model match radiomics alone?

Usage::

    PYTHONPATH=src python benchmarks/selection_demo.py --demo-dir DIR [--repeats 5]
    PYTHONPATH=src python benchmarks/selection_demo.py --patients 150 --out /tmp/sel_demo

``--demo-dir`` reuses the output of ``smartimaging demo DIR`` (``DIR/results/features_wide.csv``
and ``DIR/data/clinical.csv``); otherwise the demo is run first with ``--patients``. Every
configuration is cross-validated (repeated stratified 5-fold) with the same folds; selection,
ComBat (site as batch), imputation and scaling are fitted inside the training folds. Prints one
line per feature set and configuration: AUC, 95 % CI, and the median number of radiomics
features the selection kept.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from smartimaging.learn.combat import ComBat
from smartimaging.learn.models import build_feature_sets, make_classifier
from smartimaging.learn.validate import cross_validate_binary
from smartimaging.study.demo import DEMO_CLINICAL_COLUMNS, run_demo

CONFIGS: dict[str, tuple[str, ...]] = {
    "all features": (),
    "nzv+correlation+fdr": ("nzv", "correlation", "fdr"),
    "nzv+correlation+mrmr": ("nzv", "correlation", "mrmr"),
    "nzv+correlation+l1": ("nzv", "correlation", "l1"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=None)
    parser.add_argument("--patients", type=int, default=150)
    parser.add_argument("--out", type=Path, default=Path("selection_demo_output"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--combat", action="store_true", help="also run every configuration after ComBat (site)"
    )
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    root = args.demo_dir
    if root is None:
        run_demo(args.out, n_patients=args.patients, seed=0, jobs=1, quiet=True)
        root = args.out
    wide = pd.read_csv(root / "results" / "features_wide.csv", index_col=0)
    clinical = pd.read_csv(root / "data" / "clinical.csv", index_col="patient_id")
    sets = build_feature_sets(
        wide.select_dtypes(include=[np.number]),
        clinical,
        clinical_columns=DEMO_CLINICAL_COLUMNS,
        target="label",
        batch_column="site",
    )
    y = clinical.loc[sets["combined"].index, "label"].astype(int)
    print(
        f"cohort: {root}, {len(y)} patients, {int(y.sum())} events, {sets['radiomics'].shape[1] - 1} radiomics features"
    )
    print(f"{'set':<10} {'configuration':<32} {'AUC':>6}  95 % CI          kept  seconds")
    numeric_clinical = [c for c in DEMO_CLINICAL_COLUMNS if pd.api.types.is_numeric_dtype(clinical[c])]
    for harmonise in [False, True] if args.combat else [False]:
        for config in args.configs:
            steps = CONFIGS[config]
            for name in ("clinical", "radiomics", "combined"):
                if name == "clinical" and (steps or harmonise):
                    continue
                X = sets[name]
                combat = None
                if harmonise:
                    keep_cols = [c for c in DEMO_CLINICAL_COLUMNS if c in X.columns]
                    combat = ComBat(batch_col="site", passthrough=keep_cols, constant="passthrough")
                else:
                    X = X.drop(columns="site")
                pipe = make_classifier(
                    "logistic", random_state=0, selection=steps, keep=numeric_clinical, harmonise=combat
                )
                t0 = time.perf_counter()
                res = cross_validate_binary(
                    X, y, estimator=pipe, n_splits=5, n_repeats=args.repeats, name=name
                )
                seconds = time.perf_counter() - t0
                kept = "-"
                if steps:  # number of radiomics features kept, from one fit on all patients
                    fitted = pipe.fit(X, y)
                    kept = str(
                        len(
                            fitted.named_steps["preprocess"]
                            .named_transformers_["selected"]
                            .get_feature_names_out()
                        )
                    )
                label = ("ComBat + " if harmonise else "") + config
                lo, hi = res.auc_ci
                print(
                    f"{name:<10} {label:<32} {res.auc:6.3f}  [{lo:.3f}, {hi:.3f}]  {kept:>4}  {seconds:7.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
