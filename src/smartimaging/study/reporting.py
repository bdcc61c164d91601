"""Assemble the study report from a run's results (the glue between study and report)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from smartimaging import versions
from smartimaging.report.html import ReportData, cohort_table, render_report
from smartimaging.report.plots import ReportError, correlation_heatmap_png, feature_distributions_png
from smartimaging.study.checklist import run_checklist
from smartimaging.study.config import StudyConfig, config_hash

if TYPE_CHECKING:
    from smartimaging.study.runner import RunSummary

__all__ = ["build_report"]


def _notes(summary: RunSummary, patient_info: Mapping[str, Mapping[str, Any]]) -> list[str]:
    notes = []
    sources = pd.Series([i.get("mask_source", "") for i in patient_info.values() if i]).value_counts()
    if not sources.empty:
        notes.append(
            "Lesion masks by source: "
            + ", ".join(f"{k or 'none'}: {v} patients" for k, v in sources.items())
            + "."
        )
    models = summary.models
    if models is not None and models.permutation_aucs:
        perm = np.asarray(models.permutation_aucs)
        notes.append(
            f"Chance level: the radiomics model refitted on {perm.size} random shufflings of "
            f"'{models.target}' reached a cross-validated AUC of {perm.mean():.3f} on average "
            f"(SD {perm.std(ddof=1) if perm.size > 1 else 0.0:.3f}, max {perm.max():.3f}). "
            "An AUC inside that range is not evidence of a signal."
        )
    notes.append(
        "All models are fitted inside the training folds only (imputation, scaling, the model); the "
        "clinical, radiomics and combined models are compared on identical folds."
    )
    return notes


def build_report(
    config: StudyConfig,
    summary: RunSummary,
    *,
    wide: pd.DataFrame,
    clinical: pd.DataFrame | None,
    patient_info: Mapping[str, Mapping[str, Any]],
    started: str,
    qc: pd.DataFrame | None = None,
    qc_summary: pd.DataFrame | None = None,
) -> str:
    """Render the HTML report of a study run (see :mod:`smartimaging.report.html`).

    ``qc`` and ``qc_summary`` are the acquisition QC tables (:func:`smartimaging.io.qc.cohort_qc`,
    :func:`smartimaging.io.qc.qc_summary`); None shows the section as not available.
    """
    target = config.model.target if config.model is not None else None
    cohort = None
    feature_images: dict[str, bytes] = {}
    if clinical is not None:
        imaged = clinical.loc[clinical.index.intersection(wide.index)] if not wide.empty else clinical
        by = target if target in imaged.columns else None
        cohort = cohort_table(imaged, by=by) if len(imaged) else None
        if by is not None and not wide.empty:
            labels = pd.to_numeric(imaged[by], errors="coerce").dropna()
            numeric = wide.loc[labels.index].select_dtypes(include=[np.number])
            if numeric.shape[1] and labels.nunique() == 2:
                feature_images["Image features by outcome (top univariate AUC)"] = feature_distributions_png(
                    numeric, labels.astype(int), random_state=config.seed
                )
    if not wide.empty:
        try:
            feature_images[
                "Absolute Spearman correlation between features, clustered (blocks = redundant features)"
            ] = correlation_heatmap_png(wide)
        except ReportError:
            pass  # fewer than two usable features or three patients: nothing to show
    data = ReportData(
        title=f"smartimaging report: {config.name}",
        created=started,
        summary={
            "study": config.name,
            "n_patients": summary.n_patients,
            "n_succeeded": summary.n_ok,
            "n_failed": summary.n_failed,
            "n_from_cache": summary.n_cached,
            "target": target or "(no model)",
            "seed": config.seed,
            "run_seconds": round(summary.seconds, 1),
        },
        cohort=cohort,
        models=summary.models.results if summary.models is not None else (),
        features=wide if not wide.empty else None,
        feature_stats=wide.describe().T if not wide.empty else None,
        feature_images=feature_images,
        failures=[
            tuple(r) for r in summary.failures[["patient_id", "stage", "reason"]].itertuples(index=False)
        ],
        provenance={"config_sha256": config_hash(config), "versions": versions()},
        notes=_notes(summary, patient_info),
        qc=qc,
        qc_summary=qc_summary,
        segmentations={
            pid: "data:image/png;base64," + info["thumbnail_png_b64"]
            for pid, info in sorted(patient_info.items())
            if info and info.get("thumbnail_png_b64")
        },
        checklist=run_checklist(config, summary, wide=wide, patient_info=patient_info, qc=qc),
    )
    return render_report(data)
