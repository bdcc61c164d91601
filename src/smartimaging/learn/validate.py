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
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import (
    GridSearchCV,
    RepeatedStratifiedKFold,
    StratifiedKFold,
    cross_val_predict,
    train_test_split,
)

from smartimaging.exceptions import LearningError
from smartimaging.learn.clinical_metrics import (
    ThresholdMethod,
    brier_score,
    calibration_slope_intercept,
    choose_threshold,
    hosmer_lemeshow,
    threshold_metrics,
)
from smartimaging.learn.delong import delong_auc, delong_covariance, delong_test
from smartimaging.learn.metrics import bootstrap_auc_ci, bootstrap_ci, roc_auc, roc_curve_points
from smartimaging.learn.models import ClassifierKind, default_param_grid, make_classifier

__all__ = [
    "CI_METHOD",
    "CVResult",
    "ValidationResult",
    "compare_models",
    "compare_validated",
    "cross_validate_binary",
    "external_validate",
    "holdout_validate",
    "nested_cross_validate",
    "permutation_check",
    "repeat_calibration",
]

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


# ---------------------------------------------------------------------------------------------
# Nested cross-validation, held-out split and external validation
# ---------------------------------------------------------------------------------------------

Scheme = Literal["nested_cv", "holdout", "external"]


def repeat_calibration(y: NDArray[np.int_], scores: NDArray[np.float64]) -> dict[str, float | None]:
    """Calibration of repeated out-of-fold probabilities: the mean over repeats of the slope, the
    intercept and calibration-in-the-large, and the median Hosmer-Lemeshow p-value.

    Parameters
    ----------
    y : ndarray of int, shape (n,)
        Binary outcome.
    scores : ndarray, shape (n, r)
        Probabilities of ``r`` repeats.

    Returns
    -------
    dict
        ``calibration_slope``, ``calibration_intercept``, ``calibration_in_the_large``,
        ``hosmer_lemeshow_p``; None where no repeat could be computed (e.g. separable data).
    """
    cal, hl = [], []
    for k in range(scores.shape[1]):
        try:
            cal.append(calibration_slope_intercept(y, scores[:, k]))
        except LearningError:
            pass
        try:
            hl.append(hosmer_lemeshow(y, scores[:, k], n_groups=min(10, max(3, y.size // 5))).p_value)
        except LearningError:
            pass
    return {
        "calibration_slope": float(np.mean([c.slope for c in cal])) if cal else None,
        "calibration_intercept": float(np.mean([c.intercept for c in cal])) if cal else None,
        "calibration_in_the_large": float(np.mean([c.citl for c in cal])) if cal else None,
        "hosmer_lemeshow_p": float(np.median(hl)) if hl else None,
    }


@dataclass
class ValidationResult:
    """Out-of-sample predictions of one validation scheme, from which every metric follows.

    Attributes
    ----------
    name : str
        Label of the model / feature set.
    scheme : {'nested_cv', 'holdout', 'external'}
        How the predictions were obtained.
    predictions : DataFrame
        Columns ``patient_id, repeat, fold, y_true, y_score, threshold``: one row per evaluated
        patient and repeat. ``y_score`` is the predicted probability from a model that never saw
        the patient; ``threshold`` is the operating threshold chosen on that model's training
        data (inner cross-validated scores) and applied unchanged.
    best_params : list of dict
        Hyper-parameters chosen by the inner search for each outer fit.
    n_repeats : int
        Number of repeats (1 for held-out and external validation).
    threshold_method : str
        How thresholds were chosen (``'youden'`` or ``'sensitivity'``).
    seconds : float
        Wall time.
    """

    name: str
    scheme: Scheme
    predictions: pd.DataFrame
    best_params: list[dict[str, Any]]
    n_repeats: int
    threshold_method: str
    seconds: float

    @property
    def n_patients(self) -> int:
        """Number of evaluated patients."""
        return int(self.predictions["patient_id"].nunique())

    @property
    def n_events(self) -> int:
        """Number of evaluated positives."""
        first = self.predictions[self.predictions["repeat"] == 0]
        return int(first["y_true"].sum())

    def matrices(
        self,
    ) -> tuple[pd.Index, NDArray[np.int_], NDArray[np.float64], NDArray[np.float64]]:
        """Patients, labels, scores and thresholds as arrays of shape (n,), (n,), (n, r), (n, r)."""
        wide = self.predictions.pivot(index="patient_id", columns="repeat", values=["y_score", "threshold"])
        first = self.predictions[self.predictions["repeat"] == 0].set_index("patient_id")
        ids = wide.index
        y = first.loc[ids, "y_true"].to_numpy().astype(int)
        return (
            ids,
            y,
            wide["y_score"].to_numpy(dtype=float),
            wide["threshold"].to_numpy(dtype=float),
        )

    def summary(self, *, n_boot: int = 1000, level: float = 0.95, random_state: int = 0) -> dict[str, Any]:
        """All binary-outcome statistics of the predictions, with confidence intervals.

        Every statistic is computed on the pooled out-of-sample predictions of each repeat and
        averaged over repeats; intervals are stratified percentile bootstraps over patients of
        that same mean (predictions held fixed). The AUC also gets a DeLong interval, computed
        on the repeat-averaged scores (exact for held-out and external validation, where there
        is one repeat).

        Parameters
        ----------
        n_boot : int, default 1000
            Bootstrap resamples.
        level : float, default 0.95
            Confidence level.
        random_state : int, default 0
            Seed of the bootstrap.

        Returns
        -------
        dict
            Keys ``name, scheme, n_patients, n_events, n_repeats, auc, auc_ci_bootstrap,
            auc_ci_delong, auc_se_delong, threshold, sensitivity, specificity, ppv, npv`` (each
            rate with ``*_ci``), ``brier, brier_ci, calibration_slope, calibration_intercept,
            calibration_in_the_large, hosmer_lemeshow_p``. A rate that is undefined (zero
            denominator) is ``None``, as is a calibration statistic that cannot be estimated.

        Raises
        ------
        LearningError
            If a class is absent among the evaluated patients.
        """
        _, y, scores, thresholds = self.matrices()
        alpha = 1.0 - level
        r = scores.shape[1]

        def mean_rate(idx: NDArray[np.intp], attr: str) -> float | None:
            vals = []
            for k in range(r):
                m = threshold_metrics(y[idx], scores[idx, k], threshold=thresholds[idx, k])
                v = getattr(m, attr)
                if v is None:
                    return None
                vals.append(v)
            return float(np.mean(vals))

        everyone = np.arange(y.size)
        out: dict[str, Any] = {
            "name": self.name,
            "scheme": self.scheme,
            "n_patients": int(y.size),
            "n_events": int(y.sum()),
            "n_repeats": int(r),
            "auc": float(np.mean([roc_auc(y, scores[:, k]) for k in range(r)])),
            "auc_ci_bootstrap": bootstrap_auc_ci(
                y, scores, n_boot=n_boot, alpha=alpha, random_state=random_state
            ),
        }
        dl = delong_auc(y, scores.mean(axis=1), level=level)
        out["auc_ci_delong"] = dl.ci
        out["auc_se_delong"] = dl.se
        out["threshold"] = float(np.mean(thresholds))
        for attr in ("sensitivity", "specificity", "ppv", "npv"):
            out[attr] = mean_rate(everyone, attr)
            out[f"{attr}_ci"] = bootstrap_ci(
                y,
                lambda idx, a=attr: mean_rate(idx, a),  # type: ignore[misc]
                n_boot=n_boot,
                alpha=alpha,
                random_state=random_state,
            )
        probs = bool(((scores >= 0) & (scores <= 1)).all())
        if probs:
            out["brier"] = float(np.mean([brier_score(y, scores[:, k]) for k in range(r)]))
            out["brier_ci"] = bootstrap_ci(
                y,
                lambda idx: float(np.mean((scores[idx] - y[idx, None]) ** 2)),
                n_boot=n_boot,
                alpha=alpha,
                random_state=random_state,
            )
            out.update(repeat_calibration(y, scores))
        else:
            for key in (
                "brier",
                "brier_ci",
                "calibration_slope",
                "calibration_intercept",
                "calibration_in_the_large",
                "hosmer_lemeshow_p",
            ):
                out[key] = None
        return out


def _inner_cv(y: NDArray[np.int_], inner_splits: int, seed: int, where: str) -> StratifiedKFold:
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if min(n_pos, n_neg) < inner_splits:
        raise LearningError(
            f"{where}: a training set has {n_pos} positive and {n_neg} negative patients, too few for "
            f"{inner_splits}-fold inner cross-validation; lower inner_splits (minimum 2) or n_splits."
        )
    return StratifiedKFold(inner_splits, shuffle=True, random_state=seed)


def _fit_tuned(
    base: BaseEstimator,
    param_grid: Mapping[str, list[Any]] | None,
    X: pd.DataFrame,
    y: NDArray[np.int_],
    *,
    inner_splits: int,
    seed: int,
    threshold_method: ThresholdMethod,
    target_sensitivity: float,
    where: str,
) -> tuple[Any, float, dict[str, Any]]:
    """Tune on inner CV, refit on all of ``X``, and fix the threshold on inner out-of-fold scores."""
    inner = _inner_cv(y, inner_splits, seed, where)
    try:
        if param_grid:
            search = GridSearchCV(
                clone(base), dict(param_grid), cv=inner, scoring="roc_auc", refit=True, n_jobs=1
            )
            search.fit(X, y)
            best_params = dict(search.best_params_)
            model = search.best_estimator_
        else:
            best_params = {}
            model = clone(base).fit(X, y)
        tuned = clone(base).set_params(**best_params)
        inner_scores = cross_val_predict(tuned, X, y, cv=inner, method="predict_proba")[:, 1]
    except (ValueError, TypeError) as exc:
        raise LearningError(f"{where}: fitting failed: {exc}") from exc
    thr = choose_threshold(y, inner_scores, method=threshold_method, target_sensitivity=target_sensitivity)
    return model, thr, best_params


def _base_and_grid(
    kind: ClassifierKind,
    estimator: BaseEstimator | None,
    param_grid: Mapping[str, list[Any]] | None,
    random_state: int,
) -> tuple[BaseEstimator, Mapping[str, list[Any]] | None]:
    if estimator is None:
        base = make_classifier(kind, random_state=random_state)
        grid = default_param_grid(kind) if param_grid is None else param_grid
        return base, grid
    return estimator, param_grid


def _seed(random_state: int, *keys: int) -> int:
    return int(np.random.default_rng([random_state, *keys]).integers(0, 2**31 - 1))


def nested_cross_validate(
    X: pd.DataFrame,
    y: pd.Series,
    *,
    kind: ClassifierKind = "logistic",
    estimator: BaseEstimator | None = None,
    param_grid: Mapping[str, list[Any]] | None = None,
    n_splits: int = 5,
    n_repeats: int = 5,
    inner_splits: int = 3,
    threshold_method: ThresholdMethod = "youden",
    target_sensitivity: float = 0.9,
    random_state: int = 0,
    name: str = "",
) -> ValidationResult:
    """Repeated stratified nested cross-validation.

    For each outer split, hyper-parameters are chosen by a stratified ``inner_splits``-fold
    grid search (AUC) on the outer training folds only; the best model is refitted on those
    folds and scores the outer test fold. The operating threshold is chosen on inner
    out-of-fold scores of the training folds (never on the test fold). All preprocessing lives
    in the pipeline, so it is refitted inside every training set.

    Parameters
    ----------
    X : DataFrame
        Predictors, index = patient id.
    y : Series
        0/1 outcome, index = patient id.
    kind : str, default 'logistic'
        Classifier of :func:`~smartimaging.learn.models.make_classifier`; ignored when
        ``estimator`` is given.
    estimator : scikit-learn classifier, optional
        Any classifier with ``predict_proba`` (e.g. a pipeline with selection steps).
    param_grid : mapping, optional
        Grid for the inner search; default
        :func:`~smartimaging.learn.models.default_param_grid` of ``kind`` (none for a custom
        ``estimator``). An empty mapping disables tuning.
    n_splits, n_repeats : int, default 5, 5
        Outer scheme.
    inner_splits : int, default 3
        Inner folds.
    threshold_method : {'youden', 'sensitivity'}, default 'youden'
        See :func:`~smartimaging.learn.clinical_metrics.choose_threshold`.
    target_sensitivity : float, default 0.9
        For ``threshold_method='sensitivity'``.
    random_state : int, default 0
        Seed of outer and inner folds.
    name : str, default ''
        Label stored in the result.

    Returns
    -------
    ValidationResult
        ``scheme='nested_cv'``; call :meth:`ValidationResult.summary` for the statistics.

    Raises
    ------
    LearningError
        On misaligned inputs, non-binary labels, classes too small for the folds, or fitting
        failures.

    References
    ----------
    Varma S, Simon R. Bias in error estimation when using cross-validation for model
    selection. BMC Bioinformatics 2006;7:91.
    """
    where = f"nested_cross_validate({name!r})" if name else "nested_cross_validate"
    yi = _check_xy(X, y, n_splits=n_splits, n_repeats=n_repeats, where=where)
    base, grid = _base_and_grid(kind, estimator, param_grid, random_state)
    t0 = time.perf_counter()
    y_arr = yi.to_numpy()
    n = y_arr.size
    ids = np.asarray(X.index)
    frames = []
    best: list[dict[str, Any]] = []
    cv = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=random_state)
    for k, (train, test) in enumerate(cv.split(np.zeros(n), y_arr)):
        repeat, fold = divmod(k, n_splits)
        model, thr, params = _fit_tuned(
            base,
            grid,
            X.iloc[train],
            y_arr[train],
            inner_splits=inner_splits,
            seed=_seed(random_state, repeat, fold),
            threshold_method=threshold_method,
            target_sensitivity=target_sensitivity,
            where=f"{where}, repeat {repeat}, fold {fold}",
        )
        s = _positive_scores(model, X.iloc[test])
        best.append(params)
        frames.append(
            pd.DataFrame(
                {
                    "patient_id": ids[test],
                    "repeat": repeat,
                    "fold": fold,
                    "y_true": y_arr[test],
                    "y_score": s,
                    "threshold": thr,
                }
            )
        )
    preds = pd.concat(frames, ignore_index=True).sort_values(["repeat", "fold"], kind="stable")
    return ValidationResult(
        name=name,
        scheme="nested_cv",
        predictions=preds.reset_index(drop=True),
        best_params=best,
        n_repeats=n_repeats,
        threshold_method=threshold_method,
        seconds=time.perf_counter() - t0,
    )


def external_validate(
    X_train: pd.DataFrame,
    y_train: pd.Series,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    *,
    kind: ClassifierKind = "logistic",
    estimator: BaseEstimator | None = None,
    param_grid: Mapping[str, list[Any]] | None = None,
    inner_splits: int = 5,
    threshold_method: ThresholdMethod = "youden",
    target_sensitivity: float = 0.9,
    random_state: int = 0,
    name: str = "",
    scheme: Scheme = "external",
) -> ValidationResult:
    """Fit (with inner-CV tuning and threshold) on one cohort, evaluate once on another.

    Parameters
    ----------
    X_train, y_train : DataFrame, Series
        Development cohort (e.g. site A), index = patient id.
    X_test, y_test : DataFrame, Series
        Validation cohort (e.g. site B); must have every column of ``X_train``.
    kind, estimator, param_grid, inner_splits, threshold_method, target_sensitivity, random_state, name
        As :func:`nested_cross_validate`.
    scheme : {'external', 'holdout'}, default 'external'
        Label stored in the result.

    Returns
    -------
    ValidationResult
        One repeat, one fold (``fold = 0``); thresholds fixed on the development cohort.

    Raises
    ------
    LearningError
        On misaligned inputs, missing columns in ``X_test``, shared patient ids between the
        cohorts, or as :func:`nested_cross_validate`.
    """
    where = f"external_validate({name!r})" if name else "external_validate"
    ytr = _check_xy(X_train, y_train, n_splits=2, n_repeats=1, where=f"{where} (training cohort)")
    if not isinstance(X_test, pd.DataFrame) or not isinstance(y_test, pd.Series):
        raise LearningError(f"{where}: X_test must be a DataFrame and y_test a Series indexed by patient id.")
    missing = [c for c in X_train.columns if c not in X_test.columns]
    if missing:
        raise LearningError(
            f"{where}: the validation cohort lacks column(s) {missing[:10]} of the training cohort; "
            "extract the same features with the same settings for both cohorts."
        )
    shared = X_train.index.intersection(X_test.index)
    if len(shared):
        raise LearningError(
            f"{where}: {len(shared)} patient id(s) are in both cohorts (e.g. {list(shared[:3])}); "
            "validation patients must not be used for training."
        )
    miss_y = X_test.index.difference(y_test.index)
    if len(miss_y):
        raise LearningError(
            f"{where}: y_test lacks {len(miss_y)} patient(s) of X_test, e.g. {list(miss_y[:3])}."
        )
    yte = y_test.loc[X_test.index]
    if yte.isna().any() or not set(pd.unique(yte).tolist()) <= {0, 1}:
        raise LearningError(f"{where}: y_test must hold 0/1 labels without missing values.")
    base, grid = _base_and_grid(kind, estimator, param_grid, random_state)
    t0 = time.perf_counter()
    model, thr, params = _fit_tuned(
        base,
        grid,
        X_train,
        ytr.to_numpy(),
        inner_splits=inner_splits,
        seed=_seed(random_state, 0, 0),
        threshold_method=threshold_method,
        target_sensitivity=target_sensitivity,
        where=where,
    )
    s = _positive_scores(model, X_test[list(X_train.columns)])
    preds = pd.DataFrame(
        {
            "patient_id": np.asarray(X_test.index),
            "repeat": 0,
            "fold": 0,
            "y_true": yte.astype(int).to_numpy(),
            "y_score": s,
            "threshold": thr,
        }
    )
    return ValidationResult(
        name=name,
        scheme=scheme,
        predictions=preds,
        best_params=[params],
        n_repeats=1,
        threshold_method=threshold_method,
        seconds=time.perf_counter() - t0,
    )


def holdout_validate(
    X: pd.DataFrame,
    y: pd.Series,
    *,
    test_size: float = 0.3,
    kind: ClassifierKind = "logistic",
    estimator: BaseEstimator | None = None,
    param_grid: Mapping[str, list[Any]] | None = None,
    inner_splits: int = 5,
    threshold_method: ThresholdMethod = "youden",
    target_sensitivity: float = 0.9,
    random_state: int = 0,
    name: str = "",
) -> ValidationResult:
    """Stratified random split into development and held-out patients, then :func:`external_validate`.

    Parameters
    ----------
    X, y : DataFrame, Series
        Whole cohort, index = patient id.
    test_size : float, default 0.3
        Fraction held out, in (0, 1).
    kind, estimator, param_grid, inner_splits, threshold_method, target_sensitivity, random_state, name
        As :func:`nested_cross_validate`; ``random_state`` also seeds the split.

    Returns
    -------
    ValidationResult
        ``scheme='holdout'``, predictions for the held-out patients only.

    Raises
    ------
    LearningError
        As :func:`nested_cross_validate`, or if ``test_size`` is outside (0, 1).
    """
    where = f"holdout_validate({name!r})" if name else "holdout_validate"
    if not 0.0 < test_size < 1.0:
        raise LearningError(f"{where}: test_size must lie in (0, 1), got {test_size!r}.")
    yi = _check_xy(X, y, n_splits=2, n_repeats=1, where=where)
    train_ids, test_ids = train_test_split(
        np.asarray(X.index), test_size=test_size, stratify=yi.to_numpy(), random_state=random_state
    )
    return external_validate(
        X.loc[train_ids],
        yi.loc[train_ids],
        X.loc[test_ids],
        yi.loc[test_ids],
        kind=kind,
        estimator=estimator,
        param_grid=param_grid,
        inner_splits=inner_splits,
        threshold_method=threshold_method,
        target_sensitivity=target_sensitivity,
        random_state=random_state,
        name=name,
        scheme="holdout",
    )


def compare_validated(results: Mapping[str, ValidationResult], *, level: float = 0.95) -> pd.DataFrame:
    """Pairwise DeLong tests between models validated on the same patients.

    For cross-validated results the repeat-averaged out-of-fold scores are compared; the
    DeLong test treats those scores as fixed, so its p-value ignores the variability from
    refitting (an approximation that is usual in radiomics comparisons, and exact for two
    fixed models on one external cohort).

    Parameters
    ----------
    results : mapping of str to ValidationResult
        At least two results over the same patients with the same labels.
    level : float, default 0.95
        Confidence level of the difference's interval.

    Returns
    -------
    DataFrame
        One row per pair: ``model_a, model_b, auc_a, auc_b, difference, ci_lo, ci_hi, z,
        p_value, note``. Two models that rank every patient pair the same way have equal AUCs and
        a difference of zero variance: their row has ``p_value`` 1 and says so in ``note``.

    Raises
    ------
    LearningError
        With fewer than two results, or results on different patients or labels.
    """
    names = list(results)
    if len(names) < 2:
        raise LearningError("compare_validated: give at least two validation results to compare.")
    mats = {nm: results[nm].matrices() for nm in names}
    ids0 = mats[names[0]][0]
    for nm in names[1:]:
        ids = mats[nm][0]
        if not ids.sort_values().equals(ids0.sort_values()):
            raise LearningError(
                f"compare_validated: {names[0]!r} and {nm!r} were evaluated on different patients; compare models "
                "only on the same patients (same folds or same external cohort)."
            )
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ids_a, ya, sa, _ = mats[a]
            ids_b, yb, sb, _ = mats[b]
            pos_b = pd.Series(np.arange(ids_b.size), index=ids_b).loc[ids_a].to_numpy()
            if not np.array_equal(ya, yb[pos_b]):
                raise LearningError(
                    f"compare_validated: {a!r} and {b!r} have different labels for the same patients."
                )
            score_a, score_b = sa.mean(axis=1), sb[pos_b].mean(axis=1)
            try:
                t = delong_test(ya, score_a, score_b, level=level)
            except LearningError:
                # the difference has zero variance: the two models rank every positive-negative pair
                # the same way, so their AUCs are equal and there is no difference to test
                aucs, cov = delong_covariance(ya, np.vstack([score_a, score_b]))
                if float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1]) > 1e-15:
                    raise
                diff = float(aucs[0] - aucs[1])
                rows.append(
                    {
                        "model_a": a,
                        "model_b": b,
                        "auc_a": float(aucs[0]),
                        "auc_b": float(aucs[1]),
                        "difference": diff,
                        "ci_lo": diff,
                        "ci_hi": diff,
                        "z": 0.0,
                        "p_value": 1.0,
                        "note": "the two models rank the patients identically: no difference to test",
                    }
                )
                continue
            rows.append(
                {
                    "model_a": a,
                    "model_b": b,
                    "auc_a": t.auc_a,
                    "auc_b": t.auc_b,
                    "difference": t.difference,
                    "ci_lo": t.ci_difference[0],
                    "ci_hi": t.ci_difference[1],
                    "z": t.z,
                    "p_value": t.p_value,
                    "note": "",
                }
            )
    return pd.DataFrame(rows)
