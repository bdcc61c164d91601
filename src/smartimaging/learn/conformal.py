"""Conformal prediction sets for a binary classifier, with an explicit 'abstain'.

A conformal predictor turns any classifier's probabilities into a *prediction set*: the
outcomes that remain plausible for a patient at a stated coverage ``1 - alpha``. Over new
patients exchangeable with the calibration patients, the set contains the true outcome with
probability at least ``1 - alpha`` (split conformal; Vovk et al. 2005, Angelopoulos & Bates
2023). For a binary outcome the set is ``{positive}``, ``{negative}``, both (the model cannot
tell at that coverage) or empty (neither outcome is typical of the calibration data); the
last two give the decision ``"abstain"``.

Methods (conformity scores), as in MAPIE:

* ``"lac"`` (least ambiguous set-valued classifier, Sadinle et al. 2019): score
  ``1 - p(y | x)``; a label is in the set when its probability is at least ``1 - q``;
* ``"aps"`` (adaptive prediction sets, Romano et al. 2020, non-randomised): score = total
  probability of the labels at least as probable as ``y``; a label is in the set when that
  total is at most ``q``. Deterministic (no random tie-breaking), hence conservative for a
  binary outcome: the less probable label always scores 1, so as soon as more than ``alpha`` of
  the calibration patients had the less probable outcome, ``q = 1`` and every set holds both
  outcomes (valid but uninformative). Prefer ``"lac"`` (the smallest sets on average).

``q`` is the ``ceil((n + 1)(1 - alpha))``-th smallest score of the ``n`` calibration patients
(infinite, so every set holds both labels, when ``n`` is too small for the coverage asked).

Calibration (``cv``):

* ``"split"``: a stratified random part of the training data (``calibration_size``) is held
  out; the model is fitted on the rest and scored on it. Coverage is guaranteed (finite
  sample), at the cost of a model fitted on fewer patients.
* an integer ``K``: cross-conformal. ``K`` stratified folds; each fold's model is fitted on
  the other folds and scores its fold, so every training patient gives one out-of-fold score
  and no patient scores a model that saw it. New patients get the mean probability of the
  ``K`` fold models (MAPIE's ``agg_scores="mean"``). Uses every patient for calibration;
  coverage is close to, but not formally guaranteed at, ``1 - alpha``.

The fitted object keeps only the fitted models, ``q`` and the number of calibration patients:
no patient's data or score (it can go into a model bundle).

References
----------
Vovk V, Gammerman A, Shafer G. Algorithmic Learning in a Random World. Springer 2005.
Sadinle M, Lei J, Wasserman L. Least ambiguous set-valued classifiers with bounded error
levels. J Am Stat Assoc 2019;114:223-234.
Romano Y, Sesia M, Candès E. Classification with valid and adaptive coverage. NeurIPS 2020.
Angelopoulos AN, Bates S. Conformal prediction: a gentle introduction. Found Trends Mach Learn
2023;16:494-591.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

from smartimaging.exceptions import LearningError

__all__ = ["DECISIONS", "ConformalClassifier", "ConformalMethod", "conformal_quantile"]

ConformalMethod = Literal["lac", "aps"]
_METHODS: tuple[str, ...] = get_args(ConformalMethod)

#: Values of the ``decision`` column of :meth:`ConformalClassifier.predict`.
DECISIONS: tuple[str, ...] = ("positive", "negative", "abstain")

_TOLERANCE = 1e-8  # a label whose score exceeds q by less than this is kept (as MAPIE does)


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """The split-conformal threshold: the ``ceil((n + 1)(1 - alpha))``-th smallest score.

    Parameters
    ----------
    scores : array of shape (n,)
        Conformity scores of the calibration patients (larger = less typical).
    alpha : float
        Miscoverage, in (0, 1).

    Returns
    -------
    float
        The threshold; ``inf`` when ``ceil((n + 1)(1 - alpha)) > n`` (too few patients for
        that coverage: every label is kept).
    """
    s = np.sort(np.asarray(scores, dtype=float).ravel())
    k = math.ceil((len(s) + 1) * (1.0 - alpha))
    return float(s[k - 1]) if 1 <= k <= len(s) else math.inf


def _scores_all_labels(proba: np.ndarray, method: str) -> np.ndarray:
    """Conformity score of every (patient, label) pair, shape (n, n_classes)."""
    if method == "lac":
        return 1.0 - proba
    # aps: total probability of the labels at least as probable as the label itself
    return np.sum(np.where(proba[:, None, :] >= proba[:, :, None], proba[:, None, :], 0.0), axis=2)


class ConformalClassifier:
    """Split or cross-conformal prediction sets around a binary classifier.

    Parameters
    ----------
    estimator : classifier
        Unfitted scikit-learn classifier or pipeline with ``predict_proba`` (e.g.
        :func:`~smartimaging.learn.models.make_classifier`); cloned for every fit.
    alpha : float, default 0.1
        Miscoverage: the sets hold the true outcome for a fraction ``1 - alpha`` of patients.
    method : {"lac", "aps"}, default "lac"
        Conformity score (see the module docstring).
    cv : "split" or int, default "split"
        ``"split"``: hold out ``calibration_size`` of the data; an integer ``K >= 2``:
        cross-conformal with ``K`` stratified folds.
    random_state : int, default 0
        Seed of the calibration split or folds.
    calibration_size : float, default 0.25
        Fraction held out for calibration with ``cv="split"``.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The outcome labels; ``classes_[1]`` is the positive one.
    estimators_ : list
        Fitted models: one (split) or ``K`` (cross-conformal).
    quantile_ : float
        The conformal threshold ``q``.
    n_calibration_ : int
        Patients whose scores set ``q``.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"suv": rng.normal(size=400)})
    >>> y = (X["suv"] + rng.normal(size=400) > 0).astype(int)
    >>> cp = ConformalClassifier(LogisticRegression(), alpha=0.1, cv=5).fit(X, y)
    >>> sorted(cp.predict(X.iloc[:3]).columns)
    ['decision', 'prediction_set', 'probability']
    """

    def __init__(
        self,
        estimator: Any,
        *,
        alpha: float = 0.1,
        method: ConformalMethod = "lac",
        cv: Literal["split"] | int = "split",
        random_state: int = 0,
        calibration_size: float = 0.25,
    ) -> None:
        self.estimator = estimator
        self.alpha = alpha
        self.method = method
        self.cv = cv
        self.random_state = random_state
        self.calibration_size = calibration_size

    @property
    def coverage(self) -> float:
        """The stated coverage ``1 - alpha``."""
        return 1.0 - float(self.alpha)

    def _check(self) -> None:
        if not 0.0 < float(self.alpha) < 1.0:
            raise LearningError(f"ConformalClassifier: alpha must be in (0, 1), got {self.alpha!r}.")
        if self.method not in _METHODS:
            raise LearningError(
                f"ConformalClassifier: unknown method {self.method!r}; valid values are {list(_METHODS)}."
            )
        if self.cv != "split" and not (
            isinstance(self.cv, int) and not isinstance(self.cv, bool) and self.cv >= 2
        ):
            raise LearningError(
                f"ConformalClassifier: cv must be 'split' or an integer number of folds >= 2, got {self.cv!r}."
            )
        if self.cv == "split" and not 0.0 < float(self.calibration_size) < 1.0:
            raise LearningError(
                f"ConformalClassifier: calibration_size must be in (0, 1), got {self.calibration_size!r}."
            )

    def fit(self, X: pd.DataFrame, y: Any) -> ConformalClassifier:
        """Fit the model(s) and the conformal threshold.

        Parameters
        ----------
        X : DataFrame
            Training patients.
        y : array-like
            Binary outcomes.

        Returns
        -------
        ConformalClassifier
            ``self``.

        Raises
        ------
        LearningError
            If an option is invalid, the outcome is not binary, or a class has fewer patients
            than the folds (or than 2 for the split).
        """
        self._check()
        y_arr = np.asarray(y)
        if len(y_arr) != len(X):
            raise LearningError(f"ConformalClassifier.fit: X has {len(X)} rows but y has {len(y_arr)}.")
        classes, counts = np.unique(y_arr, return_counts=True)
        if len(classes) != 2:
            raise LearningError(
                f"ConformalClassifier.fit: needs a binary outcome; got the classes {list(classes)}."
            )
        needed = self.cv if isinstance(self.cv, int) else 2
        if counts.min() < needed:
            raise LearningError(
                f"ConformalClassifier.fit: the rarer outcome has {int(counts.min())} patients; "
                f"cv={self.cv!r} needs at least {needed}."
            )
        self.classes_ = classes
        codes = (y_arr == classes[1]).astype(int)
        if self.cv == "split":
            splitter = StratifiedShuffleSplit(
                n_splits=1, test_size=self.calibration_size, random_state=self.random_state
            )
        else:
            splitter = StratifiedKFold(n_splits=int(self.cv), shuffle=True, random_state=self.random_state)
        estimators, scores = [], []
        for train, calibration in splitter.split(np.zeros(len(codes)), codes):
            model = clone(self.estimator).fit(_rows(X, train), y_arr[train])
            proba = self._proba(model, _rows(X, calibration))
            all_scores = _scores_all_labels(proba, str(self.method))
            scores.append(all_scores[np.arange(len(calibration)), codes[calibration]])
            estimators.append(model)
        calibration_scores = np.concatenate(scores)
        self.estimators_ = estimators
        self.n_calibration_ = len(calibration_scores)
        self.quantile_ = conformal_quantile(calibration_scores, float(self.alpha))
        return self

    def _proba(self, model: Any, X: Any) -> np.ndarray:
        proba = np.asarray(model.predict_proba(X), dtype=float)
        order = [list(model.classes_).index(c) for c in self.classes_]
        return proba[:, order]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probabilities of ``classes_`` (mean over the fold models), shape (n, 2)."""
        if not hasattr(self, "estimators_"):
            raise LearningError("ConformalClassifier: call fit before predicting.")
        return np.mean([self._proba(m, X) for m in self.estimators_], axis=0)

    def predict_set(self, X: pd.DataFrame) -> np.ndarray:
        """Prediction sets as a boolean array (n, 2): column ``j`` is True when ``classes_[j]`` is in."""
        scores = _scores_all_labels(self.predict_proba(X), str(self.method))
        return np.asarray(scores - self.quantile_ <= _TOLERANCE)

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Probability, prediction set and decision of each patient.

        Returns
        -------
        DataFrame
            Index ``X.index``; columns ``probability`` (of ``classes_[1]``, mean over the fold
            models), ``prediction_set`` (tuple of labels) and ``decision``: ``"positive"`` or
            ``"negative"`` when the set holds exactly that outcome, ``"abstain"`` when it holds
            both or none.
        """
        proba = self.predict_proba(X)
        sets = self.predict_set(X)
        labels = [tuple(self.classes_[row].tolist()) for row in sets]
        decision = np.where(sets.sum(axis=1) != 1, "abstain", np.where(sets[:, 1], "positive", "negative"))
        return pd.DataFrame(
            {"probability": proba[:, 1], "prediction_set": labels, "decision": decision},
            index=getattr(X, "index", None),
        )


def _rows(X: Any, index: np.ndarray) -> Any:
    return X.iloc[index] if isinstance(X, pd.DataFrame | pd.Series) else np.asarray(X)[index]
