"""A reporting checklist filled from what a study run actually did.

Radiomics papers are asked to follow TRIPOD+AI (Collins et al., BMJ 2024) for prediction models and
CLEAR (Kocak et al., Insights Imaging 2023) for radiomics. Many of their items are about the clinical
question, the cohort and the interpretation, which only the authors can report. The items below are
those the software can attest to: each is marked ``yes``, ``no`` or ``n/a`` from the run's own
configuration and results (never from defaults it did not use), with a one-line "how".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from smartimaging import __version__
from smartimaging.features.settings import ExtractionSettings
from smartimaging.study.config import StudyConfig

if TYPE_CHECKING:
    from smartimaging.study.runner import RunSummary

__all__ = ["run_checklist"]

Item = tuple[str, str, str]


def _mask_sources(patient_info: Mapping[str, Mapping[str, Any]]) -> str:
    counts = pd.Series([i.get("mask_source", "") for i in patient_info.values() if i]).value_counts()
    return ", ".join(f"{k or 'none'}: {v}" for k, v in counts.items())


def _processing(config: StudyConfig) -> str:
    settings = ExtractionSettings.model_validate(config.features)
    dumped = settings.model_dump(mode="json", exclude_defaults=False)
    if dumped["discretisation"] == "fixed_bin_size":
        bins = f"fixed bin size {dumped['bin_width']} (lower bound {dumped['bin_lower_bound']})"
    else:
        bins = f"fixed bin number {dumped['n_bins']}"
    families = ", ".join(dumped["families"]) if dumped["families"] else "every IBSI 1 family"
    return (
        f"discretisation: {bins}; re-segmentation range {dumped['resegmentation_range']}; "
        f"aggregation {', '.join(dumped['aggregation'])}; families: {families}; no resampling of the PET grid"
    )


def run_checklist(
    config: StudyConfig,
    summary: RunSummary,
    *,
    wide: pd.DataFrame,
    patient_info: Mapping[str, Mapping[str, Any]],
    qc: pd.DataFrame | None = None,
) -> list[Item]:
    """Checklist items (item, status, detail) for the report of one run.

    Parameters
    ----------
    config : StudyConfig
        The study settings the run used.
    summary : RunSummary
        The run's counts, failures and model results.
    wide : DataFrame
        The modelled feature table (one row per patient).
    patient_info : mapping
        Per-patient processing facts (mask source, ...) from the run.
    qc : DataFrame, optional
        The acquisition QC table.

    Returns
    -------
    list of tuple
        ``(item, status, detail)`` with status ``"yes"``, ``"no"`` or ``"n/a"``.
    """
    items: list[Item] = []
    n_qc = 0 if qc is None else len(qc)
    items.append(
        (
            "Image acquisition and reconstruction parameters reported (CLEAR 13; TRIPOD+AI 9)",
            "yes" if n_qc else "no",
            f"acquisition QC table of {n_qc} series (uptake time, dose/kg, scanner, reconstruction)"
            if n_qc
            else "no DICOM headers (NIfTI input): report the acquisition yourself",
        )
    )
    items.append(
        (
            "Segmentation method stated (CLEAR 16-18)",
            "yes",
            f"mask sources per patient: {_mask_sources(patient_info) or 'none'}; "
            f"ROI pattern {config.segmentation.roi!r}",
        )
    )
    items.append(("Image processing and discretisation stated (CLEAR 19-21)", "yes", _processing(config)))
    items.append(
        (
            "Feature extraction software, version and IBSI compliance (CLEAR 22-24)",
            "yes",
            f"smartimaging {__version__}; IBSI 1 feature definitions and names, reference values of the "
            "IBSI digital and CT phantoms reproduced in the package's test suite",
        )
    )
    items.append(
        (
            "Reproducibility: seed, settings and inputs recorded (CLEAR 55-58)",
            "yes",
            f"seed {config.seed}; configuration hash and per-patient input SHA-256 in provenance.json",
        )
    )
    items.append(
        (
            "Patients excluded by processing failures reported (TRIPOD+AI 20)",
            "yes",
            f"{summary.n_failed} of {summary.n_patients} patient(s) failed; reasons in the Failures section",
        )
    )
    model = config.model
    models = summary.models
    if model is None or models is None:
        items.append(
            ("Prediction model developed and validated", "n/a", "feature extraction only (model: null)")
        )
        return items
    n = models.n_patients
    y = models.table
    events = int(y["n_events"].max()) if "n_events" in y.columns and len(y) else 0
    if not events and models.survival:
        events = max(int(r.summary["n_events"]) for r in models.survival.values())
    n_features = int(wide.shape[1])
    items.append(
        (
            "Sample size and events per candidate predictor (TRIPOD+AI 9, 12)",
            "yes",
            f"{n} patients, {events} events, {n_features} candidate image features "
            f"({events / max(n_features, 1):.2f} events per feature)",
        )
    )
    steps = ["imputation", "scaling"]
    if models.harmonisation:
        steps.insert(0, "ComBat harmonisation")
    if models.selection:
        steps.append("feature selection")
    if model.validation == "nested_cv":
        steps.append("hyper-parameter tuning")
    steps += ["the operating threshold", "the model"]
    items.append(
        (
            "No information leakage: every fitted step inside the training folds (CLEAR 33; TRIPOD+AI 12)",
            "yes",
            ", ".join(steps) + " are refitted in each training set of the validation",
        )
    )
    items.append(
        (
            "Harmonisation of multi-centre features (CLEAR 27)",
            "yes" if models.harmonisation else "no",
            models.harmonisation or "features are not harmonised across sites or scanners in this run",
        )
    )
    items.append(
        (
            "Feature selection / dimensionality reduction described (CLEAR 30-31)",
            "yes" if models.selection else "no",
            "inside every training fold: " + " -> ".join(models.selection)
            if models.selection
            else "all image features enter the penalised model (no separate selection step)",
        )
    )
    items.append(("Internal validation with resampling (TRIPOD+AI 12, 23)", "yes", models.validation))
    compared = len(models.models) + len(models.survival)
    items.append(
        (
            "Discrimination with confidence intervals (TRIPOD+AI 23)",
            "yes",
            f"{compared} model(s): AUC with bootstrap and DeLong 95 % intervals, pairwise DeLong tests"
            if models.models
            else f"{compared} survival model(s): Harrell and Uno C with bootstrap 95 % intervals",
        )
    )
    calibrated = [m for m in models.models.values() if m.summary.get("calibration_slope") is not None]
    items.append(
        (
            "Calibration assessed (TRIPOD+AI 23)",
            "yes" if calibrated else "no",
            f"calibration curve, slope/intercept, Brier score and Hosmer-Lemeshow test for {len(calibrated)} model(s)"
            if calibrated
            else "no probability model was validated in this run",
        )
    )
    items.append(
        (
            "Clinical utility: decision-curve analysis (TRIPOD+AI 23)",
            "yes" if models.models else "no",
            "net benefit against treat-all and treat-none for every model"
            if models.models
            else "no binary-outcome model in this run",
        )
    )
    n_ext = (
        0
        if models.external_table is None or models.external_table.empty
        else int(models.external_table["n_patients"].max())
    )
    items.append(
        (
            "External validation (TRIPOD+AI 23; CLEAR 40)",
            "yes" if n_ext else "no",
            f"every model refitted on the development cohort and applied unchanged to {n_ext} external patients"
            if n_ext
            else "single cohort",
        )
    )
    has_clinical = any(m.feature_set == "clinical" for m in models.models.values()) or any(
        r.feature_set == "clinical" for r in models.survival.values()
    )
    items.append(
        (
            "Comparison with a clinical-only model (CLEAR 37)",
            "yes" if has_clinical else "no",
            f"clinical model on {', '.join(model.clinical_columns)}; every model compared on the same folds"
            + (" (DeLong p vs clinical in the comparison table)" if models.models else "")
            if has_clinical
            else "no clinical-only model (model.clinical_columns / feature_sets)",
        )
    )
    n_perm = len(models.permutation_aucs)
    items.append(
        (
            "Chance level checked (label permutation)",
            "yes" if n_perm else "no",
            f"primary model refitted on {n_perm} label shufflings" if n_perm else "model.n_permutations is 0",
        )
    )
    final = models.final
    explained = final is not None and (final.shap is not None or final.importance is not None)
    parts = []
    if final is not None and final.shap is not None:
        parts.append("SHAP values")
    if final is not None and final.importance is not None:
        parts.append("permutation importance with IBSI names")
    if final is not None and final.nomogram is not None:
        parts.append(f"nomogram of {final.nomogram_model}")
    items.append(
        (
            "Model explanation (TRIPOD+AI 14; CLEAR 49)",
            "yes" if explained else "no",
            f"final model {final.name}: " + ", ".join(parts)
            if explained and final is not None
            else "no feature attribution in this run",
        )
    )
    return items
