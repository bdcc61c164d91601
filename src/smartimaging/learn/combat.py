"""ComBat harmonisation of feature tables across batches (scanners, sites, reconstructions).

:class:`ComBat` is a scikit-learn transformer implementing the location/scale model of
Johnson et al. (2007) as used for radiomics by Orlhac et al. (2018): for feature ``g`` of patient
``j`` in batch ``i``::

    x_ijg = alpha_g + C_j beta_g + gamma_ig + sqrt(delta_ig) * eps_ijg

with the batch effects ``gamma`` (additive) and ``delta`` (multiplicative) shrunk by empirical
Bayes across features (parametric or non-parametric prior), optionally only the mean
(``mean_only``), optionally preserving covariates ``C`` (biological variables), optionally
towards a reference batch that is left unchanged (Zhang et al. 2018, M-ComBat). The numbers
equal those of the ``neuroCombat`` package (Fortin et al. 2018) on the same data.

Batch labels and covariates travel with the feature table as columns (``batch_col`` and the
covariate names), so that the transformer can sit first in a :class:`~sklearn.pipeline.Pipeline`
that is cross-validated: the estimates are learned on the training folds and applied to the
test fold. Those columns are dropped from the output unless listed in ``passthrough``.

A batch absent from training can be harmonised with ``unseen='estimate'``: its location and
scale are estimated from all of its patients in the frame learned on the training data, with
the same empirical-Bayes shrinkage (see :meth:`ComBat.transform` and docs/learning.md).

:func:`batches_from_qc` builds batch labels from the DICOM QC table of
:mod:`smartimaging.io.qc` (scanner model, reconstruction).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from smartimaging.exceptions import LearningError
from smartimaging.io.qc import suggest_batches

__all__ = ["ComBat", "UnseenStrategy", "batches_from_qc"]

logger = logging.getLogger(__name__)

UnseenStrategy = Literal["error", "estimate"]
_UNSEEN: tuple[str, ...] = get_args(UnseenStrategy)

# Largest number of float64 values held at once by the non-parametric prior (p x p x n block).
_NONPARAM_BLOCK = 4_000_000


# ----------------------------------------------------------------------------------------------
# Empirical Bayes pieces (Johnson et al. 2007; written to follow neuroCombat's arithmetic)


def _priors(delta_hat: NDArray[np.float64]) -> tuple[float, float]:
    """Inverse-gamma hyper-parameters (a, b) of a batch's variances, by the method of moments."""
    m = float(np.mean(delta_hat))
    s2 = float(np.var(delta_hat, ddof=1))
    return (2.0 * s2 + m**2) / s2, (m * s2 + m**3) / s2


def _postmean(
    g_hat: NDArray[np.float64], g_bar: float, n: float, d_star: Any, t2: float
) -> NDArray[np.float64]:
    return np.asarray((t2 * n * g_hat + d_star * g_bar) / (t2 * n + d_star), dtype=float)


def _parametric(
    s: NDArray[np.float64],
    g_hat: NDArray[np.float64],
    d_hat: NDArray[np.float64],
    g_bar: float,
    t2: float,
    a: float,
    b: float,
    *,
    tol: float,
    max_iter: int,
    where: str,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Iterate the conditional posterior means of gamma and delta until the relative change < tol.

    ``s`` is (n_patients, n_features) of one batch, standardised.
    """
    n = float(s.shape[0])
    g_old, d_old = g_hat.copy(), d_hat.copy()
    for _ in range(max_iter):
        g_new = _postmean(g_hat, g_bar, n, d_old, t2)
        sum2 = ((s - g_new[None, :]) ** 2).sum(axis=0)
        d_new = (0.5 * sum2 + b) / (n / 2.0 + a - 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            change = max(
                float(np.max(np.abs(g_new - g_old) / g_old)), float(np.max(np.abs(d_new - d_old) / d_old))
            )
        g_old, d_old = g_new, d_new
        if not change > tol:  # also stops on NaN, checked below
            break
    else:
        raise LearningError(
            f"{where}: the parametric empirical-Bayes iteration did not converge in {max_iter} iterations; "
            "use parametric=False or raise max_iter."
        )
    if not (np.isfinite(g_new).all() and np.isfinite(d_new).all()):
        raise LearningError(
            f"{where}: the parametric empirical-Bayes estimates are not finite (degenerate prior: all features "
            "share the same batch effect?); use parametric=False or eb=False."
        )
    return g_new, d_new


def _nonparametric(
    s: NDArray[np.float64], g_hat: NDArray[np.float64], d_hat: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Non-parametric prior: posterior means over the empirical distribution of the other features.

    For feature g, the estimates of every other feature k are weighted by the likelihood of g's
    data under N(gamma_k, delta_k). Computed in log space (neuroCombat uses the direct product,
    which underflows for large batches; the results agree whenever it does not).
    """
    n, p = s.shape
    g_star = np.empty(p)
    d_star = np.empty(p)
    log_norm = -0.5 * n * np.log(2.0 * np.pi * d_hat)  # (p,)
    step = max(1, _NONPARAM_BLOCK // max(1, p * n))
    for start in range(0, p, step):
        rows = np.arange(start, min(p, start + step))
        x = s[:, rows].T  # (r, n)
        sum2 = ((x[:, None, :] - g_hat[None, :, None]) ** 2).sum(axis=2)  # (r, p)
        log_lh = log_norm[None, :] - sum2 / (2.0 * d_hat[None, :])
        log_lh[np.arange(rows.size), rows] = -np.inf  # leave the feature itself out
        w = np.exp(log_lh - log_lh.max(axis=1, keepdims=True))
        w_sum = w.sum(axis=1)
        g_star[rows] = (w @ g_hat) / w_sum
        d_star[rows] = (w @ d_hat) / w_sum
    return g_star, d_star


# ----------------------------------------------------------------------------------------------


class ComBat(TransformerMixin, BaseEstimator):
    """ComBat harmonisation of numeric features across batches, as a scikit-learn transformer.

    Parameters
    ----------
    batch_col : str or None, default 'batch'
        Column of the DataFrame passed to ``fit``/``transform`` holding the batch label (site,
        scanner, scanner + reconstruction). It is never harmonised and is dropped from the
        output. ``None``: give the labels with the ``batch`` argument of ``fit``/``transform``
        instead (outside a Pipeline).
    categorical_covariates : sequence of str, default ()
        Columns of categorical biological covariates whose effect is preserved (e.g. sex, stage);
        encoded as indicator columns of their sorted levels with the first level dropped.
    continuous_covariates : sequence of str, default ()
        Columns of numeric covariates whose (linear) effect is preserved (e.g. age).
    passthrough : sequence of str, default ()
        Columns copied to the output unchanged (e.g. clinical predictors of a combined model).
        Covariates are dropped from the output unless also listed here. Every other
        column must be numeric and is harmonised.
    ref_batch : object, optional
        Reference batch: its data are left unchanged and the others are mapped onto its mean and
        variance (M-ComBat). Default: the pooled mean and variance of all training batches.
    eb : bool, default True
        Shrink the batch effects by empirical Bayes; False uses the per-batch estimates as is
        (``gamma_hat``, ``delta_hat``).
    parametric : bool, default True
        Normal / inverse-gamma priors (iterative solution); False: non-parametric prior (the
        empirical distribution of the other features' estimates).
    mean_only : bool, default False
        Adjust only the location (delta = 1).
    unseen : {'error', 'estimate'}, default 'error'
        What ``transform`` does with a batch that was not in the training data: raise, or
        estimate its effects from its own patients (all rows of that batch in the call) within
        the frozen training frame. See Notes.
    min_unseen_size : int, default 5
        Fewest patients of an unseen batch that ``unseen='estimate'`` accepts.
    tol : float, default 1e-4
        Convergence tolerance of the parametric iteration (relative change), as neuroCombat.
    max_iter : int, default 1000
        Iteration limit of the parametric solution.
    constant : {'error', 'passthrough'}, default 'error'
        What ``fit`` does with a feature that is constant in the training data (or the
        reference batch): raise, or copy it unchanged to the output (listed in
        ``constant_features_``) and harmonise the others without it.

    Attributes
    ----------
    batches_ : ndarray
        Training batch labels (sorted).
    n_per_batch_ : ndarray of int
        Training patients per batch.
    features_ : list of str
        Harmonised columns.
    feature_names_in_ : ndarray of str
        All input columns (when fitted on a DataFrame).
    n_features_in_ : int
        Number of input columns.
    grand_mean_ : ndarray of shape (n_features,)
        ``alpha``: pooled (or reference-batch) mean.
    var_pooled_ : ndarray of shape (n_features,)
        Pooled (or reference-batch) residual variance.
    beta_ : ndarray of shape (n_covariate_columns, n_features)
        Covariate effects.
    covariate_levels_ : dict of str to list
        Levels of each categorical covariate (the first is the baseline).
    gamma_hat_, delta_hat_ : ndarray of shape (n_batches, n_features)
        Per-batch location and scale before shrinkage.
    gamma_star_, delta_star_ : ndarray of shape (n_batches, n_features)
        Adjustments applied (after shrinkage; 0 and 1 for the reference batch).
    gamma_bar_, t2_, a_prior_, b_prior_ : ndarray of shape (n_batches,)
        Hyper-parameters of the priors (``a_prior_``/``b_prior_`` NaN when ``mean_only``).

    Raises
    ------
    LearningError
        From ``fit``: a batch with fewer than 2 patients, a constant feature, missing values,
        non-numeric feature columns, an unknown ``ref_batch``, invalid options. From
        ``transform``: an unknown batch with ``unseen='error'``, a new category of a covariate,
        different columns than in fit.

    Notes
    -----
    Within the training data, ``fit_transform`` equals ``neuroCombat`` (Fortin et al. 2018)
    to numerical precision. ``transform`` applies the stored estimates to patients of known
    batches: standardise with ``grand_mean_``, covariate effects and ``var_pooled_``, remove
    the batch's ``gamma_star_``/``delta_star_`` and map back.

    Unseen batch (``unseen='estimate'``): the new batch's data are standardised in the training
    frame, its raw location and scale are estimated from all of its patients and shrunk with
    priors estimated across its features, exactly as ComBat does for each training batch; the
    training estimates are not modified. Equivalent to having included the batch in training
    with ``grand_mean_``, ``beta_`` and ``var_pooled_`` held fixed. Assumptions: the new batch's
    patients have the same covariate-adjusted distribution as the training cohort (no case-mix
    difference confounded with the batch), it is harmonised as a group (the result for one
    patient depends on the others transformed with it) and it is large enough for a variance
    (``min_unseen_size``). Failure modes: a batch that differs in case mix (e.g. only advanced
    stages) has its biology removed as if it were scanner effect; very small batches give noisy
    estimates.

    References
    ----------
    Johnson WE, Li C, Rabinovic A. Adjusting batch effects in microarray expression data using
    empirical Bayes methods. Biostatistics 2007;8:118-127.
    Fortin JP et al. Harmonization of cortical thickness measurements across scanners and sites.
    NeuroImage 2018;167:104-120 (neuroCombat).
    Orlhac F et al. A postreconstruction harmonization method for multicenter radiomic studies in
    PET. J Nucl Med 2018;59:1321-1328.
    Zhang Y, Jenkins DF, Manimaran S, Johnson WE. Alternative empirical Bayes models for adjusting
    for batch effects in genomic studies. BMC Bioinformatics 2018;19:262 (M-ComBat).
    """

    def __init__(
        self,
        *,
        batch_col: str | None = "batch",
        categorical_covariates: Sequence[str] = (),
        continuous_covariates: Sequence[str] = (),
        passthrough: Sequence[str] = (),
        ref_batch: Any = None,
        eb: bool = True,
        parametric: bool = True,
        mean_only: bool = False,
        unseen: UnseenStrategy = "error",
        min_unseen_size: int = 5,
        tol: float = 1e-4,
        max_iter: int = 1000,
        constant: Literal["error", "passthrough"] = "error",
    ) -> None:
        self.batch_col = batch_col
        self.categorical_covariates = categorical_covariates
        self.continuous_covariates = continuous_covariates
        self.passthrough = passthrough
        self.ref_batch = ref_batch
        self.eb = eb
        self.parametric = parametric
        self.mean_only = mean_only
        self.unseen = unseen
        self.min_unseen_size = min_unseen_size
        self.tol = tol
        self.max_iter = max_iter
        self.constant = constant

    # -- input handling --------------------------------------------------------------------

    def _frame(self, X: Any, batch: ArrayLike | None, where: str) -> tuple[pd.DataFrame, NDArray[Any]]:
        if self.batch_col is not None:
            if not isinstance(X, pd.DataFrame):
                raise LearningError(
                    f"ComBat.{where}: X must be a pandas DataFrame holding the batch column "
                    f"{self.batch_col!r}, got {type(X).__name__}; or set batch_col=None and pass batch=."
                )
            if batch is not None:
                raise LearningError(
                    f"ComBat.{where}: batch labels given both as column {self.batch_col!r} and as batch=; "
                    "use one."
                )
            if self.batch_col not in X.columns:
                raise LearningError(
                    f"ComBat.{where}: batch column {self.batch_col!r} not in X; columns are "
                    f"{list(X.columns)[:20]}."
                )
            labels = X[self.batch_col].to_numpy()
            frame = X.drop(columns=[self.batch_col])
        else:
            if batch is None:
                raise LearningError(
                    f"ComBat.{where}: batch_col is None, so the batch labels must be passed as batch=."
                )
            if isinstance(X, pd.DataFrame):
                frame = X
            else:
                arr = np.asarray(X, dtype=float)
                if arr.ndim != 2:
                    raise LearningError(f"ComBat.{where}: X must be 2-D, got shape {arr.shape}.")
                frame = pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])
            labels = np.asarray(batch)
            if labels.ndim != 1 or labels.shape[0] != frame.shape[0]:
                raise LearningError(
                    f"ComBat.{where}: batch has shape {labels.shape} but X has {frame.shape[0]} rows."
                )
        if pd.isna(labels).any():
            raise LearningError(
                f"ComBat.{where}: {int(pd.isna(labels).sum())} patient(s) have no batch label; "
                "assign one (e.g. 'unknown') or drop them."
            )
        return frame, labels

    def _covariate_design(self, frame: pd.DataFrame, where: str) -> NDArray[np.float64]:
        blocks: list[NDArray[np.float64]] = []
        for col in self.categorical_covariates:
            values = frame[col]
            if values.isna().any():
                raise LearningError(f"ComBat.{where}: categorical covariate {col!r} has missing values.")
            levels = self.covariate_levels_[col]
            new = sorted(set(values.astype(str)) - set(levels))
            if new:
                raise LearningError(
                    f"ComBat.{where}: categorical covariate {col!r} has level(s) {new} not seen in training "
                    f"({levels}); their effect is unknown."
                )
            codes = pd.Categorical(values.astype(str), categories=levels).codes
            blocks.append((codes[:, None] == np.arange(1, len(levels))[None, :]).astype(float))
        for col in self.continuous_covariates:
            numbers = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
            if not np.isfinite(numbers).all():
                raise LearningError(
                    f"ComBat.{where}: continuous covariate {col!r} has missing or non-numeric values."
                )
            blocks.append(numbers[:, None])
        if not blocks:
            return np.zeros((frame.shape[0], 0))
        return np.hstack(blocks)

    def _features(self, frame: pd.DataFrame, where: str) -> NDArray[np.float64]:
        values = frame[self.features_].to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            cols = [self.features_[i] for i in np.flatnonzero(bad.any(axis=0))]
            raise LearningError(
                f"ComBat.{where}: {int(bad.sum())} missing or infinite value(s) in feature(s) {cols[:10]}; "
                "impute them before ComBat (its estimates need complete data)."
            )
        return values

    def _check_options(self) -> None:
        if self.constant not in ("error", "passthrough"):
            raise LearningError(
                f"ComBat: unknown constant={self.constant!r}; valid values are ['error', 'passthrough']."
            )
        if self.unseen not in _UNSEEN:
            raise LearningError(f"ComBat: unknown unseen={self.unseen!r}; valid values are {list(_UNSEEN)}.")
        if not isinstance(self.min_unseen_size, int | np.integer) or self.min_unseen_size < 2:
            raise LearningError(
                f"ComBat: min_unseen_size must be an integer >= 2, got {self.min_unseen_size!r}."
            )
        if not self.tol > 0 or not isinstance(self.max_iter, int | np.integer) or self.max_iter < 1:
            raise LearningError(
                f"ComBat: tol must be > 0 and max_iter >= 1, got {self.tol!r} and {self.max_iter!r}."
            )

    # -- estimation ------------------------------------------------------------------------

    def _shrink(
        self, s: NDArray[np.float64], g_hat: NDArray[np.float64], d_hat: NDArray[np.float64], where: str
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], float, float, float, float]:
        """Shrunk (gamma*, delta*) of one batch and its hyper-parameters (g_bar, t2, a, b)."""
        g_bar = float(np.mean(g_hat))
        t2 = float(np.var(g_hat, ddof=1))
        a = b = float("nan")
        if not self.mean_only:
            a, b = _priors(d_hat)
        if not self.eb:
            return g_hat.copy(), d_hat.copy(), g_bar, t2, a, b
        if self.parametric:
            if self.mean_only:
                return _postmean(g_hat, g_bar, 1.0, 1.0, t2), np.ones_like(d_hat), g_bar, t2, a, b
            g, d = _parametric(
                s, g_hat, d_hat, g_bar, t2, a, b, tol=self.tol, max_iter=int(self.max_iter), where=where
            )
            return g, d, g_bar, t2, a, b
        g, d = _nonparametric(s, g_hat, d_hat)
        return g, d, g_bar, t2, a, b

    def fit(self, X: Any, y: Any = None, *, batch: ArrayLike | None = None) -> ComBat:
        """Estimate the batch effects on training data.

        Parameters
        ----------
        X : DataFrame of shape (n_patients, n_columns)
            Features, plus the batch column (``batch_col``), covariates and passthrough columns.
            An array is accepted when ``batch_col`` is None.
        y : ignored
            Present for Pipeline compatibility; the outcome is never used.
        batch : array_like of shape (n_patients,), optional
            Batch labels when ``batch_col`` is None.

        Returns
        -------
        ComBat
            ``self``, fitted.

        Raises
        ------
        LearningError
            See the class docstring.
        """
        self._check_options()
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.n_features_in_ = int(np.shape(X)[1])
        frame, labels = self._frame(X, batch, "fit")
        covariates = [*self.categorical_covariates, *self.continuous_covariates]
        special = [*covariates, *self.passthrough]
        missing = [c for c in special if c not in frame.columns]
        if missing:
            raise LearningError(
                f"ComBat.fit: covariate/passthrough column(s) {missing} not in X; columns are "
                f"{list(frame.columns)[:20]}."
            )
        self.features_ = [str(c) for c in frame.columns if c not in set(special)]
        non_numeric = [c for c in self.features_ if not pd.api.types.is_numeric_dtype(frame[c])]
        if non_numeric:
            raise LearningError(
                f"ComBat.fit: column(s) {non_numeric[:10]} are not numeric; list them in passthrough (copied "
                "unchanged) or categorical_covariates (effect preserved)."
            )
        self._output_columns = [
            str(c) for c in frame.columns if c in set(self.features_) or c in set(self.passthrough)
        ]
        levels_all, inverse, counts = np.unique(labels.astype(str) if labels.dtype == object else labels,
                                                return_inverse=True, return_counts=True)  # fmt: skip
        self.batches_ = levels_all
        self.n_per_batch_ = counts.astype(int)
        small = [(str(b), int(c)) for b, c in zip(levels_all, counts, strict=True) if c < 2]
        if small:
            raise LearningError(
                f"ComBat.fit: batch(es) {small} have fewer than 2 patients (label, count); a batch variance "
                "needs at least 2. Merge them with a similar batch or drop those patients."
            )
        if levels_all.size < 2:
            logger.warning("ComBat.fit: only one batch (%s): nothing to harmonise", levels_all.tolist())
        self.covariate_levels_ = {
            c: sorted(set(frame[c].dropna().astype(str))) for c in self.categorical_covariates
        }
        ref = None
        if self.ref_batch is not None:
            hits = np.flatnonzero(levels_all.astype(str) == str(self.ref_batch))
            if hits.size == 0:
                raise LearningError(
                    f"ComBat.fit: ref_batch {self.ref_batch!r} is not a training batch; batches are "
                    f"{levels_all.tolist()}."
                )
            ref = int(hits[0])
        self.ref_index_ = ref
        values = self._features(frame, "fit")
        n, p = values.shape
        k = levels_all.size
        if self.eb and p < 2 and levels_all.size > 1:
            raise LearningError(
                f"ComBat.fit: empirical Bayes pools information across features and needs at least 2, got {p}; "
                "use eb=False."
            )
        batch_design = (inverse[:, None] == np.arange(k)[None, :]).astype(float)
        if ref is not None:
            batch_design[:, ref] = 1.0
        cov_design = self._covariate_design(frame, "fit")
        design = np.hstack([batch_design, cov_design])
        rank = np.linalg.matrix_rank(design)
        if rank < design.shape[1]:
            raise LearningError(
                "ComBat.fit: the covariates are collinear with the batches (e.g. a covariate level found in one "
                "batch only, or a covariate constant within batches); their effect cannot be told apart from "
                "the batch effect. Drop that covariate."
            )
        coef = np.linalg.lstsq(design, values, rcond=None)[0]  # (k + q, p)
        if ref is not None:
            grand_mean = coef[ref]
            in_ref = inverse == ref
            resid = values[in_ref] - design[in_ref] @ coef
        else:
            grand_mean = (counts / float(n)) @ coef[:k]
            resid = values - design @ coef
        var_pooled = np.mean(resid**2, axis=0)
        const = var_pooled <= 1e-12 * np.maximum(1.0, grand_mean**2)
        self.constant_features_: list[str] = []
        if const.any() and p and self.constant == "passthrough":
            self.constant_features_ = [self.features_[i] for i in np.flatnonzero(const)]
            logger.info("ComBat.fit: %d constant feature(s) passed through unchanged", int(const.sum()))
            keep = ~const
            self.features_ = [f for f, c in zip(self.features_, const, strict=True) if not c]
            values, coef, grand_mean, var_pooled = (
                values[:, keep],
                coef[:, keep],
                grand_mean[keep],
                var_pooled[keep],
            )
            p = values.shape[1]
        elif const.any() and p:
            names = [self.features_[i] for i in np.flatnonzero(const)]
            where = f"reference batch {self.ref_batch!r}" if ref is not None else "the training data"
            raise LearningError(
                f"ComBat.fit: feature(s) {names[:10]} ({int(const.sum())} in all) are constant (after removing "
                f"batch and covariate effects) in {where}; remove them first (e.g. NearZeroVariance) or set "
                "constant='passthrough'."
            )
        self.grand_mean_ = grand_mean
        self.var_pooled_ = var_pooled
        self.beta_ = coef[k:]
        s = (values - grand_mean[None, :] - cov_design @ self.beta_) / np.sqrt(var_pooled)[None, :]
        gamma_hat = np.linalg.lstsq(batch_design, s, rcond=None)[0]
        delta_hat = np.ones((k, p))
        if not self.mean_only:
            for i in range(k):
                delta_hat[i] = np.var(s[inverse == i], axis=0, ddof=1)
            delta_hat[delta_hat == 0] = 1.0
        self.gamma_hat_, self.delta_hat_ = gamma_hat, delta_hat
        self.gamma_star_ = np.zeros((k, p))
        self.delta_star_ = np.ones((k, p))
        self.gamma_bar_, self.t2_ = np.full(k, np.nan), np.full(k, np.nan)
        self.a_prior_, self.b_prior_ = np.full(k, np.nan), np.full(k, np.nan)
        if p:
            for i in range(k):
                g, d, g_bar, t2, a, b = self._shrink(
                    s[inverse == i], gamma_hat[i], delta_hat[i], f"ComBat.fit (batch {levels_all[i]!r})"
                )
                self.gamma_star_[i], self.delta_star_[i] = g, d
                self.gamma_bar_[i], self.t2_[i], self.a_prior_[i], self.b_prior_[i] = g_bar, t2, a, b
        if ref is not None:
            self.gamma_star_[ref] = 0.0
            self.delta_star_[ref] = 1.0
        return self

    # -- application -----------------------------------------------------------------------

    def transform(self, X: Any, *, batch: ArrayLike | None = None) -> Any:
        """Harmonise patients with the estimates learned in ``fit``.

        Parameters
        ----------
        X : DataFrame
            Same columns as in ``fit`` (batch column, covariates, passthrough, features).
        batch : array_like, optional
            Batch labels when ``batch_col`` is None.

        Returns
        -------
        DataFrame or ndarray
            Harmonised features and passthrough columns (names from
            :meth:`get_feature_names_out`), same index as ``X``; an ndarray when ``X`` was an
            array.

        Raises
        ------
        LearningError
            Unknown batch with ``unseen='error'`` (or an unseen batch smaller than
            ``min_unseen_size``), a new covariate level, missing values or changed columns.
        """
        check_is_fitted(self, "gamma_star_")
        self._check_options()
        if hasattr(self, "feature_names_in_"):
            if not isinstance(X, pd.DataFrame) or [str(c) for c in X.columns] != list(self.feature_names_in_):
                got = list(X.columns) if isinstance(X, pd.DataFrame) else f"an array of {np.shape(X)}"
                raise LearningError(
                    f"ComBat.transform: X must have the columns seen in fit ({len(self.feature_names_in_)}: "
                    f"{list(self.feature_names_in_)[:8]}...), got {str(got)[:200]}."
                )
        frame, labels = self._frame(X, batch, "transform")
        values = self._features(frame, "transform")
        cov = self._covariate_design(frame, "transform")
        mod = cov @ self.beta_
        sd = np.sqrt(self.var_pooled_)[None, :]
        s = (values - self.grand_mean_[None, :] - mod) / sd
        out = np.empty_like(values)
        known = {str(b): i for i, b in enumerate(self.batches_)}
        key = labels.astype(str)
        unknown = sorted(str(k) for k in set(key) - set(known))
        if unknown and self.unseen == "error":
            raise LearningError(
                f"ComBat.transform: batch(es) {unknown[:10]} were not in the training data (batches "
                f"{self.batches_.tolist()}); their effects are unknown. Use unseen='estimate' to estimate them "
                "from the new batch's own patients, or refit including that batch."
            )
        for label in sorted(set(key)):
            rows = key == label
            if label in known:
                i = known[label]
                if self.ref_index_ is not None and i == self.ref_index_:
                    out[rows] = values[rows]
                    continue
                g, d = self.gamma_star_[i], self.delta_star_[i]
            else:
                g, d = self._estimate_unseen(s[rows], label)
            out[rows] = (
                (s[rows] - g[None, :]) / np.sqrt(d)[None, :] * sd + self.grand_mean_[None, :] + mod[rows]
            )
        if not isinstance(X, pd.DataFrame):
            return out
        result = pd.DataFrame(out, index=frame.index, columns=self.features_)
        copied = frame[[*self.passthrough, *self.constant_features_]]
        return pd.concat([result, copied], axis=1)[self._output_columns]

    def _estimate_unseen(
        self, s: NDArray[np.float64], label: str
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        n, p = s.shape
        if n < self.min_unseen_size:
            raise LearningError(
                f"ComBat.transform: unseen batch {label!r} has {n} patient(s); estimating its effects needs at "
                f"least min_unseen_size={self.min_unseen_size}. Transform all of its patients in one call."
            )
        if p == 0:
            return np.zeros(0), np.ones(0)
        g_hat = s.mean(axis=0)
        d_hat = np.ones(p) if self.mean_only else np.var(s, axis=0, ddof=1)
        d_hat[d_hat == 0] = 1.0
        g, d, *_ = self._shrink(s, g_hat, d_hat, f"ComBat.transform (unseen batch {label!r})")
        logger.info("ComBat: unseen batch %r (%d patients) harmonised from its own estimates", label, n)
        return g, d

    def fit_transform(self, X: Any, y: Any = None, *, batch: ArrayLike | None = None) -> Any:
        """``fit(X, batch=batch).transform(X, batch=batch)``; see :meth:`fit` and :meth:`transform`."""
        return self.fit(X, y, batch=batch).transform(X, batch=batch)

    def get_feature_names_out(self, input_features: Any = None) -> NDArray[np.object_]:
        """Names of the output columns: the harmonised features and passthrough columns, in input order.

        Parameters
        ----------
        input_features : ignored
            Present for scikit-learn compatibility.

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self, "gamma_star_")
        return np.asarray(self._output_columns, dtype=object)


def batches_from_qc(
    qc: pd.DataFrame,
    *,
    keys: Sequence[str] = ("ManufacturerModelName", "ReconstructionMethod"),
    modality: str = "PT",
    min_size: int = 1,
    other: str = "other",
) -> pd.Series:
    """One harmonisation batch label per patient from the DICOM QC table.

    Parameters
    ----------
    qc : DataFrame
        Output of :func:`smartimaging.io.qc.cohort_qc` (one row per series).
    keys : sequence of str, default ('ManufacturerModelName', 'ReconstructionMethod')
        QC columns defining a batch (scanner model and reconstruction by default; see
        :data:`smartimaging.io.qc.BATCH_KEYS` and :func:`~smartimaging.io.qc.qc_summary` for
        what varies in a cohort). Missing values read ``'unknown'``.
    modality : str, default 'PT'
        Series of this modality define the batch (PET: 'PT'; CT: 'CT').
    min_size : int, default 1
        Batches with fewer patients are merged into one batch named ``other`` (ComBat needs at
        least 2 patients per batch; a merged batch is heterogeneous, so check the counts).
    other : str, default 'other'
        Label of the merged small batches.

    Returns
    -------
    Series
        Named ``batch``, indexed by ``PatientID``.

    Raises
    ------
    LearningError
        If a key or ``PatientID`` is not a QC column, no series has the modality, or a patient has
        several series of the modality in different batches (the message lists them; keep one
        series per patient first).
    """
    absent = [k for k in [*keys, "PatientID", "Modality"] if k not in qc.columns]
    if absent:
        raise LearningError(
            f"batches_from_qc: column(s) {absent} not in the QC table; columns are {sorted(qc.columns)[:30]}."
        )
    rows = qc[qc["Modality"] == modality]
    if rows.empty:
        raise LearningError(
            f"batches_from_qc: no {modality!r} series in the QC table (modalities: "
            f"{sorted(qc['Modality'].dropna().unique().tolist())})."
        )
    labels = suggest_batches(rows, keys=keys)
    per_patient = pd.DataFrame({"PatientID": rows["PatientID"].astype(str), "batch": labels})
    n_labels = per_patient.groupby("PatientID")["batch"].nunique()
    conflict = n_labels[n_labels > 1].index.tolist()
    if conflict:
        raise LearningError(
            f"batches_from_qc: patient(s) {conflict[:10]} have several {modality} series in different batches; "
            "keep the series used for the features (one per patient) before building batches."
        )
    out = per_patient.drop_duplicates("PatientID").set_index("PatientID")["batch"]
    counts = out.value_counts()
    small = counts[counts < min_size].index
    if len(small):
        logger.warning(
            "batches_from_qc: merging %d batch(es) with fewer than %d patients into %r: %s",
            len(small), min_size, other, list(small),
        )  # fmt: skip
        out = out.where(~out.isin(small), other)
    return out.rename("batch")
