"""The model stage in the report and the checklist: marked from what the run actually did."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_modelling import FAST, cohort

from smartimaging.report.html import ReportData, render_report
from smartimaging.study.checklist import run_checklist
from smartimaging.study.config import ModelConfig, StudyConfig
from smartimaging.study.modelling import CohortModels, fit_cohort_models, write_model_tables
from smartimaging.study.reporting import model_sections
from smartimaging.study.runner import RunSummary


@pytest.fixture(scope="module")
def harmonised() -> tuple[dict, CohortModels]:
    wide, clinical = cohort(45, 4, seed=8, sites=True)
    model = {
        **FAST,
        "n_repeats": 1,
        "clinical_columns": ["age"],
        "harmonise": {"batch": "site"},
        "selection": ["nzv", {"name": "fdr", "alpha": 0.2}],
        "external": {"site_column": "site", "site_value": "C"},
        "n_permutations": 2,
    }
    return model, fit_cohort_models(wide, clinical, ModelConfig.model_validate(model), seed=0)


def _items(model: dict, models: CohortModels, tmp_path: Path) -> dict[str, tuple[str, str]]:
    config = StudyConfig.model_validate(
        {"input": {"dicom_dir": str(tmp_path), "clinical": "c.csv"}, "model": model}
    )
    summary = RunSummary(
        tmp_path, 45, 45, 0, 0, 1.0, pd.DataFrame(columns=["patient_id", "stage", "reason"]), models
    )
    checklist = run_checklist(
        config, summary, wide=pd.DataFrame(columns=["a", "b"]), patient_info={}, qc=None
    )
    return {item.split(" (")[0]: (status, detail) for item, status, detail in checklist}


def test_checklist_marks_what_the_model_stage_did(harmonised, tmp_path: Path) -> None:
    model, models = harmonised
    items = _items(model, models, tmp_path)
    assert items["Harmonisation of multi-centre features"][0] == "yes"
    assert "ComBat" in items["Harmonisation of multi-centre features"][1]
    assert "2 batches" in items["Harmonisation of multi-centre features"][1]  # site C is the external cohort
    selection = items["Feature selection / dimensionality reduction described"]
    assert selection[0] == "yes" and "fdr(alpha=0.2" in selection[1]
    leakage = next(v for k, v in items.items() if k.startswith("No information leakage"))
    assert "ComBat harmonisation" in leakage[1] and "feature selection" in leakage[1]
    assert items["Calibration assessed"][0] == "yes"
    assert items["Clinical utility: decision-curve analysis"][0] == "yes"
    assert (
        items["External validation"][0] == "yes" and "15 external patients" in items["External validation"][1]
    )
    assert items["Comparison with a clinical-only model"][0] == "yes"
    assert items["Model explanation"][0] == "yes" and "SHAP" in items["Model explanation"][1]


def test_checklist_says_no_for_what_was_not_done(tmp_path: Path) -> None:
    wide, clinical = cohort(30, 3, seed=9)
    model = {**FAST, "n_repeats": 1, "explain": False}
    models = fit_cohort_models(wide, clinical, ModelConfig.model_validate(model))
    items = _items(model, models, tmp_path)
    for key in ("Harmonisation of multi-centre features", "External validation", "Model explanation"):
        assert items[key][0] == "no", key
    assert items["Feature selection / dimensionality reduction described"][0] == "no"
    assert items["Calibration assessed"][0] == "yes"


def test_model_sections_render_and_tables_are_written(harmonised, tmp_path: Path) -> None:
    _, models = harmonised
    parts = model_sections(models)
    html = render_report(ReportData(title="t", **parts))
    assert "External validation" in html and "p vs best" in html and "ComBat" in html
    assert "SHAP values of the final model" in html and "Permutation importance" in html
    files = write_model_tables(models, tmp_path)
    assert {"models", "model_predictions", "model_delong", "models_external", "feature_importance"} <= set(
        files
    )
    importance = pd.read_csv(files["feature_importance"])
    assert {"feature", "importance_mean", "ibsi_name", "meaning"} <= set(importance.columns)
    shap = pd.read_csv(files["shap_values"], index_col=0)
    assert len(shap) == 30  # the development cohort (45 minus the 15 external patients)
    assert model_sections(None) == {"models": ()}


def test_an_all_zero_permutation_importance_is_explained_not_listed(harmonised) -> None:
    """Zeros in column order would read as a ranking: the report lists only features whose shuffling
    lowers the AUC, and says why when there is none."""
    import copy

    _, models = harmonised
    assert models.final is not None and models.final.importance is not None
    zeroed = copy.copy(models)
    zeroed.final = copy.copy(models.final)
    zeroed.final.importance = models.final.importance.assign(importance_mean=0.0, importance_sd=0.0)
    parts = model_sections(zeroed)
    assert "importance" not in parts
    assert any("ranks no feature" in note for note in parts["model_notes"])
    listed = model_sections(models).get("importance")
    if listed is not None:
        assert (listed["importance_mean"] > 0).all()
