"""A portable model bundle: one file another hospital can use to predict and to validate, without data.

A bundle is a ZIP file holding

* ``manifest.json``: the bundle format, when and by which versions it was made, the study's
  processing settings that define the features (SUV, segmentation, extraction) and their hash, the
  model's name, kind, target, input columns and operating threshold, the cross-validated performance
  on the training cohort, and a **training-data summary** for out-of-distribution checks: per input
  feature the mean, SD, minimum and maximum, and a principal-component model of the standardised
  features with the 99th percentile of the training patients' Mahalanobis distances. No patient's
  data is stored: only these summaries of the whole cohort.
* ``pipeline.pkl``: the fitted scikit-learn pipeline (imputation, scaling, the model), pickled; its
  SHA-256 is in the manifest and checked on loading, so that a damaged file is refused. As with any
  pickle, load only bundles from a source you trust.

:func:`predict_patient` runs the whole chain on one patient's DICOM folder with the bundle's own
settings and returns the probability, the decision at the training-derived threshold, an
out-of-distribution flag with its reasons, an explicit abstention when the patient lies outside
the training distribution, and the features that drove the prediction (for linear models, each
feature's contribution to the log-odds). :func:`validate_bundle` runs external validation of a
bundle on another site's study and refuses features extracted with other settings.
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
from sklearn.pipeline import Pipeline

from smartimaging import __version__, versions
from smartimaging.atomic import atomic_path, write_text
from smartimaging.exceptions import ConfigError, LearningError, SmartImagingError
from smartimaging.features.settings import ExtractionSettings
from smartimaging.learn.clinical_metrics import choose_threshold
from smartimaging.learn.metrics import bootstrap_auc_ci, roc_auc, roc_curve_points
from smartimaging.learn.models import build_feature_sets, make_classifier
from smartimaging.learn.validate import CVResult
from smartimaging.report.html import ReportData, render_report
from smartimaging.study.config import StudyConfig

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

_RANGE_MARGIN = 0.10  # a feature is out of range beyond min/max widened by 10 % of the training range
_MAX_OUT_OF_RANGE = 0.10  # OOD when more than this fraction of the features is out of range
_PCA_VARIANCE = 0.95


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
    """

    manifest: dict[str, Any]
    pipeline: Pipeline

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
        Predicted probability of the target (class 1).
    label : int
        1 when ``probability >= threshold``.
    threshold : float
        The bundle's decision threshold (fixed on the training cohort).
    out_of_distribution : bool
        The patient's features lie outside the training distribution (reasons in ``ood_reasons``).
    ood_reasons : list of str
        Why the patient was flagged (Mahalanobis distance, features out of range).
    abstain : bool
        The bundle declines to decide: True when out of distribution. The probability is still
        given, for information only.
    contributions : list of (str, float)
        For linear models, the largest contributions of single features to the log-odds (feature,
        contribution), largest magnitude first; empty otherwise.
    """

    patient_id: str
    probability: float
    label: int
    threshold: float
    out_of_distribution: bool
    ood_reasons: list[str]
    abstain: bool
    contributions: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form."""
        return {
            "patient_id": self.patient_id,
            "probability": self.probability,
            "label": self.label,
            "threshold": self.threshold,
            "out_of_distribution": self.out_of_distribution,
            "ood_reasons": list(self.ood_reasons),
            "abstain": self.abstain,
            "contributions": [[name, value] for name, value in self.contributions],
        }


def _training_summary(numeric: pd.DataFrame) -> dict[str, Any]:
    values = numeric.to_numpy(dtype=float)
    mean = np.nanmean(values, axis=0)
    sd = np.nanstd(values, axis=0, ddof=1)
    sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
    z = np.nan_to_num((values - mean) / sd)
    _, s, vt = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
    var = s**2 / max(len(z) - 1, 1)
    keep = int(np.searchsorted(np.cumsum(var) / max(var.sum(), 1e-12), _PCA_VARIANCE) + 1)
    keep = max(1, min(keep, len(z) - 1, vt.shape[0]))
    comp, comp_sd = vt[:keep], np.sqrt(np.maximum(var[:keep], 1e-12))
    d2 = (((z @ comp.T) / comp_sd) ** 2).sum(axis=1)
    return {
        "columns": list(numeric.columns),
        "mean": mean.tolist(),
        "sd": sd.tolist(),
        "min": np.nanmin(values, axis=0).tolist(),
        "max": np.nanmax(values, axis=0).tolist(),
        "components": comp.tolist(),
        "component_sd": comp_sd.tolist(),
        "mahalanobis_p99": float(np.quantile(d2, 0.99)),
        "n_patients": len(numeric),
    }


def fit_bundle(
    config: StudyConfig,
    wide: pd.DataFrame,
    clinical: pd.DataFrame,
    *,
    model: str | None = None,
    cv: Sequence[CVResult] = (),
) -> ModelBundle:
    """Fit the final model on the whole training cohort and package it.

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

    Returns
    -------
    ModelBundle

    Raises
    ------
    BundleError
        If the study has no model section or ``model`` is not a feature set of the study.
    """
    if config.model is None:
        raise BundleError("the study has no model section (model: null); there is no model to export")
    spec = config.model
    name = model or ("combined" if spec.clinical_columns else "radiomics")
    sets = build_feature_sets(
        wide.select_dtypes(include=[np.number]),
        clinical,
        clinical_columns=spec.clinical_columns,
        target=spec.target,
    )
    if name not in sets or (name != "radiomics" and not spec.clinical_columns):
        valid = ["radiomics"] + (["clinical", "combined"] if spec.clinical_columns else [])
        raise BundleError(f"model {name!r} is not a feature set of this study; valid: {valid}")
    X = sets[name]
    y = pd.to_numeric(clinical.loc[X.index, spec.target]).astype(int)
    pipeline = make_classifier(spec.kind, random_state=config.seed).fit(X, y)
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
        "clinical_columns": [c for c in X.columns if c not in wide.columns],
        "categorical_levels": categorical,
        "threshold": threshold,
        "training": {
            "n_patients": len(X),
            "n_events": int(y.sum()),
            "cross_validation": performance,
            "summary": _training_summary(numeric),
        },
    }
    return ModelBundle(manifest, pipeline)


def save_bundle(bundle: ModelBundle, path: str | Path) -> Path:
    """Write the bundle as one ZIP file (atomically)."""
    payload = pickle.dumps(bundle.pipeline, protocol=pickle.HIGHEST_PROTOCOL)
    manifest = dict(bundle.manifest, pipeline_sha256=hashlib.sha256(payload).hexdigest())
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
        zf.writestr("pipeline.pkl", payload)
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
    pipeline = pickle.loads(payload)  # integrity checked above; load only bundles from a trusted source
    return ModelBundle(manifest, pipeline)


def _ood(bundle: ModelBundle, row: pd.Series) -> list[str]:
    summary = bundle.manifest["training"]["summary"]
    columns = summary["columns"]
    if not columns:
        return []
    x = row.reindex(columns).to_numpy(dtype=float)
    lo, hi = np.asarray(summary["min"]), np.asarray(summary["max"])
    margin = _RANGE_MARGIN * (hi - lo)
    outside = np.isfinite(x) & ((x < lo - margin) | (x > hi + margin))
    reasons = []
    if outside.mean() > _MAX_OUT_OF_RANGE:
        names = [c for c, o in zip(columns, outside, strict=True) if o]
        reasons.append(
            f"{int(outside.sum())} of {len(columns)} features outside the training range "
            f"(e.g. {', '.join(names[:3])})"
        )
    z = np.nan_to_num((x - np.asarray(summary["mean"])) / np.asarray(summary["sd"]))
    scores = (np.asarray(summary["components"]) @ z) / np.asarray(summary["component_sd"])
    d2 = float((scores**2).sum())
    if d2 > summary["mahalanobis_p99"]:
        reasons.append(
            f"Mahalanobis distance² {d2:.1f} beyond the 99th percentile of the training patients "
            f"({summary['mahalanobis_p99']:.1f})"
        )
    return reasons


def _contributions(bundle: ModelBundle, X: pd.DataFrame, top: int = 5) -> list[list[tuple[str, float]]]:
    model = bundle.pipeline.steps[-1][1]
    coef = getattr(model, "coef_", None)
    if coef is None:
        return [[] for _ in range(len(X))]
    transformed = np.asarray(bundle.pipeline[:-1].transform(X), dtype=float)
    try:
        names = [str(n) for n in bundle.pipeline[:-1].get_feature_names_out()]
    except (AttributeError, ValueError):
        names = [f"x{i}" for i in range(transformed.shape[1])]
    names = [n.split("__", 1)[-1] for n in names]
    parts = transformed * np.asarray(coef)[0]
    out = []
    for row in parts:
        order = np.argsort(-np.abs(row), kind="stable")[:top]
        out.append([(names[i], float(row[i])) for i in order])
    return out


def predict_features(bundle: ModelBundle, features: pd.DataFrame) -> list[Prediction]:
    """Predictions for patients whose image features (and clinical variables) are already in a table.

    Parameters
    ----------
    bundle : ModelBundle
        The model.
    features : DataFrame
        One row per patient (index: patient ID) holding every column of ``bundle.columns``.

    Raises
    ------
    BundleError
        If columns the model needs are missing (they are listed).
    """
    missing = [c for c in bundle.columns if c not in features.columns]
    if missing:
        raise BundleError(
            f"the model needs {len(missing)} column(s) the table lacks: {missing[:8]}"
            + (" ..." if len(missing) > 8 else "")
            + "; clinical variables come from the clinical table (or --clinical KEY=VALUE)"
        )
    X = features[bundle.columns]
    proba = bundle.pipeline.predict_proba(X)[:, 1]
    contributions = _contributions(bundle, X)
    out = []
    for (pid, row), p, contrib in zip(X.iterrows(), proba, contributions, strict=True):
        reasons = _ood(bundle, row)
        out.append(
            Prediction(
                patient_id=str(pid),
                probability=float(p),
                label=int(p >= bundle.threshold),
                threshold=bundle.threshold,
                out_of_distribution=bool(reasons),
                ood_reasons=reasons,
                abstain=bool(reasons),
                contributions=contrib,
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
    prediction = predict_features(bundle, wide)[0]
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
    predictions = predict_features(bundle, table)
    frame = pd.DataFrame([p.to_dict() for p in predictions]).set_index("patient_id")
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
    )
