"""A portable model bundle: one file another hospital can use to predict and to validate, without data.

A bundle is a ZIP file holding

* ``manifest.json``: the bundle format, when and by which versions it was made, the study's
  processing settings that define the features (SUV, segmentation, extraction) and their hash, the
  model's name, kind, target, input columns and operating threshold, the cross-validated performance
  on the training cohort, and cohort **summaries**:

  - ``training.summary``: the out-of-distribution check's summary
    (:class:`smartimaging.learn.ood.OODDetector`): per input feature the mean, SD, minimum and
    maximum, and a principal-component model of the standardised features with the 99th
    percentile of the training patients' Mahalanobis distances;
  - ``conformal``: the conformal calibration (method, coverage ``1 - alpha``, folds, threshold);
  - ``explanation.background``: the SHAP background, a k-means summary of the training inputs:
    at most 10 cluster centres, each the mean (numbers) or most frequent value (categories) of
    at least 5 training patients, with the cluster sizes as weights.

  No patient's row, identifier or score is stored: only these summaries of groups of patients.
* ``pipeline.pkl``: the fitted scikit-learn pipeline (imputation, scaling, the model), pickled; its
  SHA-256 is in the manifest and checked on loading, so that a damaged file is refused.
* ``conformal.pkl``: the cross-conformal predictor (:class:`smartimaging.learn.conformal.ConformalClassifier`:
  the K fold models and the conformal threshold), fitted on the training cohort with every
  patient's score coming from a model that did not see it; SHA-256 checked likewise. As with any
  pickle, load only bundles from a source you trust.

:func:`predict_patient` runs the whole chain on one patient's DICOM folder with the bundle's own
settings and returns the probability, the decision at the training-derived threshold, the
conformal prediction set at the stated coverage with a decision (positive, negative or
**abstain** when both outcomes remain plausible, none does, or the patient lies outside the
training distribution), the out-of-distribution reasons, and the features that drove the
prediction (SHAP values with IBSI names and plain-language meanings).
:func:`validate_bundle` runs external validation of a bundle on another site's study and refuses
features extracted with other settings.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from smartimaging import __version__, versions
from smartimaging.atomic import atomic_path, write_text
from smartimaging.exceptions import ConfigError, LearningError, SmartImagingError
from smartimaging.features.settings import ExtractionSettings
from smartimaging.learn.clinical_metrics import choose_threshold
from smartimaging.learn.combat import batches_from_qc
from smartimaging.learn.conformal import ConformalClassifier
from smartimaging.learn.explain import describe_feature, kmeans_background, shap_values
from smartimaging.learn.metrics import bootstrap_auc_ci, roc_auc, roc_curve_points
from smartimaging.learn.ood import OODDetector
from smartimaging.learn.validate import CVResult
from smartimaging.report.html import ReportData, render_report
from smartimaging.study.config import StudyConfig
from smartimaging.study.modelling import BATCH_COLUMN, configured_pipeline

__all__ = [
    "BUNDLE_FORMAT",
    "BundleError",
    "ExternalValidation",
    "ModelBundle",
    "Prediction",
    "feature_settings",
    "fit_bundle",
    "load_bundle",
    "predict_features",
    "predict_patient",
    "save_bundle",
    "settings_hash",
    "validate_bundle",
]

BUNDLE_FORMAT = 1
"""Version of the bundle layout; a bundle of a newer format is refused."""

_CONFORMAL_FOLDS = 5
_BACKGROUND_CLUSTERS = 10  # at most this many k-means centres in the SHAP background
_MIN_CLUSTER = 5  # every centre summarises at least this many training patients
_TOP_CONTRIBUTIONS = 5


class BundleError(SmartImagingError):
    """A model bundle cannot be written, read or used (damaged, newer format, mismatched settings)."""


def feature_settings(config: StudyConfig) -> dict[str, Any]:
    """The settings that define the features: SUV, segmentation and extraction (validated, complete)."""
    return {
        "suv": config.suv.model_dump(mode="json"),
        "segmentation": config.segmentation.model_dump(mode="json"),
        "features": ExtractionSettings.model_validate(config.features).model_dump(mode="json"),
    }


def settings_hash(settings: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of :func:`feature_settings`."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: bundle {a!r}, here {b!r}"]


@dataclass(frozen=True)
class ModelBundle:
    """A fitted model with everything needed to use it elsewhere.

    Attributes
    ----------
    manifest : dict
        Settings, versions, columns, threshold, training summary (see the module docstring).
    pipeline : sklearn.pipeline.Pipeline
        The fitted preprocessing + model pipeline.
    conformal : ConformalClassifier, optional
        Cross-conformal predictor fitted on the training cohort; ``None`` for bundles made
        without one (then no prediction set is given).
    """

    manifest: dict[str, Any]
    pipeline: Pipeline
    conformal: ConformalClassifier | None = None

    @property
    def columns(self) -> list[str]:
        """Input columns of the model, in order (image features, then clinical variables)."""
        return list(self.manifest["columns"])

    @property
    def threshold(self) -> float:
        """Probability threshold of the decision, fixed on the training cohort (Youden index)."""
        return float(self.manifest["threshold"])


@dataclass(frozen=True)
class Prediction:
    """One patient's prediction from a bundle.

    Attributes
    ----------
    patient_id : str
        Patient identifier.
    probability : float
        Predicted probability of the target (class 1) by the bundle's pipeline.
    label : int
        1 when ``probability >= threshold``.
    threshold : float
        The bundle's decision threshold (fixed on the training cohort).
    out_of_distribution : bool
        The patient's features lie outside the training distribution (reasons in ``ood_reasons``).
    ood_reasons : list of str
        Why the patient was flagged, in plain words (features out of range, atypical
        combination of features, unseen scanner).
    abstain : bool
        The bundle declines to decide (``decision == "abstain"``): out of distribution, or the
        conformal set holds both outcomes or none. The probability is still given, for
        information only.
    contributions : list of (str, float)
        The largest SHAP contributions (column, change in probability), largest magnitude
        first; the same as ``explanation`` as plain pairs.
    prediction_set : list
        Conformal prediction set: the outcomes (0, 1) that remain plausible at ``coverage``;
        empty when the bundle has no conformal calibration or the set is empty.
    decision : str
        ``"positive"``, ``"negative"`` or ``"abstain"``: the conformal set's single outcome,
        ``"abstain"`` when the set is ambiguous (both) or empty or the patient is out of
        distribution. Bundles without conformal calibration decide at ``threshold``.
    coverage : float or None
        The coverage the prediction sets are calibrated for (``1 - alpha``, e.g. 0.9).
    explanation : list of dict
        The top SHAP contributions with ``feature`` (column), ``contribution`` (change in the
        predicted probability against the average training patient), ``label`` (IBSI name,
        family, aggregation), ``ibsi_name``, ``ibsi_id``, ``family`` and ``meaning`` (one
        plain-language sentence); clinical variables have empty IBSI fields.
    """

    patient_id: str
    probability: float
    label: int
    threshold: float
    out_of_distribution: bool
    ood_reasons: list[str]
    abstain: bool
    contributions: list[tuple[str, float]] = field(default_factory=list)
    prediction_set: list[Any] = field(default_factory=list)
    decision: str = ""
    coverage: float | None = None
    explanation: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form."""
        return {
            "patient_id": self.patient_id,
            "probability": self.probability,
            "label": self.label,
            "threshold": self.threshold,
            "decision": self.decision,
            "prediction_set": list(self.prediction_set),
            "coverage": self.coverage,
            "out_of_distribution": self.out_of_distribution,
            "ood_reasons": list(self.ood_reasons),
            "abstain": self.abstain,
            "contributions": [[name, value] for name, value in self.contributions],
            "explanation": [dict(e) for e in self.explanation],
        }


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar: NaN -> None, numpy numbers -> Python numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _background_summary(X: pd.DataFrame, *, random_state: int) -> dict[str, Any]:
    """The SHAP background of the bundle: k-means centres of >= 5 training patients each, as JSON."""
    frame, weights = kmeans_background(
        X, max_clusters=_BACKGROUND_CLUSTERS, min_cluster_size=_MIN_CLUSTER, random_state=random_state
    )
    rows = [[_plain(v) for v in row] for row in frame.astype(object).itertuples(index=False)]
    return {"columns": list(X.columns), "rows": rows, "weights": [int(w) for w in weights]}


def _background_frame(bundle: ModelBundle) -> tuple[pd.DataFrame, list[float]] | None:
    summary = bundle.manifest.get("explanation", {}).get("background")
    if not summary:
        return None
    frame = pd.DataFrame(summary["rows"], columns=summary["columns"])
    for c in frame.columns:
        if c in bundle.manifest.get("categorical_levels", {}):
            frame[c] = frame[c].astype(object)
        else:
            frame[c] = pd.to_numeric(frame[c]).astype(float)
    return frame, [float(w) for w in summary["weights"]]


def fit_bundle(
    config: StudyConfig,
    wide: pd.DataFrame,
    clinical: pd.DataFrame,
    *,
    model: str | None = None,
    cv: Sequence[CVResult] = (),
    alpha: float = 0.1,
    qc: pd.DataFrame | None = None,
) -> ModelBundle:
    """Fit the final model on the whole training cohort and package it.

    The pipeline is the one the study validated (:func:`smartimaging.study.modelling.configured_pipeline`):
    ComBat harmonisation when ``model.harmonise`` is set, the selection steps, imputation,
    transforms and the primary model kind, all refitted on every training patient.

    Besides the model, the bundle gets a cross-conformal calibration (``K = 5`` stratified folds,
    fewer when an outcome has fewer patients; every patient's conformity score comes from a fold
    model that did not see the patient), the out-of-distribution summary and a k-means summary of
    the training inputs as the SHAP background (see the module docstring: no patient's data).

    Parameters
    ----------
    config : StudyConfig
        The study's settings (they define the features and the model).
    wide : DataFrame
        One row per patient (index: patient ID), the image features of the run.
    clinical : DataFrame
        Clinical table (index: patient ID) with the target and the clinical columns.
    model : {"clinical", "radiomics", "combined"}, optional
        Feature set of the bundled model; default "combined" when the study has clinical columns,
        else "radiomics".
    cv : sequence of CVResult
        The run's cross-validation results: the matching one sets the threshold (Youden index on the
        out-of-fold scores) and the reported training performance.
    alpha : float, default 0.1
        Miscoverage of the conformal prediction sets (coverage ``1 - alpha``).
    qc : DataFrame, optional
        The run's acquisition QC table (``qc.csv``), needed when ``model.harmonise.batch`` is a
        ``qc:<keyword>`` batch.

    Returns
    -------
    ModelBundle

    Raises
    ------
    BundleError
        If the study has no model section, ``model`` is not a feature set of the study, or
        ``alpha`` is not in (0, 1).
    """
    if not 0.0 < alpha < 1.0:
        raise BundleError(f"alpha (the conformal miscoverage) must be in (0, 1), got {alpha!r}")
    if config.model is None:
        raise BundleError("the study has no model section (model: null); there is no model to export")
    spec = config.model
    if not spec.target:
        raise BundleError("the study models survival only (model.target: null); bundles hold a binary model")
    name = model or ("combined" if spec.clinical_columns else "radiomics")
    valid = [s for s in spec.feature_sets if s not in ("clinical", "combined") or spec.clinical_columns]
    if name not in valid:
        raise BundleError(f"model {name!r} is not a feature set of this study; valid: {valid}")
    try:
        unfitted, X, y = configured_pipeline(
            wide.select_dtypes(include=[np.number]), clinical, spec, feature_set=name, seed=config.seed, qc=qc
        )
    except LearningError as exc:
        raise BundleError(f"cannot build the {name!r} model of this study: {exc}") from exc
    pipeline = clone(unfitted).fit(X, y)
    matching = [r for r in cv if r.name == name]
    if matching:
        oof = matching[0].oof.groupby("patient_id")[["y_true", "y_score"]].mean()
        threshold = choose_threshold(oof["y_true"].to_numpy(int), oof["y_score"].to_numpy(float))
        performance: dict[str, Any] = matching[0].to_dict()
    else:
        score = pipeline.predict_proba(X)[:, 1]
        threshold = choose_threshold(y.to_numpy(), score)
        performance = {"note": "no cross-validation result given; threshold from apparent (training) scores"}
    numeric = X.select_dtypes(include=[np.number])
    categorical = {c: sorted(map(str, X[c].dropna().unique())) for c in X.columns if c not in numeric.columns}
    folds = min(_CONFORMAL_FOLDS, int(np.bincount(y.to_numpy()).min()))
    conformal: ConformalClassifier | None = None
    conformal_info: dict[str, Any] = {"note": f"no conformal calibration: an outcome has {folds} patient(s)"}
    if folds >= 2:
        conformal = ConformalClassifier(
            clone(unfitted),
            alpha=alpha,
            method="lac",
            cv=folds,
            random_state=config.seed,
        ).fit(X, y)
        conformal_info = {
            "method": "lac",
            "alpha": alpha,
            "coverage": conformal.coverage,
            "cv": folds,
            "n_calibration": conformal.n_calibration_,
            "quantile": conformal.quantile_,
            "aggregation": "mean probability of the fold models",
        }
    settings = feature_settings(config)
    manifest = {
        "bundle_format": BUNDLE_FORMAT,
        "created_with": versions(),
        "study": config.name,
        "settings": settings,
        "settings_sha256": settings_hash(settings),
        "model": {"name": name, "kind": spec.kind, "target": spec.target, "seed": config.seed},
        "columns": list(X.columns),
        "image_columns": [c for c in X.columns if c in wide.columns],
        "clinical_columns": [c for c in X.columns if c not in wide.columns and c != BATCH_COLUMN]
        + (
            [spec.harmonise.batch]  # the site's value, given like a clinical variable
            if spec.harmonise is not None
            and not spec.harmonise.qc_keys
            and spec.harmonise.batch not in X.columns
            else []
        ),
        "categorical_levels": categorical,
        "threshold": threshold,
        "harmonisation": _harmonisation(spec, X, qc),
        "conformal": conformal_info,
        "explanation": {
            "method": "SHAP values of the predicted probability through the whole pipeline",
            "output": "probability",
            "background": _background_summary(X, random_state=config.seed),
        },
        "training": {
            "n_patients": len(X),
            "n_events": int(y.sum()),
            "cross_validation": performance,
            "summary": OODDetector(batch_column=BATCH_COLUMN if BATCH_COLUMN in X.columns else None)
            .fit(X[[*numeric.columns, BATCH_COLUMN]] if BATCH_COLUMN in X.columns else numeric)
            .to_summary(),
        },
    }
    return ModelBundle(manifest, pipeline, conformal)


def save_bundle(bundle: ModelBundle, path: str | Path) -> Path:
    """Write the bundle as one ZIP file (atomically)."""
    payload = pickle.dumps(bundle.pipeline, protocol=pickle.HIGHEST_PROTOCOL)
    manifest = dict(bundle.manifest, pipeline_sha256=hashlib.sha256(payload).hexdigest())
    manifest.pop("conformal_sha256", None)
    conformal = None
    if bundle.conformal is not None:
        conformal = pickle.dumps(bundle.conformal, protocol=pickle.HIGHEST_PROTOCOL)
        manifest["conformal_sha256"] = hashlib.sha256(conformal).hexdigest()
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
        zf.writestr("pipeline.pkl", payload)
        if conformal is not None:
            zf.writestr("conformal.pkl", conformal)
    return Path(path)


def load_bundle(path: str | Path) -> ModelBundle:
    """Read a bundle written by :func:`save_bundle`, checking its format and integrity.

    Raises
    ------
    BundleError
        If the file is missing, not a bundle, of a newer format, or its pipeline does not match the
        manifest's SHA-256 (damaged or altered).
    """
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"model bundle not found: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            payload = zf.read("pipeline.pkl")
            conformal = zf.read("conformal.pkl") if "conformal.pkl" in zf.namelist() else None
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise BundleError(
            f"{path} is not a smartimaging model bundle ({exc}); export one with `smartimaging export`"
        ) from exc
    fmt = manifest.get("bundle_format")
    if not isinstance(fmt, int) or fmt > BUNDLE_FORMAT:
        raise BundleError(
            f"{path} has bundle format {fmt!r}; this smartimaging {__version__} reads formats up to {BUNDLE_FORMAT}: "
            "upgrade smartimaging"
        )
    if hashlib.sha256(payload).hexdigest() != manifest.get("pipeline_sha256"):
        raise BundleError(
            f"{path}: the pipeline does not match the manifest's SHA-256: the file is damaged or altered"
        )
    if "conformal_sha256" not in manifest:
        conformal = None  # never unpickle a part the manifest does not vouch for
    elif conformal is None or hashlib.sha256(conformal).hexdigest() != manifest["conformal_sha256"]:
        raise BundleError(
            f"{path}: the conformal calibration (conformal.pkl) is missing or does not match the manifest's "
            "SHA-256: the file is damaged or altered"
        )
    pipeline = pickle.loads(payload)  # integrity checked above; load only bundles from a trusted source
    calibration = pickle.loads(conformal) if conformal is not None else None
    return ModelBundle(manifest, pipeline, calibration)


def _explanations(bundle: ModelBundle, X: pd.DataFrame, top: int) -> list[list[dict[str, Any]]]:
    background = _background_frame(bundle)
    if background is None or top <= 0:
        return [[] for _ in range(len(X))]
    frame, weights = background
    values = shap_values(
        bundle.pipeline,
        X,
        background=frame,
        background_weights=weights,
        random_state=int(bundle.manifest["model"].get("seed", 0)),
    )
    out = []
    for _, row in values.iterrows():
        v = row.to_numpy(dtype=float)
        order = [i for i in np.argsort(-np.abs(v), kind="stable") if v[i] != 0.0][:top]
        items = []
        for i in order:
            d = describe_feature(str(row.index[i]))
            items.append(
                {
                    "feature": d.column,
                    "contribution": float(v[i]),
                    "label": d.label,
                    "ibsi_name": d.ibsi_name,
                    "ibsi_id": d.ibsi_id,
                    "family": d.family,
                    "meaning": d.meaning,
                }
            )
        out.append(items)
    return out


def _qc_batches(harm: Mapping[str, Any], qc: pd.DataFrame) -> pd.Series:
    """Each patient's own batch label from the DICOM QC table (no merging of small batches)."""
    batch = batches_from_qc(qc, keys=harm["qc_keys"], modality=harm.get("modality", "PT"), min_size=1)
    batch.index = batch.index.astype(str)
    return batch


def _harmonisation(spec: Any, X: pd.DataFrame, qc: pd.DataFrame | None) -> dict[str, Any] | None:
    """Where a harmonised model's batch comes from, for the manifest.

    For a ``qc:`` batch, ``merged`` maps the scanner labels that training merged into a shared batch
    (``harmonise.min_batch_size``) to that batch, so a new patient of such a scanner gets the batch
    ComBat was fitted with, not a label it has never seen.
    """
    if spec.harmonise is None:
        return None
    harm: dict[str, Any] = {
        "batch": spec.harmonise.batch,
        "qc_keys": list(spec.harmonise.qc_keys) if spec.harmonise.qc_keys else None,
        "modality": spec.harmonise.modality,
        "column": BATCH_COLUMN,
        "merged": {},
    }
    if harm["qc_keys"] and qc is not None and BATCH_COLUMN in X.columns:
        own = _qc_batches(harm, qc).reindex(X.index.astype(str))
        trained = X[BATCH_COLUMN].astype(str).to_numpy()
        harm["merged"] = {
            str(o): str(t) for o, t in zip(own, trained, strict=True) if isinstance(o, str) and o != t
        }
    return harm


def _with_batch(bundle: ModelBundle, features: pd.DataFrame, qc: pd.DataFrame | None) -> pd.DataFrame:
    """Add the harmonisation batch column a ComBat-harmonised model needs, from its recorded source."""
    harm = bundle.manifest.get("harmonisation")
    if harm is None or BATCH_COLUMN not in bundle.columns or BATCH_COLUMN in features.columns:
        return features
    features = features.copy()
    if not harm.get("qc_keys"):
        source = harm["batch"]
        if source not in features.columns:
            raise BundleError(
                f"the model is harmonised (ComBat) by the clinical column {source!r}: give each patient's value "
                f"(clinical table column {source!r}, or --clinical {source}=VALUE)"
            )
        features[BATCH_COLUMN] = features[source].astype("string").astype(object)
        return features
    if qc is None or qc.empty:
        raise BundleError(
            f"the model is harmonised (ComBat) by {harm['batch']!r} from the DICOM headers, and no DICOM QC table "
            "was given: predict from DICOM (smartimaging predict / validate), not from a feature table"
        )
    merged = harm.get("merged", {})
    batch = _qc_batches(harm, qc).map(lambda label: merged.get(label, label))
    features[BATCH_COLUMN] = batch.reindex(features.index.astype(str)).to_numpy()
    return features


def predict_features(
    bundle: ModelBundle,
    features: pd.DataFrame,
    *,
    explain: bool = True,
    top: int = _TOP_CONTRIBUTIONS,
    qc: pd.DataFrame | None = None,
) -> list[Prediction]:
    """Predictions for patients whose image features (and clinical variables) are already in a table.

    Parameters
    ----------
    bundle : ModelBundle
        The model.
    features : DataFrame
        One row per patient (index: patient ID) holding every column of ``bundle.columns``.
    explain : bool, default True
        Compute the SHAP explanation (the slowest part: about a second per patient for a model
        on a few hundred features); without it ``explanation`` and ``contributions`` are empty.
    top : int, default 5
        Contributions kept per patient.
    qc : DataFrame, optional
        The patients' acquisition QC table, for a model harmonised by a ``qc:<keyword>`` batch.

    Raises
    ------
    BundleError
        If columns the model needs are missing (they are listed), or the model is harmonised and
        a patient's batch is unknown or cannot be harmonised (a site not seen in training needs at
        least 5 of its patients predicted together, e.g. by ``smartimaging validate``).
    """
    features = _with_batch(bundle, features, qc)
    missing = [c for c in bundle.columns if c not in features.columns]
    if missing:
        raise BundleError(
            f"the model needs {len(missing)} column(s) the table lacks: {missing[:8]}"
            + (" ..." if len(missing) > 8 else "")
            + "; clinical variables come from the clinical table (or --clinical KEY=VALUE)"
        )
    X = features[bundle.columns]
    try:
        proba = bundle.pipeline.predict_proba(X)[:, 1]
    except LearningError as exc:
        raise BundleError(f"the model cannot be applied to these patients: {exc}") from exc
    ood = OODDetector.from_summary(bundle.manifest["training"]["summary"]).flags(X)
    sets = bundle.conformal.predict(X) if bundle.conformal is not None else None
    explanations = _explanations(bundle, X, top) if explain else [[] for _ in range(len(X))]
    out = []
    for i, (pid, p) in enumerate(zip(X.index, proba, strict=True)):
        reasons = ood[i]
        label = int(p >= bundle.threshold)
        if sets is not None:
            prediction_set = [_plain(v) for v in sets["prediction_set"].iloc[i]]
            decision = str(sets["decision"].iloc[i])
        else:
            prediction_set, decision = [], ("positive" if label else "negative")
        if reasons:
            decision = "abstain"
        out.append(
            Prediction(
                patient_id=str(pid),
                probability=float(p),
                label=label,
                threshold=bundle.threshold,
                out_of_distribution=bool(reasons),
                ood_reasons=reasons,
                abstain=decision == "abstain",
                contributions=[(e["feature"], e["contribution"]) for e in explanations[i]],
                prediction_set=prediction_set,
                decision=decision,
                coverage=bundle.conformal.coverage if bundle.conformal is not None else None,
                explanation=explanations[i],
            )
        )
    return out


def _study_for(bundle: ModelBundle, dicom_dir: Path, output_dir: Path) -> StudyConfig:
    settings = bundle.manifest["settings"]
    return StudyConfig.model_validate(
        {
            "name": f"prediction with {bundle.manifest['study']}",
            "input": {"dicom_dir": str(dicom_dir)},
            "output_dir": str(output_dir),
            "suv": settings["suv"],
            "segmentation": settings["segmentation"],
            "features": settings["features"],
            "model": None,
        }
    )


def predict_patient(
    bundle: ModelBundle,
    patient_dir: str | Path,
    *,
    clinical: Mapping[str, Any] | None = None,
    work_dir: str | Path | None = None,
    results_dir: str | Path | None = None,
) -> Prediction:
    """Predict one new patient from DICOM with the bundle's own settings.

    The SUV image, lesion masks and features are made exactly as ``smartimaging run`` makes them
    (:func:`smartimaging.study.patient.suv_and_masks` and
    :func:`~smartimaging.study.patient.patient_features`).

    Parameters
    ----------
    bundle : ModelBundle
        The model.
    patient_dir : path
        Folder with the patient's DICOM (PET, and RTSTRUCT/SEG if the bundle's segmentation needs a
        contour).
    clinical : mapping, optional
        The clinical variables the model needs (``bundle.manifest['clinical_columns']``).
    work_dir : path, optional
        Where the patient's tidy feature table is written (``features.csv``); default: not written.
    results_dir : path, optional
        Where to write the results for the clinic: a DICOM SEG of the lesions and a TID 1500 SR
        with their SUVmax, SUVpeak, MTV, TLG and the model's output
        (:func:`smartimaging.study.results_dicom.write_patient_results`; file names from
        :func:`~smartimaging.study.results_dicom.result_paths`).

    Raises
    ------
    BundleError
        If the folder holds no patient or several, processing fails (the stage and reason are given),
        or a clinical variable is missing.
    """
    from smartimaging.io.dicom import discover
    from smartimaging.study.patient import patient_features, suv_and_masks, tasks_from_series
    from smartimaging.study.runner import wide_table

    patient_dir = Path(patient_dir)
    config = _study_for(bundle, patient_dir, Path(work_dir) if work_dir is not None else patient_dir)
    tasks = tasks_from_series(discover(patient_dir, progress=False).series, config, {})
    if len(tasks) != 1:
        raise BundleError(f"{patient_dir} holds {len(tasks)} patients; predict takes one patient's folder")
    task = tasks[0]
    stage = ["reading"]
    try:
        images = suv_and_masks(task, on_stage=lambda name: stage.__setitem__(0, name))
        stage[0] = "features"
        tidy = patient_features(task, images)
    except SmartImagingError as exc:
        raise BundleError(f"processing {patient_dir} failed at {stage[0]}: {exc}") from exc
    if work_dir is not None:
        with atomic_path(Path(work_dir) / "features.csv") as tmp:
            tidy.to_csv(tmp, index=False)
    wide = wide_table(tidy)
    needed = bundle.manifest["clinical_columns"]
    values = dict(clinical or {})
    lacking = [c for c in needed if c not in values]
    if lacking:
        raise BundleError(
            f"the model needs the clinical variable(s) {lacking}; give them (e.g. --clinical {lacking[0]}=...)"
        )
    for column in needed:
        wide[column] = values[column]
    qc = None
    harmonisation = bundle.manifest.get("harmonisation")
    if harmonisation is not None and harmonisation.get("qc_keys"):
        from smartimaging.io.qc import cohort_qc

        qc = cohort_qc(task.series)  # the batch (scanner, reconstruction) from the patient's own headers
    prediction = predict_features(bundle, wide, qc=qc)[0]
    if results_dir is not None:
        from smartimaging.study.results_dicom import model_prediction, write_patient_results

        if images.pet is None:
            raise BundleError(f"{patient_dir}: no PET DICOM series to reference in the SEG and SR")
        model = bundle.manifest["model"]
        method = config.segmentation.method
        if images.source != "threshold":  # a copied contour (rtstruct, seg) or whole_body detection
            algorithm = images.source
        else:
            algorithm = method.name if method is not None else "relative"
        write_patient_results(
            images.pet,
            images.suv,
            images.masks,
            tidy,
            model_prediction(prediction, model=f"{model['name']} {model['kind']}", target=model["target"]),
            results_dir,
            suv_kind=config.suv.type,
            method=algorithm,
            patient_id=task.patient_id,
        )
    return prediction


@dataclass(frozen=True)
class ExternalValidation:
    """Result of :func:`validate_bundle`."""

    predictions: pd.DataFrame
    auc: float
    auc_ci: tuple[float, float]
    sensitivity: float
    specificity: float
    brier: float
    n_patients: int
    n_events: int
    n_out_of_distribution: int
    files: dict[str, Path]
    set_coverage: float | None = None
    n_abstain: int = 0


def validate_bundle(bundle: ModelBundle, config: StudyConfig, *, quiet: bool = True) -> ExternalValidation:
    """External validation of a bundle on another site's study; writes predictions and a report.

    The study's SUV, segmentation and extraction settings must equal the bundle's (the features would
    otherwise mean something else); its ``model`` section names the target column of its clinical
    table. The features are extracted with the study runner (cached, parallel), then the bundle
    predicts every patient.

    Raises
    ------
    ConfigError
        If the study's feature settings differ from the bundle's (each difference is named), or the
        study has no clinical table or target.
    """
    from smartimaging.study.runner import read_clinical, run_study

    differences = _differences(bundle.manifest["settings"], feature_settings(config))
    if differences:
        raise ConfigError(
            "the study's feature settings differ from the bundle's, so its features would not be those the "
            "model was trained on; use the bundle's settings (smartimaging export wrote them in the manifest): "
            + "; ".join(differences[:6])
        )
    if config.model is None or config.input.clinical is None:
        raise ConfigError(
            "external validation needs input.clinical and model.target (the outcome at this site)"
        )
    target = config.model.target
    if target != bundle.manifest["model"]["target"]:
        raise ConfigError(
            f"model.target {target!r} differs from the bundle's {bundle.manifest['model']['target']!r}"
        )
    extraction = config.model_copy(update={"model": None})
    summary = run_study(extraction, quiet=quiet)
    out = config.output_dir
    clinical = read_clinical(config)
    assert clinical is not None
    wide = pd.read_csv(out / "features_wide.csv", index_col=0)
    wide.index = wide.index.astype(str)
    # image features win over a clinical column of the same name (no suffixes: deprecated in pandas 3)
    table = wide.join(clinical.drop(columns=[c for c in clinical.columns if c in wide.columns]), how="inner")
    table = table[pd.to_numeric(table[target], errors="coerce").notna()]
    if table.empty:
        raise LearningError(f"no patient has both features and {target!r}")
    qc_path = out / "qc.csv"
    qc = pd.read_csv(qc_path, dtype={"PatientID": str}) if qc_path.is_file() else None
    predictions = predict_features(bundle, table, explain=False, qc=qc)
    frame = pd.DataFrame([p.to_dict() for p in predictions]).set_index("patient_id")
    frame = frame.drop(columns=["contributions", "explanation"])
    frame["y_true"] = pd.to_numeric(table[target]).astype(int).to_numpy()
    y = frame["y_true"].to_numpy(int)
    score = frame["probability"].to_numpy(float)
    if len(np.unique(y)) < 2:
        raise LearningError(f"external validation needs both outcomes; {target!r} has only {np.unique(y)}")
    auc = roc_auc(y, score)
    ci = bootstrap_auc_ci(y, score, random_state=config.seed)
    label = frame["label"].to_numpy(int)
    sensitivity = float(label[y == 1].mean())
    specificity = float(1 - label[y == 0].mean())
    brier = float(np.mean((score - y) ** 2))
    files = {"predictions": out / "external_predictions.csv"}
    with atomic_path(files["predictions"]) as tmp:
        frame.to_csv(tmp)
    fpr, tpr = roc_curve_points(y, score)
    n_ood = int(frame["out_of_distribution"].sum())
    n_abstain = int(frame["abstain"].sum())
    set_coverage = None
    notes_conformal = []
    if bundle.conformal is not None:
        set_coverage = float(np.mean([t in s for t, s in zip(y, frame["prediction_set"], strict=True)]))
        notes_conformal.append(
            f"Conformal prediction sets (stated coverage {bundle.conformal.coverage:.0%}) hold the true outcome "
            f"for {set_coverage:.1%} of the patients here; the bundle abstains for {n_abstain} of {len(frame)} "
            "(ambiguous set or out of distribution)."
        )
    data = ReportData(
        title=f"External validation of {bundle.manifest['study']} ({bundle.manifest['model']['name']}) on {config.name}",
        summary={
            "study": config.name,
            "n_patients": len(frame),
            "n_failed": summary.n_failed,
            "target": target,
            "seed": config.seed,
        },
        models=[
            {
                "name": f"{bundle.manifest['model']['name']} (external)",
                "auc": auc,
                "auc_ci": ci,
                "n_patients": len(frame),
                "n_events": int(y.sum()),
                "roc": (fpr, tpr),
                "ci_method": "percentile bootstrap of patients, stratified by outcome (2,000 resamples)",
            }
        ],
        features=wide,
        failures=[
            tuple(r) for r in summary.failures[["patient_id", "stage", "reason"]].itertuples(index=False)
        ],
        provenance={
            "bundle": bundle.manifest["created_with"],
            "bundle_settings_sha256": bundle.manifest["settings_sha256"],
        },
        notes=[
            f"Threshold {bundle.threshold:.3f} fixed on the training cohort: sensitivity {sensitivity:.3f}, "
            f"specificity {specificity:.3f}; Brier score {brier:.3f}.",
            f"{n_ood} of {len(frame)} patients lie outside the training distribution (the bundle abstains for them).",
            *notes_conformal,
            f"Training cohort: {bundle.manifest['training']['n_patients']} patients, "
            f"cross-validated AUC {bundle.manifest['training']['cross_validation'].get('auc', float('nan')):.3f}.",
        ],
    )
    files["report"] = write_text(out / "external_validation.html", render_report(data))
    return ExternalValidation(
        predictions=frame,
        auc=float(auc),
        auc_ci=(float(ci[0]), float(ci[1])),
        sensitivity=sensitivity,
        specificity=specificity,
        brier=brier,
        n_patients=len(frame),
        n_events=int(y.sum()),
        n_out_of_distribution=n_ood,
        files=files,
        set_coverage=set_coverage,
        n_abstain=n_abstain,
    )
