"""Real-data benchmark on radMLBench tables: Head-Neck-PET-CT (N2/N3, DM, LR) and NSCLC-Radiogenomics (EGFR).

Usage::

    SMARTIMAGING_SHARED=/work/shared PYTHONPATH=src python -u benchmarks/radmlbench.py [--quick]
        [--repeats 5] [--parts nodes,egfr,assoc,survival] [--out DIR]

Data (read-only, see ``/work/shared/data/radmlbench/README.md``): the 91 HGJ patients of
Head-Neck-PET-CT with 105 PET + 105 CT PyRadiomics features joined with Vallieres' clinical data
and outcomes, and the 144 patients of NSCLC-Radiogenomics with 105 CT features and EGFR status.

What runs:

1. Binary outcomes (N2/N3 vs N0/N1 on Head-Neck, EGFR mutation on NSCLC): repeated stratified
   nested cross-validation (``--repeats`` x 5 outer folds, 3 inner folds for the grid search) of
   L1 logistic regression (C in 0.05, 0.2, 1, 5) and a random forest (200 trees, min leaf 1 or 5)
   for each feature group the table has (clinical, PET, CT, PET+CT, clinical+PET+CT). Near-zero-variance and correlation-cluster
   (|rho| > 0.9) selection are fitted inside every training fold; clinical columns bypass
   selection. AUC = mean over repeats of the pooled out-of-fold AUC; 95 % CI = stratified
   bootstrap over patients (1000 resamples, predictions fixed). The clinical model of N2/N3 uses
   age, T stage, HPV and tumour site (N stage and TNM stage are the outcome itself and excluded).
   The repository's reference AUC (best configuration of a grid scored on one 10-fold CV, no
   nesting, so optimistic) is printed beside each line.
2. Time to event on Head-Neck (distant metastasis, locoregional recurrence): 5-fold
   event-stratified CV repeated ``--repeats`` times of Cox (clinical), LASSO-Cox and a random
   survival forest (radiomics). Harrell's C of the pooled out-of-fold risk (mean over repeats,
   95 % CI by patient bootstrap) and the mean over folds of Uno's C.
3. Radiogenomics: Mann-Whitney association of each CT feature with EGFR status (NSCLC) and of
   each PET/CT feature with HPV status (Head-Neck), Benjamini-Hochberg FDR 5 %.

``--parts nodes,egfr,assoc,survival`` picks parts (e.g. to run them as separate processes).
``--quick`` runs 2 repeats, L1 only, the clinical and PET+CT sets (N2/N3) and two survival models
(49 s without the survival part on the loaded 2-core machine). The full run took about an hour of
wall time there, with other jobs using the cores; figures and times are in docs/real_data.md.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smartimaging.learn.delong import delong_auc
from smartimaging.learn.metrics import bootstrap_auc_ci
from smartimaging.learn.models import default_param_grid, make_classifier
from smartimaging.learn.radiogenomics import association_heatmap_png, associations
from smartimaging.learn.survival import cross_validate_survival, harrell_c, make_survival_model
from smartimaging.learn.validate import ValidationResult, compare_validated, nested_cross_validate

CLINICAL_NODES = ["age", "T_stage", "HPV", "tumour_site"]
CLINICAL_SURVIVAL = ["age", "T_stage", "N_stage", "HPV", "tumour_site"]


def _shared() -> Path:
    root = Path(os.environ.get("SMARTIMAGING_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
    data = root / "data" / "radmlbench"
    if not data.is_dir():
        raise SystemExit(
            f"radMLBench data not found at {data}; set SMARTIMAGING_SHARED to the shared folder."
        )
    return data


def _reference(data: Path) -> dict[str, float]:
    ref = pd.read_csv(data / "reference_auc_radmlbench_repo.csv").set_index("dataset")
    return {
        k: float(ref["auc_standard_gridsearch"].to_dict()[k])
        for k in ("Head-Neck-PET-CT", "NSCLC-Radiogenomics")
    }


def _clinical(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    clin = table[columns].copy()
    if "HPV" in clin:
        clin["HPV"] = clin["HPV"].map({1.0: "positive", 0.0: "negative"}).fillna("unknown")
    if "tumour_site" in clin:
        clin["tumour_site"] = clin["tumour_site"].fillna("unknown").astype(str)
    return clin


def _estimator(
    kind: str, *, n_numeric_clinical: list[str], radiomics: bool
) -> tuple[Any, dict[str, list[Any]]]:
    selection: tuple[str, ...] = ("nzv", "correlation") if radiomics else ()
    pipe = make_classifier(kind, random_state=0, selection=selection, keep=n_numeric_clinical)  # type: ignore[arg-type]
    if kind == "random_forest":
        pipe.set_params(model__n_estimators=200)
        grid: dict[str, list[Any]] = {"model__min_samples_leaf": [1, 5]}
    else:
        grid = default_param_grid("logistic_l1")
    return pipe, grid


def _summary(res: ValidationResult) -> tuple[float, tuple[float, float], tuple[float, float]]:
    _, y, scores, _ = res.matrices()
    auc = float(np.mean([delong_auc(y, scores[:, k]).auc for k in range(scores.shape[1])]))
    ci = bootstrap_auc_ci(y, scores, n_boot=1000, random_state=0)
    dl = delong_auc(y, scores.mean(axis=1)).ci
    return auc, ci, dl


def binary_benchmark(
    name: str,
    sets: dict[str, pd.DataFrame],
    y: pd.Series,
    *,
    kinds: list[str],
    repeats: int,
    reference: float,
    clinical_numeric: list[str],
    rows: list[dict[str, Any]],
) -> dict[str, ValidationResult]:
    print(
        f"\n== {name}: {len(y)} patients, {int(y.sum())} positive; reference AUC (best-of-grid, 10-fold) {reference:.3f}"
    )
    print(f"{'features':<16}{'model':<15}{'AUC':>6}  {'95% CI (bootstrap)':<18} {'DeLong CI':<16}{'time':>7}")
    results: dict[str, ValidationResult] = {}
    for set_name, X in sets.items():
        radiomic = set_name != "clinical"
        keep = [c for c in clinical_numeric if c in X.columns]
        for kind in kinds:
            est, grid = _estimator(kind, n_numeric_clinical=keep, radiomics=radiomic)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # liblinear / selection convergence chatter
                res = nested_cross_validate(
                    X, y, estimator=est, param_grid=grid, n_splits=5, n_repeats=repeats, inner_splits=3,
                    random_state=0, name=f"{set_name}/{kind}",
                )  # fmt: skip
            auc, ci, dl = _summary(res)
            dt = time.perf_counter() - t0
            results[f"{set_name}/{kind}"] = res
            rows.append(
                {"dataset": name, "features": set_name, "model": kind, "n_features": X.shape[1], "auc": auc,
                 "ci_lo": ci[0], "ci_hi": ci[1], "delong_lo": dl[0], "delong_hi": dl[1],
                 "reference_auc": reference, "repeats": repeats, "seconds": dt}
            )  # fmt: skip
            print(
                f"{set_name:<16}{kind:<15}{auc:6.3f}  [{ci[0]:.3f}, {ci[1]:.3f}]    [{dl[0]:.3f}, {dl[1]:.3f}]  {dt:6.1f}s",
                flush=True,
            )
    return results


def survival_benchmark(
    table: pd.DataFrame,
    sets: dict[str, pd.DataFrame],
    *,
    endpoint: str,
    repeats: int,
    models: list[tuple[str, str]],
    rows: list[dict[str, Any]],
) -> None:
    time_col = f"time_{endpoint}_days"
    t = table[time_col].astype(float)
    e = table[endpoint].astype(int)
    print(f"\n== Head-Neck-PET-CT {endpoint}: {len(t)} patients, {int(e.sum())} events")
    print(
        f"{'features':<16}{'model':<24}{'Harrell C':>9}  {'95% CI':<16} {'Uno C (fold mean+-sd)':<22}{'time':>7}"
    )
    rng = np.random.default_rng(0)
    for set_name, kind in models:
        X = sets[set_name]
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = cross_validate_survival(
                X, t, e, estimator=make_survival_model(kind, random_state=0),  # type: ignore[arg-type]
                n_splits=5, n_repeats=repeats, random_state=0, name=f"{set_name}/{kind}",
            )  # fmt: skip
        p = res.predictions
        wide = p.pivot(index="patient_id", columns="repeat", values="risk")
        first = p[p["repeat"] == 0].set_index("patient_id").loc[wide.index]
        tt, ee, risk = first["time"].to_numpy(float), first["event"].to_numpy(int), wide.to_numpy(float)
        c = float(np.mean([harrell_c(tt, ee, risk[:, k]) for k in range(risk.shape[1])]))
        boots = []
        for _ in range(500):
            idx = rng.integers(0, len(tt), len(tt))
            if ee[idx].sum() < 2:
                continue
            boots.append(np.mean([harrell_c(tt[idx], ee[idx], risk[idx, k]) for k in range(risk.shape[1])]))
        lo, hi = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
        uno = pd.to_numeric(res.fold_metrics["uno_c"], errors="coerce").dropna()
        dt = time.perf_counter() - t0
        rows.append(
            {"dataset": f"Head-Neck-PET-CT {endpoint}", "features": set_name, "model": kind, "n_features": X.shape[1],
             "c_index": c, "ci_lo": lo, "ci_hi": hi, "uno_c": float(uno.mean()), "uno_c_sd": float(uno.std(ddof=1)),
             "repeats": repeats, "seconds": dt}
        )  # fmt: skip
        print(
            f"{set_name:<16}{kind:<24}{c:9.3f}  [{lo:.3f}, {hi:.3f}]   {uno.mean():.3f} +- {uno.std(ddof=1):.3f}"
            f"{'':<7}{dt:6.1f}s",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats, L1 only, fewer feature sets")
    parser.add_argument("--repeats", type=int, default=None, help="outer repeats (default 5, 2 with --quick)")
    parser.add_argument("--out", type=Path, default=None, help="write results CSVs and heatmaps here")
    parser.add_argument(
        "--parts",
        default="nodes,egfr,assoc,survival",
        help="comma-separated parts to run: nodes (H&N N2/N3), egfr, assoc, survival (default all)",
    )
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = parts - {"nodes", "egfr", "assoc", "survival"}
    if unknown:
        parser.error(f"unknown --parts {sorted(unknown)}; valid: nodes, egfr, assoc, survival")
    repeats = args.repeats or (2 if args.quick else 5)
    kinds = ["logistic_l1"] if args.quick else ["logistic_l1", "random_forest"]
    data = _shared()
    ref = _reference(data)
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    surv_rows: list[dict[str, Any]] = []

    # ---- Head-Neck-PET-CT: N2/N3 --------------------------------------------------------------
    hn = pd.read_csv(data / "head_neck_pet_ct_HGJ_pet_ct_features_plus_vallieres_outcomes.csv.gz").set_index(
        "ID"
    )
    pet = hn[[c for c in hn.columns if c.startswith("PET_original_")]]
    ct = hn[[c for c in hn.columns if c.startswith("CT_original_")]]
    clin = _clinical(hn, CLINICAL_NODES)
    sets = {
        "clinical": clin,
        "PET": pet,
        "CT": ct,
        "PET+CT": pd.concat([pet, ct], axis=1),
        "combined": pd.concat([clin, pet, ct], axis=1),
    }
    if args.quick:
        sets = {k: sets[k] for k in ("clinical", "PET+CT")}
    y = hn["Target"].astype(int)
    assert (y == (hn["N_stage"] >= 2).astype(int)).all()
    hn_res: dict[str, ValidationResult] = {}
    if "nodes" in parts:
        hn_res = binary_benchmark(
            "Head-Neck-PET-CT N2/N3", sets, y, kinds=kinds, repeats=repeats, reference=ref["Head-Neck-PET-CT"],
            clinical_numeric=["age", "T_stage"], rows=rows,
        )  # fmt: skip
    if "PET+CT/logistic_l1" in hn_res and "clinical/logistic_l1" in hn_res:
        cmp = compare_validated({k: hn_res[k] for k in ("PET+CT/logistic_l1", "clinical/logistic_l1")})
        r = cmp.iloc[0]
        print(
            f"DeLong PET+CT vs clinical (L1, repeat-averaged OOF scores): diff {r['difference']:+.3f} "
            f"[{r['ci_lo']:.3f}, {r['ci_hi']:.3f}], p = {r['p_value']:.3f}"
        )

    # ---- NSCLC-Radiogenomics: EGFR ------------------------------------------------------------
    ns = pd.read_csv(data / "datasets" / "NSCLC-Radiogenomics.csv.gz").set_index("ID")
    ns_ct = ns.drop(columns="Target")
    if "egfr" in parts:
        binary_benchmark(
            "NSCLC-Radiogenomics EGFR", {"CT": ns_ct}, ns["Target"].astype(int), kinds=kinds, repeats=repeats,
            reference=ref["NSCLC-Radiogenomics"], clinical_numeric=[], rows=rows,
        )  # fmt: skip

    # ---- Radiogenomics associations -----------------------------------------------------------
    assoc: dict[str, pd.DataFrame] = {}
    if "assoc" in parts:
        print("\n== Radiogenomics (Mann-Whitney, Benjamini-Hochberg FDR 5 %)")
        assoc = {
            "NSCLC CT ~ EGFR": associations(ns_ct, ns[["Target"]].rename(columns={"Target": "EGFR"})),
            "Head-Neck PET/CT ~ HPV": associations(pd.concat([pet, ct], axis=1), hn[["HPV"]]),
        }
    for label, tab in assoc.items():
        top = tab.iloc[0]
        print(
            f"{label}: {tab.attrs['n_tests']} tests, {tab.attrs['n_significant']} significant; smallest p "
            f"{top['p_value']:.2g} (q {top['q_value']:.2g}) for {top['feature']} (AUC {top['auc']:.3f}, n {top['n']})"
        )

    # ---- Head-Neck time to event --------------------------------------------------------------
    if "survival" in parts:
        sclin = _clinical(hn, CLINICAL_SURVIVAL)
        ssets = {"clinical": sclin, "PET": pet, "CT": ct, "PET+CT": pd.concat([pet, ct], axis=1),
                 "combined": pd.concat([sclin, pet, ct], axis=1)}  # fmt: skip
        models = [("clinical", "cox"), ("PET", "lasso_cox"), ("CT", "lasso_cox"), ("PET+CT", "lasso_cox"),
                  ("PET+CT", "random_survival_forest"), ("combined", "lasso_cox")]  # fmt: skip
        if args.quick:
            models = [("clinical", "cox"), ("PET+CT", "lasso_cox")]
        for endpoint in ("distant", "locoregional"):
            survival_benchmark(hn, ssets, endpoint=endpoint, repeats=repeats, models=models, rows=surv_rows)

    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        if rows:
            pd.DataFrame(rows).to_csv(args.out / "binary_auc.csv", index=False)
        if surv_rows:
            pd.DataFrame(surv_rows).to_csv(args.out / "survival_cindex.csv", index=False)
        for label, tab in assoc.items():
            stem = label.split()[0].lower().replace("-", "_")
            tab.to_csv(args.out / f"associations_{stem}.csv", index=False)
            (args.out / f"associations_{stem}.png").write_bytes(association_heatmap_png(tab, max_features=40))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
