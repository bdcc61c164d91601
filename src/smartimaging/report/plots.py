"""Figures of the report, rendered to PNG bytes without touching matplotlib's global state.

Figures are built on :class:`matplotlib.figure.Figure` objects directly (no ``pyplot``, no
``rcParams`` change), so calling these functions from a library, a notebook or a worker process
never alters the caller's matplotlib settings. Colours follow the Okabe-Ito palette, which stays
distinguishable with the common colour-vision deficiencies.

Model results may be :class:`smartimaging.learn.validate.CVResult` objects or plain mappings
with the keys ``name``, ``auc``, ``auc_ci`` and (for ROC curves) ``roc`` = ``(fpr, tpr)``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from smartimaging.exceptions import SmartImagingError

__all__ = [
    "PALETTE",
    "ReportError",
    "auc_bar_png",
    "calibration_curves_png",
    "correlation_heatmap_png",
    "decision_curves_png",
    "feature_distributions_png",
    "figure_png",
    "kaplan_meier_png",
    "png_to_data_uri",
    "roc_curves_png",
    "shap_summary_png",
]

#: Okabe-Ito colours (without black), used in order for models / classes.
PALETTE: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")

_DPI = 110


class ReportError(SmartImagingError, ValueError):
    """A figure or the report cannot be built from the data given (missing field, bad image)."""


def _field(result: Any, key: str) -> Any:
    """Attribute ``key`` of a result object, or item ``key`` of a mapping."""
    if isinstance(result, Mapping):
        if key not in result:
            raise ReportError(f"model result {result.get('name', '?')!r} lacks the key {key!r}.")
        return result[key]
    if not hasattr(result, key):
        raise ReportError(f"model result of type {type(result).__name__} lacks the attribute {key!r}.")
    return getattr(result, key)


def _to_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # no 'Software' stamp: identical inputs give identical bytes across runs
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def png_to_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` URI of PNG bytes, for embedding in a self-contained HTML file.

    Raises
    ------
    ReportError
        If ``png`` does not start with the PNG signature.
    """
    if not isinstance(png, bytes | bytearray) or not bytes(png).startswith(b"\x89PNG\r\n\x1a\n"):
        raise ReportError("png_to_data_uri: the data are not PNG bytes (signature \\x89PNG missing).")
    return "data:image/png;base64," + base64.b64encode(bytes(png)).decode("ascii")


def _ci_text(ci: Any) -> str:
    try:
        lo, hi = (float(v) for v in ci)
    except (TypeError, ValueError):
        return ""
    return f" ({lo:.2f}–{hi:.2f})"


def roc_curves_png(
    results: Sequence[Any], *, title: str = "ROC curves (cross-validated, out-of-fold)", size: float = 5.2
) -> bytes:
    """ROC curves of several models on one axes, with AUC and 95 % CI in the legend.

    Parameters
    ----------
    results : sequence of CVResult or mapping
        Each with ``name``, ``auc``, ``auc_ci`` and ``roc = (fpr, tpr)``.
    title : str
        Axes title.
    size : float, default 5.2
        Width and height in inches.

    Returns
    -------
    bytes
        PNG image.

    Raises
    ------
    ReportError
        If ``results`` is empty or a result lacks a field.
    """
    if not results:
        raise ReportError("roc_curves_png: no model result to plot.")
    fig = Figure(figsize=(size, size), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="#888888", linewidth=1, label="chance (AUC 0.50)")
    for k, res in enumerate(results):
        fpr, tpr = (np.asarray(a, dtype=float) for a in _field(res, "roc"))
        label = f"{_field(res, 'name') or f'model {k + 1}'}: AUC {float(_field(res, 'auc')):.2f}"
        label += _ci_text(_field(res, "auc_ci"))
        ax.step(fpr, tpr, where="post", color=PALETTE[k % len(PALETTE)], linewidth=2, label=label)
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="1 − specificity (false-positive rate)")
    ax.set_ylabel("Sensitivity (true-positive rate)")
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
    ax.grid(color="#e5e5e5", linewidth=0.6)
    ax.legend(loc="lower right", fontsize=8, frameon=True)
    return _to_png(fig)


def auc_bar_png(results: Sequence[Any], *, title: str = "Cross-validated AUC with 95 % CI") -> bytes:
    """Horizontal bars of model AUCs with their confidence intervals and the chance line.

    Parameters
    ----------
    results : sequence of CVResult or mapping
        Each with ``name``, ``auc`` and ``auc_ci``.
    title : str
        Axes title.

    Returns
    -------
    bytes
        PNG image.

    Raises
    ------
    ReportError
        If ``results`` is empty or a result lacks a field.
    """
    if not results:
        raise ReportError("auc_bar_png: no model result to plot.")
    names = [str(_field(r, "name") or f"model {k + 1}") for k, r in enumerate(results)]
    aucs = np.array([float(_field(r, "auc")) for r in results])
    cis = np.array([[float(v) for v in _field(r, "auc_ci")] for r in results])
    err = np.vstack([aucs - cis[:, 0], cis[:, 1] - aucs]).clip(min=0)
    fig = Figure(figsize=(6.0, 0.6 * len(results) + 1.4), layout="constrained")
    ax = fig.add_subplot()
    ypos = np.arange(len(results))[::-1]
    ax.barh(ypos, aucs, color=[PALETTE[k % len(PALETTE)] for k in range(len(results))], height=0.6)
    ax.errorbar(aucs, ypos, xerr=err, fmt="none", ecolor="#222222", capsize=4, linewidth=1.2)
    ax.axvline(0.5, color="#888888", linestyle="--", linewidth=1)
    for y, a in zip(ypos, aucs, strict=True):
        ax.text(0.02, y, f"{a:.2f}", va="center", ha="left", color="white", fontsize=9, fontweight="bold")
    ax.set_yticks(ypos, names)
    ax.set(xlim=(0, 1), xlabel="AUC")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    return _to_png(fig)


def _univariate_auc(values: np.ndarray, labels: np.ndarray) -> float | None:
    pos, neg = values[labels == 1], values[labels == 0]
    if pos.size == 0 or neg.size == 0:
        return None
    # Mann-Whitney form: P(pos > neg) + 0.5 P(tie)
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def feature_distributions_png(
    features: pd.DataFrame,
    labels: pd.Series,
    *,
    columns: Sequence[str] | None = None,
    max_features: int = 12,
    ncols: int = 4,
    random_state: int = 0,
) -> bytes:
    """Small multiples: the distribution of each feature in label 0 vs label 1 patients.

    Each panel shows a box plot per class with the individual patients as jittered dots, and the
    feature's univariate AUC (label 1 vs 0, > 0.5 when higher values go with label 1) in its title.

    Parameters
    ----------
    features : DataFrame
        Wide table, index = patient id.
    labels : Series
        0/1 outcome, index = patient id; patients missing from either table are left out.
    columns : sequence of str, optional
        Features to show. By default the ``max_features`` numeric features whose univariate AUC
        is farthest from 0.5 (ties broken by column order).
    max_features : int, default 12
        Largest number of panels.
    ncols : int, default 4
        Panels per row.
    random_state : int, default 0
        Seed of the horizontal jitter of the dots.

    Returns
    -------
    bytes
        PNG image.

    Raises
    ------
    ReportError
        If no patient is in both tables, a requested column is missing, or there is no numeric
        feature.
    """
    common = features.index.intersection(labels.index, sort=False)
    lab = labels.loc[common]
    lab = lab[lab.notna()]
    if len(lab) == 0:
        raise ReportError(
            "feature_distributions_png: no patient is in both the feature table and the labels."
        )
    table = features.loc[lab.index]
    y = lab.to_numpy().astype(int)
    if columns is None:
        numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
        if not numeric:
            raise ReportError("feature_distributions_png: the feature table has no numeric column.")
        strength = []
        for c in numeric:
            v = table[c].to_numpy(dtype=float)
            ok = np.isfinite(v)
            a = _univariate_auc(v[ok], y[ok])
            strength.append(0.0 if a is None else abs(a - 0.5))
        order = np.argsort(-np.asarray(strength), kind="stable")
        chosen = [numeric[i] for i in order[:max_features]]
    else:
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise ReportError(f"feature_distributions_png: column(s) {missing} not in the feature table.")
        chosen = list(columns)[:max_features]
    n = len(chosen)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(2.6 * ncols, 2.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    rng = np.random.default_rng(random_state)
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.set_axis_off()
            continue
        col = chosen[k]
        v = table[col].to_numpy(dtype=float)
        ok = np.isfinite(v)
        groups = [v[ok & (y == cls)] for cls in (0, 1)]
        ax.boxplot(
            groups,
            positions=[0, 1],
            widths=0.5,
            showfliers=False,
            medianprops={"color": "#222222"},
            boxprops={"color": "#555555"},
            whiskerprops={"color": "#555555"},
            capprops={"color": "#555555"},
        )
        for cls, g in enumerate(groups):
            ax.scatter(
                cls + rng.uniform(-0.15, 0.15, g.size), g, s=9, alpha=0.7, color=PALETTE[cls], linewidths=0
            )
        ax.set_xticks(
            [0, 1], [f"label 0\n(n={groups[0].size})", f"label 1\n(n={groups[1].size})"], fontsize=7
        )
        ax.tick_params(axis="y", labelsize=7)
        a = _univariate_auc(v[ok], y[ok])
        ax.set_title(col if a is None else f"{col}\nAUC {a:.2f}", fontsize=8)
        ax.grid(axis="y", color="#eeeeee", linewidth=0.6)
    return _to_png(fig)


def correlation_heatmap_png(
    features: pd.DataFrame,
    *,
    max_features: int = 60,
    method: Literal["spearman", "pearson"] = "spearman",
) -> bytes:
    """Heat map of the absolute pairwise correlation of the features, clustered.

    Features are ordered by average-linkage hierarchical clustering on 1 - |rho|, so that blocks of
    redundant features (e.g. volume-dependent texture features) appear as squares on the diagonal.

    Parameters
    ----------
    features : DataFrame
        Wide table, one row per patient.
    max_features : int, default 60
        At most this many numeric features: those with the most distinct values (then column
        order), which drops near-constant features first.
    method : {"spearman", "pearson"}
        Correlation coefficient.

    Returns
    -------
    bytes
        PNG image.

    Raises
    ------
    ReportError
        If fewer than two numeric, non-constant features or three patients are available, or
        ``method`` is unknown.
    """
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    if method not in ("spearman", "pearson"):
        raise ReportError(f"correlation_heatmap_png: method must be 'spearman' or 'pearson', got {method!r}")
    numeric = features.select_dtypes(include="number")
    numeric = numeric.loc[:, numeric.nunique(dropna=True) > 1]
    if numeric.shape[1] < 2 or numeric.shape[0] < 3:
        raise ReportError(
            "correlation_heatmap_png: need at least two non-constant numeric features and three patients "
            f"(got {numeric.shape[1]} features, {numeric.shape[0]} patients)"
        )
    if numeric.shape[1] > max_features:
        distinct = numeric.nunique(dropna=True)
        keep = distinct.sort_values(ascending=False, kind="stable").index[:max_features]
        numeric = numeric[[c for c in numeric.columns if c in set(keep)]]
    rho = numeric.corr(method=method).abs().fillna(0.0).to_numpy(copy=True)  # writable under pandas 3
    np.fill_diagonal(rho, 1.0)
    distance = np.clip(1.0 - rho, 0.0, None)
    distance = (distance + distance.T) / 2.0
    np.fill_diagonal(distance, 0.0)
    order = leaves_list(linkage(squareform(distance, checks=False), method="average"))
    names = [str(numeric.columns[i]) for i in order]
    matrix = rho[np.ix_(order, order)]
    n = len(names)
    size = min(11.0, 2.5 + 0.16 * n)
    fig = Figure(figsize=(size + 1.2, size), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    fontsize = max(3.5, min(8.0, 300.0 / n))
    ax.set_xticks(range(n), names, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n), names, fontsize=fontsize)
    ax.set_title(f"|{method.capitalize()} correlation| between features (clustered)", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.6, label=f"|{'rho' if method == 'spearman' else 'r'}|")
    return _to_png(fig)


def figure_png(fig: Figure) -> bytes:
    """PNG bytes of a matplotlib figure (e.g. a nomogram's ``plot()``), without a software stamp."""
    return _to_png(fig)


def _check_frame(frame: Any, columns: Sequence[str], where: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise ReportError(f"{where}: expected a DataFrame, got {type(frame).__name__}.")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ReportError(f"{where}: the table lacks column(s) {missing}; it has {list(frame.columns)}.")
    return frame


def calibration_curves_png(
    curves: Mapping[str, pd.DataFrame],
    *,
    stats: Mapping[str, tuple[float | None, float | None]] | None = None,
    title: str = "Calibration (out-of-sample predicted probabilities)",
) -> bytes:
    """Observed event rate against mean predicted probability for several models.

    Parameters
    ----------
    curves : mapping of str to DataFrame
        Model -> :func:`smartimaging.learn.clinical_metrics.calibration_curve` table (columns
        ``mean_predicted, observed, observed_lo, observed_hi``).
    stats : mapping of str to (slope, intercept), optional
        Shown in the legend.
    title : str
        Axes title.

    Returns
    -------
    bytes
        PNG image: the diagonal of perfect calibration, each model's binned points with Wilson
        95 % bars.

    Raises
    ------
    ReportError
        If ``curves`` is empty or a table lacks a column.
    """
    if not curves:
        raise ReportError("calibration_curves_png: no calibration curve to plot.")
    fig = Figure(figsize=(5.6, 5.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="#888888", linewidth=1, label="ideal")
    for k, (name, curve) in enumerate(curves.items()):
        c = _check_frame(
            curve, ("mean_predicted", "observed", "observed_lo", "observed_hi"), "calibration_curves_png"
        )
        err = np.vstack([c["observed"] - c["observed_lo"], c["observed_hi"] - c["observed"]]).clip(min=0)
        label = str(name)
        if stats and name in stats:
            slope, intercept = stats[name]
            if slope is not None and intercept is not None:
                label += f" (slope {slope:.2f}, intercept {intercept:.2f})"
        colour = PALETTE[k % len(PALETTE)]
        ax.errorbar(
            c["mean_predicted"], c["observed"], yerr=err, fmt="o-", color=colour, capsize=3, markersize=4,
            linewidth=1.4, label=label,
        )  # fmt: skip
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="Mean predicted probability", ylabel="Observed event rate")
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
    ax.grid(color="#e5e5e5", linewidth=0.6)
    ax.legend(loc="upper left", fontsize=7, frameon=True)
    return _to_png(fig)


def decision_curves_png(
    curves: Mapping[str, pd.DataFrame], *, title: str = "Decision curves (out-of-sample predictions)"
) -> bytes:
    """Net benefit of several models against treat-all and treat-none.

    Parameters
    ----------
    curves : mapping of str to DataFrame
        Model -> :func:`smartimaging.learn.clinical_metrics.decision_curve` table (columns
        ``threshold, net_benefit_model, net_benefit_all, net_benefit_none``); the treat-all curve
        is taken from the first table (it depends on the prevalence only).
    title : str
        Axes title.

    Returns
    -------
    bytes
        PNG image.

    Raises
    ------
    ReportError
        If ``curves`` is empty or a table lacks a column.
    """
    if not curves:
        raise ReportError("decision_curves_png: no decision curve to plot.")
    cols = ("threshold", "net_benefit_model", "net_benefit_all", "net_benefit_none")
    tables = {str(k): _check_frame(v, cols, "decision_curves_png") for k, v in curves.items()}
    first = next(iter(tables.values()))
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(first["threshold"], first["net_benefit_all"], color="#555555", linewidth=1.2, label="treat all")
    ax.plot(
        first["threshold"],
        first["net_benefit_none"],
        color="black",
        linestyle="--",
        linewidth=1.2,
        label="treat none",
    )
    top = max(0.01, float(first["net_benefit_all"].max()))
    for k, (name, c) in enumerate(tables.items()):
        ax.plot(
            c["threshold"], c["net_benefit_model"], color=PALETTE[k % len(PALETTE)], linewidth=1.8, label=name
        )
        top = max(top, float(c["net_benefit_model"].max()))
    ax.set(
        xlim=(0, 1),
        ylim=(-0.05 * top - 0.02, 1.1 * top),
        xlabel="Threshold probability",
        ylabel="Net benefit",
    )
    ax.set_title(title, fontsize=10)
    ax.grid(color="#e5e5e5", linewidth=0.6)
    ax.legend(loc="upper right", fontsize=7, frameon=True)
    return _to_png(fig)


def kaplan_meier_png(
    km: pd.DataFrame,
    *,
    logrank_p: float | None = None,
    time_unit: str = "",
    counts: Mapping[str, int] | None = None,
    title: str = "",
) -> bytes:
    """Kaplan-Meier curves of risk groups with 95 % bands and the log-rank p-value.

    Parameters
    ----------
    km : DataFrame
        :func:`smartimaging.learn.survival.kaplan_meier_groups` table (``group, time, survival,
        ci_lo, ci_hi``).
    logrank_p : float, optional
        Shown in the title.
    time_unit : str
        Axis label.
    counts : mapping of str to int, optional
        Patients per group, shown in the legend.
    title : str
        Title prefix (e.g. the model).

    Returns
    -------
    bytes
        PNG image.

    Raises
    ------
    ReportError
        If the table lacks a column or is empty.
    """
    _check_frame(km, ("group", "time", "survival", "ci_lo", "ci_hi"), "kaplan_meier_png")
    if km.empty:
        raise ReportError("kaplan_meier_png: the Kaplan-Meier table is empty.")
    fig = Figure(figsize=(6.2, 4.4), layout="constrained")
    ax = fig.add_subplot()
    order = sorted(pd.unique(km["group"]), key=lambda g: {"low": 0, "high": 1}.get(str(g), 2))
    for k, group in enumerate(order):
        g = km[km["group"] == group]
        colour = PALETTE[k % len(PALETTE)]
        label = f"{group} risk" + (f" (n={counts[group]})" if counts and group in counts else "")
        ax.step(g["time"], g["survival"], where="post", color=colour, linewidth=1.8, label=label)
        ax.fill_between(g["time"], g["ci_lo"], g["ci_hi"], step="post", color=colour, alpha=0.15)
    ax.set(
        ylim=(0, 1.02), xlabel=f"Time ({time_unit})" if time_unit else "Time", ylabel="Survival probability"
    )
    text = f"log-rank p = {logrank_p:.3g}" if logrank_p is not None else ""
    ax.set_title(f"{title}: {text}" if title and text else (title or text), fontsize=10)
    ax.grid(color="#e5e5e5", linewidth=0.6)
    ax.legend(loc="lower left", fontsize=8, frameon=True)
    return _to_png(fig)


def shap_summary_png(
    shap_values: pd.DataFrame,
    features: pd.DataFrame | None = None,
    *,
    max_features: int = 15,
    title: str = "SHAP values of the final model",
) -> bytes:
    """Beeswarm summary of SHAP values: one row per feature, one dot per patient.

    Features are ordered by mean |SHAP|; dots are coloured by the patient's feature value
    (rank within the feature, blue low to red high) when ``features`` holds a numeric column of
    the same name, grey otherwise.

    Parameters
    ----------
    shap_values : DataFrame
        Patients x features SHAP values (log-odds or probability scale).
    features : DataFrame, optional
        The feature values of the same patients.
    max_features : int, default 15
        Features shown.
    title : str
        Axes title.

    Returns
    -------
    bytes
        PNG image.

    Raises
    ------
    ReportError
        If ``shap_values`` is not a non-empty numeric DataFrame.
    """
    if not isinstance(shap_values, pd.DataFrame) or shap_values.empty:
        raise ReportError(
            "shap_summary_png: give a non-empty DataFrame of SHAP values (patients x features)."
        )
    values = shap_values.apply(pd.to_numeric, errors="coerce")
    importance = values.abs().mean().sort_values(ascending=False, kind="stable")
    shown = [c for c in importance.index[:max_features]]
    n = len(shown)
    fig = Figure(figsize=(7.0, 0.38 * n + 1.5), layout="constrained")
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    cmap = _colormap("coolwarm")
    for row, name in enumerate(shown):
        v = values[name].to_numpy(dtype=float)
        ok = np.isfinite(v)
        y = (n - 1 - row) + rng.uniform(-0.28, 0.28, size=v.size)
        colour: Any = "#888888"
        if (
            features is not None
            and name in features.columns
            and pd.api.types.is_numeric_dtype(features[name])
        ):
            f = features[name].reindex(shap_values.index).to_numpy(dtype=float)
            ranks = pd.Series(f).rank(pct=True).to_numpy()
            colour = [cmap(r) if np.isfinite(r) else "#888888" for r in ranks[ok]]
        ax.scatter(v[ok], y[ok], s=10, c=colour, alpha=0.8, linewidths=0)
    ax.axvline(0.0, color="#888888", linewidth=0.8)
    ax.set_yticks(range(n), [str(s) for s in shown[::-1]], fontsize=8)
    ax.set_xlabel("SHAP value (impact on the model output)")
    ax.set_title(
        title + ("; colour: feature value, blue low, red high" if features is not None else ""), fontsize=9
    )
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
    return _to_png(fig)


def _colormap(name: str) -> Any:
    """A matplotlib colormap by name, without touching pyplot."""
    import matplotlib

    return matplotlib.colormaps[name]
