"""Classifier pipelines and the clinical / radiomics / combined feature sets they are compared on.

Every step that learns from data (imputation medians, scaling, one-hot categories, the model)
sits inside one scikit-learn :class:`~sklearn.pipeline.Pipeline`, so cross-validation refits all of
it on the training folds only and nothing leaks from the test fold.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from smartimaging.exceptions import LearningError

__all__ = [
    "FEATURE_SETS",
    "ClassifierKind",
    "build_feature_sets",
    "make_classifier",
    "make_preprocessor",
]

logger = logging.getLogger(__name__)

ClassifierKind = Literal["logistic", "random_forest"]
CLASSIFIER_KINDS: tuple[str, ...] = get_args(ClassifierKind)

#: Names of the feature sets returned by :func:`build_feature_sets`, in report order.
FEATURE_SETS: tuple[str, ...] = ("clinical", "radiomics", "combined")


def _numeric_branch() -> Pipeline:
    # keep_empty_features: a column missing in every training row is imputed (0) rather than
    # dropped, so the output width does not depend on the fold.
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )


def _as_object(X: Any) -> np.ndarray:
    """Categories as a plain object array with NaN for missing values.

    scikit-learn's imputer cannot read pandas ``category`` columns holding strings, nor mixed
    ``None``/``pd.NA`` markers; a uniform object array works for every categorical dtype.
    """
    frame = pd.DataFrame(X)
    out = np.array(frame.astype(object).to_numpy(), dtype=object, copy=True)
    out[frame.isna().to_numpy()] = np.nan
    return out


def _categorical_branch() -> Pipeline:
    return Pipeline(
        [
            ("as_object", FunctionTransformer(_as_object, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )


def make_preprocessor(X: pd.DataFrame | None = None) -> ColumnTransformer:
    """Column-wise preprocessing: numbers median-imputed and standardised, categories one-hot.

    Parameters
    ----------
    X : DataFrame, optional
        When given, the numeric and categorical columns are fixed now from its dtypes (and
        checked); when omitted they are chosen from the dtypes of whatever the transformer is
        fitted on, which is what :func:`make_classifier` uses.

    Returns
    -------
    ColumnTransformer
        Unfitted; numeric columns -> ``SimpleImputer(median)`` + ``StandardScaler``; other
        columns (strings, categories, booleans) -> ``SimpleImputer(most_frequent)`` +
        ``OneHotEncoder(handle_unknown='ignore')``.

    Raises
    ------
    LearningError
        If ``X`` is not a DataFrame or has no columns.
    """
    if X is None:
        numeric: list[str] | make_column_selector = make_column_selector(dtype_include="number")
        other: list[str] | make_column_selector = make_column_selector(dtype_exclude="number")
    else:
        if not isinstance(X, pd.DataFrame):
            raise LearningError(f"make_preprocessor: X must be a pandas DataFrame, got {type(X).__name__}.")
        if X.shape[1] == 0:
            raise LearningError("make_preprocessor: X has no columns.")
        numeric = list(X.select_dtypes(include="number").columns)
        other = [c for c in X.columns if c not in set(numeric)]
    return ColumnTransformer(
        [("numeric", _numeric_branch(), numeric), ("categorical", _categorical_branch(), other)],
        remainder="drop",
    )


def make_classifier(kind: ClassifierKind = "logistic", *, random_state: int = 0) -> Pipeline:
    """Unfitted preprocessing + classifier pipeline.

    Parameters
    ----------
    kind : {'logistic', 'random_forest'}, default 'logistic'
        ``'logistic'``: L2-penalised logistic regression, C = 1, lbfgs, up to 10 000
        iterations. ``'random_forest'``: 500 trees, otherwise scikit-learn defaults
        (``max_features='sqrt'``), single-threaded for reproducible timing.
    random_state : int, default 0
        Seed of the model (used by the random forest; logistic regression with lbfgs is
        deterministic).

    Returns
    -------
    Pipeline
        Steps ``preprocess`` (:func:`make_preprocessor`) and ``model``.

    Raises
    ------
    LearningError
        If ``kind`` is not one of the valid values.
    """
    if kind == "logistic":
        model: LogisticRegression | RandomForestClassifier = LogisticRegression(
            C=1.0, l1_ratio=0.0, solver="lbfgs", max_iter=10_000, random_state=random_state
        )
    elif kind == "random_forest":
        model = RandomForestClassifier(n_estimators=500, random_state=random_state, n_jobs=1)
    else:
        raise LearningError(
            f"make_classifier: unknown kind {kind!r}; valid values are {list(CLASSIFIER_KINDS)}."
        )
    return Pipeline([("preprocess", make_preprocessor()), ("model", model)])


def build_feature_sets(
    features: pd.DataFrame,
    clinical: pd.DataFrame,
    *,
    clinical_columns: Sequence[str],
    target: str,
) -> dict[str, pd.DataFrame]:
    """Align radiomics and clinical tables into the 'clinical', 'radiomics' and 'combined' sets.

    Only patients present in both tables and with a known ``target`` are kept, so that the three
    sets hold the same patients in the same order and can be compared on the same folds. Dropped
    patients are logged (warning) and listed in ``DataFrame.attrs['dropped_patients']`` of every
    returned table.

    Parameters
    ----------
    features : DataFrame
        Wide radiomics table, index = patient id, numeric columns.
    clinical : DataFrame
        Clinical table, index = patient id; must contain ``clinical_columns`` and ``target``.
    clinical_columns : sequence of str
        Clinical predictors (numbers or categories; categories are one-hot encoded in the model).
    target : str
        Outcome column of ``clinical``; it is never part of a feature set.

    Returns
    -------
    dict of str to DataFrame
        Keys :data:`FEATURE_SETS`. Get the labels with ``clinical.loc[sets['combined'].index, target]``.

    Raises
    ------
    LearningError
        If a column is missing, a radiomics column is not numeric, the target is among the
        predictors, column names clash, an index has duplicates or no patient is left.
    """
    for name, table in (("features", features), ("clinical", clinical)):
        if not isinstance(table, pd.DataFrame):
            raise LearningError(
                f"build_feature_sets: {name} must be a pandas DataFrame, got {type(table).__name__}."
            )
        dup = table.index[table.index.duplicated()].unique()
        if len(dup):
            raise LearningError(
                f"build_feature_sets: the {name} table has duplicated patient ids {list(dup[:5])}; "
                "keep one row per patient (e.g. one ROI) before modelling."
            )
    clinical_columns = list(clinical_columns)
    missing = [c for c in [*clinical_columns, target] if c not in clinical.columns]
    if missing:
        raise LearningError(
            f"build_feature_sets: column(s) {missing} not in the clinical table; available: {list(clinical.columns)}."
        )
    if target in clinical_columns:
        raise LearningError(
            f"build_feature_sets: the target {target!r} is also listed in clinical_columns; remove it from the "
            "predictors."
        )
    if target in features.columns:
        raise LearningError(
            f"build_feature_sets: the target {target!r} is a column of the radiomics table; drop it from there."
        )
    non_numeric = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric:
        raise LearningError(
            f"build_feature_sets: radiomics column(s) {non_numeric[:10]} are not numeric; the wide feature table "
            "must hold one number per patient and feature."
        )
    clash = sorted(set(features.columns) & set(clinical_columns))
    if clash:
        raise LearningError(
            f"build_feature_sets: column(s) {clash} appear in both the radiomics and the clinical table; "
            "rename one of them so the combined set is unambiguous."
        )

    in_both = features.index.intersection(clinical.index, sort=False)
    only_features = features.index.difference(clinical.index)
    only_clinical = clinical.index.difference(features.index)
    has_target = clinical.loc[in_both, target].notna()
    no_target = in_both[~has_target.to_numpy()]
    keep = in_both[has_target.to_numpy()]
    dropped = {
        "no clinical row": [str(p) for p in only_features],
        "no radiomics row": [str(p) for p in only_clinical],
        f"missing {target}": [str(p) for p in no_target],
    }
    for reason, ids in dropped.items():
        if ids:
            logger.warning(
                "build_feature_sets: dropped %d patient(s) with %s: %s", len(ids), reason, ids[:20]
            )
    if len(keep) == 0:
        raise LearningError(
            f"build_feature_sets: no patient is in both tables with a known {target!r} "
            f"(radiomics ids e.g. {list(features.index[:3])}, clinical ids e.g. {list(clinical.index[:3])}); "
            "check that both tables are indexed by the same patient id, with the same type."
        )

    radiomics = features.loc[keep]
    clin = clinical.loc[keep, clinical_columns]
    sets = {
        "clinical": clin.copy(),
        "radiomics": radiomics.copy(),
        "combined": pd.concat([clin, radiomics], axis=1),
    }
    for table in sets.values():
        table.index.name = features.index.name or clinical.index.name or "patient_id"
        table.attrs["dropped_patients"] = {k: list(v) for k, v in dropped.items()}
    return sets
