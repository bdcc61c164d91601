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
    n_features = int(wide.shape[1])
    items.append(
        (
            "Sample size and events per candidate predictor (TRIPOD+AI 9, 12)",
            "yes",
            f"{n} patients, {events} events, {n_features} candidate image features "
            f"({events / max(n_features, 1):.2f} events per feature)",
        )
    )
    items.append(
        (
            "No information leakage: every fitted step inside the training folds (CLEAR 33; TRIPOD+AI 12)",
            "yes",
            "imputation, scaling and the model are refitted in each training fold of the cross-validation",
        )
    )
    items.append(
        (
            "Harmonisation of multi-centre features (CLEAR 27)",
            "no",
            "features are not harmonised across sites or scanners in this run",
        )
    )
    items.append(
        (
            "Feature selection / dimensionality reduction described (CLEAR 30-31)",
            "no",
            "all image features enter the penalised model (no separate selection step)",
        )
    )
    items.append(
        (
            "Internal validation with resampling (TRIPOD+AI 12, 23)",
            "yes",
            f"repeated stratified {model.n_splits}-fold cross-validation x {model.n_repeats} repeats",
        )
    )
    items.append(
        (
            "Discrimination with confidence intervals (TRIPOD+AI 23)",
            "yes",
            "cross-validated AUC with 95 % bootstrap confidence intervals per model",
        )
    )
    items.append(("Calibration assessed (TRIPOD+AI 23)", "no", "not computed in this run"))
    items.append(("External validation (TRIPOD+AI 23; CLEAR 40)", "no", "single cohort"))
    items.append(
        (
            "Comparison with a clinical-only model (CLEAR 37)",
            "yes" if model.clinical_columns else "no",
            f"clinical model on {', '.join(model.clinical_columns)}; combined model compared on the same folds"
            if model.clinical_columns
            else "no clinical variables given (model.clinical_columns)",
        )
    )
    n_perm = len(models.permutation_aucs)
    items.append(
        (
            "Chance level checked (label permutation)",
            "yes" if n_perm else "no",
            f"radiomics model refitted on {n_perm} label shufflings"
            if n_perm
            else "model.n_permutations is 0",
        )
    )
    items.append(("Model explanation (TRIPOD+AI 14; CLEAR 49)", "no", "no feature attribution in this run"))
    return items
