"""Why a model predicts what it does: SHAP values, permutation importance and feature meanings.

SHAP values (Lundberg & Lee 2017) are computed *through the whole fitted pipeline* (imputation,
transformation, selection, harmonisation and the model), so they are attributed to the original
input columns and keep their IBSI names. They are **interventional** Shapley values of the
model's positive-class output with respect to a background sample: the value of a coalition
``S`` of features is the (weighted) mean model output over the background rows with the
features in ``S`` set to the patient's values. They add up exactly::

    shap.sum(axis=1) + shap.attrs["base_value"] == model output of the patient

where the base value is the mean output over the background. The output is the predicted
probability by default (a contribution of +0.12 raises the probability by 12 percentage
points) or, with ``output="log_odds"``, its logit (exactly the coefficients times the centred
inputs for a logistic model).

Computation (deterministic given ``random_state``):

* the columns the model can depend on are found from the fitted pipeline (selection steps drop
  columns; a dropped column is a null player with SHAP value exactly 0) and this is verified by
  re-predicting with those columns changed; when unsure, every column is kept;
* with at most ``max_exact`` (default 8) such columns, the Shapley values are computed exactly
  by enumerating every coalition;
* with more, by antithetic permutation sampling (``n_permutations`` orderings, each paired with
  its reverse), which keeps the additivity exact and is exact for additive models (e.g. a
  logistic model in log-odds).

Plain-language names come from :func:`describe_feature`, which parses the wide-table column
names of :func:`smartimaging.study.runner.wide_table` back to the feature's IBSI name,
identifier, family, aggregation and image type.

References
----------
Lundberg SM, Lee S-I. A unified approach to interpreting model predictions. NeurIPS 2017.
Strumbelj E, Kononenko I. Explaining prediction models and individual predictions with feature
contributions. Knowl Inf Syst 2014;41:647-665 (permutation sampling).
Breiman L. Random forests. Mach Learn 2001;45:5-32 (permutation importance).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from sklearn.impute import KNNImputer
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

from smartimaging.exceptions import LearningError
from smartimaging.features.meanings import meaning
from smartimaging.features.registry import AGGREGATIONS, FeatureDef

__all__ = [
    "FeatureDescription",
    "ShapOutput",
    "describe_feature",
    "explain_patient",
    "kmeans_background",
    "permutation_importance_table",
    "shap_summary",
    "shap_values",
]

ShapOutput = Literal["probability", "log_odds"]
_OUTPUTS: tuple[str, ...] = get_args(ShapOutput)

_MAX_BACKGROUND = 50  # rows of X used as background when none is given
_MAX_ROWS = 20_000  # rows per model call when evaluating coalitions
_EPS = 1e-12  # probabilities are clipped to [eps, 1 - eps] before the logit


# --------------------------------------------------------------------------- feature names


@dataclass(frozen=True)
class FeatureDescription:
    """What a wide-table column is, in words.

    Attributes
    ----------
    column : str
        The column name as given.
    family : str
        IBSI family (:data:`~smartimaging.features.registry.FAMILIES`), ``"PET"``, or
        ``"clinical"`` for a column that is not an image feature.
    ibsi_name : str
        Feature name as the IBSI reference spells it (``"Joint entropy"``); ``""`` for clinical.
    ibsi_id : str
        Four-character IBSI identifier; ``""`` for non-IBSI features (PET metrics, clinical).
    aggregation : str
        Texture aggregation code (``"3D_avg"``) or ``""``.
    image_type : str
        ``"original"``, a filter's image type (``"log_1.5mm"``), ``"patient"`` for the
        patient-level metrics of the wide table, or ``""`` for clinical.
    meaning : str
        One plain-language sentence (:func:`smartimaging.features.meanings.meaning`); ``""``
        for clinical columns.
    """

    column: str
    family: str
    ibsi_name: str
    ibsi_id: str
    aggregation: str
    image_type: str
    meaning: str

    @property
    def label(self) -> str:
        """Readable label: IBSI name with family, aggregation and image type, or the column."""
        if self.family == "clinical":
            return self.column
        extra = [x for x in (self.aggregation, "" if self.image_type == "original" else self.image_type) if x]
        suffix = f", {', '.join(extra)}" if extra else ""
        return f"{self.ibsi_name} ({self.family}{suffix})"


@functools.cache
def _definitions() -> tuple[tuple[str, FeatureDef], ...]:
    """(wide-name stem, definition) of every feature, longest stem first."""
    from smartimaging.features.extract import feature_definitions
    from smartimaging.features.pet import PATIENT_FEATURES

    defs = {**feature_definitions(), **{f.key: f for f in PATIENT_FEATURES}}
    stems = [(key.replace(".", "_"), d) for key, d in defs.items()]
    return tuple(sorted(stems, key=lambda s: -len(s[0])))


def describe_feature(column: str) -> FeatureDescription:
    """Parse a wide-table column name into its IBSI description and plain-language meaning.

    Column names follow :func:`smartimaging.features.extract.wide_name`
    (``[{image_type}_]{key}[_{aggregation}]``, e.g. ``cm_joint_entr_3D_avg``,
    ``log_1.5mm_stat_mean``) with the ``patient_`` prefix that
    :func:`smartimaging.study.runner.wide_table` gives patient-level metrics.

    Parameters
    ----------
    column : str
        Column name.

    Returns
    -------
    FeatureDescription
        For a column that is not an image feature (a clinical variable): family
        ``"clinical"`` and empty name, identifier and meaning. Never raises.

    Examples
    --------
    >>> d = describe_feature("cm_joint_entr_3D_avg")
    >>> d.ibsi_name, d.ibsi_id, d.family, d.aggregation
    ('Joint entropy', 'TU9B', 'GLCM', '3D_avg')
    >>> describe_feature("age").family
    'clinical'
    """
    name = str(column)
    patient_level = name.startswith("patient_")
    if patient_level:
        name = name[len("patient_") :]
    candidates = [(name, "")] + [
        (name[: -len(a) - 1], a) for a in AGGREGATIONS if a and name.endswith("_" + a)
    ]
    best: tuple[int, str, str, FeatureDef] | None = None
    for stem_of_column, aggregation in candidates:
        for stem, d in _definitions():
            if stem_of_column == stem or stem_of_column.endswith("_" + stem):
                prefix = stem_of_column[: len(stem_of_column) - len(stem)].rstrip("_")
                if best is None or len(stem) > best[0]:
                    best = (len(stem), prefix, aggregation, d)
                break  # stems are sorted longest first: the first match is the longest
    if best is None:
        return FeatureDescription(str(column), "clinical", "", "", "", "", "")
    _, prefix, aggregation, d = best
    image_type = "patient" if patient_level else (prefix or "original")
    return FeatureDescription(
        column=str(column),
        family=d.family,
        ibsi_name=d.name,
        ibsi_id=d.ibsi_id,
        aggregation=aggregation,
        image_type=image_type,
        meaning=meaning(d.key, family=d.family),
    )


def _description_columns(columns: Sequence[str]) -> pd.DataFrame:
    rows = [describe_feature(c) for c in columns]
    return pd.DataFrame(
        {
            "family": [r.family for r in rows],
            "ibsi_name": [r.ibsi_name for r in rows],
            "ibsi_id": [r.ibsi_id for r in rows],
            "meaning": [r.meaning for r in rows],
        }
    )


# --------------------------------------------------------------------------- SHAP


def _positive_index(estimator: Any) -> int:
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        raise LearningError(
            f"shap_values: the estimator {type(estimator).__name__} has no classes_; fit it first."
        )
    if len(classes) != 2:
        raise LearningError(
            f"shap_values: explains binary classifiers; the estimator has {len(classes)} classes {list(classes)}."
        )
    return 1


def _model_output(estimator: Any, frame: pd.DataFrame, output: str) -> np.ndarray:
    data: Any = frame if hasattr(estimator, "feature_names_in_") else frame.to_numpy()
    p = np.asarray(estimator.predict_proba(data), dtype=float)[:, _positive_index(estimator)]
    if output == "log_odds":
        p = np.clip(p, _EPS, 1.0 - _EPS)
        return np.log(p) - np.log1p(-p)
    return p


def _column_arrays(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Columns as float64 (numbers) or object arrays (anything else), aligned for mixing."""
    out: dict[str, np.ndarray] = {}
    for c in frame.columns:
        s = frame[c]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            out[c] = s.to_numpy(dtype=float, na_value=np.nan).copy()
        else:
            values = np.array(s.astype(object).to_numpy(), dtype=object, copy=True)
            values[s.isna().to_numpy()] = np.nan
            out[c] = values
    return out


def _active_columns(estimator: Any, columns: list[str]) -> list[str]:
    """Input columns a fitted pipeline's output can depend on (all when unsure)."""
    if not isinstance(estimator, Pipeline) or len(estimator.steps) < 2:
        return columns
    if any(isinstance(v, KNNImputer) for v in estimator.get_params(deep=True).values()):
        return columns  # a KNN imputer lets any column change the imputed value of another
    try:
        names = [str(n) for n in estimator[:-1].get_feature_names_out()]
    except (AttributeError, ValueError, TypeError):
        return columns
    known = set(columns)
    by_length = sorted(columns, key=len, reverse=True)
    active: set[str] = set()
    for full in names:
        name = full.rsplit("__", 1)[-1]
        if name in known:
            active.add(name)
            continue
        owner = next((c for c in by_length if name.startswith(c + "_")), None)  # one-hot "sex_M"
        if owner is None:
            return columns
        active.add(owner)
    for _, step in estimator.steps:
        batch = getattr(step, "batch_col", None)
        if isinstance(batch, str) and batch in known:
            active.add(batch)
    return [c for c in columns if c in active]


def _game(
    estimator: Any,
    x: dict[str, Any],
    bg: dict[str, np.ndarray],
    weights: np.ndarray,
    columns: list[str],
    active: list[str],
    coalitions: np.ndarray,
    output: str,
) -> np.ndarray:
    """v(S) for each coalition row of ``coalitions`` (k, m): mean output with S set to ``x``."""
    n_b = len(weights)
    values = np.empty(len(coalitions))
    step = max(1, _MAX_ROWS // n_b)
    index = {c: j for j, c in enumerate(active)}
    for start in range(0, len(coalitions), step):
        part = coalitions[start : start + step]
        k = len(part)
        data: dict[str, np.ndarray] = {}
        for c in columns:
            if c in index:
                col = np.tile(bg[c], k)
                col[np.repeat(part[:, index[c]], n_b)] = x[c]
            else:
                col = np.full(k * n_b, x[c], dtype=bg[c].dtype)
            data[c] = col
        f = _model_output(estimator, pd.DataFrame(data, columns=columns), output)
        values[start : start + k] = f.reshape(k, n_b) @ weights
    return values


def _exact(v_of: Any, m: int) -> np.ndarray:
    k = 1 << m
    masks = ((np.arange(k)[:, None] >> np.arange(m)) & 1).astype(bool)
    v = v_of(masks)
    size = masks.sum(axis=1)
    w = np.array([math.factorial(s) * math.factorial(max(m - s - 1, 0)) for s in size], dtype=float)
    w /= math.factorial(m)
    phi = np.empty(m)
    for j in range(m):
        without = np.nonzero(~masks[:, j])[0]
        phi[j] = np.sum(w[without] * (v[without | (1 << j)] - v[without]))
    return phi


def _permutation(v_of: Any, m: int, orders: np.ndarray) -> np.ndarray:
    phi = np.zeros(m)
    steps = np.tril(np.ones((m + 1, m), dtype=bool), k=-1)  # row i: the first i of the ordering
    for order in orders:
        coalitions = np.zeros((m + 1, m), dtype=bool)
        coalitions[:, order] = steps
        v = v_of(coalitions)
        phi[order] += np.diff(v)
    return phi / len(orders)


def shap_values(
    estimator: Any,
    X: pd.DataFrame,
    *,
    background: pd.DataFrame | None = None,
    random_state: int = 0,
    output: ShapOutput = "probability",
    background_weights: Sequence[float] | None = None,
    max_exact: int = 8,
    n_permutations: int = 10,
) -> pd.DataFrame:
    """SHAP values of a fitted binary classifier (or pipeline) for each row of ``X``.

    Parameters
    ----------
    estimator : fitted classifier
        Anything with ``predict_proba`` and two ``classes_`` (typically a
        :func:`~smartimaging.learn.models.make_classifier` pipeline); the positive class is
        ``classes_[1]``.
    X : DataFrame
        Patients to explain, with the columns the estimator was fitted on.
    background : DataFrame, optional
        Reference rows (same columns) that "absent" features are drawn from: a sample or a
        summary (e.g. k-means centres) of the training data. Default: up to 50 rows of ``X``
        drawn with ``random_state``.
    random_state : int, default 0
        Seed of the background sample and of the permutation orderings.
    output : {"probability", "log_odds"}, default "probability"
        Model output explained: the positive-class probability or its logit (probabilities
        clipped to [1e-12, 1 - 1e-12]).
    background_weights : sequence of float, optional
        Weights of the background rows (e.g. k-means cluster sizes); default equal.
    max_exact : int, default 8
        Largest number of columns the model depends on for which the Shapley values are
        computed exactly (2**m coalitions); above it, permutation sampling.
    n_permutations : int, default 10
        Orderings for permutation sampling (rounded up to an even number: each with its reverse).

    Returns
    -------
    DataFrame
        Index ``X.index``, columns ``X.columns``: each feature's contribution to the output
        (probability or log-odds units). ``attrs``: ``base_value`` (mean output over the
        background), ``output``, ``method`` (``"exact"`` or ``"permutation"``) and
        ``n_background``. Columns the model does not use are exactly 0. Row sums plus the
        base value equal the model output.

    Raises
    ------
    LearningError
        If ``X`` is not a non-empty DataFrame, the background lacks columns of ``X`` or is
        empty, the weights do not match, ``output`` is not valid, or the estimator is not a
        fitted binary classifier.

    References
    ----------
    Lundberg & Lee, NeurIPS 2017; Strumbelj & Kononenko, Knowl Inf Syst 2014.
    """
    if output not in _OUTPUTS:
        raise LearningError(f"shap_values: unknown output {output!r}; valid values are {list(_OUTPUTS)}.")
    if not isinstance(X, pd.DataFrame) or X.empty:
        raise LearningError("shap_values: X must be a non-empty pandas DataFrame of patients.")
    columns = [c for c in X.columns]
    rng = np.random.default_rng(random_state)
    if background is None:
        take = np.sort(rng.choice(len(X), size=min(len(X), _MAX_BACKGROUND), replace=False))
        bg_frame = X.iloc[take]
    else:
        missing = [c for c in columns if c not in background.columns]
        if missing or background.empty:
            raise LearningError(
                f"shap_values: the background must hold rows with every column of X; "
                f"{'it is empty' if background.empty else f'missing {missing[:8]}'}."
            )
        bg_frame = background[columns]
    if background_weights is None:
        weights = np.full(len(bg_frame), 1.0 / len(bg_frame))
    else:
        weights = np.asarray(background_weights, dtype=float)
        if weights.shape != (len(bg_frame),) or not np.all(weights >= 0) or weights.sum() <= 0:
            raise LearningError(
                f"shap_values: background_weights must be {len(bg_frame)} non-negative numbers with a "
                f"positive sum, got shape {weights.shape}."
            )
        weights = weights / weights.sum()
    bg = _column_arrays(bg_frame)
    base_value = float(_model_output(estimator, bg_frame, output) @ weights)

    active = _active_columns(estimator, columns)
    if len(active) < len(columns):
        # verify the null players: changing the other columns must not change the output
        donors = X.iloc[np.arange(len(bg_frame)) % len(X)]
        mixed = bg_frame.copy()
        for c in columns:
            if c not in active:
                mixed[c] = donors[c].to_numpy()
        changed = np.abs(_model_output(estimator, mixed, output) - _model_output(estimator, bg_frame, output))
        if changed.max(initial=0.0) > 1e-9:
            active = columns
    m = len(active)
    xs = _column_arrays(X)
    result = np.zeros((len(X), len(columns)))
    positions = [columns.index(c) for c in active]
    n_orders = 2 * max(1, math.ceil(n_permutations / 2))
    for i in range(len(X)):
        x = {c: xs[c][i] for c in columns}

        def v_of(coalitions: np.ndarray, x: dict[str, Any] = x) -> np.ndarray:
            return _game(estimator, x, bg, weights, columns, active, coalitions, output)

        if m == 0:
            continue
        if m <= max_exact:
            phi = _exact(v_of, m)
        else:
            half = np.array([rng.permutation(m) for _ in range(n_orders // 2)])
            phi = _permutation(v_of, m, np.concatenate([half, half[:, ::-1]]))
        result[i, positions] = phi
    out = pd.DataFrame(result, index=X.index, columns=X.columns)
    out.attrs.update(
        base_value=base_value,
        output=output,
        method="exact" if m <= max_exact else "permutation",
        n_background=len(bg_frame),
    )
    return out


def kmeans_background(
    X: pd.DataFrame,
    *,
    max_clusters: int = 10,
    min_cluster_size: int = 5,
    random_state: int = 0,
) -> tuple[pd.DataFrame, np.ndarray]:
    """A small SHAP background summarising a cohort: k-means centres with their sizes as weights.

    Numeric columns are clustered after median imputation and standardisation, with the largest
    number of clusters (at most ``max_clusters``) for which every cluster holds at least
    ``min_cluster_size`` patients. Each centre holds its cluster's mean of every numeric column
    (missing values left out; the cohort median when the whole cluster lacks it) and the most
    frequent value of every other column. A centre is thus a summary of a group of patients,
    never one patient's row (with ``min_cluster_size`` >= 2), and SHAP computed against it costs
    a fraction of a background of raw rows.

    Parameters
    ----------
    X : DataFrame
        The training inputs (the model's columns).
    max_clusters : int, default 10
        Most centres.
    min_cluster_size : int, default 5
        Fewest patients per centre; with fewer than ``2 * min_cluster_size`` patients the
        background is the single cohort centre.
    random_state : int, default 0
        Seed of k-means.

    Returns
    -------
    (DataFrame, ndarray)
        The centres (columns of ``X``; numbers as float, other columns as object) and their
        weights (cluster sizes), for ``shap_values(..., background=, background_weights=)``.

    Raises
    ------
    LearningError
        If ``X`` is empty or ``min_cluster_size`` < 1.
    """
    from sklearn.cluster import KMeans

    if not isinstance(X, pd.DataFrame) or X.empty:
        raise LearningError("kmeans_background: X must be a non-empty DataFrame.")
    if min_cluster_size < 1:
        raise LearningError(f"kmeans_background: min_cluster_size must be >= 1, got {min_cluster_size}.")
    numeric = [
        c for c in X.columns if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])
    ]
    values = X[numeric].to_numpy(dtype=float, na_value=np.nan)
    empty = np.isnan(values).all(axis=0)
    median = np.zeros(len(numeric))
    if (~empty).any():
        median[~empty] = np.nanmedian(values[:, ~empty], axis=0)
    filled = np.where(np.isnan(values), median, values)
    sd = filled.std(axis=0)
    z = (filled - filled.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    labels = np.zeros(len(X), dtype=int)
    for k in range(min(max_clusters, len(X) // min_cluster_size), 1, -1):
        fitted = KMeans(n_clusters=k, n_init=10, random_state=random_state).fit(z)
        if np.bincount(fitted.labels_, minlength=k).min() >= min_cluster_size:
            labels = fitted.labels_
            break
    n_clusters = int(labels.max()) + 1
    data: dict[str, list[Any]] = {c: [] for c in X.columns}
    for cluster in range(n_clusters):
        members = labels == cluster
        for c in X.columns:
            if c in numeric:
                column = values[members, numeric.index(c)]
                present = column[~np.isnan(column)]
                data[c].append(float(present.mean()) if len(present) else float(median[numeric.index(c)]))
            else:
                mode = X.loc[members, c].dropna().mode()
                data[c].append(mode.iloc[0] if len(mode) else np.nan)
    frame = pd.DataFrame(
        {c: pd.Series(v, dtype=float if c in numeric else object) for c, v in data.items()}, columns=X.columns
    )
    return frame, np.bincount(labels, minlength=n_clusters).astype(float)


def shap_summary(values: pd.DataFrame) -> pd.DataFrame:
    """Cohort summary of SHAP values: mean absolute contribution per feature, with descriptions.

    Parameters
    ----------
    values : DataFrame
        Output of :func:`shap_values`.

    Returns
    -------
    DataFrame
        Columns ``feature, mean_abs_shap, mean_shap, family, ibsi_name, ibsi_id, meaning``,
        largest ``mean_abs_shap`` first.
    """
    table = pd.DataFrame(
        {
            "feature": [str(c) for c in values.columns],
            "mean_abs_shap": values.abs().mean(axis=0).to_numpy(dtype=float),
            "mean_shap": values.mean(axis=0).to_numpy(dtype=float),
        }
    )
    table = pd.concat([table, _description_columns(table["feature"].tolist())], axis=1)
    return table.sort_values("mean_abs_shap", ascending=False, kind="mergesort").reset_index(drop=True)


def explain_patient(
    estimator: Any,
    row: pd.DataFrame,
    *,
    background: pd.DataFrame | None,
    top: int = 5,
    random_state: int = 0,
    output: ShapOutput = "probability",
    background_weights: Sequence[float] | None = None,
) -> list[tuple[str, float]]:
    """The ``top`` largest SHAP contributions of one patient, largest magnitude first.

    Parameters
    ----------
    estimator : fitted classifier
        See :func:`shap_values`.
    row : DataFrame
        One patient (one row); a Series is taken as one row.
    background : DataFrame or None
        See :func:`shap_values`.
    top : int, default 5
        How many contributions to return; features with a contribution of exactly 0 (not
        used by the model) are left out.
    random_state, output, background_weights
        See :func:`shap_values`.

    Returns
    -------
    list of (str, float)
        (column, contribution), largest absolute contribution first (ties in column order).

    Raises
    ------
    LearningError
        If ``row`` holds more than one patient, or as :func:`shap_values`.
    """
    frame = row.to_frame().T if isinstance(row, pd.Series) else row
    if len(frame) != 1:
        raise LearningError(f"explain_patient: row must hold one patient, got {len(frame)} rows.")
    values = shap_values(
        estimator,
        frame,
        background=background,
        random_state=random_state,
        output=output,
        background_weights=background_weights,
    ).iloc[0]
    v = values.to_numpy(dtype=float)
    order = np.argsort(-np.abs(v), kind="stable")
    return [(str(values.index[i]), float(v[i])) for i in order if v[i] != 0.0][: max(int(top), 0)]


# --------------------------------------------------------------------------- permutation importance


def permutation_importance_table(
    estimator: Any,
    X: pd.DataFrame,
    y: Any,
    *,
    scoring: str = "roc_auc",
    n_repeats: int = 20,
    random_state: int = 0,
) -> pd.DataFrame:
    """Permutation importance of each input column, with IBSI names and meanings.

    The drop of the score when one column's values are shuffled among the patients, averaged
    over ``n_repeats`` shuffles (:func:`sklearn.inspection.permutation_importance`). Use it on
    held-out data to learn what the model relies on for its performance; correlated features
    share (and so each shows less of) their importance.

    Parameters
    ----------
    estimator : fitted estimator
        Typically a :func:`~smartimaging.learn.models.make_classifier` pipeline.
    X : DataFrame
        Patients (held-out data preferably).
    y : array-like
        Outcomes of ``X``.
    scoring : str, default "roc_auc"
        A scikit-learn scorer name.
    n_repeats : int, default 20
        Shuffles per column.
    random_state : int, default 0
        Seed of the shuffles.

    Returns
    -------
    DataFrame
        Columns ``feature, importance_mean, importance_sd, family, ibsi_name, ibsi_id,
        meaning``, largest mean importance first (ties in column order); ``importance_sd`` is
        the standard deviation over the repeats.

    Raises
    ------
    LearningError
        If ``X`` is not a DataFrame or ``n_repeats`` < 1.
    """
    if not isinstance(X, pd.DataFrame):
        raise LearningError(
            f"permutation_importance_table: X must be a pandas DataFrame, got {type(X).__name__}."
        )
    if n_repeats < 1:
        raise LearningError(f"permutation_importance_table: n_repeats must be >= 1, got {n_repeats}.")
    result = permutation_importance(
        estimator, X, y, scoring=scoring, n_repeats=n_repeats, random_state=random_state
    )
    table = pd.DataFrame(
        {
            "feature": [str(c) for c in X.columns],
            "importance_mean": np.asarray(result["importances_mean"], dtype=float),
            "importance_sd": np.asarray(result["importances_std"], dtype=float),
        }
    )
    table = pd.concat([table, _description_columns(table["feature"].tolist())], axis=1)
    return table.sort_values("importance_mean", ascending=False, kind="mergesort").reset_index(drop=True)
