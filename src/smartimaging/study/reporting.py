"""Assemble the study report from a run's results (the glue between study and report)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from smartimaging import versions
from smartimaging.report.html import ReportData, cohort_table, render_report
from smartimaging.report.plots import (
    ReportError,
    calibration_curves_png,
    correlation_heatmap_png,
    decision_curves_png,
    feature_distributions_png,
    kaplan_meier_png,
    shap_summary_png,
)
from smartimaging.study.checklist import run_checklist
from smartimaging.study.config import StudyConfig, config_hash
from smartimaging.study.modelling import CohortModels

if TYPE_CHECKING:
    from smartimaging.study.runner import RunSummary

__all__ = ["build_report", "model_sections"]

_COMPARISON_COLUMNS = {
    "n_patients": "patients",
    "n_events": "events",
    "n_features": "features",
    "auc": "AUC",
    "auc_ci_low": "CI low (bootstrap)",
    "auc_ci_high": "CI high (bootstrap)",
    "auc_delong_ci_low": "CI low (DeLong)",
    "auc_delong_ci_high": "CI high (DeLong)",
    "p_vs_best": "p vs best",
    "p_vs_clinical": "p vs clinical",
    "threshold": "threshold",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "ppv": "PPV",
    "npv": "NPV",
    "brier": "Brier",
    "calibration_slope": "cal. slope",
    "calibration_intercept": "cal. intercept",
    "hosmer_lemeshow_p": "HL p",
}
_SURVIVAL_COLUMNS = {
    "n_patients": "patients",
    "n_events": "events",
    "harrell_c": "Harrell C",
    "harrell_c_ci_low": "CI low",
    "harrell_c_ci_high": "CI high",
    "uno_c": "Uno C",
    "uno_c_ci_low": "Uno CI low",
    "uno_c_ci_high": "Uno CI high",
    "mean_td_auc": "mean td-AUC",
    "ibs": "IBS",
    "logrank_p": "log-rank p",
}
#: Models drawn in the calibration / decision / Kaplan-Meier figures (the best ones, to stay legible).
MAX_CURVES = 4


def _renamed(table: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    extra = [c for c in table.columns if c.startswith("td_auc_t")]
    keep = [c for c in columns if c in table.columns] + extra
    out = table.set_index("model")[keep].rename(
        columns={**columns, **{c: c.replace("td_auc_t", "td-AUC t=") for c in extra}}
    )
    out.index.name = "model"
    return out


def model_sections(models: CohortModels | None) -> dict[str, Any]:
    """The model parts of :class:`~smartimaging.report.html.ReportData` from a model stage.

    Parameters
    ----------
    models : CohortModels or None
        From :func:`smartimaging.study.modelling.fit_cohort_models`; None gives empty sections.

    Returns
    -------
    dict
        Keyword arguments of ``ReportData``: ``models``, ``comparison``, ``delong``,
        ``external``, ``calibration_images``, ``decision_images``, ``survival``,
        ``survival_images``, ``shap_images``, ``importance``, ``nomogram_images``,
        ``model_notes``.
    """
    out: dict[str, Any] = {"models": ()}
    if models is None:
        return out
    notes = [f"Validation: {models.validation}."] if models.validation else []
    if models.feature_sets:
        notes.append(
            "Feature sets (candidate columns): "
            + ", ".join(f"{k} ({v})" for k, v in models.feature_sets.items())
            + "."
        )
    notes.append("Harmonisation: " + (models.harmonisation + "." if models.harmonisation else "none."))
    notes.append(
        "Selection inside every training fold: "
        + (" -> ".join(models.selection) if models.selection else "none (every feature enters the model)")
        + "."
    )
    notes.extend(models.notes)
    out["model_notes"] = notes
    out["models"] = models.results
    if models.models:
        ranked = models.table.sort_values("auc", ascending=False, kind="stable")
        out["comparison"] = _renamed(ranked, _COMPARISON_COLUMNS)
        if not models.delong.empty:
            d = models.delong[
                ["model_a", "model_b", "auc_a", "auc_b", "difference", "ci_lo", "ci_hi", "p_value"]
            ]
            out["delong"] = d.set_index("model_a")
        if models.external_table is not None and len(models.external_table):
            out["external"] = models.external_table.set_index("model")
        shown = [m for m in ranked["model"] if m in models.models][:MAX_CURVES]
        out["calibration_images"] = {
            f"Calibration of the {len(shown)} best models (repeat-averaged out-of-sample probabilities)": calibration_curves_png(
                {m: models.models[m].calibration for m in shown},
                stats={
                    m: (
                        models.models[m].summary["calibration_slope"],
                        models.models[m].summary["calibration_intercept"],
                    )
                    for m in shown
                },
            )
        }
        out["decision_images"] = {
            f"Decision curves of the {len(shown)} best models against treat-all and treat-none": decision_curves_png(
                {m: models.models[m].decision for m in shown}
            )
        }
    if models.survival and models.survival_table is not None:
        ranked_s = models.survival_table.sort_values("harrell_c", ascending=False, kind="stable")
        out["survival"] = _renamed(ranked_s, _SURVIVAL_COLUMNS)
        images: dict[str, bytes] = {}
        for name in list(ranked_s["model"])[:MAX_CURVES]:
            res = models.survival[name]
            first = res.cv.predictions[res.cv.predictions["repeat"] == 0]
            counts = first["risk_group"].value_counts().to_dict()
            images[f"Kaplan-Meier curves of the out-of-fold risk groups of {name} (95 % bands)"] = (
                kaplan_meier_png(
                    res.km,
                    logrank_p=res.summary["logrank_p"],
                    time_unit=models.time_unit,
                    counts={str(k): int(v) for k, v in counts.items()},
                    title=name,
                )
            )
        out["survival_images"] = images
    final = models.final
    if final is not None:
        out["model_notes"] = [*out["model_notes"], *final.notes]
        if final.shap is not None and not final.shap.empty:
            out["shap_images"] = {
                f"SHAP values of the final model ({final.name}, refitted on all patients): features ordered by "
                "mean |SHAP|, one dot per patient": shap_summary_png(
                    final.shap, final.X, title=f"SHAP: {final.name}"
                )
            }
        if final.importance is not None and not final.importance.empty:
            ranked = final.importance.sort_values("importance_mean", ascending=False, kind="stable")
            useful = ranked[ranked["importance_mean"] > 0]
            if useful.empty:
                # e.g. a boosted model that ranks its training patients perfectly whichever single feature
                # is shuffled: a table of zeros in column order would read as a ranking, so say why instead
                out["model_notes"] = [
                    *out["model_notes"],
                    f"Permutation importance of {final.name}: shuffling any single feature does not lower the "
                    "AUC on the patients the final model was fitted on (it separates them through many "
                    "redundant features), so it ranks no feature; read the SHAP summary instead.",
                ]
            else:
                out["importance"] = useful.head(20).set_index("feature")
        if final.nomogram_png is not None:
            out["nomogram_images"] = {
                f"Nomogram of {final.nomogram_model}, refitted on all patients": final.nomogram_png
            }
    return out


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
        "All models are fitted inside the training folds only (harmonisation, imputation, scaling, "
        "selection, tuning, the threshold, the model); every model is compared on identical folds."
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
        **model_sections(summary.models),
    )
    return render_report(data)
