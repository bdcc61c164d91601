"""Nomograms of additive models: points per variable, total points, predicted risk.

A nomogram needs a model whose linear predictor is a *sum* of one contribution per variable
(logistic regression, Cox regression, with any per-column preprocessing such as scaling or
one-hot encoding). The contribution of each variable is obtained by evaluating the fitted
model itself, so the nomogram reproduces the model exactly; models that are not additive
(forests, boosting, RBF SVM) are refused.

Points: the variable whose contribution spans the widest range gets 0-100 points; the
others are scaled by the same factor. Total points map back to the linear predictor, then
to a probability (logistic) or a survival probability at a chosen time (Cox).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from smartimaging.exceptions import LearningError

__all__ = ["NOMOGRAM_KINDS", "Nomogram", "build_nomogram"]

NomogramKind = Literal["logistic", "cox"]
NOMOGRAM_KINDS: tuple[str, ...] = get_args(NomogramKind)


def _nice_grid(lo: float, hi: float, n: int, *, ends: bool = False) -> NDArray[np.float64]:
    """About ``n`` round tick values inside [lo, hi] (plus the ends if ``ends``)."""
    if hi <= lo:
        return np.array([lo])
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10.0 ** np.floor(np.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    inner = np.arange(np.ceil(lo / step) * step, hi + 1e-9 * step, step)
    if ends or inner.size < 2:
        inner = np.r_[lo, inner, hi]
    return np.unique(np.round(inner, 10))


@dataclass
class Nomogram:
    """A fitted model's nomogram; build it with :func:`build_nomogram`.

    Attributes
    ----------
    kind : {'logistic', 'cox'}
        Model type.
    variables : list of str
        Predictors, in the order of the training table.
    scales : dict of str to DataFrame
        Per variable: ``value, points`` at round values spanning the training range (numeric)
        or at every observed level (categorical).
    points_per_unit : float
        Points per unit of the linear predictor.
    lp_at_zero_points : float
        Linear predictor of a patient with 0 total points.
    time : float or None
        Time at which survival is given (Cox).
    reference_survival : float or None
        Survival at ``time`` of the reference patient (Cox).
    lp_reference : float
        Linear predictor of the reference patient (numeric medians, categorical modes).
    """

    kind: NomogramKind
    variables: list[str]
    scales: dict[str, pd.DataFrame]
    points_per_unit: float
    lp_at_zero_points: float
    time: float | None
    reference_survival: float | None
    lp_reference: float
    _model: Any = field(repr=False)
    _reference: pd.DataFrame = field(repr=False)
    _min_contribution: dict[str, float] = field(repr=False)
    _numeric: dict[str, bool] = field(repr=False, default_factory=dict)
    _span_points: dict[str, float] = field(repr=False, default_factory=dict)

    def _contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [v for v in self.variables if v not in X.columns]
        if missing:
            raise LearningError(f"Nomogram: column(s) {missing} missing from the patients' table.")
        n, p = len(X), len(self.variables)
        cols: dict[str, NDArray[Any]] = {}
        for j, v in enumerate(self.variables):
            dtype = float if self._numeric[v] else object
            col = np.repeat(self._reference[v].to_numpy(dtype=dtype), n * p)
            col[j * n : (j + 1) * n] = X[v].to_numpy(dtype=dtype)
            cols[v] = col
        lp = _linear_predictor(self._model, self.kind, pd.DataFrame(cols))
        return pd.DataFrame(lp.reshape(p, n).T - self.lp_reference, index=X.index, columns=self.variables)

    def points(self, X: pd.DataFrame) -> pd.DataFrame:
        """Points of every variable and the total for each patient (row) of ``X``.

        Parameters
        ----------
        X : DataFrame
            Patients with the model's predictor columns (no missing values).

        Returns
        -------
        DataFrame
            One column per variable plus ``total``; values outside the training range may
            fall outside 0-100.

        Raises
        ------
        LearningError
            If a predictor column is missing or has missing values.
        """
        if X[[v for v in self.variables if v in X.columns]].isna().any().any():
            raise LearningError("Nomogram.points: patients' predictors must not be missing.")
        c = self._contributions(X)
        pts = pd.DataFrame(
            {v: (c[v] - self._min_contribution[v]) * self.points_per_unit for v in self.variables},
            index=X.index,
        )
        pts["total"] = pts.sum(axis=1)
        return pts

    def predict_from_points(self, total_points: ArrayLike) -> NDArray[np.float64]:
        """Probability (logistic) or survival at :attr:`time` (Cox) for total points."""
        lp = self.lp_at_zero_points + np.asarray(total_points, dtype=float) / self.points_per_unit
        if self.kind == "logistic":
            return np.asarray(1.0 / (1.0 + np.exp(-lp)))
        assert self.reference_survival is not None
        return np.asarray(self.reference_survival ** np.exp(lp - self.lp_reference))

    def table(self) -> pd.DataFrame:
        """Long table ``variable, value, points`` of every scale (for reports)."""
        return pd.concat(
            [df.assign(variable=v)[["variable", "value", "points"]] for v, df in self.scales.items()],
            ignore_index=True,
        )

    def risk_table(self, *, n: int = 11) -> pd.DataFrame:
        """Total points against predicted probability / survival, ``n`` rows over the full range."""
        top = sum(float(df["points"].max()) for df in self.scales.values())
        total = np.linspace(0.0, top, n)
        col = "probability" if self.kind == "logistic" else f"survival_at_{self.time:g}"
        return pd.DataFrame({"total_points": total, col: self.predict_from_points(total)})

    def plot(self, *, title: str = "") -> Any:
        """Classic nomogram figure: a points ruler, one line per variable, total points, risk.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from matplotlib.figure import Figure

        rows = len(self.variables) + 3
        fig = Figure(figsize=(8, 0.55 * rows + 1.0))
        ax = fig.add_subplot()
        top = sum(float(df["points"].max()) for df in self.scales.values())
        scale_total = 100.0 / top if top > 0 else 1.0  # total-points axis drawn on the same width

        def ruler(
            y: float,
            xs: NDArray[np.float64],
            labels: list[str],
            name: str,
            extent: tuple[float, float] | None = None,
        ) -> None:
            lo, hi = extent if extent is not None else (float(xs.min()), float(xs.max()))
            ax.plot([lo, hi], [y, y], color="black", lw=1)
            last_above, last_below = -np.inf, -np.inf
            for x, lab in sorted(zip(xs, labels, strict=True), key=lambda t: t[0]):
                ax.plot([x, x], [y, y + 0.15], color="black", lw=1)
                gap = 2.0 + 1.2 * len(lab)  # rough label width in axis units
                if x - last_above >= gap:
                    ax.text(x, y + 0.2, lab, ha="center", va="bottom", fontsize=7)
                    last_above = x
                elif x - last_below >= gap:  # crowded: put this label under the line
                    ax.text(x, y - 0.1, lab, ha="center", va="top", fontsize=7)
                    last_below = x
            ax.text(-4, y, name, ha="right", va="center", fontsize=9)

        y = rows - 1.0
        ticks = np.arange(0, 101, 10, dtype=float)
        ruler(y, ticks, [f"{t:g}" for t in ticks], "Points")
        for v in self.variables:
            y -= 1.0
            df = self.scales[v]
            ruler(
                y,
                df["points"].to_numpy(dtype=float),
                [_fmt(x) for x in df["value"]],
                v,
                extent=(0.0, self._span_points[v]),
            )
        y -= 1.0
        tot = _nice_grid(0.0, top, 8, ends=False)
        ruler(y, tot * scale_total, [f"{t:g}" for t in tot], "Total points", extent=(0.0, 100.0))
        y -= 1.0
        probs = np.array([0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99])
        lp = np.log(probs / (1 - probs))
        if self.kind == "cox":
            assert self.reference_survival is not None
            # S = S_ref ** exp(lp - lp_ref)  ->  lp = lp_ref + log(log S / log S_ref)
            lp = self.lp_reference + np.log(np.log(probs) / np.log(self.reference_survival))
        pos = (lp - self.lp_at_zero_points) * self.points_per_unit * scale_total
        keep = (pos >= 0) & (pos <= 100)
        name = "Probability" if self.kind == "logistic" else f"Survival at t={self.time:g}"
        if keep.any():
            ruler(y, pos[keep], [f"{p:g}" for p in probs[keep]], name)
        ax.set_xlim(-30, 105)
        ax.set_ylim(-0.5, rows)
        ax.axis("off")
        if title:
            ax.set_title(title)
        fig.tight_layout()
        return fig


def _fmt(x: Any) -> str:
    if isinstance(x, float | np.floating):
        return f"{x:.3g}"
    return str(x)


def _linear_predictor(model: Any, kind: str, X: pd.DataFrame) -> NDArray[np.float64]:
    if kind == "logistic":
        if not hasattr(model, "decision_function"):
            raise LearningError("build_nomogram: a logistic nomogram needs a model with decision_function.")
        return np.asarray(model.decision_function(X), dtype=float).ravel()
    return np.asarray(model.predict(X), dtype=float).ravel()


def build_nomogram(
    model: Any,
    X: pd.DataFrame,
    *,
    kind: NomogramKind = "logistic",
    time: float | None = None,
    n_ticks: int = 6,
) -> Nomogram:
    """Nomogram of a fitted additive logistic or Cox model.

    Parameters
    ----------
    model : fitted estimator or Pipeline
        ``'logistic'``: anything with ``decision_function`` (log-odds), e.g.
        ``make_classifier('logistic')`` fitted; ``'cox'``: anything whose ``predict`` is the
        linear predictor and with ``predict_survival_function``, e.g.
        ``make_survival_model('cox')`` fitted.
    X : DataFrame
        The training predictors (sets the value ranges, the reference patient and checks
        additivity); no missing values.
    kind : {'logistic', 'cox'}, default 'logistic'
        Model type.
    time : float, optional
        Time of the survival probability (required for ``'cox'``).
    n_ticks : int, default 6
        About how many values to mark on each numeric variable's scale.

    Returns
    -------
    Nomogram

    Raises
    ------
    LearningError
        On an unknown kind, a missing ``time`` for Cox, missing values in ``X``, or a model
        whose linear predictor is not additive over the variables.

    References
    ----------
    Iasonos A, Schrag D, Raj GV, Panageas KS. How to build and interpret a nomogram for
    cancer prognosis. J Clin Oncol 2008;26:1364-1370.
    Harrell FE. Regression Modeling Strategies, 2nd ed. Springer 2015, section 10.10 (nomogram).
    """
    if kind not in NOMOGRAM_KINDS:
        raise LearningError(
            f"build_nomogram: unknown kind {kind!r}; valid values are {list(NOMOGRAM_KINDS)}."
        )
    if not isinstance(X, pd.DataFrame) or X.shape[1] == 0 or len(X) < 2:
        raise LearningError(
            "build_nomogram: X must be the training DataFrame with at least one column and two rows."
        )
    if X.isna().any().any():
        raise LearningError(
            f"build_nomogram: X has missing values in {list(X.columns[X.isna().any()])[:10]}; a nomogram needs "
            "complete values."
        )
    if kind == "cox" and (time is None or not np.isfinite(time) or time <= 0):
        raise LearningError("build_nomogram: kind='cox' needs a positive time at which to give survival.")
    variables = [str(c) for c in X.columns]
    numeric = {
        v: pd.api.types.is_numeric_dtype(X[v]) and not pd.api.types.is_bool_dtype(X[v]) for v in variables
    }
    ref = X.iloc[[0]].copy()
    for v in variables:
        ref[v] = X[v].median() if numeric[v] else X[v].mode(dropna=True).iloc[0]
    ref = ref.reset_index(drop=True)
    lp_ref = float(_linear_predictor(model, kind, ref)[0])

    proto = Nomogram(
        kind=kind,
        variables=variables,
        scales={},
        points_per_unit=1.0,
        lp_at_zero_points=0.0,
        time=time,
        reference_survival=None,
        lp_reference=lp_ref,
        _model=model,
        _reference=ref,
        _min_contribution={},
        _numeric=numeric,
    )
    # additivity: the model's linear predictor must equal reference + sum of contributions
    sample = X.iloc[: min(len(X), 50)]
    contrib = proto._contributions(sample)
    lp_sample = _linear_predictor(model, kind, sample)
    gap = float(np.max(np.abs(lp_ref + contrib.sum(axis=1).to_numpy() - lp_sample)))
    if gap > 1e-6 * max(1.0, float(np.max(np.abs(lp_sample)))):
        raise LearningError(
            f"build_nomogram: the model is not additive over the variables (linear predictor differs from the sum "
            f"of per-variable contributions by up to {gap:.3g}); nomograms apply to logistic or Cox regression "
            "without interactions, not to tree ensembles or kernel SVMs."
        )

    values: dict[str, pd.Series] = {}
    for v in variables:
        if numeric[v]:
            grid = _nice_grid(float(X[v].min()), float(X[v].max()), n_ticks)
            values[v] = pd.Series(grid, name=v)
        else:
            values[v] = pd.Series(sorted(pd.unique(X[v]), key=str), name=v)
    n_max = max(len(s) for s in values.values())
    grid_frame = pd.DataFrame({v: s.reindex(range(n_max)).ffill() for v, s in values.items()})
    grid_contrib = proto._contributions(grid_frame)
    # the extent of each scale is the observed range (numeric: min and max, which bound a
    # linear contribution; categorical: all levels)
    ends = pd.DataFrame(
        {v: [X[v].min(), X[v].max()] if numeric[v] else values[v].iloc[[0, 0]].to_list() for v in variables}
    )
    end_contrib = proto._contributions(ends)
    mins, spans = {}, {}
    for v in variables:
        c = np.r_[grid_contrib[v].to_numpy()[: len(values[v])], end_contrib[v].to_numpy()]
        mins[v] = float(c.min())
        spans[v] = float(c.max() - c.min())
    widest = max(spans.values())
    if widest <= 0:
        raise LearningError(
            "build_nomogram: every variable has zero effect in the model; there is nothing to draw."
        )
    ppu = 100.0 / widest
    scales = {
        v: pd.DataFrame(
            {
                "value": values[v].to_numpy(),
                "points": (grid_contrib[v].to_numpy()[: len(values[v])] - mins[v]) * ppu,
            }
        )
        for v in variables
    }
    s_ref = None
    if kind == "cox":
        if not hasattr(model, "predict_survival_function"):
            raise LearningError(
                "build_nomogram: a Cox nomogram needs a model with predict_survival_function."
            )
        s_ref = float(model.predict_survival_function(ref)[0](time))
        if not 0.0 < s_ref < 1.0:
            raise LearningError(
                f"build_nomogram: the reference patient's survival at t={time} is {s_ref:g}; choose a time inside "
                "the follow-up where survival is between 0 and 1."
            )
    proto.scales = scales
    proto.points_per_unit = ppu
    proto.lp_at_zero_points = lp_ref + sum(mins.values())
    proto.reference_survival = s_ref
    proto._min_contribution = mins
    proto._span_points = {v: spans[v] * ppu for v in variables}
    return proto
