"""Radiogenomics: univariate associations between imaging features and genomic variables.

Every (imaging feature, genomic variable) pair is tested with a rank test chosen by the type of
the genomic variable: a two-level variable (mutation status, e.g. EGFR mutant / wild type) by the
Mann-Whitney U test, a variable with more levels (a subtype) by the Kruskal-Wallis H test, a
continuous one (an expression level) by Spearman's rank correlation. Patients with a missing
value in either variable of a pair are dropped for that pair only (pairwise deletion), and the
Benjamini-Hochberg procedure controls the false discovery rate over the whole family of tests.

Predicting a molecular label from the features is an ordinary classification target (see
:func:`smartimaging.learn.validate.nested_cross_validate`).
"""

from __future__ import annotations

import io
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats

from smartimaging.exceptions import LearningError
from smartimaging.learn.selection import benjamini_hochberg

__all__ = ["ASSOCIATION_COLUMNS", "AssociationMethod", "association_heatmap_png", "associations"]

AssociationMethod = Literal["auto", "spearman", "mannwhitney", "kruskal"]
_METHODS: tuple[str, ...] = ("auto", "spearman", "mannwhitney", "kruskal")

#: Columns of the table returned by :func:`associations`, in order.
ASSOCIATION_COLUMNS: tuple[str, ...] = (
    "feature",
    "genomic",
    "test",
    "n",
    "groups",
    "statistic",
    "effect",
    "effect_measure",
    "auc",
    "p_value",
    "q_value",
    "significant",
    "note",
)

#: Smallest number of patients per group (Mann-Whitney, Kruskal-Wallis) and of pairs (Spearman).
MIN_PER_GROUP = 2
MIN_PAIRS = 4


def _is_numeric(s: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s))


def _levels(s: pd.Series) -> list[Any]:
    """Sorted distinct non-missing values (numbers numerically, anything else as text)."""
    vals = s.dropna().unique().tolist()
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def _choose_test(s: pd.Series, method: str, name: str) -> str:
    levels = _levels(s)
    if method == "auto":
        if len(levels) == 2 or pd.api.types.is_bool_dtype(s):
            return "mannwhitney"
        if not _is_numeric(s):
            return "kruskal"
        return "spearman"
    if method == "spearman" and not _is_numeric(s):
        raise LearningError(
            f"associations: method='spearman' needs a numeric genomic variable, but {name!r} holds "
            f"{s.dtype} values (e.g. {levels[:3]}); use method='auto' or 'kruskal' for categories."
        )
    if method == "mannwhitney" and len(levels) > 2:
        raise LearningError(
            f"associations: method='mannwhitney' compares two groups, but {name!r} has {len(levels)} levels "
            f"({levels[:6]}); use method='kruskal' or 'auto'."
        )
    return method


def _row(
    feature: str,
    genomic: str,
    test: str,
    n: int,
    groups: str,
    *,
    statistic: float = np.nan,
    effect: float = np.nan,
    effect_measure: str = "",
    auc: float = np.nan,
    p_value: float = np.nan,
    note: str = "",
) -> dict[str, Any]:
    """One row of the association table (q-value and significance are filled in over the family)."""
    return {
        "feature": feature,
        "genomic": genomic,
        "test": test,
        "n": n,
        "groups": groups,
        "statistic": statistic,
        "effect": effect,
        "effect_measure": effect_measure,
        "auc": auc,
        "p_value": p_value,
        "q_value": np.nan,
        "significant": False,
        "note": note,
    }


def _untested(feature: str, genomic: str, test: str, n: int, groups: str, note: str) -> dict[str, Any]:
    return _row(feature, genomic, test, n, groups, note=note)


def _test_pair(x: NDArray[np.float64], g: pd.Series, test: str, feature: str, genomic: str) -> dict[str, Any]:
    """One test on the complete pairs of ``x`` (feature) and ``g`` (genomic variable)."""
    ok = np.isfinite(x) & g.notna().to_numpy()
    xv = x[ok]
    gv = g[ok]
    n = int(ok.sum())
    if n and np.ptp(xv) == 0:
        return _untested(feature, genomic, test, n, "", "feature constant over the patients of this pair")
    if test == "spearman":
        gn = gv.to_numpy(dtype=float)
        if n < MIN_PAIRS:
            return _untested(feature, genomic, test, n, "", f"fewer than {MIN_PAIRS} complete pairs")
        if np.ptp(gn) == 0:
            return _untested(feature, genomic, test, n, "", "genomic variable constant over these patients")
        res = stats.spearmanr(xv, gn)
        rho = float(res.statistic)
        return _row(
            feature,
            genomic,
            test,
            n,
            "",
            statistic=rho,
            effect=rho,
            effect_measure="spearman_rho",
            p_value=float(res.pvalue),
        )
    levels = _levels(gv)
    samples = [xv[(gv == lev).to_numpy()] for lev in levels]
    sizes = [len(s) for s in samples]
    groups = " / ".join(f"{lev}: {k}" for lev, k in zip(levels, sizes, strict=True))
    if len(levels) < 2 or min(sizes) < MIN_PER_GROUP:
        return _untested(
            feature, genomic, test, n, groups, f"needs at least 2 groups of at least {MIN_PER_GROUP} patients"
        )
    if test == "mannwhitney":
        # 'positive' group = the second (larger) level, e.g. 1 = mutant for a 0/1 coding
        neg, pos = samples
        res = stats.mannwhitneyu(pos, neg, alternative="two-sided")
        auc = float(res.statistic) / (len(pos) * len(neg))
        return _row(
            feature,
            genomic,
            test,
            n,
            groups,
            statistic=float(res.statistic),
            effect=2.0 * auc - 1.0,
            effect_measure=f"rank_biserial ({levels[1]} vs {levels[0]})",
            auc=auc,
            p_value=float(res.pvalue),
        )
    res = stats.kruskal(*samples)
    h = float(res.statistic)
    return _row(
        feature,
        genomic,
        test,
        n,
        groups,
        statistic=h,
        effect=max(0.0, (h - len(levels) + 1) / (n - len(levels))) if n > len(levels) else np.nan,
        effect_measure="eta_squared_h",
        p_value=float(res.pvalue),
    )


def associations(
    features: pd.DataFrame,
    genomics: pd.DataFrame,
    *,
    method: AssociationMethod = "auto",
    fdr: float = 0.05,
) -> pd.DataFrame:
    """Test every (imaging feature, genomic variable) pair, with Benjamini-Hochberg q-values.

    Parameters
    ----------
    features : DataFrame
        Imaging features, index = patient id, numeric columns.
    genomics : DataFrame
        Genomic variables, index = patient id: mutation status (two levels, e.g. 0/1 or
        'wildtype'/'mutant'), subtypes (several levels) or expression levels (numbers). Only
        patients present in both tables are used.
    method : {'auto', 'spearman', 'mannwhitney', 'kruskal'}, default 'auto'
        ``'auto'`` picks per genomic variable: two distinct values (or booleans) ->
        Mann-Whitney U; non-numeric with more than two levels -> Kruskal-Wallis H; numeric
        otherwise -> Spearman. Any other value forces that test for every variable.
    fdr : float, default 0.05
        False discovery rate; a pair is ``significant`` when its q-value is <= ``fdr``.

    Returns
    -------
    DataFrame
        One row per pair, columns :data:`ASSOCIATION_COLUMNS`, sorted by p-value:
        ``n`` complete patients of the pair (missing values dropped pairwise); ``groups`` the
        levels with their sizes; ``statistic`` (U of the second level against the first, H, or
        rho); ``effect`` (Spearman's rho; rank-biserial correlation ``2 AUC - 1`` of the second
        level against the first; eta-squared ``(H - k + 1) / (n - k)`` for Kruskal-Wallis (Tomczak & Tomczak 2014));
        ``auc`` the probability that a patient of the second level has the higher feature value
        (Mann-Whitney only); two-sided ``p_value``; ``q_value`` (Benjamini-Hochberg over all
        tested pairs); ``significant``; ``note``. A pair that cannot be tested (a constant
        feature, a group of fewer than 2 patients, fewer than 4 pairs) has no p-value, is left
        out of the family and says why in ``note``. ``attrs`` holds ``fdr``, ``n_tests`` and
        ``n_significant``.

    Raises
    ------
    LearningError
        If ``method`` or ``fdr`` is invalid, a table is empty or has duplicated ids, a feature
        column is not numeric, the tables share no patient, or a forced test does not fit a
        variable (Spearman on text, Mann-Whitney on more than two levels).

    References
    ----------
    Mann HB, Whitney DR. Ann Math Stat 1947;18:50-60. Kruskal WH, Wallis WA. J Am Stat Assoc
    1952;47:583-621. Benjamini Y, Hochberg Y. J R Stat Soc B 1995;57:289-300.
    Gevaert O et al. Non-small cell lung cancer: identifying prognostic imaging biomarkers by
    leveraging public gene expression microarray data. Radiology 2012;264:387-396.
    """
    if method not in _METHODS:
        raise LearningError(f"associations: unknown method {method!r}; valid values are {list(_METHODS)}.")
    if not 0.0 < fdr < 1.0:
        raise LearningError(f"associations: fdr must lie in (0, 1), e.g. 0.05, got {fdr!r}.")
    for name, table in (("features", features), ("genomics", genomics)):
        if not isinstance(table, pd.DataFrame):
            raise LearningError(
                f"associations: {name} must be a pandas DataFrame, got {type(table).__name__}."
            )
        if table.shape[1] == 0 or table.shape[0] == 0:
            raise LearningError(f"associations: the {name} table is empty (shape {table.shape}).")
        dup = table.index[table.index.duplicated()].unique()
        if len(dup):
            raise LearningError(
                f"associations: the {name} table has duplicated patient ids {list(dup[:5])}; keep one row per patient."
            )
    non_numeric = [c for c in features.columns if not _is_numeric(features[c])]
    if non_numeric:
        raise LearningError(
            f"associations: feature column(s) {non_numeric[:10]} are not numeric; give one number per patient "
            "and feature (move labels to the genomics table)."
        )
    common = features.index.intersection(genomics.index, sort=False)
    if len(common) == 0:
        raise LearningError(
            f"associations: no patient id is in both tables (features e.g. {list(features.index[:3])}, "
            f"genomics e.g. {list(genomics.index[:3])}); index both by the same patient id of the same type."
        )
    feats = features.loc[common]
    gen = genomics.loc[common]
    rows: list[dict[str, Any]] = []
    for gcol in gen.columns:
        g = gen[gcol]
        test = _choose_test(g, method, str(gcol))
        for fcol in feats.columns:
            x = feats[fcol].to_numpy(dtype=float, na_value=np.nan)
            rows.append(_test_pair(x, g, test, str(fcol), str(gcol)))
    table = pd.DataFrame(rows, columns=list(ASSOCIATION_COLUMNS))
    tested = table["p_value"].notna().to_numpy()
    q = np.full(len(table), np.nan)
    if tested.any():
        q[tested] = benjamini_hochberg(table.loc[tested, "p_value"].to_numpy(dtype=float))
    table["q_value"] = q
    table["significant"] = tested & (np.nan_to_num(q, nan=2.0) <= fdr)
    table = table.sort_values(["p_value", "feature", "genomic"], na_position="last", kind="stable")
    table = table.reset_index(drop=True)
    table.attrs["fdr"] = float(fdr)
    table.attrs["n_tests"] = int(tested.sum())
    table.attrs["n_significant"] = int(table["significant"].sum())
    return table


def _order(matrix: NDArray[np.float64], axis: int) -> NDArray[np.intp]:
    """Leaf order of average-linkage clustering (Euclidean) of the rows (0) or columns (1)."""
    from scipy.cluster.hierarchy import leaves_list, linkage

    m = matrix if axis == 0 else matrix.T
    if m.shape[0] < 3:
        return np.arange(m.shape[0])
    return np.asarray(leaves_list(linkage(m, method="average", metric="euclidean")), dtype=np.intp)


def association_heatmap_png(
    table: pd.DataFrame,
    *,
    value: str = "effect",
    cluster: bool = True,
    max_features: int = 60,
    title: str = "",
) -> bytes:
    """Clustered heatmap of an :func:`associations` table, significant cells marked.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`associations`.
    value : {'effect', 'neg_log10_q', 'neg_log10_p'}, default 'effect'
        Cell value: the signed effect (rho, rank-biserial; eta-squared(H) for Kruskal-Wallis),
        or ``-log10`` of the q- or p-value.
    cluster : bool, default True
        Order features (rows) and genomic variables (columns) by average-linkage hierarchical
        clustering of their values (untested cells count as 0).
    max_features : int, default 60
        Show at most this many features, those with the smallest p-value over the genomic
        variables (the title says how many were left out).
    title : str, optional
        Figure title.

    Returns
    -------
    bytes
        PNG image. Cells whose pair is ``significant`` carry a ``*``; untested cells are grey.

    Raises
    ------
    LearningError
        If ``value`` is not valid or the table lacks the columns of :func:`associations`.
    """
    from matplotlib.figure import Figure

    values = ("effect", "neg_log10_q", "neg_log10_p")
    if value not in values:
        raise LearningError(
            f"association_heatmap_png: unknown value {value!r}; valid values are {list(values)}."
        )
    missing = [
        c for c in ("feature", "genomic", "p_value", "q_value", "effect", "significant") if c not in table
    ]
    if missing:
        raise LearningError(
            f"association_heatmap_png: the table lacks column(s) {missing}; pass the output of associations()."
        )
    if max_features < 1:
        raise LearningError(f"association_heatmap_png: max_features must be >= 1, got {max_features}.")
    t = table.copy()
    if value == "effect":
        t["cell"] = t["effect"]
    else:
        col = "q_value" if value == "neg_log10_q" else "p_value"
        t["cell"] = -np.log10(np.clip(t[col].to_numpy(dtype=float), 1e-300, 1.0))
    best = t.groupby("feature")["p_value"].min().sort_values(na_position="last")
    features = list(best.index[:max_features])
    n_left = len(best) - len(features)
    t = t[t["feature"].isin(features)]
    mat = t.pivot_table(index="feature", columns="genomic", values="cell", aggfunc="first", dropna=False)
    mat = mat.reindex(index=features)
    sig = (
        t.pivot_table(index="feature", columns="genomic", values="significant", aggfunc="any", dropna=False)
        .reindex(index=mat.index, columns=mat.columns)
        .fillna(False)
        .astype(bool)
    )
    arr = mat.to_numpy(dtype=float)
    if cluster:
        filled = np.nan_to_num(arr, nan=0.0)
        r, c = _order(filled, 0), _order(filled, 1)
        arr = arr[r][:, c]
        mat = mat.iloc[r, c]
        sig = sig.iloc[r, c]
    n_rows, n_cols = arr.shape
    longest = max((len(str(f)) for f in mat.index), default=10)
    fig = Figure(
        figsize=(max(6.0, 2.5 + 0.9 * n_cols + 0.06 * longest), 1.8 + 0.22 * n_rows), layout="constrained"
    )
    ax = fig.add_subplot()
    if value == "effect":
        lim = float(np.nanmax(np.abs(arr))) if np.isfinite(arr).any() else 1.0
        lim = lim if lim > 0 else 1.0
        cmap, vmin, vmax, label = "RdBu_r", -lim, lim, "effect (rho, rank-biserial, eta²(H))"
    else:
        top = float(np.nanmax(arr)) if np.isfinite(arr).any() else 1.0
        cmap, vmin, vmax, label = "viridis", 0.0, max(top, 1.0), f"-log10 {value.split('_')[-1]}"
    masked = np.ma.masked_invalid(arr)
    import matplotlib

    cm = matplotlib.colormaps[cmap].with_extremes(bad="lightgrey")
    im = ax.imshow(masked, cmap=cm, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(n_cols), [str(c) for c in mat.columns], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n_rows), [str(f) for f in mat.index], fontsize=6)
    for i, j in zip(*np.nonzero(sig.to_numpy()), strict=True):
        dark = np.isfinite(arr[i, j]) and abs((arr[i, j] - vmin) / (vmax - vmin) - 0.5) > 0.35
        ax.text(j, i, "*", ha="center", va="center", fontsize=11, color="white" if dark else "black")
    fig.colorbar(im, ax=ax, label=label, shrink=0.6)
    fdr = table.attrs.get("fdr")
    head = title or "imaging-genomic associations"
    sub = f"* q <= {fdr:g}" if fdr is not None else "* significant"
    if n_left > 0:
        sub += f"; {n_left} feature(s) with larger p not shown"
    ax.set_title(f"{head}\n{sub}", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()
