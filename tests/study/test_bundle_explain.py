"""The bundle's uncertainty and explanation, without DICOM: cross-conformal sets with abstention,
the out-of-distribution reasons, SHAP explanations with IBSI names from a background that holds no
patient's data, and their round trip through the saved file."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smartimaging.cli_bundle import print_prediction
from smartimaging.learn.explain import shap_values
from smartimaging.study.bundle import (
    BundleError,
    ModelBundle,
    _background_frame,
    fit_bundle,
    load_bundle,
    predict_features,
    save_bundle,
)
from smartimaging.study.config import StudyConfig
from smartimaging.study.demo import demo_study

IMAGE = [
    "PET_SUVmax",
    "PET_MTV",
    "stat_mean",
    "stat_skew",
    "morph_sphericity",
    "cm_joint_entr_3D_avg",
    "cm_contrast_3D_avg",
    "szm_sze_3D",
    "ngt_busyness_3D",
    "patient_PET_TMTV",
]


def _cohort(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = [f"PT{seed}_{i:04d}" for i in range(n)]
    wide = pd.DataFrame(rng.normal(size=(n, len(IMAGE))), columns=IMAGE, index=ids)
    wide["PET_SUVmax"] = 8 + 3 * wide["PET_SUVmax"]
    clinical = pd.DataFrame(
        {
            "age": rng.integers(40, 80, n),
            "sex": rng.choice(["F", "M"], n),
            "tumour_marker": rng.gamma(2.0, 5.0, n),
            "stage": rng.integers(1, 5, n),
        },
        index=ids,
    )
    logit = (
        0.5 * (wide["PET_SUVmax"] - 8) + 1.2 * wide["cm_joint_entr_3D_avg"] + 0.4 * (clinical["stage"] - 2.5)
    )
    clinical["label"] = (logit + rng.logistic(size=n) > 0).astype(int)
    return wide, clinical


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelBundle, pd.DataFrame, pd.DataFrame, Path]:
    root = tmp_path_factory.mktemp("bundle_explain")
    config = StudyConfig.model_validate(demo_study(root, root / "results"))
    wide, clinical = _cohort(150, 0)
    bundle = fit_bundle(config, wide, clinical, alpha=0.1)
    path = save_bundle(bundle, root / "model.zip")
    return bundle, wide, clinical, path


def test_manifest_holds_calibration_and_a_background_of_groups_not_patients(trained) -> None:
    bundle, wide, clinical, path = trained
    m = bundle.manifest
    assert m["conformal"]["coverage"] == pytest.approx(0.9) and m["conformal"]["cv"] == 5
    assert m["conformal"]["n_calibration"] == 150
    background = m["explanation"]["background"]
    assert background["columns"] == bundle.columns
    assert 2 <= len(background["rows"]) <= 10
    assert min(background["weights"]) >= 5 and sum(background["weights"]) == 150
    frame, _ = _background_frame(bundle)  # type: ignore[misc]
    centres = frame[[c for c in bundle.columns if c != "sex"]].to_numpy(dtype=float)
    numeric = [c for c in bundle.columns if c != "sex"]
    table = wide.join(clinical)[numeric].to_numpy(dtype=float)
    nearest = np.min(np.abs(table[:, None, :] - centres[None, :, :]).max(axis=2), axis=0)
    assert (nearest > 1e-6).all()  # no centre is a training patient's row
    text = zipfile.ZipFile(path).read("manifest.json").decode()
    assert "PT0_" not in text and "conformal_sha256" in text
    assert set(zipfile.ZipFile(path).namelist()) == {"manifest.json", "pipeline.pkl", "conformal.pkl"}


def test_predictions_carry_sets_decisions_and_explanations(trained) -> None:
    bundle, *_ = trained
    new_wide, new_clinical = _cohort(40, 1)
    table = new_wide.join(new_clinical)
    predictions = predict_features(bundle, table)
    for p in predictions:
        assert p.coverage == pytest.approx(0.9)
        assert set(p.prediction_set) <= {0, 1}
        assert p.decision in {"positive", "negative", "abstain"}
        single = len(p.prediction_set) == 1
        assert (p.decision == "abstain") == (p.out_of_distribution or not single)
        if not p.abstain:
            assert p.decision == ("positive" if p.prediction_set == [1] else "negative")
        assert len(p.explanation) == 5 and [e["feature"] for e in p.explanation] == [
            c for c, _ in p.contributions
        ]
        assert all(e["meaning"] or e["family"] == "clinical" for e in p.explanation)
    decisions = {p.decision for p in predictions}
    assert {"abstain"} < decisions  # some patients are decided, some are not
    # the explanation is the SHAP values of the pipeline against the stored background
    frame, weights = _background_frame(bundle)  # type: ignore[misc]
    values = shap_values(
        bundle.pipeline, table[bundle.columns].iloc[:3], background=frame, background_weights=weights
    )
    for p, (_, row) in zip(predictions[:3], values.iterrows(), strict=True):
        for e in p.explanation:
            assert e["contribution"] == pytest.approx(row[e["feature"]], abs=1e-12)
        assert row.sum() + values.attrs["base_value"] == pytest.approx(p.probability, abs=1e-9)
    entropy = [e for p in predictions for e in p.explanation if e["feature"] == "cm_joint_entr_3D_avg"]
    assert (
        entropy and entropy[0]["ibsi_id"] == "TU9B" and entropy[0]["label"] == "Joint entropy (GLCM, 3D_avg)"
    )
    json.dumps([p.to_dict() for p in predictions])  # JSON-serialisable


def test_conformal_sets_cover_new_patients(trained) -> None:
    bundle, *_ = trained
    new_wide, new_clinical = _cohort(1500, 2)
    table = new_wide.join(new_clinical)
    predictions = predict_features(bundle, table, explain=False)
    covered = np.mean([y in p.prediction_set for p, y in zip(predictions, table["label"], strict=True)])
    print(
        f"\nbundle (150 training patients, 5-fold cross-conformal LAC, 90 %): coverage {covered:.3f} on 1,500 new"
    )
    assert 0.85 <= covered <= 0.96
    assert all(p.explanation == [] for p in predictions)


def test_an_unusual_patient_is_flagged_and_the_bundle_abstains(trained) -> None:
    bundle, wide, clinical, _ = trained
    table = wide.join(clinical).iloc[:1].copy()
    table[IMAGE] *= 50.0
    (p,) = predict_features(bundle, table)
    assert p.out_of_distribution and p.abstain and p.decision == "abstain"
    assert any("outside the training range" in r for r in p.ood_reasons)


def test_saved_bundle_predicts_the_same_and_damage_is_refused(trained, tmp_path: Path) -> None:
    bundle, wide, clinical, path = trained
    table = wide.join(clinical).iloc[:5]
    loaded = load_bundle(path)
    assert [p.to_dict() for p in predict_features(loaded, table)] == [
        p.to_dict() for p in predict_features(bundle, table)
    ]
    with zipfile.ZipFile(path) as zf:
        parts = {name: zf.read(name) for name in zf.namelist()}
    damaged = bytearray(parts["conformal.pkl"])
    damaged[len(damaged) // 2] ^= 0xFF
    with zipfile.ZipFile(tmp_path / "damaged.zip", "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, bytes(damaged) if name == "conformal.pkl" else data)
    with pytest.raises(BundleError, match=r"conformal calibration .* is missing or does not match"):
        load_bundle(tmp_path / "damaged.zip")
    with zipfile.ZipFile(tmp_path / "lacking.zip", "w") as zf:
        for name, data in parts.items():
            if name != "conformal.pkl":
                zf.writestr(name, data)
    with pytest.raises(BundleError, match="damaged or altered"):
        load_bundle(tmp_path / "lacking.zip")


def test_bundles_without_calibration_or_background_still_predict(trained) -> None:
    bundle, wide, clinical, _ = trained
    manifest = {k: v for k, v in bundle.manifest.items() if k not in {"conformal", "explanation"}}
    old = ModelBundle(manifest, bundle.pipeline)
    (p,) = predict_features(old, wide.join(clinical).iloc[:1])
    assert p.prediction_set == [] and p.coverage is None and p.explanation == []
    assert p.decision == ("abstain" if p.out_of_distribution else ("positive" if p.label else "negative"))


def test_alpha_is_checked(trained, tmp_path: Path) -> None:
    _, wide, clinical, _ = trained
    config = StudyConfig.model_validate(demo_study(tmp_path, tmp_path / "r"))
    with pytest.raises(BundleError, match=r"alpha .* must be in \(0, 1\)"):
        fit_bundle(config, wide, clinical, alpha=0.0)


def test_printed_prediction_explains_in_words(trained, capsys: pytest.CaptureFixture[str]) -> None:
    bundle, wide, clinical, _ = trained
    predictions = predict_features(bundle, wide.join(clinical).iloc[:30])
    decided = next(p for p in predictions if not p.abstain)
    print_prediction(decided, target="label")
    out = capsys.readouterr().out
    assert f"P(label) = {decided.probability:.3f}" in out
    assert "prediction set at 90% coverage: {" in out and f"decision: {decided.decision}" in out
    assert "largest contributions (SHAP" in out and decided.explanation[0]["label"] in out
    ambiguous = next(p for p in predictions if p.abstain and not p.out_of_distribution)
    print_prediction(ambiguous, target="label")
    out = capsys.readouterr().out
    assert "ABSTAIN: both outcomes remain plausible at 90% coverage" in out or "neither outcome" in out


def test_the_bundle_is_the_validated_pipeline_with_selection_and_combat(tmp_path: Path) -> None:
    """The exported model is the configured one (ComBat by a clinical column, selection steps), not a
    plain classifier; new patients are harmonised by their site's fitted parameters."""
    settings = demo_study(tmp_path, tmp_path / "results")
    settings["model"] = {
        "target": "label",
        "clinical_columns": ["age", "stage"],
        "kinds": ["logistic"],
        "selection": ["nzv", "correlation"],
        "harmonise": {"batch": "site"},
    }
    config = StudyConfig.model_validate(settings)
    wide, clinical = _cohort(120, 3)
    sites = np.array(["A", "B", "C"])[np.arange(len(wide)) % 3]
    clinical["site"] = sites
    shift = pd.Series(sites).map({"A": 0.0, "B": 2.0, "C": -1.5}).to_numpy()
    wide["stat_mean"] = wide["stat_mean"] + shift
    wide["cm_joint_entr_3D_avg"] = wide["cm_joint_entr_3D_avg"] + shift
    wide["cm_contrast_3D_avg"] = wide["cm_joint_entr_3D_avg"] * 0.999 + 1e-3 * wide["cm_contrast_3D_avg"]
    bundle = fit_bundle(config, wide, clinical, alpha=0.1)
    steps = [name for name, _ in bundle.pipeline.steps]
    assert steps[0] == "harmonise" and type(bundle.pipeline.steps[0][1]).__name__ == "ComBat", steps
    kinds = {type(v).__name__ for v in bundle.pipeline.get_params(deep=True).values()}
    assert {"NearZeroVariance", "CorrelationClusterSelector"} <= kinds, kinds
    assert bundle.manifest["harmonisation"]["batch"] == "site"
    assert (
        "site" in bundle.manifest["clinical_columns"]
        and "__batch__" not in bundle.manifest["clinical_columns"]
    )
    loaded = load_bundle(save_bundle(bundle, tmp_path / "model.zip"))
    table = wide.join(clinical.drop(columns=["label"]))
    before = predict_features(loaded, table.iloc[:6], explain=False)
    assert all(0.0 <= p.probability <= 1.0 for p in before)
    # the same patients from a known site: the batch comes from the recorded clinical column
    again = predict_features(loaded, table.iloc[:6], explain=False)
    assert [p.probability for p in again] == [p.probability for p in before]
    # without the site column the model cannot harmonise: a clear error naming the column
    with pytest.raises(BundleError, match="'site'"):
        predict_features(loaded, table.iloc[:6].drop(columns=["site"]), explain=False)
    # a site never seen in training, one patient: ComBat cannot estimate it; the error says so
    lone = table.iloc[:1].copy()
    lone["site"] = "Z"
    with pytest.raises(BundleError, match="cannot be applied"):
        predict_features(loaded, lone, explain=False)


def test_a_scanner_merged_in_training_keeps_its_trained_batch_at_prediction() -> None:
    """Training merges scanners with fewer than ``min_batch_size`` patients into one batch; a new patient
    of such a scanner must get that batch (which ComBat knows), not its own label (which it does not)."""
    from smartimaging.learn.combat import batches_from_qc
    from smartimaging.study.bundle import _harmonisation, _with_batch
    from smartimaging.study.config import ModelConfig
    from smartimaging.study.modelling import BATCH_COLUMN

    scanners = ["Big"] * 4 + ["Rare1", "Rare2"]
    ids = [f"P{i}" for i in range(len(scanners))]
    qc = pd.DataFrame({"PatientID": ids, "Modality": "PT", "ManufacturerModelName": scanners})
    spec = ModelConfig.model_validate(
        {"target": "label", "harmonise": {"batch": "qc:ManufacturerModelName", "min_batch_size": 3}}
    )
    trained = batches_from_qc(qc, keys=["ManufacturerModelName"], min_size=3)
    assert trained.nunique() == 2  # Big, and the two rare scanners merged
    X = pd.DataFrame({"f": np.arange(6.0), BATCH_COLUMN: trained.loc[ids].to_numpy()}, index=ids)
    harm = _harmonisation(spec, X, qc)
    assert harm is not None and set(harm["merged"]) == {
        batches_from_qc(qc, keys=["ManufacturerModelName"]).loc["P4"],
        batches_from_qc(qc, keys=["ManufacturerModelName"]).loc["P5"],
    }
    bundle = ModelBundle({"harmonisation": harm, "columns": ["f", BATCH_COLUMN]}, None, None)  # type: ignore[arg-type]
    new_qc = pd.DataFrame(
        {"PatientID": ["N1", "N2"], "Modality": "PT", "ManufacturerModelName": ["Rare1", "Big"]}
    )
    new = _with_batch(bundle, pd.DataFrame({"f": [1.0, 2.0]}, index=["N1", "N2"]), new_qc)
    assert list(new[BATCH_COLUMN]) == [trained.loc["P4"], trained.loc["P0"]]
