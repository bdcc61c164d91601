"""Repeated stratified cross-validation of binary classifiers, with honest uncertainty.

For each repeat, every patient receives exactly one out-of-fold (OOF) score from a model that
never saw them; the AUC of those pooled scores is the repeat's AUC, and the reported AUC is the
mean over repeats. The 95 % interval is a stratified percentile bootstrap over *patients* of
that same statistic (mean over repeats of the pooled OOF AUC), with the OOF scores held fixed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import RepeatedStratifiedKFold

from smartimaging.exceptions import LearningError
from smartimaging.learn.metrics import bootstrap_auc_ci, roc_auc, roc_curve_points
from smartimaging.learn.models import ClassifierKind, make_classifier

__all__ = ["CI_METHOD", "CVResult", "compare_models", "cross_validate_binary", "permutation_check"]

#: How :attr:`CVResult.auc_ci` is obtained (shown in reports).
CI_METHOD = (
    "95 % percentile bootstrap over patients (2000 stratified resamples) of the mean over repeats "
    "of the pooled out-of-fold AUC; out-of-fold scores held fixed"
)


@dataclass
class CVResult:
    """Outcome of :func:`cross_validate_binary`.

    Attributes
    ----------
    name : str
        Label of the model / feature set.
    auc : float
        Mean over repeats of the pooled out-of-fold AUC.
    auc_ci : (float, float)
        95 % interval, see :data:`CI_METHOD`.
    fold_aucs : ndarray of shape (n_repeats * n_splits,)
        AUC within each test fold (noisy with small folds; for inspection only).
    repeat_aucs : ndarray of shape (n_repeats,)
        Pooled out-of-fold AUC of each repeat.
    oof : DataFrame
        Columns ``patient_id, repeat, fold, y_true, y_score``; one row per patient and repeat.
    roc : (ndarray, ndarray)
        ``(fpr, tpr)`` of the ROC curve of the repeat-averaged out-of-fold scores.
    n_patients, n_events : int
        Number of patients and of positives (label 1).
    seconds : float
        Wall time of the cross-validation.
    n_splits, n_repeats : int
        Cross-validation scheme.
    ci_method : str
        Description of the interval.
    """

    name: str
    auc: float
    auc_ci: tuple[float, float]
    fold_aucs: NDArray[np.float64]
    oof: pd.DataFrame
    roc: tuple[NDArray[np.float64], NDArray[np.float64]]
    n_patients: int
    n_events: int
    seconds: float
    n_splits: int = 5
    n_repeats: int = 5
    repeat_aucs: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    ci_method: str = CI_METHOD

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable summary (no OOF table, no curve)."""
        return {
            "name": self.name,
            "auc": float(self.auc),
            "auc_ci": [float(self.auc_ci[0]), float(self.auc_ci[1])],
            "fold_aucs": [float(a) for a in self.fold_aucs],
            "repeat_aucs": [float(a) for a in self.repeat_aucs],
            "n_patients": int(self.n_patients),
            "n_events": int(self.n_events),
            "n_splits": int(self.n_splits),
            "n_repeats": int(self.n_repeats),
            "seconds": float(self.seconds),
            "ci_method": self.ci_method,
        }


def _check_xy(X: pd.DataFrame, y: pd.Series, *, n_splits: int, n_repeats: int, where: str) -> pd.Series:
    if not isinstance(X, pd.DataFrame):
        raise LearningError(
            f"{where}: X must be a pandas DataFrame indexed by patient id, got {type(X).__name__}."
        )
    if not isinstance(y, pd.Series):
        raise LearningError(
            f"{where}: y must be a pandas Series indexed by patient id, got {type(y).__name__}."
        )
    if not isinstance(n_splits, int | np.integer) or n_splits < 2:
        raise LearningError(f"{where}: n_splits must be an integer >= 2, got {n_splits!r}.")
    if not isinstance(n_repeats, int | np.integer) or n_repeats < 1:
        raise LearningError(f"{where}: n_repeats must be an integer >= 1, got {n_repeats!r}.")
    if X.shape[1] == 0:
        raise LearningError(f"{where}: X has no feature columns.")
    for label, idx in (("X", X.index), ("y", y.index)):
        if idx.has_duplicates:
            raise LearningError(
                f"{where}: {label} has duplicated patient ids {list(idx[idx.duplicated()][:5])}."
            )
    if not X.index.equals(y.index):
        # y may cover more patients than X (e.g. the whole clinical table); X defines the cohort
        missing = X.index.difference(y.index)
        if len(missing):
            raise LearningError(
                f"{where}: {len(missing)} patient(s) of X have no entry in y (e.g. {list(missing[:3])}); "
                "align the tables first (build_feature_sets does)."
            )
        y = y.loc[X.index]
    if y.isna().any():
        raise LearningError(
            f"{where}: y has {int(y.isna().sum())} missing label(s) (e.g. {list(y.index[y.isna()][:3])}); "
            "drop those patients first."
        )
    values = set(pd.unique(y).tolist())
    if not values <= {0, 1}:  # also admits True/False and 0.0/1.0, which compare equal
        raise LearningError(
            f"{where}: y must hold 0/1 labels, found {sorted(map(str, values))[:5]}; "
            "encode the outcome as 0 (negative) and 1 (positive)."
        )
    yi = y.astype(int)
    n_pos = int(yi.sum())
    n_neg = int(yi.size - n_pos)
    if min(n_pos, n_neg) < n_splits:
        raise LearningError(
            f"{where}: stratified {n_splits}-fold cross-validation needs at least {n_splits} patients in each "
            f"class, found {n_pos} positive (label 1) and {n_neg} negative (label 0); lower n_splits to at most "
            f"{max(min(n_pos, n_neg), 0)} (minimum 2), or collect more patients of the rare class."
        )
    return yi


def _positive_scores(model: Any, X: pd.DataFrame) -> NDArray[np.float64]:
    if hasattr(model, "predict_proba"):
        classes = list(getattr(model, "classes_", [0, 1]))
        return np.asarray(model.predict_proba(X), dtype=float)[:, classes.index(1)]
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(X), dtype=float).ravel()
    raise LearningError(
        f"cross_validate_binary: estimator {type(model).__name__} has neither predict_proba nor "
        "decision_function; use a classifier that scores patients."
    )


def cross_validate_binary(
    X: pd.DataFrame,
    y: pd.Series,
    *,
    estimator: BaseEstimator | None = None,
    n_splits: int = 5,
    n_repeats: int = 5,
    random_state: int = 0,
    name: str = "",
) -> CVResult:
    """Repeated stratified k-fold cross-validation of a binary classifier.

    The estimator is cloned and refitted on the training folds of every split (preprocessing
    included), and scores the held-out fold. Same inputs and ``random_state`` give the same
    numbers.

    Parameters
    ----------
    X : DataFrame
        Predictors, index = patient id.
    y : Series
        0/1 outcome, index = patient id; must cover every patient of ``X`` (extra patients are
        ignored) and is aligned to ``X``'s order.
    estimator : scikit-learn classifier, optional
        Default ``make_classifier('logistic', random_state=random_state)``.
    n_splits : int, default 5
        Folds per repeat.
    n_repeats : int, default 5
        Repeats with different fold assignments.
    random_state : int, default 0
        Seed of the fold assignment and of the bootstrap interval.
    name : str, default ''
        Label stored in the result.

    Returns
    -------
    CVResult

    Raises
    ------
    LearningError
        If ``X``/``y`` do not match, labels are not 0/1, or a class has fewer than ``n_splits``
        patients (the message gives the counts and what to do).
    """
    where = f"cross_validate_binary({name!r})" if name else "cross_validate_binary"
    yi = _check_xy(X, y, n_splits=n_splits, n_repeats=n_repeats, where=where)
    base = make_classifier("logistic", random_state=random_state) if estimator is None else estimator
    t0 = time.perf_counter()
    y_arr = yi.to_numpy()
    n = len(y_arr)
    scores = np.full((n, n_repeats), np.nan)
    folds = np.full((n, n_repeats), -1, dtype=int)
    fold_aucs: list[float] = []
    cv = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=random_state)
    for k, (train, test) in enumerate(cv.split(np.zeros(n), y_arr)):
        repeat, fold = divmod(k, n_splits)
        model = clone(base)
        try:
            model.fit(X.iloc[train], y_arr[train])
        except (ValueError, TypeError) as exc:
            raise LearningError(f"{where}: fitting failed in repeat {repeat}, fold {fold}: {exc}") from exc
        s = _positive_scores(model, X.iloc[test])
        if not np.isfinite(s).all():
            raise LearningError(
                f"{where}: the model produced non-finite scores in repeat {repeat}, fold {fold}."
            )
        scores[test, repeat] = s
        folds[test, repeat] = fold
        fold_aucs.append(roc_auc(y_arr[test], s))
    repeat_aucs = np.array([roc_auc(y_arr, scores[:, r]) for r in range(n_repeats)])
    auc_ci = bootstrap_auc_ci(y_arr, scores, n_boot=2000, alpha=0.05, random_state=random_state)
    roc = roc_curve_points(y_arr, scores.mean(axis=1))
    ids = np.asarray(X.index)
    oof = pd.DataFrame(
        {
            "patient_id": np.tile(ids, n_repeats),
            "repeat": np.repeat(np.arange(n_repeats), n),
            "fold": folds.T.ravel(),
            "y_true": np.tile(y_arr, n_repeats),
            "y_score": scores.T.ravel(),
        }
    )
    return CVResult(
        name=name,
        auc=float(repeat_aucs.mean()),
        auc_ci=auc_ci,
        fold_aucs=np.asarray(fold_aucs),
        oof=oof,
        roc=roc,
        n_patients=n,
        n_events=int(y_arr.sum()),
        seconds=time.perf_counter() - t0,
        n_splits=n_splits,
        n_repeats=n_repeats,
        repeat_aucs=repeat_aucs,
    )


def compare_models(
    feature_sets: Mapping[str, pd.DataFrame],
    y: pd.Series,
    *,
    kind: ClassifierKind = "logistic",
    n_splits: int = 5,
    n_repeats: int = 5,
    random_state: int = 0,
) -> list[CVResult]:
    """Cross-validate the same classifier on several feature sets, on identical folds.

    Parameters
    ----------
    feature_sets : mapping of str to DataFrame
        E.g. the output of :func:`~smartimaging.learn.models.build_feature_sets`. Every set must
        hold the same patients; ``y`` is aligned to each set's index.
    y : Series
        0/1 outcome, index = patient id.
    kind : {'logistic', 'random_forest'}, default 'logistic'
        Classifier, see :func:`~smartimaging.learn.models.make_classifier`.
    n_splits, n_repeats, random_state : int
        As :func:`cross_validate_binary`; the same seed gives every set the same folds (a paired
        comparison).

    Returns
    -------
    list of CVResult
        In the order of ``feature_sets``; ``name`` is the set's key.

    Raises
    ------
    LearningError
        If no feature set is given, sets hold different patients, or as
        :func:`cross_validate_binary`.
    """
    if not feature_sets:
        raise LearningError("compare_models: no feature set given.")
    names = list(feature_sets)
    first = feature_sets[names[0]].index
    for nm in names[1:]:
        if not feature_sets[nm].index.sort_values().equals(first.sort_values()):
            raise LearningError(
                f"compare_models: feature sets {names[0]!r} and {nm!r} hold different patients; build them with "
                "build_feature_sets so the comparison uses the same folds."
            )
    missing = first.difference(y.index)
    if len(missing):
        raise LearningError(
            f"compare_models: y lacks {len(missing)} patient(s) of the feature sets, e.g. {list(missing[:3])}."
        )
    results = []
    for nm in names:
        X = feature_sets[nm].loc[first]
        est = make_classifier(kind, random_state=random_state)
        results.append(
            cross_validate_binary(
                X,
                y.loc[first],
                estimator=est,
                n_splits=n_splits,
                n_repeats=n_repeats,
                random_state=random_state,
                name=nm,
            )
        )
    return results


def permutation_check(
    X: pd.DataFrame,
    y: pd.Series,
    *,
    n_permutations: int = 20,
    random_state: int = 0,
    estimator: BaseEstimator | None = None,
    n_splits: int = 5,
) -> list[float]:
    """Cross-validated AUCs after shuffling the labels: the chance level of the whole procedure.

    Each permutation shuffles ``y`` across patients (breaking any link to ``X``) and runs one
    repeat of stratified ``n_splits``-fold cross-validation. The resulting AUCs scatter around
    0.5; an observed AUC inside that cloud is not evidence of a signal.

    Parameters
    ----------
    X : DataFrame
        Predictors, index = patient id.
    y : Series
        0/1 outcome.
    n_permutations : int, default 20
        Number of shuffles.
    random_state : int, default 0
        Seed of the shuffles and the folds.
    estimator : scikit-learn classifier, optional
        Default ``make_classifier('logistic')``.
    n_splits : int, default 5
        Folds.

    Returns
    -------
    list of float
        One pooled out-of-fold AUC per permutation.

    Raises
    ------
    LearningError
        As :func:`cross_validate_binary`, or if ``n_permutations < 1``.
    """
    if not isinstance(n_permutations, int | np.integer) or n_permutations < 1:
        raise LearningError(
            f"permutation_check: n_permutations must be a positive integer, got {n_permutations!r}."
        )
    yi = _check_xy(X, y, n_splits=n_splits, n_repeats=1, where="permutation_check")
    aucs = []
    for i in range(n_permutations):
        # one generator per permutation: the first k results do not depend on n_permutations
        rng = np.random.default_rng([random_state, i])
        shuffled = pd.Series(rng.permutation(yi.to_numpy()), index=yi.index, name=yi.name)
        fold_seed = int(rng.integers(0, 2**31 - 1))
        res = cross_validate_binary(
            X, shuffled, estimator=estimator, n_splits=n_splits, n_repeats=1, random_state=fold_seed
        )
        aucs.append(res.auc)
    return aucs
