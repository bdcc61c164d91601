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
    "feature_distributions_png",
    "png_to_data_uri",
    "roc_curves_png",
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
