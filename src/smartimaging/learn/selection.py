"""Feature selection as scikit-learn transformers, fitted inside the training folds only.

Every selector derives from :class:`sklearn.feature_selection.SelectorMixin`, so it exposes
``get_support``, ``transform``, ``get_feature_names_out`` and works with
``set_output(transform='pandas')``; what it selected and why is stored in attributes ending in
``_`` (scores, p-values, clusters). See docs/learning.md.
"""

from __future__ import annotations

import os
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_selection import SelectorMixin, mutual_info_classif, mutual_info_regression
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted, validate_data

from smartimaging.exceptions import LearningError

__all__ = [
    "BorutaSelector",
    "CorrelationClusterSelector",
    "L1Selector",
    "MRMRSelector",
    "NearZeroVariance",
    "StableFeatureFilter",
    "UnivariateFDRSelector",
    "benjamini_hochberg",
]

UnivariateTest = Literal["mannwhitney", "ttest"]
MRMRScheme = Literal["MID", "MIQ"]


def benjamini_hochberg(pvalues: ArrayLike) -> NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values (q-values) controlling the false discovery rate.

    Parameters
    ----------
    pvalues : array_like of shape (m,)
        Raw p-values in [0, 1].

    Returns
    -------
    ndarray of shape (m,)
        ``q_(i) = min_{j >= i} m p_(j) / j`` (sorted order), capped at 1, in the input order.

    Raises
    ------
    LearningError
        If a p-value is outside [0, 1] or not finite.

    References
    ----------
    Benjamini Y, Hochberg Y. Controlling the false discovery rate. J R Stat Soc B 1995;57:289-300.
    """
    p = np.asarray(pvalues, dtype=float).ravel()
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise LearningError("benjamini_hochberg: p-values must be finite and lie in [0, 1].")
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def _binary_y(y: Any, where: str) -> NDArray[np.int64]:
    arr = np.asarray(y)
    values = set(pd.unique(arr.ravel()).tolist())
    if y is None or not values <= {0, 1} or len(values) < 2:
        raise LearningError(
            f"{where}: y must hold 0/1 labels of both classes, found {sorted(map(str, values))[:5]}."
        )
    return arr.astype(np.int64)


class _Selector(SelectorMixin, BaseEstimator):
    """Common validation: numeric finite X, feature names kept for get_feature_names_out."""

    def _validate(self, X: Any) -> NDArray[np.float64]:
        return np.asarray(validate_data(self, X, dtype=np.float64, reset=True), dtype=float)

    def _get_support_mask(self) -> NDArray[np.bool_]:
        check_is_fitted(self, "support_")
        return np.asarray(self.support_, dtype=bool)

    @property
    def selected_features_(self) -> list[str]:
        """Names of the kept features (``x0, x1, ...`` when fitted on an array)."""
        return [str(n) for n in self.get_feature_names_out()]


class StableFeatureFilter(_Selector):
    """Keep only features found stable in a robustness study (ICC filter).

    Parameters
    ----------
    stable : sequence of str, path to a CSV, or DataFrame
        Names of stable features, or the robustness table with columns ``feature``, ``icc`` and
        ``stable`` (booleans).
    min_icc : float, optional
        With a table: keep features with ``icc >= min_icc`` instead of the ``stable`` column.
    keep_unlisted : bool, default False
        Keep input features absent from the list/table (e.g. clinical variables).

    Attributes
    ----------
    stable_names_ : set of str
        Stable names read from ``stable``.
    support_ : ndarray of bool

    Raises
    ------
    LearningError
        If the table lacks the columns, or no input feature is stable.

    References
    ----------
    Zwanenburg A et al. Assessing robustness of radiomic features by image perturbation. Sci Rep
    2019;9:614. Koo TK, Li MY. J Chiropr Med 2016;15:155-163 (ICC thresholds).
    """

    def __init__(
        self, stable: Any = (), *, min_icc: float | None = None, keep_unlisted: bool = False
    ) -> None:
        self.stable = stable
        self.min_icc = min_icc
        self.keep_unlisted = keep_unlisted

    def _names(self) -> tuple[set[str], set[str]]:
        table: pd.DataFrame | None = None
        if isinstance(self.stable, pd.DataFrame):
            table = self.stable
        elif isinstance(self.stable, str | os.PathLike):
            try:
                table = pd.read_csv(self.stable)
            except (OSError, ValueError) as exc:
                raise LearningError(f"StableFeatureFilter: cannot read {str(self.stable)!r}: {exc}") from exc
        if table is None:
            names = {str(n) for n in self.stable}
            return names, names
        need = ["feature", "icc" if self.min_icc is not None else "stable"]
        absent = [c for c in need if c not in table.columns]
        if absent:
            raise LearningError(
                f"StableFeatureFilter: the robustness table lacks column(s) {absent}; it must have "
                f"feature, icc, stable (found {list(table.columns)})."
            )
        if self.min_icc is not None:
            keep = pd.to_numeric(table["icc"], errors="coerce") >= self.min_icc
        else:
            keep = table["stable"].astype(str).str.lower().isin(["true", "1", "yes"])
        return {str(n) for n in table.loc[keep, "feature"]}, {str(n) for n in table["feature"]}

    def fit(self, X: Any, y: Any = None) -> StableFeatureFilter:
        """Select the input columns listed as stable.

        Parameters
        ----------
        X : DataFrame of shape (n, p)
            Column names are matched against the stable list.
        y : ignored

        Returns
        -------
        StableFeatureFilter
        """
        self._validate(X)
        if not hasattr(self, "feature_names_in_"):
            raise LearningError("StableFeatureFilter: X must be a DataFrame with feature names.")
        stable, listed = self._names()
        self.stable_names_ = stable
        names = [str(n) for n in self.feature_names_in_]
        self.support_ = np.array(
            [n in stable or (self.keep_unlisted and n not in listed) for n in names], dtype=bool
        )
        if not self.support_.any():
            raise LearningError(
                f"StableFeatureFilter: none of the {len(names)} input features is stable "
                f"(e.g. inputs {names[:3]}, stable {sorted(stable)[:3]}); check the feature names match."
            )
        return self


class NearZeroVariance(_Selector):
    """Drop features with (near-)zero variance, by the rule of caret's ``nearZeroVar``.

    A feature is dropped if it is constant, or if both the ratio of the most to the second most
    frequent value exceeds ``freq_ratio`` and the percentage of distinct values is below
    ``unique_percent``.

    Parameters
    ----------
    freq_ratio : float, default 95/5
    unique_percent : float, default 10

    Attributes
    ----------
    freq_ratio_, unique_percent_ : ndarray of shape (p,)
    support_ : ndarray of bool

    References
    ----------
    Kuhn M. Building predictive models in R using the caret package. J Stat Softw 2008;28(5).
    """

    def __init__(self, *, freq_ratio: float = 95 / 5, unique_percent: float = 10.0) -> None:
        self.freq_ratio = freq_ratio
        self.unique_percent = unique_percent

    def fit(self, X: Any, y: Any = None) -> NearZeroVariance:
        """Compute the frequency ratio and percent unique of each feature.

        Parameters
        ----------
        X : array_like of shape (n, p)
        y : ignored

        Returns
        -------
        NearZeroVariance
        """
        x = self._validate(X)
        n, p = x.shape
        ratio = np.empty(p)
        unique = np.empty(p)
        for j in range(p):
            _, counts = np.unique(x[:, j], return_counts=True)
            counts = np.sort(counts)[::-1]
            ratio[j] = counts[0] / counts[1] if counts.size > 1 else np.inf
            unique[j] = 100.0 * counts.size / n
        self.freq_ratio_, self.unique_percent_ = ratio, unique
        drop = np.isinf(ratio) | ((ratio > self.freq_ratio) & (unique < self.unique_percent))
        self.support_ = ~drop
        return self


def _association(x: NDArray[np.float64], y: NDArray[np.int64]) -> NDArray[np.float64]:
    """|AUC - 0.5| of each column for a 0/1 target (Mann-Whitney effect size)."""
    ranks = stats.rankdata(x, axis=0)
    n1 = int(y.sum())
    n0 = y.size - n1
    auc = (ranks[y == 1].sum(axis=0) - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    return np.asarray(np.abs(auc - 0.5), dtype=float)


class CorrelationClusterSelector(_Selector):
    """Cluster correlated features and keep one representative per cluster.

    Hierarchical clustering (``linkage``) of the distance ``1 - |Spearman rho|``, cut at
    ``1 - threshold``: features in one cluster are correlated at about ``threshold`` or more.
    From each cluster the feature most associated with the target in the training data is kept
    (``|AUC - 0.5|``), ties broken by the larger variance; without ``y``, the largest variance.

    Parameters
    ----------
    threshold : float, default 0.9
        |Spearman rho| defining redundancy, in (0, 1).
    linkage : {'average', 'complete', 'single'}, default 'average'

    Attributes
    ----------
    clusters_ : ndarray of int, shape (p,)
        Cluster of each input feature (1-based).
    relevance_ : ndarray of shape (p,)
        Association with the target (NaN without ``y``).
    support_ : ndarray of bool

    References
    ----------
    Leger S et al. A comparative study of machine learning methods for time-to-event survival
    data for radiomics risk modelling. Sci Rep 2017;7:13206 (clustering of correlated features).
    """

    def __init__(self, *, threshold: float = 0.9, linkage: str = "average") -> None:
        self.threshold = threshold
        self.linkage = linkage

    def fit(self, X: Any, y: Any = None) -> CorrelationClusterSelector:
        """Cluster the features and pick the representatives.

        Parameters
        ----------
        X : array_like of shape (n, p)
        y : array_like of 0/1, optional

        Returns
        -------
        CorrelationClusterSelector
        """
        if not 0.0 < self.threshold < 1.0:
            raise LearningError(
                f"CorrelationClusterSelector: threshold must lie in (0, 1), got {self.threshold!r}."
            )
        if self.linkage not in ("average", "complete", "single"):
            raise LearningError(
                f"CorrelationClusterSelector: unknown linkage {self.linkage!r}; valid values are "
                "['average', 'complete', 'single']."
            )
        x = self._validate(X)
        p = x.shape[1]
        variance = x.var(axis=0)
        if p == 1:
            self.clusters_ = np.ones(1, dtype=int)
            self.relevance_ = np.full(1, np.nan)
            self.support_ = np.ones(1, dtype=bool)
            return self
        rho = stats.spearmanr(x).statistic
        rho = np.nan_to_num(np.atleast_2d(rho), nan=0.0)  # constant columns correlate with nothing
        dist = 1.0 - np.abs(rho)
        np.fill_diagonal(dist, 0.0)
        dist = np.clip((dist + dist.T) / 2.0, 0.0, None)
        tree = linkage(squareform(dist, checks=False), method=self.linkage)
        self.clusters_ = fcluster(tree, t=1.0 - self.threshold, criterion="distance")
        relevance = (
            _association(x, _binary_y(y, "CorrelationClusterSelector"))
            if y is not None
            else np.full(p, np.nan)
        )
        self.relevance_ = relevance
        support = np.zeros(p, dtype=bool)
        score = np.nan_to_num(relevance, nan=0.0)
        for c in np.unique(self.clusters_):
            members = np.flatnonzero(self.clusters_ == c)
            best = max(members, key=lambda j: (score[j], variance[j], -j))
            support[best] = True
        self.support_ = support
        return self


class UnivariateFDRSelector(_Selector):
    """Keep features whose univariate test against a binary target survives Benjamini-Hochberg FDR.

    Parameters
    ----------
    test : {'mannwhitney', 'ttest'}, default 'mannwhitney'
        Two-sided Mann-Whitney U (asymptotic, tie-corrected) or Welch's t-test.
    alpha : float, default 0.05
        FDR level.
    min_features : int, default 1
        If fewer features survive, the ``min_features`` with the smallest p-values are kept (so a
        pipeline never ends with no feature); recorded in ``n_significant_``.

    Attributes
    ----------
    pvalues_, qvalues_ : ndarray of shape (p,)
    n_significant_ : int
    support_ : ndarray of bool

    References
    ----------
    Benjamini Y, Hochberg Y. J R Stat Soc B 1995;57:289-300.
    """

    def __init__(
        self, *, test: UnivariateTest = "mannwhitney", alpha: float = 0.05, min_features: int = 1
    ) -> None:
        self.test = test
        self.alpha = alpha
        self.min_features = min_features

    def fit(self, X: Any, y: Any) -> UnivariateFDRSelector:
        """Test each feature and apply the FDR.

        Parameters
        ----------
        X : array_like of shape (n, p)
        y : array_like of 0/1

        Returns
        -------
        UnivariateFDRSelector
        """
        if self.test not in get_args(UnivariateTest):
            raise LearningError(
                f"UnivariateFDRSelector: unknown test {self.test!r}; valid values are {list(get_args(UnivariateTest))}."
            )
        if not 0.0 < self.alpha < 1.0:
            raise LearningError(f"UnivariateFDRSelector: alpha must lie in (0, 1), got {self.alpha!r}.")
        x = self._validate(X)
        yy = _binary_y(y, "UnivariateFDRSelector")
        varying = np.ptp(x, axis=0) > 0  # a constant feature carries no evidence: p = 1
        a, b = x[yy == 1][:, varying], x[yy == 0][:, varying]
        p = np.ones(x.shape[1])
        if varying.any():
            with np.errstate(invalid="ignore", divide="ignore"):
                if self.test == "mannwhitney":
                    res = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic", axis=0)
                else:
                    res = stats.ttest_ind(a, b, equal_var=False, axis=0)
            p[varying] = res.pvalue
        p = np.where(np.isfinite(p), p, 1.0)
        self.pvalues_ = np.asarray(p, dtype=float)
        self.qvalues_ = benjamini_hochberg(self.pvalues_)
        support = self.qvalues_ <= self.alpha
        self.n_significant_ = int(support.sum())
        k = min(int(self.min_features), x.shape[1])
        if support.sum() < k:
            support[np.argsort(self.pvalues_, kind="stable")[:k]] = True
        self.support_ = support
        return self


class MRMRSelector(_Selector):
    """Minimum redundancy - maximum relevance selection with mutual information.

    Greedy: first the feature of largest relevance I(f; y); then, at each step, the feature
    maximising ``I(f; y) - mean_s I(f; s)`` (MID) or ``I(f; y) / mean_s I(f; s)`` (MIQ) over the
    already selected ``s``. Mutual information by the k-nearest-neighbour estimators of
    scikit-learn, seeded for determinism.

    Parameters
    ----------
    n_features : int, default 10
    scheme : {'MID', 'MIQ'}, default 'MID'
    n_neighbors : int, default 3
    random_state : int, default 0

    Attributes
    ----------
    relevance_ : ndarray of shape (p,)
    order_ : list of int
        Selected feature indices in the order chosen.
    support_ : ndarray of bool

    References
    ----------
    Peng H, Long F, Ding C. Feature selection based on mutual information: criteria of
    max-dependency, max-relevance, and min-redundancy. IEEE TPAMI 2005;27:1226-1238.
    """

    def __init__(
        self, *, n_features: int = 10, scheme: MRMRScheme = "MID", n_neighbors: int = 3, random_state: int = 0
    ) -> None:
        self.n_features = n_features
        self.scheme = scheme
        self.n_neighbors = n_neighbors
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> MRMRSelector:
        """Select ``n_features`` features greedily.

        Parameters
        ----------
        X : array_like of shape (n, p)
        y : array_like of 0/1 (or class labels)

        Returns
        -------
        MRMRSelector
        """
        if self.scheme not in get_args(MRMRScheme):
            raise LearningError(
                f"MRMRSelector: unknown scheme {self.scheme!r}; valid values are ['MID', 'MIQ']."
            )
        if not isinstance(self.n_features, int | np.integer) or self.n_features < 1:
            raise LearningError(
                f"MRMRSelector: n_features must be a positive integer, got {self.n_features!r}."
            )
        x = self._validate(X)
        p = x.shape[1]
        k = min(int(self.n_features), p)
        relevance = mutual_info_classif(
            x, np.asarray(y), n_neighbors=self.n_neighbors, random_state=self.random_state
        )
        self.relevance_ = relevance
        order = [int(np.argmax(relevance))]
        redundancy = np.zeros(p)
        while len(order) < k:
            last = order[-1]
            redundancy += mutual_info_regression(
                x, x[:, last], n_neighbors=self.n_neighbors, random_state=self.random_state
            )
            mean_red = redundancy / len(order)
            if self.scheme == "MID":
                score = relevance - mean_red
            else:
                score = relevance / np.maximum(mean_red, 1e-12)
            score[order] = -np.inf
            order.append(int(np.argmax(score)))
        self.order_ = order
        support = np.zeros(p, dtype=bool)
        support[order] = True
        self.support_ = support
        return self


class L1Selector(_Selector):
    """Features with a non-zero coefficient in an L1 (LASSO) or elastic-net logistic regression.

    The penalty strength C is chosen by inner stratified cross-validation of the AUC
    (:class:`~sklearn.linear_model.LogisticRegressionCV`, liblinear for LASSO, saga for elastic net) on the training data. Give
    it standardised features.

    Parameters
    ----------
    l1_ratio : float, default 1.0
        1 = LASSO; in (0, 1) elastic net.
    Cs : int, default 10
        Grid of C values (log-spaced, as scikit-learn).
    cv : int, default 5
        Inner folds.
    random_state : int, default 0
    max_iter : int, default 5000

    Attributes
    ----------
    coef_ : ndarray of shape (p,)
    C_ : float
    support_ : ndarray of bool
        Non-zero coefficients; if none, the single feature of largest |coef| on the densest
        path point is kept, so the pipeline never has zero features.

    References
    ----------
    Tibshirani R. Regression shrinkage and selection via the lasso. J R Stat Soc B 1996;58:267-288.
    Zou H, Hastie T. Regularization and variable selection via the elastic net. J R Stat Soc B 2005;67:301-320.
    """

    def __init__(
        self, *, l1_ratio: float = 1.0, Cs: int = 10, cv: int = 5, random_state: int = 0, max_iter: int = 5000
    ) -> None:
        self.l1_ratio = l1_ratio
        self.Cs = Cs
        self.cv = cv
        self.random_state = random_state
        self.max_iter = max_iter

    def fit(self, X: Any, y: Any) -> L1Selector:
        """Fit the cross-validated penalised logistic regression.

        Parameters
        ----------
        X : array_like of shape (n, p)
        y : array_like of 0/1

        Returns
        -------
        L1Selector
        """
        if not 0.0 < self.l1_ratio <= 1.0:
            raise LearningError(f"L1Selector: l1_ratio must lie in (0, 1], got {self.l1_ratio!r}.")
        x = self._validate(X)
        yy = _binary_y(y, "L1Selector")
        n_splits = max(2, min(int(self.cv), int(np.bincount(yy).min())))
        model = LogisticRegressionCV(
            Cs=self.Cs,
            l1_ratios=(float(self.l1_ratio),),
            solver="liblinear" if self.l1_ratio == 1.0 else "saga",
            cv=StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state),
            scoring="roc_auc",
            max_iter=self.max_iter,
            random_state=self.random_state,
            use_legacy_attributes=False,
        )
        model.fit(x, yy)
        coef = np.asarray(model.coef_, dtype=float).ravel()
        self.coef_ = coef
        self.C_ = float(np.ravel(model.C_)[0])
        support = np.abs(coef) > 1e-10
        if not support.any():
            support[int(np.argmax(np.abs(coef)))] = True
        self.support_ = support
        return self


class BorutaSelector(_Selector):
    """Boruta-style all-relevant selection: features that beat their own shuffled shadows.

    Each iteration adds a shadow copy of every undecided or confirmed feature (its values
    permuted across patients), fits a random forest and counts a hit for each real feature whose
    impurity importance exceeds the largest shadow importance. After each iteration a two-sided
    binomial test of the hits against p = 1/2, Bonferroni-corrected over the undecided features,
    confirms (more hits than chance) or rejects (fewer) them; rejected features leave the forest.

    Parameters
    ----------
    n_estimators : int, default 200
    max_iter : int, default 30
    alpha : float, default 0.05
    keep_tentative : bool, default False
        Also keep features still undecided after ``max_iter``.
    random_state : int, default 0

    Attributes
    ----------
    hits_ : ndarray of int, shape (p,)
    n_iter_ : int
    decision_ : ndarray of str, shape (p,)
        ``'confirmed'``, ``'rejected'`` or ``'tentative'``.
    support_ : ndarray of bool
        Confirmed (and tentative if asked); if none, the feature with most hits.

    References
    ----------
    Kursa MB, Rudnicki WR. Feature selection with the Boruta package. J Stat Softw 2010;36(11).
    """

    def __init__(
        self,
        *,
        n_estimators: int = 200,
        max_iter: int = 30,
        alpha: float = 0.05,
        keep_tentative: bool = False,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_iter = max_iter
        self.alpha = alpha
        self.keep_tentative = keep_tentative
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> BorutaSelector:
        """Run the shadow-feature iterations.

        Parameters
        ----------
        X : array_like of shape (n, p)
        y : array_like of class labels

        Returns
        -------
        BorutaSelector
        """
        if not 0.0 < self.alpha < 1.0:
            raise LearningError(f"BorutaSelector: alpha must lie in (0, 1), got {self.alpha!r}.")
        x = self._validate(X)
        yy = np.asarray(y)
        p = x.shape[1]
        rng = np.random.default_rng(self.random_state)
        decision = np.array(["tentative"] * p, dtype=object)
        hits = np.zeros(p, dtype=int)
        it = 0
        for it in range(1, int(self.max_iter) + 1):
            active = np.flatnonzero(decision != "rejected")
            real = x[:, active]
            shadow = rng.permuted(real, axis=0)
            forest = RandomForestClassifier(
                n_estimators=self.n_estimators, random_state=int(rng.integers(2**31 - 1)), n_jobs=1
            )
            forest.fit(np.hstack([real, shadow]), yy)
            imp = forest.feature_importances_
            hits[active] += imp[: active.size] > imp[active.size :].max()
            tentative = np.flatnonzero(decision == "tentative")
            level = self.alpha / max(1, tentative.size)
            p_high = stats.binom.sf(hits[tentative] - 1, it, 0.5)
            p_low = stats.binom.cdf(hits[tentative], it, 0.5)
            decision[tentative[p_high < level]] = "confirmed"
            decision[tentative[p_low < level]] = "rejected"
            if not (decision == "tentative").any():
                break
        self.hits_, self.n_iter_, self.decision_ = hits, it, decision
        support = (decision == "confirmed") | (self.keep_tentative & (decision == "tentative"))
        if not support.any():
            support[int(np.argmax(hits))] = True
        self.support_ = support
        return self
