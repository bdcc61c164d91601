"""Survival models of time-to-event outcomes and their cross-validated evaluation.

Models are scikit-survival estimators behind the same preprocessing as the classifiers, so
imputation and scaling are refitted inside every training fold. Targets are scikit-survival
structured arrays ``(event, time)`` built by :func:`make_survival_target`, which refuses
negative or missing times and cohorts without events.
"""

from __future__ import annotations

import time as _time
import warnings
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold
from sklearn.pipeline import Pipeline

from smartimaging.exceptions import LearningError
from smartimaging.learn.models import make_preprocessor

__all__ = [
    "SURVIVAL_KINDS",
    "LassoCox",
    "SurvivalCVResult",
    "SurvivalKind",
    "cross_validate_survival",
    "harrell_c",
    "kaplan_meier_groups",
    "logrank",
    "make_survival_model",
    "make_survival_target",
    "plot_risk_groups",
]

SurvivalKind = Literal["cox", "lasso_cox", "random_survival_forest", "gradient_boosting"]
SURVIVAL_KINDS: tuple[str, ...] = get_args(SurvivalKind)


def make_survival_target(time: ArrayLike, event: ArrayLike, *, where: str = "make_survival_target") -> Any:
    """Structured ``(event, time)`` array of scikit-survival from two columns.

    Parameters
    ----------
    time : array_like of shape (n,)
        Follow-up time (event or censoring), any unit, finite and >= 0.
    event : array_like of shape (n,)
        1/True if the event was observed, 0/False if censored.
    where : str
        Name used in error messages.

    Returns
    -------
    numpy structured array
        Fields ``event`` (bool) and ``time`` (float).

    Raises
    ------
    LearningError
        On different lengths, missing or negative times, event values other than 0/1, or no
        observed event.
    """
    t = np.asarray(pd.to_numeric(pd.Series(np.asarray(time).ravel()), errors="coerce"), dtype=float)
    e_raw = pd.Series(np.asarray(event).ravel())
    if t.size != e_raw.size:
        raise LearningError(f"{where}: time has {t.size} values but event has {e_raw.size}.")
    if t.size == 0:
        raise LearningError(f"{where}: no patients.")
    bad_t = ~np.isfinite(t)
    if bad_t.any():
        raise LearningError(
            f"{where}: {int(bad_t.sum())} follow-up time(s) are missing or not numbers (rows "
            f"{np.flatnonzero(bad_t)[:5].tolist()}); drop those patients or fill in their last follow-up."
        )
    if (t < 0).any():
        raise LearningError(
            f"{where}: {int((t < 0).sum())} negative follow-up time(s) (e.g. {t[t < 0][:3].tolist()} at rows "
            f"{np.flatnonzero(t < 0)[:5].tolist()}); times must be measured from a common origin, e.g. diagnosis."
        )
    e_num = pd.to_numeric(e_raw.astype(object).where(e_raw.notna(), np.nan), errors="coerce").to_numpy(
        dtype=float
    )
    if np.isnan(e_num).any() or not np.isin(e_num, (0.0, 1.0)).all():
        found = sorted({str(v) for v in e_raw[~np.isin(e_num, (0.0, 1.0))].tolist()})[:5]
        raise LearningError(
            f"{where}: event must be 1 (event observed) or 0 (censored) for every patient, found {found}."
        )
    if e_num.sum() == 0:
        raise LearningError(
            f"{where}: no event is observed among {t.size} patients (all censored); a survival model "
            "cannot be fitted or evaluated."
        )
    out = np.empty(t.size, dtype=[("event", bool), ("time", float)])
    out["event"] = e_num.astype(bool)
    out["time"] = t
    return out


def _fit_coxnet_path(
    X: NDArray[np.float64], y: Any, alphas: NDArray[np.float64], *, l1_ratio: float, baseline: bool = False
) -> tuple[Any, int]:
    """Coxnet fitted along ``alphas`` (decreasing); drops the smallest penalties if they overflow.

    Returns the model and how many of the leading ``alphas`` it was fitted on.
    """
    from sksurv.linear_model import CoxnetSurvivalAnalysis

    used = alphas.size
    while used >= 1:
        try:
            with warnings.catch_warnings():
                # an all-zero model at the largest penalties is a valid answer, not a problem
                warnings.filterwarnings("ignore", message="all coefficients are zero", category=UserWarning)
                model = CoxnetSurvivalAnalysis(
                    l1_ratio=l1_ratio, alphas=alphas[:used], fit_baseline_model=baseline
                ).fit(X, y)
            return model, used
        except ArithmeticError:
            used = used * 3 // 4 if used > 1 else 0
    raise LearningError(
        "LassoCox: Coxnet fails numerically even at the largest penalty; check the predictors for constant or "
        "extreme columns."
    )


class LassoCox(BaseEstimator):  # type: ignore[misc]
    """LASSO (or elastic-net) Cox model whose penalty is chosen by inner cross-validation.

    ``fit`` computes the regularisation path of
    :class:`sksurv.linear_model.CoxnetSurvivalAnalysis` on all training data, scores each
    penalty by Harrell's C on ``inner_splits`` event-stratified folds, and refits at the best
    one (the largest penalty within 1 % of the best C, i.e. the sparsest near-best model).

    Parameters
    ----------
    l1_ratio : float, default 1.0
        1 is the LASSO; between 0 and 1 the elastic net.
    n_alphas : int, default 30
        Length of the penalty path.
    alpha_min_ratio : float, default 0.05
        Smallest penalty as a fraction of the largest.
    inner_splits : int, default 3
        Folds of the inner cross-validation.
    random_state : int, default 0
        Seed of the inner folds.

    Attributes
    ----------
    alpha_ : float
        Chosen penalty.
    cv_scores_ : ndarray
        Mean inner C-index of every penalty on ``alphas_``.
    alphas_ : ndarray
        Penalty path.
    model_ : CoxnetSurvivalAnalysis
        Model refitted at ``alpha_`` (with its baseline survival).
    coef_ : ndarray
        Its coefficients.
    """

    def __init__(
        self,
        l1_ratio: float = 1.0,
        n_alphas: int = 30,
        alpha_min_ratio: float = 0.05,
        inner_splits: int = 3,
        random_state: int = 0,
    ) -> None:
        self.l1_ratio = l1_ratio
        self.n_alphas = n_alphas
        self.alpha_min_ratio = alpha_min_ratio
        self.inner_splits = inner_splits
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: Any) -> LassoCox:
        """Choose the penalty by inner cross-validation and refit on all of ``X``."""
        from sksurv.linear_model import CoxnetSurvivalAnalysis
        from sksurv.metrics import concordance_index_censored

        Xa = np.asarray(X, dtype=float)
        path = None
        for ratio in (self.alpha_min_ratio, 0.2, 0.5):
            try:
                path = CoxnetSurvivalAnalysis(
                    l1_ratio=self.l1_ratio,
                    n_alphas=self.n_alphas,
                    alpha_min_ratio=max(ratio, self.alpha_min_ratio),
                ).fit(Xa, y)
                break
            except ArithmeticError:  # weights too large at the small-penalty end: shorten the path
                continue
        if path is None:
            raise LearningError(
                "LassoCox: the Coxnet path fails numerically even with strong penalties; check the predictors "
                "for constant or extreme columns."
            )
        alphas = np.asarray(path.alphas_, dtype=float)
        n_events = int(y["event"].sum())
        splits = min(self.inner_splits, n_events, int((~y["event"]).sum()))
        scores = np.zeros(alphas.size)
        if splits >= 2:
            cv = StratifiedKFold(splits, shuffle=True, random_state=self.random_state)
            for tr, va in cv.split(Xa, y["event"]):
                m, used = _fit_coxnet_path(Xa[tr], y[tr], alphas, l1_ratio=self.l1_ratio)
                scores[used:] = -np.inf  # penalties this fold could not fit are not eligible
                for k, a in enumerate(alphas[:used]):
                    risk = m.predict(Xa[va], alpha=a)
                    scores[k] += concordance_index_censored(y["event"][va], y["time"][va], risk)[0] / splits
        ok = np.flatnonzero(scores >= scores.max() - 0.01)
        best = int(ok.min())  # alphas decrease: smallest index = largest penalty
        self.alphas_ = alphas
        self.cv_scores_ = scores
        self.alpha_ = float(alphas[best])
        # refit along the path down to the chosen penalty: coordinate descent is warm-started
        # from the larger penalties (a single small penalty from zero may not converge)
        self.model_, used = _fit_coxnet_path(Xa, y, alphas[: best + 1], l1_ratio=self.l1_ratio, baseline=True)
        self.alpha_ = float(alphas[used - 1])
        self.coef_ = np.asarray(self.model_.coef_)[:, -1].ravel()
        return self

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        """Linear predictor (log relative hazard); higher means higher risk."""
        return np.asarray(self.model_.predict(np.asarray(X, dtype=float), alpha=self.alpha_), dtype=float)

    def predict_survival_function(self, X: ArrayLike, return_array: bool = False) -> Any:
        """Survival functions of the refitted model (Breslow baseline)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="all coefficients are zero", category=UserWarning)
            return self.model_.predict_survival_function(
                np.asarray(X, dtype=float), alpha=self.alpha_, return_array=return_array
            )


def make_survival_model(
    kind: SurvivalKind = "cox", *, random_state: int = 0, penalizer: float = 1.0
) -> Pipeline:
    """Unfitted preprocessing + survival model pipeline.

    Parameters
    ----------
    kind : {'cox', 'lasso_cox', 'random_survival_forest', 'gradient_boosting'}, default 'cox'
        ``'cox'``: Cox proportional hazards with a ridge penalty ``penalizer`` (Breslow
        ties), :class:`sksurv.linear_model.CoxPHSurvivalAnalysis`. ``'lasso_cox'``:
        :class:`LassoCox` (penalty chosen by inner CV). ``'random_survival_forest'``: 300
        trees, at least 5 patients per leaf, ``max_features='sqrt'``.
        ``'gradient_boosting'``: gradient-boosted Cox partial likelihood, 200 trees of depth
        2, learning rate 0.05, 80 % subsampling.
    random_state : int, default 0
        Seed of the model.
    penalizer : float, default 1.0
        Ridge penalty of ``'cox'`` on the standardised features (stabilises the fit with
        many or correlated features; with hundreds of radiomics features and few events,
        select features first or use ``'lasso_cox'``).

    Returns
    -------
    Pipeline
        Steps ``preprocess`` and ``model``; ``predict`` returns a risk score (higher = worse)
        and ``predict_survival_function`` survival curves.

    Raises
    ------
    LearningError
        If ``kind`` is not one of the valid values or ``penalizer < 0``.
    """
    from sksurv.ensemble import GradientBoostingSurvivalAnalysis, RandomSurvivalForest
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    if penalizer < 0:
        raise LearningError(f"make_survival_model: penalizer must be >= 0, got {penalizer!r}.")
    model: Any
    if kind == "cox":
        model = CoxPHSurvivalAnalysis(alpha=penalizer, ties="breslow")
    elif kind == "lasso_cox":
        model = LassoCox(random_state=random_state)
    elif kind == "random_survival_forest":
        model = RandomSurvivalForest(
            n_estimators=300, min_samples_leaf=5, max_features="sqrt", n_jobs=1, random_state=random_state
        )
    elif kind == "gradient_boosting":
        model = GradientBoostingSurvivalAnalysis(
            n_estimators=200, learning_rate=0.05, max_depth=2, subsample=0.8, random_state=random_state
        )
    else:
        raise LearningError(
            f"make_survival_model: unknown kind {kind!r}; valid values are {list(SURVIVAL_KINDS)}."
        )
    return Pipeline([("preprocess", make_preprocessor()), ("model", model)])


def harrell_c(time: ArrayLike, event: ArrayLike, risk: ArrayLike) -> float:
    """Harrell's concordance index of a risk score (higher risk = shorter survival).

    Parameters
    ----------
    time, event : array_like of shape (n,)
        Follow-up and event indicator.
    risk : array_like of shape (n,)
        Predicted risk.

    Returns
    -------
    float
        Fraction of comparable pairs ordered correctly (ties in risk count one half).

    Raises
    ------
    LearningError
        On invalid survival data.

    References
    ----------
    Harrell FE, Califf RM, Pryor DB, Lee KL, Rosati RA. Evaluating the yield of medical tests.
    JAMA 1982;247:2543-2546.
    """
    from sksurv.metrics import concordance_index_censored

    y = make_survival_target(time, event, where="harrell_c")
    r = np.asarray(risk, dtype=float)
    if r.shape != y.shape or not np.isfinite(r).all():
        raise LearningError(f"harrell_c: risk must hold {y.size} finite values.")
    return float(concordance_index_censored(y["event"], y["time"], r)[0])


def logrank(time: ArrayLike, event: ArrayLike, group: ArrayLike) -> tuple[float, float]:
    """Log-rank test of equal survival between groups.

    Parameters
    ----------
    time, event : array_like of shape (n,)
        Survival data.
    group : array_like of shape (n,)
        Group label of each patient (two or more groups).

    Returns
    -------
    (chi2, p_value) : tuple of float

    Raises
    ------
    LearningError
        On invalid survival data or fewer than two groups.

    References
    ----------
    Mantel N. Evaluation of survival data and two new rank order statistics arising in its
    consideration. Cancer Chemother Rep 1966;50:163-170.
    """
    from sksurv.compare import compare_survival

    y = make_survival_target(time, event, where="logrank")
    g = np.asarray(group)
    if g.shape != y.shape:
        raise LearningError(f"logrank: group must have {y.size} values, got {g.shape}.")
    if np.unique(g).size < 2:
        raise LearningError("logrank: all patients are in one group; the log-rank test needs two or more.")
    chisq, p = compare_survival(y, g)
    return float(chisq), float(p)


def kaplan_meier_groups(time: ArrayLike, event: ArrayLike, group: ArrayLike) -> pd.DataFrame:
    """Kaplan-Meier survival curve of each group.

    Parameters
    ----------
    time, event : array_like of shape (n,)
        Survival data.
    group : array_like of shape (n,)
        Group label of each patient.

    Returns
    -------
    DataFrame
        Columns ``group, time, survival, ci_lo, ci_hi`` (log-log 95 % interval), starting at
        time 0 with survival 1 for every group.

    Raises
    ------
    LearningError
        On invalid survival data.

    References
    ----------
    Kaplan EL, Meier P. Nonparametric estimation from incomplete observations. J Am Stat
    Assoc 1958;53:457-481.
    """
    from sksurv.nonparametric import kaplan_meier_estimator

    y = make_survival_target(time, event, where="kaplan_meier_groups")
    g = np.asarray(group)
    frames = []
    for label in pd.unique(g):
        m = g == label
        t, s, ci = kaplan_meier_estimator(y["event"][m], y["time"][m], conf_type="log-log")
        frames.append(
            pd.DataFrame(
                {
                    "group": label,
                    "time": np.r_[0.0, t],
                    "survival": np.r_[1.0, s],
                    "ci_lo": np.r_[1.0, ci[0]],
                    "ci_hi": np.r_[1.0, ci[1]],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@dataclass
class SurvivalCVResult:
    """Outcome of :func:`cross_validate_survival`.

    Attributes
    ----------
    name : str
        Label.
    predictions : DataFrame
        ``patient_id, repeat, fold, time, event, risk, cutoff, risk_group``: out-of-fold risk of
        each patient, the training-fold median risk used as cut-off, and the resulting group
        (``'high'`` if risk > cut-off, else ``'low'``).
    fold_metrics : DataFrame
        Per fold: ``harrell_c, uno_c, mean_td_auc, ibs`` (``None`` where the fold's follow-up
        does not cover any evaluation time).
    times : ndarray
        Evaluation times of the time-dependent AUC and Brier score.
    td_auc : DataFrame
        Time-dependent cumulative/dynamic AUC per fold and time: ``repeat, fold, time, auc``.
    logrank_chi2, logrank_p : float
        Log-rank test between the out-of-fold risk groups of the first repeat.
    seconds : float
        Wall time.
    """

    name: str
    predictions: pd.DataFrame
    fold_metrics: pd.DataFrame
    times: NDArray[np.float64]
    td_auc: pd.DataFrame
    logrank_chi2: float
    logrank_p: float
    seconds: float

    def summary(self) -> dict[str, Any]:
        """Mean and standard deviation over folds of each metric, and the log-rank result."""
        out: dict[str, Any] = {"name": self.name, "n_patients": int(self.predictions["patient_id"].nunique())}
        first = self.predictions[self.predictions["repeat"] == 0]
        out["n_events"] = int(first["event"].sum())
        for col in ("harrell_c", "uno_c", "mean_td_auc", "ibs"):
            v = pd.to_numeric(self.fold_metrics[col], errors="coerce").dropna()
            out[col] = float(v.mean()) if len(v) else None
            out[f"{col}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else None
        out["logrank_chi2"] = self.logrank_chi2
        out["logrank_p"] = self.logrank_p
        return out


def _survival_probabilities(model: Any, X: pd.DataFrame, times: NDArray[np.float64]) -> NDArray[np.float64]:
    fns = model.predict_survival_function(X)
    return np.vstack([fn(times) for fn in fns])


def cross_validate_survival(
    X: pd.DataFrame,
    time: pd.Series,
    event: pd.Series,
    *,
    kind: SurvivalKind = "cox",
    estimator: BaseEstimator | None = None,
    n_splits: int = 5,
    n_repeats: int = 1,
    times: ArrayLike | None = None,
    random_state: int = 0,
    name: str = "",
) -> SurvivalCVResult:
    """Event-stratified repeated k-fold cross-validation of a survival model.

    In every fold the model is fitted on the training folds and scores the test fold;
    Harrell's C, Uno's C (IPCW, censoring distribution from the training folds, truncated at
    the last evaluation time), the cumulative/dynamic time-dependent AUC and the integrated
    Brier score are computed on the test fold. The median training-fold risk is the cut-off
    that splits the test patients into high- and low-risk groups, so the Kaplan-Meier curves
    and log-rank test of those groups are out-of-sample.

    Parameters
    ----------
    X : DataFrame
        Predictors, index = patient id.
    time, event : Series
        Follow-up and event indicator, index = patient id (aligned to ``X``).
    kind : str, default 'cox'
        Model of :func:`make_survival_model`; ignored when ``estimator`` is given.
    estimator : scikit-survival estimator, optional
        Must implement ``predict`` (risk) and ``predict_survival_function``.
    n_splits, n_repeats : int, default 5, 1
        Folds and repeats.
    times : array_like, optional
        Evaluation times; default the 25th, 50th and 75th percentiles of the observed event
        times. Per fold only the times inside the test fold's follow-up (and before the last
        training time) are used.
    random_state : int, default 0
        Seed of folds and model.
    name : str, default ''
        Label.

    Returns
    -------
    SurvivalCVResult

    Raises
    ------
    LearningError
        On misaligned inputs, invalid survival data, or fewer events than folds.

    References
    ----------
    Uno H et al. On the C-statistics for evaluating overall adequacy of risk prediction
    procedures with censored survival data. Stat Med 2011;30:1105-1117.
    Graf E et al. Assessment and comparison of prognostic classification schemes for
    survival data. Stat Med 1999;18:2529-2545.
    """
    from sksurv.metrics import (
        concordance_index_censored,
        concordance_index_ipcw,
        cumulative_dynamic_auc,
        integrated_brier_score,
    )

    where = f"cross_validate_survival({name!r})" if name else "cross_validate_survival"
    if not isinstance(X, pd.DataFrame):
        raise LearningError(f"{where}: X must be a pandas DataFrame indexed by patient id.")
    for label, s in (("time", time), ("event", event)):
        if not isinstance(s, pd.Series):
            raise LearningError(f"{where}: {label} must be a pandas Series indexed by patient id.")
        missing = X.index.difference(s.index)
        if len(missing):
            raise LearningError(
                f"{where}: {label} lacks {len(missing)} patient(s) of X, e.g. {list(missing[:3])}."
            )
    y = make_survival_target(time.loc[X.index], event.loc[X.index], where=where)
    n_ev = int(y["event"].sum())
    if min(n_ev, y.size - n_ev) < n_splits:
        raise LearningError(
            f"{where}: {n_ev} events and {y.size - n_ev} censored patients are too few for event-stratified "
            f"{n_splits}-fold cross-validation; lower n_splits."
        )
    base = make_survival_model(kind, random_state=random_state) if estimator is None else estimator
    grid = (
        np.percentile(y["time"][y["event"]], [25, 50, 75])
        if times is None
        else np.asarray(times, dtype=float)
    )
    t0 = _time.perf_counter()
    ids = np.asarray(X.index)
    preds: list[pd.DataFrame] = []
    rows: list[dict[str, Any]] = []
    aucs: list[dict[str, Any]] = []
    cv = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=random_state)
    for k, (tr, te) in enumerate(cv.split(np.zeros(y.size), y["event"])):
        repeat, fold = divmod(k, n_splits)
        model = clone(base)
        try:
            model.fit(X.iloc[tr], y[tr])
        except (ValueError, TypeError, ArithmeticError, np.linalg.LinAlgError) as exc:
            raise LearningError(f"{where}: fitting failed in repeat {repeat}, fold {fold}: {exc}") from exc
        risk_tr = np.asarray(model.predict(X.iloc[tr]), dtype=float)
        risk = np.asarray(model.predict(X.iloc[te]), dtype=float)
        if not (np.isfinite(risk_tr).all() and np.isfinite(risk).all()):
            raise LearningError(
                f"{where}: the model's risk scores are not finite in repeat {repeat}, fold {fold} (the fit "
                f"diverged: {X.shape[1]} predictors for {n_ev} events); use fewer features, a larger penalizer "
                "or kind='lasso_cox'."
            )
        cutoff = float(np.median(risk_tr))
        yte, ytr = y[te], y[tr]
        row: dict[str, Any] = {"repeat": repeat, "fold": fold}
        row["harrell_c"] = (
            float(concordance_index_censored(yte["event"], yte["time"], risk)[0])
            if yte["event"].any()
            else None
        )
        ok = grid[(grid > yte["time"].min()) & (grid < yte["time"].max()) & (grid < ytr["time"].max())]
        # Uno's C (truncated at tau) and the time-dependent AUC need a test-fold event before the
        # last evaluation time; without one they are undefined (sksurv raises "all samples are censored")
        if ok.size and yte["event"][yte["time"] < ok.max()].any():
            row["uno_c"] = float(concordance_index_ipcw(ytr, yte, risk, tau=float(ok.max()))[0])
            auc_t, mean_auc = cumulative_dynamic_auc(ytr, yte, risk, ok)
            row["mean_td_auc"] = float(mean_auc)
            aucs.extend(
                {"repeat": repeat, "fold": fold, "time": float(t), "auc": float(a)}
                for t, a in zip(ok, auc_t, strict=True)
            )
            if ok.size >= 2:
                surv = _survival_probabilities(model, X.iloc[te], ok)
                if not np.isfinite(surv).all():
                    raise LearningError(
                        f"{where}: predicted survival is not finite in repeat {repeat}, fold {fold} (the fit "
                        "diverged); use fewer features, a larger penalizer or kind='lasso_cox'."
                    )
                row["ibs"] = float(integrated_brier_score(ytr, yte, surv, ok))
            else:
                row["ibs"] = None
        else:
            row.update(uno_c=None, mean_td_auc=None, ibs=None)
        rows.append(row)
        preds.append(
            pd.DataFrame(
                {
                    "patient_id": ids[te],
                    "repeat": repeat,
                    "fold": fold,
                    "time": yte["time"],
                    "event": yte["event"].astype(int),
                    "risk": risk,
                    "cutoff": cutoff,
                    "risk_group": np.where(risk > cutoff, "high", "low"),
                }
            )
        )
    predictions = pd.concat(preds, ignore_index=True)
    first = predictions[predictions["repeat"] == 0]
    if first["risk_group"].nunique() == 2:
        chi2_lr, p_lr = logrank(first["time"], first["event"], first["risk_group"])
    else:
        raise LearningError(
            f"{where}: every patient fell in the same risk group (the model's risk is constant); the model "
            "learned nothing from these predictors."
        )
    return SurvivalCVResult(
        name=name,
        predictions=predictions,
        fold_metrics=pd.DataFrame(rows),
        times=grid,
        td_auc=pd.DataFrame(aucs, columns=["repeat", "fold", "time", "auc"]),
        logrank_chi2=chi2_lr,
        logrank_p=p_lr,
        seconds=_time.perf_counter() - t0,
    )


def plot_risk_groups(result: SurvivalCVResult, *, time_unit: str = "days") -> Any:
    """Kaplan-Meier curves of the out-of-fold high- and low-risk groups (first repeat).

    Parameters
    ----------
    result : SurvivalCVResult
        From :func:`cross_validate_survival`.
    time_unit : str, default 'days'
        Axis label.

    Returns
    -------
    matplotlib.figure.Figure
        Step curves with 95 % bands and the log-rank p-value in the title.
    """
    from matplotlib.figure import Figure

    first = result.predictions[result.predictions["repeat"] == 0]
    km = kaplan_meier_groups(first["time"], first["event"], first["risk_group"])
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    for label, colour in (("low", "tab:blue"), ("high", "tab:red")):
        g = km[km["group"] == label]
        if g.empty:
            continue
        n = int((first["risk_group"] == label).sum())
        ax.step(g["time"], g["survival"], where="post", color=colour, label=f"{label} risk (n={n})")
        ax.fill_between(g["time"], g["ci_lo"], g["ci_hi"], step="post", color=colour, alpha=0.15)
    ax.set_xlabel(f"time ({time_unit})")
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.02)
    title = f"{result.name}: " if result.name else ""
    ax.set_title(f"{title}out-of-fold risk groups, log-rank p = {result.logrank_p:.3g}")
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig
