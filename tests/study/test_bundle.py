"""The portable model bundle: export from a study, predict one new patient from DICOM, validate at a
second site, refuse other feature settings and damaged files, flag patients outside the training data."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from smartimaging.cli import app
from smartimaging.exceptions import ConfigError
from smartimaging.study.bundle import (
    BundleError,
    load_bundle,
    predict_features,
    predict_patient,
    validate_bundle,
)
from smartimaging.study.config import load_study
from smartimaging.study.demo import demo_study
from smartimaging.synthetic import generate_cohort

pytestmark = pytest.mark.slow


def _study(cohort: Path, out: Path, **features: object) -> Path:
    settings = demo_study(cohort, out / "results", jobs=2)
    settings["model"].update(n_repeats=2, n_permutations=0)
    settings["features"] = dict(features)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "study.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def exported(cohort60: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bundle")
    study = _study(cohort60, root / "train")
    result = CliRunner().invoke(app, ["export", str(study), "--out", str(root / "model.zip"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "model combined (logistic)" in result.output
    return study, root / "model.zip"


def test_bundle_holds_settings_and_summaries_but_no_patient_data(exported: tuple[Path, Path]) -> None:
    _, path = exported
    bundle = load_bundle(path)
    m = bundle.manifest
    assert m["model"]["name"] == "combined" and m["training"]["n_patients"] == 60
    assert set(m["settings"]) == {"suv", "segmentation", "features"}
    assert m["clinical_columns"] and m["image_columns"] and 0 < bundle.threshold < 1
    text = zipfile.ZipFile(path).read("manifest.json").decode()
    assert "SYN0" not in text  # no patient identifier anywhere in the manifest
    assert m["training"]["cross_validation"]["auc"] > 0.6


def test_predict_from_dicom_equals_prediction_from_the_feature_table(
    exported: tuple[Path, Path], cohort60: Path
) -> None:
    study, path = exported
    bundle = load_bundle(path)
    config = load_study(study)
    clinical = pd.read_csv(cohort60 / "clinical.csv", dtype={"patient_id": str}).set_index("patient_id")
    values = clinical.loc["SYN007", bundle.manifest["clinical_columns"]].to_dict()
    from_dicom = predict_patient(bundle, cohort60 / "dicom" / "SYN007", clinical=values)
    wide = pd.read_csv(config.output_dir / "features_wide.csv", index_col=0)
    table = wide.join(clinical)
    from_table = predict_features(bundle, table.loc[["SYN007"]])[0]
    assert from_dicom.patient_id == "SYN007"
    assert from_dicom.probability == pytest.approx(from_table.probability, rel=1e-9)
    assert len(from_dicom.contributions) == 5
    assert from_dicom.explanation == from_table.explanation and len(from_dicom.explanation) == 5
    assert from_dicom.decision == from_table.decision in {"positive", "negative", "abstain"}
    assert from_dicom.coverage == pytest.approx(0.9) and set(from_dicom.prediction_set) <= {0, 1}
    # training patients are in distribution; a patient whose features are 50x larger is not, and the bundle abstains
    flagged = [p.out_of_distribution for p in predict_features(bundle, table.loc[wide.index])]
    assert np.mean(flagged) <= 0.05
    odd = table.loc[["SYN007"]].copy()
    odd[bundle.manifest["image_columns"]] *= 50.0
    strange = predict_features(bundle, odd)[0]
    assert strange.out_of_distribution and strange.abstain and strange.ood_reasons
    with pytest.raises(BundleError, match="clinical variable"):
        predict_patient(bundle, cohort60 / "dicom" / "SYN007", clinical={})


def test_cli_predict_prints_probability_and_writes_json(
    exported: tuple[Path, Path], cohort60: Path, tmp_path: Path
) -> None:
    _, path = exported
    bundle = load_bundle(path)
    clinical = pd.read_csv(cohort60 / "clinical.csv", dtype={"patient_id": str}).set_index("patient_id")
    args = [f"{c}={clinical.loc['SYN003', c]}" for c in bundle.manifest["clinical_columns"]]
    result = CliRunner().invoke(
        app,
        ["predict", str(path), str(cohort60 / "dicom" / "SYN003"), "--json", str(tmp_path / "p.json")]
        + [x for a in args for x in ("--clinical", a)],
    )
    assert result.exit_code == 0, result.output
    assert "P(label) = " in result.output
    assert (
        "prediction set at 90% coverage" in result.output and "largest contributions (SHAP" in result.output
    )
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["patient_id"] == "SYN003" and 0 <= saved["probability"] <= 1
    assert saved["decision"] in {"positive", "negative", "abstain"} and saved["coverage"] == pytest.approx(
        0.9
    )
    assert len(saved["explanation"]) == 5 and {"ibsi_name", "ibsi_id", "meaning"} <= set(
        saved["explanation"][0]
    )


def test_external_validation_at_a_second_site(exported: tuple[Path, Path], tmp_path: Path) -> None:
    _, path = exported
    bundle = load_bundle(path)
    site_b = tmp_path / "site_b"
    generate_cohort(site_b, n_patients=30, seed=1, n_jobs=2, progress=False)
    result = validate_bundle(bundle, load_study(_study(site_b, tmp_path / "ext")))
    print(f"\nexternal validation on 30 new synthetic patients: AUC {result.auc:.3f} {result.auc_ci}")
    assert result.n_patients == 30 and result.auc > 0.6
    assert result.auc_ci[0] < result.auc < result.auc_ci[1]
    assert result.files["report"].read_text().count("(external)") >= 1
    assert len(pd.read_csv(result.files["predictions"])) == 30
    assert result.set_coverage is not None and result.set_coverage >= 0.7
    assert "Conformal prediction sets (stated coverage 90%)" in result.files["report"].read_text()
    with pytest.raises(ConfigError, match=r"features\.n_bins: bundle 32, here 16"):
        validate_bundle(bundle, load_study(_study(site_b, tmp_path / "other", n_bins=16)))


def test_damaged_or_foreign_bundles_are_refused(exported: tuple[Path, Path], tmp_path: Path) -> None:
    _, path = exported
    with zipfile.ZipFile(path) as zf:
        manifest, payload = zf.read("manifest.json"), bytearray(zf.read("pipeline.pkl"))
    payload[len(payload) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(damaged, "w") as zf:
        zf.writestr("manifest.json", manifest)
        zf.writestr("pipeline.pkl", bytes(payload))
    with pytest.raises(BundleError, match="damaged or altered"):
        load_bundle(damaged)
    newer = json.loads(manifest)
    newer["bundle_format"] = 99
    future = tmp_path / "future.zip"
    with zipfile.ZipFile(future, "w") as zf:
        zf.writestr("manifest.json", json.dumps(newer))
        zf.writestr("pipeline.pkl", b"")
    with pytest.raises(BundleError, match="upgrade smartimaging"):
        load_bundle(future)
    (tmp_path / "not.zip").write_text("hello")
    with pytest.raises(BundleError, match="not a smartimaging model bundle"):
        load_bundle(tmp_path / "not.zip")
