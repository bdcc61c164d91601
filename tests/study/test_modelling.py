"""The model stage: every feature set x model on identical folds, honest thresholds, the comparison table's
numbers recomputed from the saved predictions, selection and harmonisation inside the folds, survival,
external validation, and the model section of the study file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from smartimaging.exceptions import ConfigError, LearningError
from smartimaging.learn.clinical_metrics import calibration_slope_intercept, threshold_metrics
from smartimaging.learn.delong import delong_test
from smartimaging.learn.metrics import roc_auc
from smartimaging.study.config import ModelConfig, StudyConfig, load_model_config
from smartimaging.study.modelling import (
    BATCH_COLUMN,
    CohortModels,
    fit_cohort_models,
    image_modality,
    read_feature_table,
)

FAST = {
    "n_splits": 3,
    "n_repeats": 2,
    "inner_splits": 2,
    "n_boot": 200,
    "n_permutations": 0,
    "importance_repeats": 2,
}


def cohort(
    n: int = 60, p: int = 8, seed: int = 0, *, sites: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Image features with signal in the first two columns, a weak clinical predictor, survival, sites."""
    rng = np.random.default_rng(seed)
    ids = pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id")
    X = rng.normal(size=(n, p))
    lp = 1.8 * X[:, 0] - 1.2 * X[:, 1]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-lp))).astype(int)
    wide = pd.DataFrame(X, index=ids, columns=[f"stat_f{k}" for k in range(p)])
    hazard = np.exp(0.9 * X[:, 0])
    t_event = rng.exponential(24 / hazard)
    # administrative censoring at 48 for many patients: every training fold reaches the last time
    t_cens = np.minimum(rng.uniform(6, 90, size=n), 48.0)
    clinical = pd.DataFrame(
        {
            "age": np.round(60 + 8 * rng.normal(size=n) + 3 * y),
            "sex": rng.choice(["F", "M"], size=n),
            "label": y,
            "time": np.minimum(t_event, t_cens).round(2),
            "event": (t_event <= t_cens).astype(int),
            "site": np.array(["A", "B", "C"])[np.arange(n) % 3],
        },
        index=ids,
    )
    if sites:
        offset = clinical["site"].map({"A": 0.0, "B": 3.0, "C": -2.0}).to_numpy()
        wide = wide + offset[:, None] * np.linspace(0.5, 1.5, p)[None, :]
    return wide, clinical


@pytest.fixture(scope="module")
def fitted() -> tuple[CohortModels, pd.DataFrame, pd.DataFrame]:
    wide, clinical = cohort()
    config = ModelConfig.model_validate(
        {
            **FAST,
            "clinical_columns": ["age", "sex"],
            "survival": {"time": "time", "event": "event", "kinds": ["cox"]},
        }
    )
    return fit_cohort_models(wide, clinical, config, seed=3), wide, clinical


def test_every_model_is_validated_on_the_same_patients_and_folds(fitted) -> None:
    models, _, _ = fitted
    assert list(models.models) == ["clinical", "radiomics", "combined"]
    folds = {
        name: m.validation.predictions.set_index(["repeat", "patient_id"])["fold"].sort_index()
        for name, m in models.models.items()
    }
    first = next(iter(folds.values()))
    for f in folds.values():
        pd.testing.assert_series_equal(f, first)
    # a threshold per training set, fixed before the test fold is scored
    preds = models.models["radiomics"].validation.predictions
    assert (preds.groupby(["repeat", "fold"])["threshold"].nunique() == 1).all()
    assert preds.groupby(["repeat", "fold"])["threshold"].first().nunique() > 1


def test_comparison_table_is_recomputed_from_the_predictions(fitted) -> None:
    models, _, _ = fitted
    table = models.table.set_index("model")
    assert models.best == table["auc"].idxmax()
    assert np.isnan(table.loc[models.best, "p_vs_best"]) and np.isnan(table.loc["clinical", "p_vs_clinical"])
    scores: dict[str, pd.DataFrame] = {}
    for name, m in models.models.items():
        p = m.validation.predictions
        wide = p.pivot(index="patient_id", columns="repeat", values="y_score")
        y = p[p["repeat"] == 0].set_index("patient_id").loc[wide.index, "y_true"].to_numpy(int)
        scores[name] = wide
        aucs = [roc_auc(y, wide[r].to_numpy()) for r in wide.columns]
        assert table.loc[name, "auc"] == pytest.approx(np.mean(aucs), abs=1e-12)
        assert table.loc[name, "auc_ci_low"] < table.loc[name, "auc"] < table.loc[name, "auc_ci_high"]
        sens = []
        slopes = []
        for _, part in p.groupby("repeat"):
            tm = threshold_metrics(part["y_true"], part["y_score"], threshold=part["threshold"].to_numpy())
            sens.append(tm.sensitivity)
            slopes.append(calibration_slope_intercept(part["y_true"], part["y_score"]).slope)
        assert table.loc[name, "sensitivity"] == pytest.approx(np.mean(sens), abs=1e-12)
        assert table.loc[name, "calibration_slope"] == pytest.approx(np.mean(slopes), abs=1e-9)
        assert 0.0 <= table.loc[name, "brier"] <= 1.0
    y = (
        models.models["radiomics"]
        .cv.oof.query("repeat == 0")
        .set_index("patient_id")
        .loc[scores["radiomics"].index]
    )
    other = "clinical" if models.best != "clinical" else "radiomics"
    test = delong_test(
        y["y_true"].to_numpy(int),
        scores[models.best].mean(axis=1).to_numpy(),
        scores[other].loc[scores[models.best].index].mean(axis=1).to_numpy(),
    )
    assert table.loc[other, "p_vs_best"] == pytest.approx(test.p_value, rel=1e-9)
    # the image signal is found and beats the clinical-only model
    assert (
        table.loc["radiomics", "auc"] > 0.75 and table.loc["radiomics", "auc"] > table.loc["clinical", "auc"]
    )


def test_curves_final_model_and_nomogram(fitted) -> None:
    models, _, _ = fitted
    m = models.models["radiomics"]
    assert {"mean_predicted", "observed", "observed_lo", "observed_hi"} <= set(m.calibration.columns)
    assert m.calibration["n"].sum() == 60
    assert (m.decision["net_benefit_none"] == 0).all() and len(m.decision) == 99
    final = models.final
    assert final is not None and final.name == models.best
    assert final.pipeline.predict_proba(final.X).shape == (60, 2)
    # the best linear model uses at most 10 columns here: its nomogram reproduces the refitted model
    assert final.nomogram is not None and final.nomogram_png is not None
    assert final.nomogram_png.startswith(b"\x89PNG")
    assert len(final.nomogram.variables) <= 10


def test_survival_models_report_c_indices_with_intervals_and_risk_groups(fitted) -> None:
    models, _, _ = fitted
    assert set(models.survival) == {"clinical [cox]", "radiomics [cox]", "combined [cox]"}
    table = models.survival_table.set_index("model")
    row = table.loc["radiomics [cox]"]
    assert row["harrell_c"] > 0.6
    assert row["harrell_c_ci_low"] < row["harrell_c"] < row["harrell_c_ci_high"]
    assert 0.0 <= row["logrank_p"] <= 1.0
    res = models.survival["radiomics [cox]"]
    assert set(res.km["group"]) == {"low", "high"}
    assert res.td_auc["auc"].between(0, 1).all()
    preds = res.cv.predictions
    assert ((preds["risk"] > preds["cutoff"]) == (preds["risk_group"] == "high")).all()


def test_selection_inside_the_folds_keeps_noise_at_chance() -> None:
    """Selecting the 'best' of 300 noise features on the whole cohort would give an AUC far above 0.5."""
    rng = np.random.default_rng(1)
    ids = pd.Index([f"N{i:02d}" for i in range(40)], name="patient_id")
    wide = pd.DataFrame(rng.normal(size=(40, 300)), index=ids, columns=[f"f{k}" for k in range(300)])
    clinical = pd.DataFrame({"label": np.tile([0, 1], 20)}, index=ids)
    config = ModelConfig.model_validate(
        {
            **FAST,
            "n_repeats": 1,
            "selection": [{"name": "fdr", "alpha": 0.05, "min_features": 5}],
            "explain": False,
        }
    )
    models = fit_cohort_models(wide, clinical, config, seed=0)
    assert list(models.models) == ["radiomics"]
    assert models.table.loc[0, "auc"] < 0.75
    assert models.selection == ["fdr(alpha=0.05, test=mannwhitney, min_features=5)"]


def test_harmonisation_from_a_clinical_column_and_from_the_qc_table() -> None:
    wide, clinical = cohort(45, 5, seed=2, sites=True)
    base = {**FAST, "n_repeats": 1, "explain": False, "feature_sets": ["radiomics"]}
    models = fit_cohort_models(
        wide, clinical, ModelConfig.model_validate({**base, "harmonise": {"batch": "site"}})
    )
    assert models.harmonisation is not None and "3 batches" in models.harmonisation
    steps = dict(models.final.pipeline.steps) if models.final else {}
    assert "harmonise" in steps
    qc = pd.DataFrame(
        {
            "PatientID": list(clinical.index),
            "Modality": "PT",
            "Manufacturer": clinical["site"].map({"A": "GE", "B": "Siemens", "C": "Philips"}).to_numpy(),
        }
    )
    cfg = ModelConfig.model_validate({**base, "harmonise": {"batch": "qc:Manufacturer"}, "explain": True})
    from_qc = fit_cohort_models(wide, clinical, cfg, qc=qc)
    assert "GE: 15" in (from_qc.harmonisation or "")
    assert from_qc.table.loc[0, "auc"] == pytest.approx(models.table.loc[0, "auc"])
    with pytest.raises(LearningError, match=r"harmonise.batch 'qc:Manufacturer' needs the run's DICOM QC"):
        fit_cohort_models(wide, clinical, cfg, qc=None)


def test_external_site_and_holdout() -> None:
    wide, clinical = cohort(75, 5, seed=4)
    base = {**FAST, "n_repeats": 1, "explain": False, "feature_sets": ["radiomics"]}
    cfg = ModelConfig.model_validate({**base, "external": {"site_column": "site", "site_value": "C"}})
    models = fit_cohort_models(wide, clinical, cfg)
    assert models.n_patients == 50
    assert models.external_table is not None and models.external_table.loc[0, "n_patients"] == 25
    ext = models.predictions[models.predictions["scheme"] == "external"]
    assert set(ext["patient_id"]) == set(clinical.index[clinical["site"] == "C"])
    assert not set(ext["patient_id"]) & set(models.models["radiomics"].validation.predictions["patient_id"])
    hold = fit_cohort_models(wide, clinical, ModelConfig.model_validate({**base, "validation": "holdout"}))
    assert (
        hold.table.loc[0, "n_patients"] == 23
    )  # ceil(0.3 * 75), as train_test_split and hold.table.loc[0, "validation"] == "holdout"


@pytest.mark.slow
def test_parallel_models_give_the_same_results() -> None:
    wide, clinical = cohort(36, 4, seed=6)
    cfg = ModelConfig.model_validate(
        {**FAST, "n_repeats": 1, "explain": False, "kinds": ["logistic", "logistic_l1"]}
    )
    serial = fit_cohort_models(wide, clinical, cfg, seed=1)
    parallel = fit_cohort_models(wide, clinical, cfg, seed=1, jobs=2)
    pd.testing.assert_frame_equal(serial.table, parallel.table)
    assert list(serial.models) == ["radiomics", "radiomics [logistic_l1]"]


def test_survival_only_study() -> None:
    wide, clinical = cohort(45, 4, seed=5)
    cfg = ModelConfig.model_validate(
        {**FAST, "target": None, "survival": {"time": "time", "event": "event", "kinds": ["cox"]}}
    )
    models = fit_cohort_models(wide, clinical.drop(columns=["label"]), cfg)
    assert models.models == {} and models.table.empty and list(models.survival) == ["radiomics [cox]"]
    assert models.n_patients == 45


def test_missing_columns_are_named() -> None:
    wide, clinical = cohort(30, 3)
    with pytest.raises(LearningError, match=r"'smoker'"):
        fit_cohort_models(
            wide, clinical, ModelConfig.model_validate({**FAST, "clinical_columns": ["smoker"]})
        )
    with pytest.raises(LearningError, match=r"model.target 'outcome'"):
        fit_cohort_models(wide, clinical, ModelConfig.model_validate({**FAST, "target": "outcome"}))
    cfg = ModelConfig.model_validate({**FAST, "survival": {"time": "os", "event": "event"}})
    with pytest.raises(LearningError, match=r"model.survival column 'os'"):
        fit_cohort_models(wide, clinical, cfg)


def test_model_config_keys_and_messages(tmp_path: Path) -> None:
    assert ModelConfig().kinds == ["logistic"] and ModelConfig().kind == "logistic"
    assert ModelConfig.model_validate({"kind": "svm"}).kinds == ["svm"]
    both = ModelConfig.model_validate({"kinds": ["lightgbm", "logistic"]})
    assert both.kind == "lightgbm" and ModelConfig.model_validate(both.model_dump()) == both
    cfg = ModelConfig.model_validate({"selection": ["nzv", {"name": "mrmr", "k": 5}]})
    assert [s.name for s in cfg.selection] == ["nzv", "mrmr"]
    bad = [
        ({"kind": "svm", "kinds": ["logistic"]}, "kind is the first of kinds"),
        ({"selection": ["lasso"]}, "valid names are"),
        ({"selection": [{"name": "mrmr", "n": 3}]}, "n"),
        ({"harmonise": {"batch": "qc:Manufacturer Model"}}, "DICOM keywords"),
        ({"target": None}, "give target"),
        ({"external": {"site_column": "site"}}, "site_column and site_value"),
        ({"clinical_columns": ["label"]}, "also in clinical_columns"),
        ({"feature_sets": ["radiomics", "radiomics"]}, "twice"),
    ]
    for data, message in bad:
        with pytest.raises(ValueError, match=message):
            ModelConfig.model_validate(data)
    (tmp_path / "stable.csv").write_text("feature,icc,stable\nstat_f0,0.95,true\n", encoding="utf-8")
    path = tmp_path / "model.yaml"
    path.write_text(
        yaml.safe_dump({"model": {"selection": [{"name": "icc", "file": "stable.csv"}]}}), "utf-8"
    )
    loaded = load_model_config(path)
    assert loaded.selection[0].file == (tmp_path / "stable.csv").resolve()  # type: ignore[union-attr]
    path.write_text(yaml.safe_dump({"validation": "bootstrap"}), "utf-8")
    with pytest.raises(ConfigError, match=r"validation"):
        load_model_config(path)
    study = StudyConfig.model_validate(
        {
            "input": {"dicom_dir": "d", "clinical": "c.csv"},
            "model": {"selection": [{"name": "icc", "file": "s.csv"}]},
        }
    ).resolve_paths(tmp_path)
    assert study.model is not None and study.model.selection[0].file == (tmp_path / "s.csv").resolve()  # type: ignore[union-attr]


def test_icc_filter_and_feature_tables(tmp_path: Path) -> None:
    wide, clinical = cohort(36, 4)
    (tmp_path / "stable.csv").write_text(
        "feature,icc,stable\nstat_f0,0.95,true\nstat_f1,0.9,true\nstat_f2,0.3,false\n", encoding="utf-8"
    )
    cfg = ModelConfig.model_validate(
        {
            **FAST,
            "n_repeats": 1,
            "explain": False,
            "selection": [{"name": "icc", "file": str(tmp_path / "stable.csv")}],
        }
    )
    models = fit_cohort_models(wide, clinical, cfg)
    assert models.feature_sets == {"radiomics": 2}
    assert image_modality("CT_stat_mean") == "CT" and image_modality("PT_stat_mean") == "PT"
    assert image_modality("stat_mean") == "PT"
    wide.to_csv(tmp_path / "wide.csv")
    back = read_feature_table(tmp_path / "wide.csv")
    assert list(back.index) == list(wide.index) and list(back.columns) == list(wide.columns)
    assert BATCH_COLUMN not in back.columns
