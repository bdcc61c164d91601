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
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from smartimaging.exceptions import LearningError
from smartimaging.learn.preprocessing import ImputeStrategy, NumericTransform, make_numeric_branch
from smartimaging.learn.selection import (
    BorutaSelector,
    CorrelationClusterSelector,
    L1Selector,
    MRMRSelector,
    NearZeroVariance,
    UnivariateFDRSelector,
)

__all__ = [
    "FEATURE_SETS",
    "SELECTION_STEPS",
    "ClassifierKind",
    "build_feature_sets",
    "default_param_grid",
    "make_classifier",
    "make_preprocessor",
]

logger = logging.getLogger(__name__)

ClassifierKind = Literal[
    "logistic", "logistic_l1", "elastic_net", "svm", "random_forest", "lightgbm", "xgboost"
]
CLASSIFIER_KINDS: tuple[str, ...] = get_args(ClassifierKind)

#: Names of the feature sets returned by :func:`build_feature_sets`, in report order.
FEATURE_SETS: tuple[str, ...] = ("clinical", "radiomics", "combined")


#: Names accepted by ``make_classifier(selection=...)``, with the selector each one builds.
SELECTION_STEPS: tuple[str, ...] = ("nzv", "correlation", "fdr", "mrmr", "l1", "boruta")


def _selector(name: str, random_state: int) -> Any:
    if name == "nzv":
        return NearZeroVariance()
    if name == "correlation":
        return CorrelationClusterSelector(threshold=0.9)
    if name == "fdr":
        return UnivariateFDRSelector(alpha=0.05, min_features=1)
    if name == "mrmr":
        return MRMRSelector(n_features=10, random_state=random_state)
    if name == "l1":
        return L1Selector(random_state=random_state)
    if name == "boruta":
        return BorutaSelector(random_state=random_state)
    raise LearningError(
        f"make_classifier: unknown selection step {name!r}; valid values are {list(SELECTION_STEPS)}."
    )


class _NumericColumns:
    """Picklable column selector: numeric columns not in ``exclude`` (or only those in it)."""

    def __init__(self, exclude: Sequence[str], *, inside: bool) -> None:
        self.exclude = tuple(exclude)
        self.inside = inside

    def __call__(self, X: pd.DataFrame) -> list[str]:
        numeric = X.select_dtypes(include="number").columns
        return [str(c) for c in numeric if (c in self.exclude) == self.inside]


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


def make_preprocessor(
    X: pd.DataFrame | None = None,
    *,
    impute: ImputeStrategy = "median",
    transform: NumericTransform = "none",
    scale: bool = True,
    select: Sequence[tuple[str, Any]] = (),
    keep: Sequence[str] = (),
) -> ColumnTransformer:
    """Column-wise preprocessing: numbers median-imputed and standardised, categories one-hot.

    Parameters
    ----------
    X : DataFrame, optional
        When given, the numeric and categorical columns are fixed now from its dtypes (and
        checked); when omitted they are chosen from the dtypes of whatever the transformer is
        fitted on, which is what :func:`make_classifier` uses.
    impute, transform, scale
        Numeric branch options, see :func:`smartimaging.learn.preprocessing.make_numeric_branch`.
    select : sequence of (name, selector), default ()
        Feature selectors (e.g. from :mod:`smartimaging.learn.selection`) appended to the
        numeric branch; they receive the outcome in ``fit`` and are fitted on the training folds.
    keep : sequence of str, default ()
        Numeric columns that bypass ``select`` (e.g. clinical predictors of a combined model);
        they are imputed/transformed/scaled like the others. Only used when ``select`` is given
        and ``X`` is omitted.

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

    def branch() -> Pipeline:
        return make_numeric_branch(impute=impute, transform=transform, scale=scale)

    if X is None and select:
        selected = branch()
        selected.steps.extend((name, step) for name, step in select)
        return ColumnTransformer(
            [
                ("numeric", branch(), _NumericColumns(keep, inside=True)),
                ("selected", selected, _NumericColumns(keep, inside=False)),
                ("categorical", _categorical_branch(), make_column_selector(dtype_exclude="number")),
            ],
            remainder="drop",
        )
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
    numeric_branch = branch()
    numeric_branch.steps.extend((name, step) for name, step in select)
    return ColumnTransformer(
        [("numeric", numeric_branch, numeric), ("categorical", _categorical_branch(), other)],
        remainder="drop",
    )


def _make_model(kind: str, random_state: int) -> Any:
    """The unfitted estimator of ``kind`` (see :func:`make_classifier` for the settings)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import SVC

    if kind == "logistic":
        return LogisticRegression(
            C=1.0, l1_ratio=0.0, solver="lbfgs", max_iter=10_000, random_state=random_state
        )
    if kind == "logistic_l1":
        return LogisticRegression(
            C=1.0, l1_ratio=1.0, solver="liblinear", max_iter=10_000, random_state=random_state
        )
    if kind == "elastic_net":
        return LogisticRegression(
            C=1.0, l1_ratio=0.5, solver="saga", max_iter=20_000, random_state=random_state
        )
    if kind == "svm":
        # Platt scaling of the RBF decision function, fitted on held-out parts of the training
        # data (3-fold, averaged) so the probabilities are not those of an over-fitted SVM.
        svc = SVC(kernel="rbf", C=1.0, gamma="scale", random_state=random_state)
        return CalibratedClassifierCV(
            svc, method="sigmoid", cv=StratifiedKFold(3, shuffle=True, random_state=random_state)
        )
    if kind == "random_forest":
        return RandomForestClassifier(n_estimators=500, random_state=random_state, n_jobs=1)
    if kind == "lightgbm":
        try:
            from lightgbm import LGBMClassifier
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise LearningError(
                "make_classifier: kind='lightgbm' needs the lightgbm package (pip install lightgbm)."
            ) from exc
        return LGBMClassifier(
            n_estimators=200,
            learning_rate=0.05,
            num_leaves=7,
            max_depth=3,
            min_child_samples=5,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            reg_lambda=1.0,
            random_state=random_state,
            n_jobs=1,
            verbose=-1,
        )
    if kind == "xgboost":
        try:
            from xgboost import XGBClassifier
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise LearningError(
                "make_classifier: kind='xgboost' needs the xgboost package (pip install xgboost-cpu)."
            ) from exc
        return XGBClassifier(
            n_estimators=200,
            learning_rate=0.05,
            max_depth=2,
            min_child_weight=1.0,
            subsample=0.8,
            colsample_bytree=0.8,
            reg_lambda=1.0,
            tree_method="hist",
            eval_metric="logloss",
            random_state=random_state,
            n_jobs=1,
        )
    raise LearningError(f"make_classifier: unknown kind {kind!r}; valid values are {list(CLASSIFIER_KINDS)}.")


def make_classifier(
    kind: ClassifierKind = "logistic",
    *,
    random_state: int = 0,
    impute: ImputeStrategy = "median",
    transform: NumericTransform = "none",
    selection: Sequence[str | tuple[str, Any]] = (),
    keep: Sequence[str] = (),
    harmonise: Any = None,
) -> Pipeline:
    """Unfitted [harmonisation +] preprocessing [+ selection] + classifier pipeline.

    Parameters
    ----------
    kind : {'logistic', 'logistic_l1', 'elastic_net', 'svm', 'random_forest', 'lightgbm', 'xgboost'}
        ``'logistic'``: L2-penalised logistic regression, C = 1, lbfgs.
        ``'logistic_l1'``: L1 (LASSO) logistic regression, C = 1, liblinear.
        ``'elastic_net'``: elastic-net logistic regression, C = 1, ``l1_ratio`` = 0.5, saga.
        ``'svm'``: RBF support-vector machine (C = 1, ``gamma='scale'``) whose decision
        function is turned into probabilities by Platt (sigmoid) scaling fitted with 3-fold
        internal cross-validation (:class:`~sklearn.calibration.CalibratedClassifierCV`).
        ``'random_forest'``: 500 trees, ``max_features='sqrt'``.
        ``'lightgbm'``: 200 shallow boosted trees (7 leaves, depth 3, learning rate 0.05,
        at least 5 patients per leaf, 80 % row and column subsampling, L2 = 1).
        ``'xgboost'``: 200 boosted stumps-to-depth-2 trees (learning rate 0.05, 80 % row and
        column subsampling, L2 = 1, ``hist``).
        All tree ensembles run single-threaded so that results and timings are reproducible.
        Tune any of them with :func:`default_param_grid` and nested cross-validation.
    random_state : int, default 0
        Seed of the model's randomness.
    impute, transform
        Numeric preprocessing, see :func:`smartimaging.learn.preprocessing.make_numeric_branch`.
    selection : sequence of str or (name, selector), default ()
        Selection steps applied, in order, to the imputed and scaled numeric columns not in
        ``keep``: names from :data:`SELECTION_STEPS` (``'nzv'`` near-zero variance,
        ``'correlation'`` clusters at |rho| 0.9, ``'fdr'`` Mann-Whitney with BH FDR 5 %,
        ``'mrmr'`` 10 features, ``'l1'`` cross-validated LASSO, ``'boruta'``) or configured selectors.
    keep : sequence of str, default ()
        Numeric columns never subject to selection (e.g. the clinical predictors).
    harmonise : transformer, optional
        First step (e.g. :class:`smartimaging.learn.combat.ComBat` with ``batch_col``), set to
        pandas output so the column types survive for the preprocessing.

    Returns
    -------
    Pipeline
        Steps [``harmonise``,] ``preprocess`` (:func:`make_preprocessor`) and ``model``.

    Raises
    ------
    LearningError
        If ``kind`` or a selection name is not one of the valid values, or the model's library is
        not installed.
    """
    if kind not in CLASSIFIER_KINDS:
        raise LearningError(
            f"make_classifier: unknown kind {kind!r}; valid values are {list(CLASSIFIER_KINDS)}."
        )
    steps = [
        (item, _selector(item, random_state)) if isinstance(item, str) else (str(item[0]), item[1])
        for item in selection
    ]
    preprocess = make_preprocessor(impute=impute, transform=transform, select=steps, keep=keep)
    pipe: list[tuple[str, Any]] = [("preprocess", preprocess), ("model", _make_model(kind, random_state))]
    if harmonise is not None:
        pipe.insert(0, ("harmonise", harmonise.set_output(transform="pandas")))
    return Pipeline(pipe)


def default_param_grid(kind: ClassifierKind) -> dict[str, list[Any]]:
    """Small hyper-parameter grid of a :func:`make_classifier` pipeline for inner cross-validation.

    Parameters
    ----------
    kind : str
        One of the classifier kinds of :func:`make_classifier`.

    Returns
    -------
    dict of str to list
        Keys are pipeline parameter names (``model__...``), ready for
        :class:`~sklearn.model_selection.GridSearchCV`; kept small (at most 9 combinations)
        because cohorts are small and every combination is refitted in every inner fold.

    Raises
    ------
    LearningError
        If ``kind`` is not one of the valid values.
    """
    grids: dict[str, dict[str, list[Any]]] = {
        "logistic": {"model__C": [0.01, 0.1, 1.0, 10.0]},
        "logistic_l1": {"model__C": [0.05, 0.2, 1.0, 5.0]},
        "elastic_net": {"model__C": [0.05, 0.5, 5.0], "model__l1_ratio": [0.2, 0.5, 0.8]},
        "svm": {"model__estimator__C": [0.1, 1.0, 10.0], "model__estimator__gamma": ["scale", 0.01]},
        "random_forest": {"model__max_features": ["sqrt", 0.33], "model__min_samples_leaf": [1, 5]},
        "lightgbm": {"model__learning_rate": [0.02, 0.1], "model__num_leaves": [3, 7]},
        "xgboost": {"model__learning_rate": [0.02, 0.1], "model__max_depth": [1, 2, 3]},
    }
    if kind not in grids:
        raise LearningError(
            f"default_param_grid: unknown kind {kind!r}; valid values are {list(CLASSIFIER_KINDS)}."
        )
    return {k: list(v) for k, v in grids[kind].items()}


def build_feature_sets(
    features: pd.DataFrame,
    clinical: pd.DataFrame,
    *,
    clinical_columns: Sequence[str],
    target: str,
    batch_column: str | None = None,
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
    batch_column : str, optional
        Column of ``clinical`` with the harmonisation batch (site, scanner); when given it is
        added, last, to every set so that a :class:`~smartimaging.learn.combat.ComBat` step with
        ``batch_col=batch_column`` can use (and drop) it inside cross-validation. Use it only with
        such a step: otherwise the preprocessing would one-hot encode it as a predictor.

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
    extra = [batch_column] if batch_column is not None else []
    missing = [c for c in [*clinical_columns, target, *extra] if c not in clinical.columns]
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
    if batch_column is not None:
        if batch_column in clinical_columns or batch_column in features.columns:
            raise LearningError(
                f"build_feature_sets: batch_column {batch_column!r} is also a predictor; it must not be both."
            )
        if clinical.loc[keep, batch_column].isna().any():
            raise LearningError(
                f"build_feature_sets: {int(clinical.loc[keep, batch_column].isna().sum())} patient(s) have no "
                f"{batch_column!r}; fill it (e.g. 'unknown') before harmonising."
            )
        sets = {k: v.assign(**{batch_column: clinical.loc[keep, batch_column]}) for k, v in sets.items()}
    for table in sets.values():
        table.index.name = features.index.name or clinical.index.name or "patient_id"
        table.attrs["dropped_patients"] = {k: list(v) for k, v in dropped.items()}
    return sets
