"""The cohort stage of a study: clinical, radiomics and combined models of the target."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from smartimaging.exceptions import LearningError
from smartimaging.learn.models import build_feature_sets, make_classifier
from smartimaging.learn.validate import CVResult, compare_models, permutation_check
from smartimaging.study.config import ModelConfig

__all__ = ["CohortModels", "fit_cohort_models"]


@dataclass
class CohortModels:
    """Cross-validated results of the models compared in a study."""

    results: list[CVResult]
    table: pd.DataFrame
    permutation_aucs: list[float] = field(default_factory=list)
    target: str = ""
    n_patients: int = 0


def _binary_target(clinical: pd.DataFrame, target: str) -> pd.Series:
    if target not in clinical.columns:
        raise LearningError(
            f"model.target {target!r} is not a column of the clinical table: {list(clinical.columns)}"
        )
    y = pd.to_numeric(clinical[target], errors="coerce").dropna()
    values = sorted(y.unique())
    if values != [0, 1]:
        raise LearningError(f"model.target {target!r} must be binary 0/1; found values {values[:10]}")
    return y.astype(int)


def fit_cohort_models(
    wide: pd.DataFrame, clinical: pd.DataFrame, config: ModelConfig, *, seed: int = 0
) -> CohortModels:
    """Compare clinical-only, radiomics-only and combined models by repeated stratified CV.

    Only patients with image features and a target value take part. Every fitted step
    (imputation, scaling, the model) is fitted inside the training folds.

    Parameters
    ----------
    wide : DataFrame
        One row per patient (index: patient ID), numeric image features.
    clinical : DataFrame
        Clinical table (index: patient ID) holding the target and the clinical columns.
    config : ModelConfig
        Target, clinical columns, model kind and CV design.
    seed : int
        Seed of the folds, the models and the label permutations.
    """
    target = _binary_target(clinical, config.target)
    sets = build_feature_sets(
        wide.select_dtypes(include=[np.number]),
        clinical,
        clinical_columns=config.clinical_columns,
        target=config.target,
    )
    patients = list(sets["combined"].index)
    if len(patients) < 2 * config.n_splits:
        raise LearningError(
            f"only {len(patients)} patients have both image features and {config.target!r}: too few for "
            f"{config.n_splits}-fold cross-validation"
        )
    y = target.loc[patients]
    if not config.clinical_columns:
        sets = {"radiomics": sets["radiomics"]}
    results = compare_models(
        sets, y, kind=config.kind, n_splits=config.n_splits, n_repeats=config.n_repeats, random_state=seed
    )
    perm: list[float] = []
    if config.n_permutations:
        perm = permutation_check(
            sets["radiomics"],
            y,
            n_permutations=config.n_permutations,
            random_state=seed,
            estimator=make_classifier(config.kind, random_state=seed),
            n_splits=config.n_splits,
        )
    table = pd.DataFrame(
        [
            {
                "model": r.name,
                "n_patients": r.n_patients,
                "n_events": r.n_events,
                "n_features": sets[r.name].shape[1],
                "auc": r.auc,
                "auc_ci_low": r.auc_ci[0],
                "auc_ci_high": r.auc_ci[1],
            }
            for r in results
        ]
    )
    return CohortModels(
        results=results, table=table, permutation_aucs=perm, target=config.target, n_patients=len(patients)
    )
