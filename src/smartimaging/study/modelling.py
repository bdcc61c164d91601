"""The model stage of a study: every feature set x model kind on identical folds, compared honestly.

:func:`fit_cohort_models` is driven by a :class:`~smartimaging.study.config.ModelConfig`. For a
binary target it validates every (feature set, classifier) pair with the configured scheme
(repeated stratified cross-validation, nested cross-validation or a held-out split, plus an
optional external cohort); harmonisation (ComBat), selection, imputation, scaling, tuning and the
operating threshold are all fitted inside the training data of each split. It then compares the
models (AUC with DeLong and bootstrap intervals, DeLong tests against the best and the
clinical-only model, threshold metrics at the training-fixed threshold, Brier score, calibration,
Hosmer-Lemeshow, decision curves), checks the chance level by label permutation, refits the final
model on every patient to explain it (SHAP, permutation importance) and draws a nomogram of the
best linear model when it uses few variables. With a ``survival`` section it does the same for
time-to-event models (Harrell's and Uno's C, time-dependent AUC, integrated Brier score,
Kaplan-Meier curves of training-fixed risk groups with the log-rank test).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from smartimaging.exceptions import ConfigError, LearningError
from smartimaging.learn.clinical_metrics import calibration_curve, decision_curve
from smartimaging.learn.combat import ComBat, batches_from_qc
from smartimaging.learn.metrics import bootstrap_ci, roc_auc, roc_curve_points
from smartimaging.learn.models import (
    build_feature_sets,
    default_param_grid,
    make_classifier,
    make_preprocessor,
)
from smartimaging.learn.selection import (
    BorutaSelector,
    CorrelationClusterSelector,
    L1Selector,
    MRMRSelector,
    NearZeroVariance,
    StableFeatureFilter,
    UnivariateFDRSelector,
)
from smartimaging.learn.survival import (
    SurvivalCVResult,
    cross_validate_survival,
    kaplan_meier_groups,
    make_survival_model,
)
from smartimaging.learn.validate import (
    CVResult,
    ValidationResult,
    compare_validated,
    external_validate,
    holdout_validate,
    nested_cross_validate,
    permutation_check,
    repeat_calibration,
)
from smartimaging.study.config import (
    BorutaStep,
    CorrelationStep,
    FDRStep,
    ICCStep,
    L1Step,
    ModelConfig,
    MRMRStep,
    NearZeroVarianceStep,
)

__all__ = [
    "BATCH_COLUMN",
    "CohortModels",
    "FinalModel",
    "ModelResult",
    "SurvivalModelResult",
    "configured_pipeline",
    "fit_cohort_models",
    "image_modality",
    "read_feature_table",
    "write_model_tables",
]

log = logging.getLogger(__name__)

#: Column added to the feature sets to carry the harmonisation batch into the pipelines.
BATCH_COLUMN = "__batch__"
_LINEAR = ("logistic", "logistic_l1", "elastic_net")
_SUPERVISED_STEPS = ("fdr", "mrmr", "l1", "boruta")
#: Threshold and calibration columns shared by the comparison and the external-validation tables.
_THRESHOLD_COLUMNS = (
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "brier",
    "calibration_slope",
    "calibration_intercept",
)


# --------------------------------------------------------------------------------------------- results


@dataclass
class ModelResult:
    """One (feature set, classifier) pair: its out-of-sample predictions and statistics.

    Attributes
    ----------
    name : str
        Model label: the feature set for the primary kind (``'radiomics'``), else
        ``'<set> [<kind>]'``.
    feature_set, kind : str
        What was fitted.
    validation : ValidationResult
        Out-of-sample predictions with the training-fixed threshold of each fit.
    cv : CVResult
        The same predictions in the form of :func:`~smartimaging.learn.validate.cross_validate_binary`
        (ROC points, per-repeat AUCs), used by the report and the model bundle.
    summary : dict
        :meth:`ValidationResult.summary` (AUC, intervals, threshold metrics, calibration).
    calibration : DataFrame
        Calibration curve of the repeat-averaged out-of-sample probabilities.
    decision : DataFrame
        Decision curve (net benefit of the model, treat-all, treat-none).
    n_features : int
        Candidate input columns (before selection).
    external : ValidationResult, optional
        Predictions on the external cohort (model fitted on the whole development cohort).
    external_summary : dict, optional
        Statistics of ``external``.
    """

    name: str
    feature_set: str
    kind: str
    validation: ValidationResult
    cv: CVResult
    summary: dict[str, Any]
    calibration: pd.DataFrame
    decision: pd.DataFrame
    n_features: int
    external: ValidationResult | None = None
    external_summary: dict[str, Any] | None = None


@dataclass
class SurvivalModelResult:
    """One (feature set, survival model) pair, cross-validated.

    Attributes
    ----------
    name, feature_set, kind : str
        Label (``'<set> [<kind>]'``), feature set and survival model.
    cv : SurvivalCVResult
        Out-of-fold risks, per-fold metrics and the risk groups.
    summary : dict
        Pooled out-of-fold Harrell and Uno C with bootstrap 95 % intervals, fold means of the
        time-dependent AUC and integrated Brier score, the log-rank test of the risk groups.
    km : DataFrame
        Kaplan-Meier curves of the out-of-fold risk groups (first repeat).
    td_auc : DataFrame
        Mean time-dependent AUC per evaluation time (``time, auc, n_folds``).
    n_features : int
        Candidate input columns.
    """

    name: str
    feature_set: str
    kind: str
    cv: SurvivalCVResult
    summary: dict[str, Any]
    km: pd.DataFrame
    td_auc: pd.DataFrame
    n_features: int


@dataclass
class FinalModel:
    """A model refitted on every development patient, with its explanation.

    Attributes
    ----------
    name : str
        The model's label in the comparison table.
    pipeline : Pipeline
        Fitted on all development patients (tuned by inner CV for nested validation).
    X : DataFrame
        Its training predictors.
    shap : DataFrame, optional
        SHAP values (patients x input columns) from :mod:`smartimaging.learn.explain`.
    importance : DataFrame, optional
        Permutation importance with IBSI names and meanings (apparent: on the training data).
    nomogram : object, optional
        :class:`~smartimaging.learn.nomogram.Nomogram` of the best linear model when it uses at
        most ``nomogram_max_features`` variables; ``nomogram_model`` names that model.
    nomogram_png : bytes, optional
        The nomogram drawn.
    notes : list of str
        Why a part is missing.
    """

    name: str
    pipeline: Any
    X: pd.DataFrame
    shap: pd.DataFrame | None = None
    importance: pd.DataFrame | None = None
    nomogram: Any = None
    nomogram_model: str | None = None
    nomogram_png: bytes | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class CohortModels:
    """Everything the model stage produced (see :func:`fit_cohort_models`).

    ``results`` holds the :class:`CVResult` of the primary classifier on each feature set
    (named by the set, as the report's ROC figure and the model bundle expect); ``models`` holds
    every (set, kind) pair; ``table`` is the comparison table written to ``models.csv``.
    """

    results: list[CVResult]
    table: pd.DataFrame
    permutation_aucs: list[float] = field(default_factory=list)
    target: str = ""
    n_patients: int = 0
    models: dict[str, ModelResult] = field(default_factory=dict)
    delong: pd.DataFrame = field(default_factory=pd.DataFrame)
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    external_table: pd.DataFrame | None = None
    survival: dict[str, SurvivalModelResult] = field(default_factory=dict)
    survival_table: pd.DataFrame | None = None
    survival_predictions: pd.DataFrame | None = None
    final: FinalModel | None = None
    best: str | None = None
    validation: str = ""
    harmonisation: str | None = None
    selection: list[str] = field(default_factory=list)
    feature_sets: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    time_unit: str = ""


# --------------------------------------------------------------------------------------------- inputs


def image_modality(column: str) -> str:
    """``'CT'`` for a CT feature column (prefix ``CT_`` or ``CT.``), else ``'PT'`` (PET).

    Columns of a PET-only run carry no modality prefix; :func:`read_feature_table` prefixes
    every column with its modality when a tidy table holds several.
    """
    return "CT" if column.startswith(("CT_", "CT.")) else "PT"


def read_feature_table(path: str | Path, *, id_column: str | None = None) -> pd.DataFrame:
    """A feature table (CSV or Parquet) as one row per patient, index = patient ID (string).

    Accepts a wide table (one row per patient, one column per feature) or the tidy table of
    ``smartimaging extract`` / a study run (columns ``case, roi, modality, ..., key, value``),
    which is pivoted: one ROI per patient (the first lesion ROI; patient-level rows become
    ``patient_`` columns), columns prefixed by modality when there are several.

    Parameters
    ----------
    path : path-like
        ``.csv`` or ``.parquet``.
    id_column : str, optional
        Column of a wide table holding the patient ID; default ``patient_id``, ``case`` or the
        first column.

    Returns
    -------
    DataFrame
        Index ``patient_id`` (strings), numeric feature columns.

    Raises
    ------
    ConfigError
        If the file is missing or unreadable, the ID column is absent or IDs repeat.
    """
    from smartimaging.features.extract import to_wide

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"feature table not found: {p}")
    try:
        table = pd.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq") else pd.read_csv(p)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the feature table {p}: {exc}") from exc
    tidy = {"case", "roi", "modality", "key", "value", "feature"} <= set(table.columns)
    if tidy:
        include_modality = table["modality"].nunique() > 1
        lesion = table[table["roi"] != "patient"]
        first_roi = lesion.groupby("case", sort=False)["roi"].first()
        lesion = lesion[lesion["roi"].to_numpy() == first_roi.reindex(lesion["case"]).to_numpy()]
        parts = []
        if not lesion.empty:
            parts.append(
                to_wide(lesion, include_modality=include_modality).set_index("case").drop(columns="roi")
            )
        whole = table[table["roi"] == "patient"]
        if not whole.empty:
            w = to_wide(whole, include_modality=include_modality).set_index("case").drop(columns="roi")
            parts.append(w.add_prefix("patient_"))
        wide = pd.concat(parts, axis=1)
        wide.index = wide.index.astype(str)
        wide.index.name = "patient_id"
        return wide
    col = id_column
    if col is None:
        col = next(
            (c for c in ("patient_id", "case", "PatientID") if c in table.columns), str(table.columns[0])
        )
    if col not in table.columns:
        raise ConfigError(
            f"--id-column {col!r} is not a column of {p}; columns are {list(table.columns)[:20]}"
        )
    ids = table[col].astype(str)
    if ids.duplicated().any():
        raise ConfigError(
            f"{p}: patient IDs repeat in column {col!r} (e.g. {sorted(ids[ids.duplicated()].unique())[:5]}); "
            "give one row per patient, or the tidy table of smartimaging extract"
        )
    wide = table.drop(columns=[col]).set_index(pd.Index(ids, name="patient_id"))
    return wide


# --------------------------------------------------------------------------------------------- helpers


def _binary_target(clinical: pd.DataFrame, target: str) -> pd.Series:
    if target not in clinical.columns:
        raise LearningError(
            f"model.target {target!r} is not a column of the clinical table: {list(clinical.columns)}"
        )
    y = pd.to_numeric(clinical[target], errors="coerce").dropna()
    values = sorted(y.unique())
    if values != [0, 1]:
        raise LearningError(f"model.target {target!r} must be binary 0/1; found values {values[:10]}")
    return y.astype(int)


def _selectors(config: ModelConfig, seed: int, *, supervised: bool) -> list[tuple[str, Any]]:
    """The configured selection steps as (name, unfitted selector); ICC lists are applied up front."""
    out: list[tuple[str, Any]] = []
    for k, step in enumerate(config.selection):
        name = f"{step.name}_{k}"
        if isinstance(step, NearZeroVarianceStep):
            out.append(
                (name, NearZeroVariance(freq_ratio=step.freq_ratio, unique_percent=step.unique_percent))
            )
        elif isinstance(step, CorrelationStep):
            out.append((name, CorrelationClusterSelector(threshold=step.threshold, linkage=step.linkage)))
        elif not supervised:
            continue
        elif isinstance(step, FDRStep):
            out.append(
                (
                    name,
                    UnivariateFDRSelector(test=step.test, alpha=step.alpha, min_features=step.min_features),
                )
            )
        elif isinstance(step, MRMRStep):
            out.append((name, MRMRSelector(n_features=step.k, scheme=step.scheme, random_state=seed)))
        elif isinstance(step, L1Step):
            out.append((name, L1Selector(l1_ratio=step.l1_ratio, Cs=step.Cs, random_state=seed)))
        elif isinstance(step, BorutaStep):
            out.append(
                (
                    name,
                    BorutaSelector(
                        n_estimators=step.n_estimators,
                        max_iter=step.max_iter,
                        alpha=step.alpha,
                        random_state=seed,
                    ),
                )
            )
    return out


class _WithoutOutcome(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """An outcome-free selector inside a survival pipeline: fitted on X only (the survival
    target is not a 0/1 label the selector could read)."""

    def __init__(self, selector: Any = None) -> None:
        self.selector = selector

    def fit(self, X: Any, y: Any = None) -> _WithoutOutcome:
        self.selector_ = clone(self.selector).fit(X)
        return self

    def transform(self, X: Any) -> Any:
        return self.selector_.transform(X)

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        return self.selector_.get_feature_names_out(input_features)


def _describe_selection(config: ModelConfig) -> list[str]:
    out = []
    for step in config.selection:
        params = {k: v for k, v in step.model_dump(mode="json").items() if k != "name"}
        text = ", ".join(f"{k}={v}" for k, v in params.items())
        out.append(f"{step.name}({text})")
    return out


def _batches(config: ModelConfig, clinical: pd.DataFrame, qc: pd.DataFrame | None) -> pd.Series:
    harm = config.harmonise
    assert harm is not None
    keys = harm.qc_keys
    if keys is None:
        if harm.batch not in clinical.columns:
            raise LearningError(
                f"model.harmonise.batch {harm.batch!r} is not a column of the clinical table: {list(clinical.columns)}"
            )
        return clinical[harm.batch].astype("string").astype(object).rename(BATCH_COLUMN)
    if qc is None or qc.empty:
        raise LearningError(
            f"model.harmonise.batch {harm.batch!r} needs the run's DICOM QC table, which this run has not "
            "(NIfTI input, or a feature table given directly); name a clinical column instead"
        )
    batch = batches_from_qc(qc, keys=keys, modality=harm.modality, min_size=harm.min_batch_size)
    batch.index = batch.index.astype(str)
    return batch.rename(BATCH_COLUMN)


def _combat(config: ModelConfig, passthrough: Sequence[str]) -> ComBat:
    harm = config.harmonise
    assert harm is not None
    return ComBat(
        batch_col=BATCH_COLUMN,
        categorical_covariates=tuple(harm.categorical_covariates),
        continuous_covariates=tuple(harm.continuous_covariates),
        passthrough=tuple(passthrough),
        eb=harm.eb,
        parametric=harm.parametric,
        mean_only=harm.mean_only,
        unseen="estimate",
        constant="passthrough",
    )


def _as_cv_result(
    vr: ValidationResult, summary: Mapping[str, Any], *, n_splits: int, n_boot: int
) -> CVResult:
    _, y, scores, _ = vr.matrices()
    r = scores.shape[1]
    preds = vr.predictions
    fold_aucs = []
    for _, part in preds.groupby(["repeat", "fold"], sort=True):
        if part["y_true"].nunique() == 2:
            fold_aucs.append(roc_auc(part["y_true"].to_numpy(int), part["y_score"].to_numpy(float)))
    repeat_aucs = np.array([roc_auc(y, scores[:, k]) for k in range(r)])
    lo, hi = summary["auc_ci_bootstrap"]
    return CVResult(
        name=vr.name,
        auc=float(summary["auc"]),
        auc_ci=(float(lo), float(hi)),
        fold_aucs=np.asarray(fold_aucs, dtype=float),
        oof=preds[["patient_id", "repeat", "fold", "y_true", "y_score"]].reset_index(drop=True),
        roc=roc_curve_points(y, scores.mean(axis=1)),
        n_patients=int(y.size),
        n_events=int(y.sum()),
        seconds=float(vr.seconds),
        n_splits=n_splits,
        n_repeats=r,
        repeat_aucs=repeat_aucs,
        ci_method=f"95 % percentile bootstrap over patients ({n_boot} stratified resamples) of the mean over "
        "repeats of the pooled out-of-sample AUC; out-of-sample scores held fixed",
    )


def _summary(vr: ValidationResult, *, n_boot: int, seed: int) -> dict[str, Any]:
    """The comparison statistics of a model's out-of-sample predictions.

    Same definitions as :meth:`ValidationResult.summary` (every statistic on the pooled
    predictions of each repeat, averaged over repeats; the threshold of each patient is the one
    fixed on the training data of the fit that scored them), without bootstrap intervals of the
    threshold metrics, which would cost thousands of re-evaluations per model.
    """
    from smartimaging.learn.clinical_metrics import brier_score, threshold_metrics
    from smartimaging.learn.delong import delong_auc
    from smartimaging.learn.metrics import bootstrap_auc_ci

    _, y, scores, thresholds = vr.matrices()
    r = scores.shape[1]
    out: dict[str, Any] = {
        "name": vr.name,
        "scheme": vr.scheme,
        "n_patients": int(y.size),
        "n_events": int(y.sum()),
        "n_repeats": int(r),
        "auc": float(np.mean([roc_auc(y, scores[:, k]) for k in range(r)])),
        "auc_ci_bootstrap": bootstrap_auc_ci(y, scores, n_boot=n_boot, alpha=0.05, random_state=seed),
    }
    dl = delong_auc(y, scores.mean(axis=1))
    out["auc_ci_delong"] = dl.ci
    out["threshold"] = float(np.mean(thresholds))
    rates: dict[str, list[float]] = {"sensitivity": [], "specificity": [], "ppv": [], "npv": []}
    for k in range(r):
        tm = threshold_metrics(y, scores[:, k], threshold=thresholds[:, k])
        for attr, values in rates.items():
            v = getattr(tm, attr)
            if v is not None:
                values.append(v)
    for attr, values in rates.items():
        out[attr] = float(np.mean(values)) if len(values) == r else None
    out["brier"] = float(np.mean([brier_score(y, scores[:, k]) for k in range(r)]))
    out.update(repeat_calibration(y, scores))
    return out


def _curves(vr: ValidationResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    _, y, scores, _ = vr.matrices()
    p = scores.mean(axis=1)
    n_bins = int(min(10, max(3, y.size // 10)))
    return calibration_curve(y, p, n_bins=n_bins), decision_curve(y, p)


def _model_name(feature_set: str, kind: str, primary: str) -> str:
    return feature_set if kind == primary else f"{feature_set} [{kind}]"


def _score_fn(model: Any) -> Any:
    if hasattr(model, "decision_function"):
        return lambda X: np.asarray(model.decision_function(X), dtype=float).ravel()
    return lambda X: np.asarray(model.predict(X), dtype=float).ravel()


def _effective_columns(model: Any, X: pd.DataFrame, *, seed: int) -> list[str]:
    """Input columns whose shuffling changes the model's linear predictor (the others are unused)."""
    score = _score_fn(model)
    base = score(X)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    used = []
    for c in X.columns:
        if c == BATCH_COLUMN:
            continue
        shuffled = X.copy()
        shuffled[c] = X[c].to_numpy()[order]
        if not np.allclose(score(shuffled), base, rtol=0.0, atol=1e-10):
            used.append(str(c))
    return used


class _OnColumns:
    """A fitted model as a function of a subset of its input columns, the others held fixed.

    Exact for a model that does not use the other columns (checked by :func:`_effective_columns`),
    so that a nomogram can be drawn over the used variables only.
    """

    def __init__(self, model: Any, reference: pd.DataFrame, columns: Sequence[str]) -> None:
        self.model = model
        self.reference = reference.iloc[[0]]
        self.columns = list(columns)

    def _full(self, X: pd.DataFrame) -> pd.DataFrame:
        full = pd.concat([self.reference] * len(X), ignore_index=True)
        full.index = X.index
        for c in self.columns:
            full[c] = X[c].to_numpy()
        return full

    def decision_function(self, X: pd.DataFrame) -> Any:
        return self.model.decision_function(self._full(X))

    def predict(self, X: pd.DataFrame) -> Any:
        return self.model.predict(self._full(X))

    def predict_survival_function(self, X: pd.DataFrame, **kwargs: Any) -> Any:
        return self.model.predict_survival_function(self._full(X), **kwargs)


def _fig_png(fig: Any) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- stage


@dataclass
class _Design:
    """The aligned inputs of the model stage."""

    sets: dict[str, pd.DataFrame]
    clinical: pd.DataFrame
    clinical_columns: list[str]
    covariates: list[str]
    harmonised: bool
    notes: list[str]


def _image_columns(config: ModelConfig, image: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    for step in config.selection:
        if isinstance(step, ICCStep):
            filt = StableFeatureFilter(stable=str(step.file), min_icc=step.min_icc).fit(image)
            kept = [c for c, s in zip(image.columns, filt.support_, strict=True) if s]
            notes.append(
                f"ICC filter ({step.file.name}): {len(kept)} of {image.shape[1]} image features are stable and kept "
                "(an outcome-free filter, applied before the cross-validation)."
            )
            image = image[kept]
    return image


def _design(
    wide: pd.DataFrame,
    clinical: pd.DataFrame,
    config: ModelConfig,
    *,
    target: str,
    qc: pd.DataFrame | None,
    notes: list[str],
) -> _Design:
    image = wide.select_dtypes(include=[np.number])
    image = image[[c for c in image.columns if c not in clinical.columns or c not in config.clinical_columns]]
    image = _image_columns(config, image, notes)
    clinical = clinical.copy()
    harmonised = False
    covariates: list[str] = []
    if config.harmonise is not None:
        harmonised = True
        batch = _batches(config, clinical, qc)
        clinical[BATCH_COLUMN] = batch.reindex(clinical.index)
        missing_cov = [
            c
            for c in [*config.harmonise.categorical_covariates, *config.harmonise.continuous_covariates]
            if c not in clinical.columns
        ]
        if missing_cov:
            raise LearningError(
                f"model.harmonise covariate(s) {missing_cov} are not columns of the clinical table: "
                f"{list(clinical.columns)}"
            )
        covariates = [
            c
            for c in [*config.harmonise.categorical_covariates, *config.harmonise.continuous_covariates]
            if c not in config.clinical_columns
        ]
        incomplete = list(image.columns[image.isna().any()])
        if incomplete:
            image = image.drop(columns=incomplete)
            notes.append(
                f"ComBat needs complete features: {len(incomplete)} image feature(s) with missing values were "
                f"dropped before harmonisation (e.g. {incomplete[:3]})."
            )
    base = build_feature_sets(
        image,
        clinical,
        clinical_columns=config.clinical_columns,
        target=target,
        batch_column=BATCH_COLUMN if harmonised else None,
    )
    radiomics = base["radiomics"]
    image_cols = [c for c in radiomics.columns if c != BATCH_COLUMN]
    pet = [c for c in image_cols if image_modality(c) == "PT"]
    ct = [c for c in image_cols if image_modality(c) == "CT"]
    clin = list(config.clinical_columns)
    columns: dict[str, list[str]] = {
        "clinical": clin,
        "radiomics": image_cols,
        "pet": pet,
        "ct": ct,
        "pet_ct": pet + ct if pet and ct else [],
        "combined": clin + image_cols if clin and image_cols else [],
    }
    frame = base["combined"]
    sets: dict[str, pd.DataFrame] = {}
    for name in config.feature_sets:
        cols = columns[name]
        if not cols:
            why = {
                "clinical": "no clinical_columns given",
                "combined": "needs clinical_columns and image features",
                "ct": "no CT feature columns (prefix CT_)",
                "pet": "no PET feature columns",
                "pet_ct": "needs both PET and CT feature columns",
                "radiomics": "no image feature column",
            }[name]
            notes.append(f"Feature set '{name}' skipped: {why}.")
            continue
        X = frame[cols].copy()
        if harmonised and name != "clinical":
            X[BATCH_COLUMN] = frame[BATCH_COLUMN]
            for c in covariates:
                X[c] = clinical.loc[X.index, c]
        sets[name] = X
    if not sets:
        raise LearningError(
            f"none of the feature sets {config.feature_sets} can be built from these tables; see the notes: "
            + " ".join(notes)
        )
    return _Design(sets, clinical, clin, covariates, harmonised, notes)


def _pipeline(config: ModelConfig, design: _Design, feature_set: str, kind: str, seed: int) -> Pipeline:
    X = design.sets[feature_set]
    clin_in = [c for c in design.clinical_columns if c in X.columns]
    numeric_keep = [c for c in [*clin_in, *design.covariates] if c in X.columns]
    harmonise = None
    if design.harmonised and feature_set != "clinical":
        harmonise = _combat(config, passthrough=clin_in)
    selection = _selectors(config, seed, supervised=True) if feature_set != "clinical" else []
    return make_classifier(
        kind,  # type: ignore[arg-type]
        random_state=seed,
        impute=config.impute,
        transform=config.transform,
        selection=selection,
        keep=numeric_keep,
        harmonise=harmonise,
    )


def _validate_one(
    config: ModelConfig,
    pipe: Pipeline,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    kind: str,
    seed: int,
    name: str,
) -> ValidationResult:
    grid: dict[str, list[Any]] = default_param_grid(kind) if config.validation == "nested_cv" else {}  # type: ignore[arg-type]
    common: dict[str, Any] = {
        "estimator": pipe,
        "param_grid": grid,
        "inner_splits": config.inner_splits,
        "threshold_method": config.threshold,
        "target_sensitivity": config.target_sensitivity,
        "random_state": seed,
        "name": name,
    }
    if config.validation == "holdout":
        return holdout_validate(X, y, test_size=config.test_size, **common)
    return nested_cross_validate(X, y, n_splits=config.n_splits, n_repeats=config.n_repeats, **common)


def _fit_one(
    config: ModelConfig,
    design: _Design,
    set_name: str,
    kind: str,
    y: pd.Series,
    X_ext: pd.DataFrame | None,
    y_ext: pd.Series | None,
    *,
    seed: int,
) -> ModelResult | tuple[str, str]:
    """Validate one (feature set, classifier) pair; (name, reason) when it fails."""
    name = _model_name(set_name, kind, config.kind)
    X = design.sets[set_name]
    pipe = _pipeline(config, design, set_name, kind, seed)
    try:
        vr = _validate_one(config, pipe, X, y, kind=kind, seed=seed, name=name)
        summ = _summary(vr, n_boot=config.n_boot, seed=seed)
    except LearningError as exc:
        return name, str(exc)
    cal, dca = _curves(vr)
    n_feat = int(X.drop(columns=[BATCH_COLUMN], errors="ignore").shape[1])
    n_splits = config.n_splits if config.validation != "holdout" else 1
    m = ModelResult(
        name,
        set_name,
        kind,
        vr,
        _as_cv_result(vr, summ, n_splits=n_splits, n_boot=config.n_boot),
        summ,
        cal,
        dca,
        n_feat,
    )
    if X_ext is not None and y_ext is not None:
        try:
            m.external = external_validate(
                X,
                y,
                X_ext,
                y_ext,
                estimator=pipe,
                param_grid=default_param_grid(kind) if config.validation == "nested_cv" else {},  # type: ignore[arg-type]
                inner_splits=config.inner_splits,
                threshold_method=config.threshold,
                target_sensitivity=config.target_sensitivity,
                random_state=seed,
                name=name,
            )
            m.external_summary = _summary(m.external, n_boot=config.n_boot, seed=seed)
        except LearningError as exc:
            log.warning("external validation of %s failed: %s", name, exc)
            m.external = None
    return m


def _external_tables(
    config: ModelConfig, clinical: pd.DataFrame, wide: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Development and external (wide, clinical) tables; returns (wide_all, clinical_all, external_ids)."""
    ext = config.external
    assert ext is not None
    if ext.site_column is not None:
        if ext.site_column not in clinical.columns:
            raise LearningError(
                f"model.external.site_column {ext.site_column!r} is not a column of the clinical table: "
                f"{list(clinical.columns)}"
            )
        site = clinical[ext.site_column].astype(str)
        ids = list(site.index[site == str(ext.site_value)])
        if not ids:
            raise LearningError(
                f"model.external.site_value {ext.site_value!r} matches no patient; values of "
                f"{ext.site_column!r} are {sorted(site.unique())[:20]}"
            )
        return wide, clinical, [str(i) for i in ids]
    assert ext.features is not None and ext.clinical is not None
    ext_wide = read_feature_table(ext.features)
    try:
        ext_clin = pd.read_csv(ext.clinical)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read model.external.clinical {ext.clinical}: {exc}") from exc
    idc = clinical.index.name if clinical.index.name in ext_clin.columns else ext_clin.columns[0]
    ext_clin[idc] = ext_clin[idc].astype(str)
    ext_clin = ext_clin.set_index(idc)
    shared = ext_clin.index.intersection(clinical.index)
    if len(shared):
        raise LearningError(
            f"model.external: {len(shared)} patient ID(s) are in both the development and the external "
            f"clinical table (e.g. {list(shared[:3])}); validation patients must not be used for training"
        )
    missing = [c for c in clinical.columns if c not in ext_clin.columns and c != BATCH_COLUMN]
    needed = [
        c for c in [*config.clinical_columns, *([config.target] if config.target else [])] if c in missing
    ]
    if needed:
        raise LearningError(f"model.external.clinical {ext.clinical} lacks column(s) {needed}")
    all_wide = pd.concat([wide, ext_wide.reindex(columns=wide.columns)], axis=0)
    all_clin = pd.concat([clinical, ext_clin.reindex(columns=clinical.columns)], axis=0)
    return all_wide, all_clin, [str(i) for i in ext_clin.index]


def _delong_lookup(delong: pd.DataFrame, a: str, b: str) -> float | None:
    if delong.empty or a == b:
        return None
    m = delong[
        ((delong["model_a"] == a) & (delong["model_b"] == b))
        | ((delong["model_a"] == b) & (delong["model_b"] == a))
    ]
    return float(m["p_value"].iloc[0]) if len(m) else None


def _comparison_table(
    models: Mapping[str, ModelResult],
    delong: pd.DataFrame,
    *,
    best: str,
    clinical_ref: str | None,
    validation: str,
) -> pd.DataFrame:
    rows = []
    for name, m in models.items():
        s = m.summary
        lo, hi = s["auc_ci_bootstrap"]
        dlo, dhi = s["auc_ci_delong"]
        rows.append(
            {
                "model": name,
                "feature_set": m.feature_set,
                "kind": m.kind,
                "validation": validation,
                "n_patients": s["n_patients"],
                "n_events": s["n_events"],
                "n_features": m.n_features,
                "auc": s["auc"],
                "auc_ci_low": lo,
                "auc_ci_high": hi,
                "auc_delong_ci_low": dlo,
                "auc_delong_ci_high": dhi,
                "p_vs_best": _delong_lookup(delong, name, best),
                "p_vs_clinical": None if clinical_ref is None else _delong_lookup(delong, name, clinical_ref),
                "threshold": s["threshold"],
                **{k: s[k] for k in _THRESHOLD_COLUMNS},
                "hosmer_lemeshow_p": s["hosmer_lemeshow_p"],
            }
        )
    return pd.DataFrame(rows)


def _pooled_c(cv: SurvivalCVResult, *, n_boot: int, seed: int, tau: float | None) -> dict[str, Any]:
    """Harrell's and Uno's C of the pooled out-of-fold risks (mean over repeats), bootstrap 95 % CI."""
    from sksurv.metrics import concordance_index_censored, concordance_index_ipcw

    from smartimaging.learn.survival import make_survival_target

    wide = cv.predictions.pivot(index="patient_id", columns="repeat", values="risk")
    first = cv.predictions[cv.predictions["repeat"] == 0].set_index("patient_id").loc[wide.index]
    y = make_survival_target(first["time"].to_numpy(float), first["event"].to_numpy(int))
    risk = wide.to_numpy(dtype=float)
    ev = y["event"].astype(int)

    def harrell(idx: np.ndarray) -> float | None:
        yi = y[idx]
        if not yi["event"].any():
            return None
        return float(
            np.mean(
                [
                    concordance_index_censored(yi["event"], yi["time"], risk[idx, k])[0]
                    for k in range(risk.shape[1])
                ]
            )
        )

    def uno(idx: np.ndarray) -> float | None:
        yi = y[idx]
        if not yi["event"].any() or tau is None:
            return None
        t = min(tau, float(yi["time"].max()) * (1 - 1e-9))
        try:
            return float(
                np.mean([concordance_index_ipcw(y, yi, risk[idx, k], tau=t)[0] for k in range(risk.shape[1])])
            )
        except ValueError:
            return None

    everyone = np.arange(y.size)
    out: dict[str, Any] = {"harrell_c_pooled": harrell(everyone), "uno_c_pooled": uno(everyone)}
    out["harrell_c_ci"] = bootstrap_ci(ev, harrell, n_boot=n_boot, alpha=0.05, random_state=seed)
    out["uno_c_ci"] = (
        bootstrap_ci(ev, uno, n_boot=n_boot, alpha=0.05, random_state=seed) if tau is not None else None
    )
    return out


def _survival_models(
    config: ModelConfig, design: _Design, *, seed: int, notes: list[str], failed: dict[str, str]
) -> tuple[dict[str, SurvivalModelResult], pd.DataFrame | None, pd.DataFrame | None]:
    surv = config.survival
    assert surv is not None
    clinical = design.clinical
    for col in (surv.time, surv.event):
        if col not in clinical.columns:
            raise LearningError(
                f"model.survival column {col!r} is not a column of the clinical table: {list(clinical.columns)}"
            )
    dropped = [s.name for s in config.selection if s.name in _SUPERVISED_STEPS]
    if dropped:
        notes.append(
            f"Survival models use the outcome-free selection steps only ({', '.join(dropped)} need a binary "
            "outcome and were not applied to them)."
        )
    out: dict[str, SurvivalModelResult] = {}
    rows = []
    preds = []
    for set_name, X_all in design.sets.items():
        time_s = pd.to_numeric(clinical.loc[X_all.index, surv.time], errors="coerce")
        event_s = pd.to_numeric(clinical.loc[X_all.index, surv.event], errors="coerce")
        ok = time_s.notna() & event_s.notna()
        X = X_all.loc[ok]
        for kind in surv.kinds:
            name = f"{set_name} [{kind}]"
            model = make_survival_model(kind, random_state=seed).steps[-1][1]
            clin_in = [c for c in design.clinical_columns if c in X.columns]
            keep = [c for c in [*clin_in, *design.covariates] if c in X.columns]
            steps: list[tuple[str, Any]] = []
            if design.harmonised and set_name != "clinical":
                steps.append(
                    ("harmonise", _combat(config, passthrough=clin_in).set_output(transform="pandas"))
                )
            select = (
                [(k, _WithoutOutcome(sel)) for k, sel in _selectors(config, seed, supervised=False)]
                if set_name != "clinical"
                else []
            )
            steps.append(
                (
                    "preprocess",
                    make_preprocessor(
                        impute=config.impute, transform=config.transform, select=select, keep=keep
                    ),
                )
            )
            steps.append(("model", model))
            try:
                res = cross_validate_survival(
                    X,
                    time_s.loc[X.index],
                    event_s.loc[X.index].astype(int),
                    estimator=Pipeline(steps),
                    n_splits=config.n_splits,
                    n_repeats=surv.n_repeats,
                    times=surv.horizons,
                    random_state=seed,
                    name=name,
                )
            except (LearningError, ValueError) as exc:
                # ValueError: scikit-survival's IPCW metrics refuse a test time beyond the training follow-up
                failed[name] = str(exc)
                log.warning("survival model %s failed: %s", name, exc)
                continue
            summ = res.summary()
            tau = float(np.max(res.times)) if len(res.times) else None
            summ.update(_pooled_c(res, n_boot=min(config.n_boot, 500), seed=seed, tau=tau))
            td = (
                res.td_auc.groupby("time")["auc"].agg(["mean", "count"]).reset_index()
                .rename(columns={"mean": "auc", "count": "n_folds"})
            )  # fmt: skip
            first = res.predictions[res.predictions["repeat"] == 0]
            km = kaplan_meier_groups(first["time"], first["event"], first["risk_group"])
            out[name] = SurvivalModelResult(name, set_name, kind, res, summ, km, td, int(X.shape[1]))
            hc = summ["harrell_c_ci"] or (None, None)
            uc = summ["uno_c_ci"] or (None, None)
            row = {
                "model": name,
                "feature_set": set_name,
                "kind": kind,
                "n_patients": summ["n_patients"],
                "n_events": summ["n_events"],
                "harrell_c": summ["harrell_c_pooled"],
                "harrell_c_ci_low": hc[0],
                "harrell_c_ci_high": hc[1],
                "uno_c": summ["uno_c_pooled"],
                "uno_c_ci_low": uc[0],
                "uno_c_ci_high": uc[1],
                "harrell_c_fold_mean": summ["harrell_c"],
                "mean_td_auc": summ["mean_td_auc"],
                "ibs": summ["ibs"],
                "logrank_p": summ["logrank_p"],
            }
            for t_row in td.itertuples():
                row[f"td_auc_t{t_row.time:g}"] = t_row.auc
            rows.append(row)
            preds.append(res.predictions.assign(model=name, feature_set=set_name, kind=kind))
    table = pd.DataFrame(rows) if rows else None
    predictions = pd.concat(preds, ignore_index=True) if preds else None
    return out, table, predictions


def _refit(
    config: ModelConfig, pipe: Pipeline, X: pd.DataFrame, y: pd.Series, *, kind: str, seed: int
) -> Any:
    if config.validation == "nested_cv":
        search = GridSearchCV(
            clone(pipe),
            default_param_grid(kind),  # type: ignore[arg-type]
            cv=StratifiedKFold(config.inner_splits, shuffle=True, random_state=seed),
            scoring="roc_auc",
            n_jobs=1,
        )
        search.fit(X, y.to_numpy())
        return search.best_estimator_
    return clone(pipe).fit(X, y.to_numpy())


def _explain(final: FinalModel, y: pd.Series, config: ModelConfig, *, seed: int) -> None:
    """SHAP values and permutation importance of the refitted final model (on its training patients)."""
    from smartimaging.learn.explain import kmeans_background, permutation_importance_table, shap_values

    X = final.X
    try:
        background, weights = kmeans_background(X, random_state=seed)
        final.shap = shap_values(
            final.pipeline,
            X,
            background=background,
            background_weights=[float(w) for w in weights],
            random_state=seed,
        )
    except (LearningError, ValueError, TypeError) as exc:
        final.notes.append(f"SHAP values could not be computed: {exc}")
    try:
        final.importance = permutation_importance_table(
            final.pipeline, X, y.loc[X.index], n_repeats=config.importance_repeats, random_state=seed
        )
    except (LearningError, ValueError, TypeError) as exc:
        final.notes.append(f"Permutation importance could not be computed: {exc}")


def _nomogram(
    config: ModelConfig,
    design: _Design,
    models: Mapping[str, ModelResult],
    y: pd.Series,
    final: FinalModel,
    *,
    seed: int,
) -> None:
    from smartimaging.learn.nomogram import build_nomogram

    if config.nomogram_max_features == 0:
        return
    linear = [
        m
        for m in models.values()
        if m.kind in _LINEAR and not (design.harmonised and m.feature_set != "clinical")
    ]
    if not linear:
        final.notes.append("No nomogram: no linear (logistic) model without harmonisation was compared.")
        return
    skipped = []
    for best in sorted(linear, key=lambda m: -m.summary["auc"]):
        X = design.sets[best.feature_set]
        if best.name == final.name:
            fitted = final.pipeline
        else:
            pipe = _pipeline(config, design, best.feature_set, best.kind, seed)
            fitted = _refit(config, pipe, X, y.loc[X.index], kind=best.kind, seed=seed)
        used = _effective_columns(fitted, X, seed=seed)
        if 0 < len(used) <= config.nomogram_max_features:
            break
        skipped.append(f"{best.name} ({len(used)})")
    else:
        final.notes.append(
            "No nomogram: every linear model uses no variable or more than nomogram_max_features = "
            f"{config.nomogram_max_features} variables ({', '.join(skipped)})."
        )
        return
    if skipped:
        final.notes.append(
            f"Nomogram of {best.name}, the best linear model using at most {config.nomogram_max_features} "
            f"variables (more in: {', '.join(skipped)})."
        )
    complete = X[used].dropna()
    try:
        nomo = build_nomogram(_OnColumns(fitted, X, used), complete, kind="logistic")
    except LearningError as exc:
        final.notes.append(f"No nomogram: {exc}")
        return
    final.nomogram = nomo
    final.nomogram_model = best.name
    final.nomogram_png = _fig_png(nomo.plot(title=f"Nomogram of {best.name} (refitted on all patients)"))


def configured_pipeline(
    wide: pd.DataFrame,
    clinical: pd.DataFrame,
    config: ModelConfig,
    *,
    feature_set: str,
    kind: str | None = None,
    seed: int = 0,
    qc: pd.DataFrame | None = None,
) -> tuple[Pipeline, pd.DataFrame, pd.Series]:
    """The unfitted pipeline of one (feature set, model kind) exactly as the model stage validates it.

    Harmonisation (ComBat, with the batch column :data:`BATCH_COLUMN`), the selection steps,
    imputation, transforms and the model are those of ``config``; the model bundle fits this
    pipeline on all patients, so the exported model is the validated one.

    Parameters
    ----------
    wide, clinical, config, seed, qc
        As for :func:`fit_cohort_models` (binary target only).
    feature_set : str
        One of ``config.feature_sets`` that the data can fill.
    kind : str, optional
        Model kind; default the primary kind (``config.kind``).

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Unfitted.
    X : DataFrame
        The aligned inputs (index: patient ID); with harmonisation, the batch column and the
        covariates are columns of it.
    y : Series
        The binary target of the same patients.

    Raises
    ------
    LearningError
        If the target is not binary, a named column is missing, or ``feature_set`` cannot be built.
    """
    if not config.target:
        raise LearningError(
            "configured_pipeline needs a binary model.target (a survival-only study has none)"
        )
    clinical = clinical.copy()
    clinical.index = clinical.index.astype(str)
    wide = wide.copy()
    wide.index = wide.index.astype(str)
    design = _design(wide, clinical, config, target=config.target, qc=qc, notes=[])
    if feature_set not in design.sets:
        raise LearningError(
            f"feature set {feature_set!r} cannot be built from these tables; available: {sorted(design.sets)}"
        )
    X = design.sets[feature_set]
    y = _binary_target(design.clinical, config.target).loc[X.index]
    return _pipeline(config, design, feature_set, kind or config.kind, seed), X, y


def fit_cohort_models(
    wide: pd.DataFrame,
    clinical: pd.DataFrame,
    config: ModelConfig,
    *,
    seed: int = 0,
    qc: pd.DataFrame | None = None,
    jobs: int = 1,
) -> CohortModels:
    """Validate and compare every configured (feature set x model) pair on identical folds.

    Parameters
    ----------
    wide : DataFrame
        One row per patient (index: patient ID, strings), numeric image features. CT columns
        carry the prefix ``CT_`` (see :func:`image_modality`).
    clinical : DataFrame
        Clinical table (index: patient ID) holding the target, the clinical columns, and the
        batch / survival / site columns the configuration names.
    config : ModelConfig
        Outcome, feature sets, models, harmonisation, selection and validation scheme.
    seed : int, default 0
        Seed of the folds, the models, the bootstrap and the label permutations.
    qc : DataFrame, optional
        The run's acquisition QC table (:func:`smartimaging.io.qc.cohort_qc`), needed for
        ``harmonise.batch: qc:<keyword>``.
    jobs : int, default 1
        Models validated in parallel (processes); results do not depend on it.

    Returns
    -------
    CohortModels

    Raises
    ------
    LearningError
        If a named column is missing, the target is not binary, too few patients remain for the
        folds, or every model failed (the message gives each model's reason).
    ConfigError
        If an external table cannot be read.
    """
    t0 = time.perf_counter()
    notes: list[str] = []
    failed: dict[str, str] = {}
    clinical = clinical.copy()
    clinical.index = clinical.index.astype(str)
    wide = wide.copy()
    wide.index = wide.index.astype(str)
    external_ids: list[str] = []
    if config.external is not None:
        wide, clinical, external_ids = _external_tables(config, clinical, wide)
    target = config.target or None
    survival_only = target is None
    if survival_only:
        assert config.survival is not None
        target_col = config.survival.time
    else:
        assert target is not None
        _binary_target(clinical, target)
        target_col = target
    design_all = _design(wide, clinical, config, target=target_col, qc=qc, notes=notes)
    dev_ids = [i for i in design_all.sets[next(iter(design_all.sets))].index if i not in set(external_ids)]
    ext_ids = [i for i in design_all.sets[next(iter(design_all.sets))].index if i in set(external_ids)]
    if config.external is not None and not ext_ids:
        raise LearningError("model.external: no external patient has both features and the outcome")
    design = _Design(
        {k: v.loc[dev_ids] for k, v in design_all.sets.items()},
        design_all.clinical,
        design_all.clinical_columns,
        design_all.covariates,
        design_all.harmonised,
        notes,
    )
    n_dev = len(dev_ids)
    need = 2 * config.n_splits
    if n_dev < need:
        raise LearningError(
            f"only {n_dev} patients have both image features and {target_col!r}: too few for "
            f"{config.n_splits}-fold cross-validation (at least {need}); lower model.n_splits"
        )
    validation_text = {
        "cv": f"repeated stratified {config.n_splits}-fold cross-validation x {config.n_repeats} repeats "
        f"(threshold chosen by {config.inner_splits}-fold inner CV of each training set)",
        "nested_cv": f"nested cross-validation: {config.n_repeats} x {config.n_splits}-fold outer, "
        f"{config.inner_splits}-fold inner grid search (AUC) and threshold",
        "holdout": f"stratified held-out split ({config.test_size:.0%} of patients held out; threshold and "
        f"model from the development part, {config.inner_splits}-fold inner CV)",
    }[config.validation]
    if ext_ids:
        validation_text += f"; external validation on {len(ext_ids)} patients"
    result = CohortModels(
        results=[],
        table=pd.DataFrame(),
        target=target or "",
        n_patients=n_dev,
        validation=validation_text,
        harmonisation=None,
        selection=_describe_selection(config),
        feature_sets={
            k: int(v.drop(columns=[BATCH_COLUMN], errors="ignore").shape[1]) for k, v in design.sets.items()
        },
        failed=failed,
        notes=notes,
        time_unit=config.survival.time_unit if config.survival is not None else "",
    )
    if config.harmonise is not None:
        batch = design.clinical.loc[dev_ids, BATCH_COLUMN]
        counts = batch.value_counts()
        result.harmonisation = (
            f"ComBat ({'parametric' if config.harmonise.parametric else 'non-parametric'}"
            f"{', mean only' if config.harmonise.mean_only else ''}{'' if config.harmonise.eb else ', no EB'}) "
            f"by {config.harmonise.batch}: {len(counts)} batches ("
            + ", ".join(f"{k}: {v}" for k, v in counts.items())
            + "), refitted in every training fold"
        )

    if not survival_only:
        assert target is not None
        y_all = _binary_target(design.clinical, target)
        y = y_all.loc[dev_ids]
        primary = config.kind
        models: dict[str, ModelResult] = {}
        tasks = [(set_name, kind) for set_name in design.sets for kind in config.kinds]
        ext_sets = {k: v.loc[ext_ids] for k, v in design_all.sets.items()} if ext_ids else {}
        y_ext = y_all.loc[ext_ids] if ext_ids else None
        if jobs > 1 and len(tasks) > 1:
            from joblib import Parallel, delayed

            outcomes = Parallel(n_jobs=min(jobs, len(tasks)))(
                delayed(_fit_one)(config, design, set_name, kind, y, ext_sets.get(set_name), y_ext, seed=seed)
                for set_name, kind in tasks
            )
        else:
            outcomes = [
                _fit_one(config, design, set_name, kind, y, ext_sets.get(set_name), y_ext, seed=seed)
                for set_name, kind in tasks
            ]
        for outcome in outcomes:
            if isinstance(outcome, tuple):
                failed[outcome[0]] = outcome[1]
                log.warning("model %s failed: %s", outcome[0], outcome[1])
                continue
            models[outcome.name] = outcome
            if outcome.external_summary is None and ext_ids:
                notes.append(f"External validation of {outcome.name} failed.")
        if not models:
            raise LearningError("every model failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
        for k, v in failed.items():
            notes.append(f"Model {k} failed and is not compared: {v}")
        best = max(models, key=lambda k: models[k].summary["auc"])
        delong = (
            compare_validated({k: m.validation for k, m in models.items()})
            if len(models) > 1
            else pd.DataFrame()
        )
        clinical_ref = (
            primary_clin if (primary_clin := _model_name("clinical", primary, primary)) in models else None
        )
        result.models = models
        result.best = best
        result.delong = delong
        result.results = [m.cv for m in models.values() if m.kind == primary]
        result.table = _comparison_table(
            models, delong, best=best, clinical_ref=clinical_ref, validation=config.validation
        )
        result.predictions = pd.concat(
            [
                m.validation.predictions.assign(
                    model=k, feature_set=m.feature_set, kind=m.kind, scheme=m.validation.scheme
                )
                for k, m in models.items()
            ]
            + [
                m.external.predictions.assign(
                    model=k, feature_set=m.feature_set, kind=m.kind, scheme="external"
                )
                for k, m in models.items()
                if m.external is not None
            ],
            ignore_index=True,
        )
        if ext_ids:
            ext_rows = []
            ext_vr = {k: m.external for k, m in models.items() if m.external is not None}
            ext_delong = compare_validated(ext_vr) if len(ext_vr) > 1 else pd.DataFrame()  # type: ignore[arg-type]
            for k, m in models.items():
                if m.external_summary is None:
                    continue
                s = m.external_summary
                ext_rows.append(
                    {
                        "model": k,
                        "n_patients": s["n_patients"],
                        "n_events": s["n_events"],
                        "auc": s["auc"],
                        "auc_delong_ci_low": s["auc_ci_delong"][0],
                        "auc_delong_ci_high": s["auc_ci_delong"][1],
                        "p_vs_best": _delong_lookup(ext_delong, k, best),
                        **{k: s[k] for k in _THRESHOLD_COLUMNS},
                    }
                )
            result.external_table = pd.DataFrame(ext_rows)

        # chance level of the primary model on the first image feature set
        image_set = next(
            (s for s in ("radiomics", "pet_ct", "pet", "ct", "combined") if s in design.sets), None
        )
        if config.n_permutations and image_set is not None:
            X = design.sets[image_set]
            result.permutation_aucs = permutation_check(
                X,
                y.loc[X.index],
                n_permutations=config.n_permutations,
                random_state=seed,
                estimator=_pipeline(config, design, image_set, primary, seed),
                n_splits=config.n_splits,
            )
            notes.append(
                f"Chance level: model '{_model_name(image_set, primary, primary)}' re-validated after shuffling the labels."
            )

        final_name = config.final_model or best
        if final_name not in models:
            raise LearningError(
                f"model.final_model {final_name!r} is not one of the compared models: {list(models)}"
            )
        fm = models[final_name]
        X = design.sets[fm.feature_set]
        fitted = _refit(
            config, _pipeline(config, design, fm.feature_set, fm.kind, seed), X, y, kind=fm.kind, seed=seed
        )
        final = FinalModel(final_name, fitted, X)
        if config.explain:
            _explain(final, y, config, seed=seed)
            _nomogram(config, design, models, y, final, seed=seed)
        result.final = final

    if config.survival is not None:
        surv_failed: dict[str, str] = {}
        surv, table, preds = _survival_models(config, design, seed=seed, notes=notes, failed=surv_failed)
        if not surv:
            raise LearningError(
                "every survival model failed: " + "; ".join(f"{k}: {v}" for k, v in surv_failed.items())
            )
        for k, v in surv_failed.items():
            notes.append(f"Survival model {k} failed and is not compared: {v}")
        failed.update(surv_failed)
        result.survival = surv
        result.survival_table = table
        result.survival_predictions = preds
        if survival_only:
            first = next(iter(surv.values()))
            result.n_patients = first.summary["n_patients"]
    log.info(
        "model stage: %d models in %.1f s",
        len(result.models) + len(result.survival),
        time.perf_counter() - t0,
    )
    return result


def write_model_tables(models: CohortModels, out: Path) -> dict[str, Path]:
    """Write the model stage's tables (CSV, atomically) into ``out``.

    Files: ``models.csv`` (comparison), ``model_predictions.csv`` (out-of-sample predictions of
    every model, external ones with ``scheme = external``), ``model_delong.csv`` (pairwise
    DeLong tests), ``models_external.csv``, ``survival_models.csv``, ``survival_predictions.csv``,
    ``feature_importance.csv`` and ``shap_values.csv`` when present.

    Returns
    -------
    dict of str to Path
        Name -> written file.
    """
    from smartimaging.atomic import atomic_path

    def write(table: pd.DataFrame, name: str, *, index: bool = False) -> Path:
        path = out / name
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=index)
        return path

    files: dict[str, Path] = {}
    if not models.table.empty:
        files["models"] = write(models.table, "models.csv")
        files["model_predictions"] = write(models.predictions, "model_predictions.csv")
    if not models.delong.empty:
        files["model_delong"] = write(models.delong, "model_delong.csv")
    if models.external_table is not None and not models.external_table.empty:
        files["models_external"] = write(models.external_table, "models_external.csv")
    if models.survival_table is not None:
        files["survival_models"] = write(models.survival_table, "survival_models.csv")
    if models.survival_predictions is not None:
        files["survival_predictions"] = write(models.survival_predictions, "survival_predictions.csv")
    final = models.final
    if final is not None and final.importance is not None:
        files["feature_importance"] = write(final.importance, "feature_importance.csv")
    if final is not None and final.shap is not None:
        files["shap_values"] = write(final.shap, "shap_values.csv", index=True)
    return files
