"""``smartimaging train`` on real files: a wide or tidy feature table plus a clinical table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
import yaml
from typer.testing import CliRunner

from smartimaging.cli_train import register


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    application = typer.Typer()
    register(application)

    @application.command()
    def version() -> None:  # a second command, so that 'train' is a sub-command as in cli.py
        print("v")

    return application


def _tables(tmp: Path, n: int = 45) -> tuple[Path, Path, pd.DataFrame]:
    rng = np.random.default_rng(7)
    ids = [f"S{i:03d}" for i in range(n)]
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    features = pd.DataFrame(X, columns=[f"stat_f{k}" for k in range(5)])
    features.insert(0, "patient_id", ids)
    clinical = pd.DataFrame(
        {
            "patient_id": ids,
            "age": np.round(60 + 10 * rng.normal(size=n)),
            "label": y,
            "os_months": np.round(np.minimum(rng.exponential(30 / np.exp(X[:, 0])), 48.0), 1),
            "death": rng.integers(0, 2, n),
        }
    )
    clinical.loc[clinical["os_months"] >= 48.0, "death"] = 0
    f, c = tmp / "features.csv", tmp / "clinical.csv"
    features.to_csv(f, index=False)
    clinical.to_csv(c, index=False)
    return f, c, features


FAST = ["--kind", "logistic", "--kind", "logistic_l1"]


def _config(tmp: Path, **extra: object) -> Path:
    path = tmp / "model.yaml"
    data = {
        "n_splits": 3,
        "n_repeats": 1,
        "inner_splits": 2,
        "n_boot": 200,
        "n_permutations": 2,
        "importance_repeats": 2,
        **extra,
    }
    path.write_text(yaml.safe_dump({"model": data}), encoding="utf-8")
    return path


def test_train_writes_tables_predictions_and_report(app: typer.Typer, tmp_path: Path) -> None:
    f, c, _ = _tables(tmp_path)
    out = tmp_path / "out"
    args = [
        "train",
        "--features",
        str(f),
        "--clinical",
        str(c),
        "--target",
        "label",
        "--clinical-column",
        "age",
    ]
    result = CliRunner().invoke(app, [*args, *FAST, "--config", str(_config(tmp_path)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "models.csv")
    assert set(table["model"]) == {
        "clinical",
        "radiomics",
        "combined",
        "clinical [logistic_l1]",
        "radiomics [logistic_l1]",
        "combined [logistic_l1]",
    }
    assert table.set_index("model").loc["radiomics", "auc"] > 0.8
    assert {"p_vs_best", "p_vs_clinical", "sensitivity", "brier", "calibration_slope"} <= set(table.columns)
    preds = pd.read_csv(out / "model_predictions.csv")
    assert len(preds) == 6 * 45 and set(preds["patient_id"]) == {f"S{i:03d}" for i in range(45)}
    delong = pd.read_csv(out / "model_delong.csv")
    assert len(delong) == 15 and delong["p_value"].between(0, 1).all()
    html = (out / "report.html").read_text(encoding="utf-8")
    for section in ("comparison", "calibration", "decision", "explanation"):
        assert f'<section id="{section}">' in html
    assert "radiomics [logistic_l1]" in html and "p vs best" in html
    saved = yaml.safe_load((out / "model_config.yaml").read_text(encoding="utf-8"))
    assert saved["kinds"] == ["logistic", "logistic_l1"] and saved["clinical_columns"] == ["age"]
    assert not list(out.glob("*.tmp*"))  # atomic writes leave no temporary file
    assert "radiomics: AUC" in result.output


def test_survival_from_a_tidy_feature_table(app: typer.Typer, tmp_path: Path) -> None:
    _, c, features = _tables(tmp_path)
    long = features.melt(id_vars="patient_id", var_name="column", value_name="value")
    tidy = pd.DataFrame(
        {
            "case": long["patient_id"],
            "roi": "GTV_1",
            "modality": "PT",
            "image_type": "original",
            "family": "statistics",
            "feature": long["column"],
            "ibsi_id": "",
            "aggregation": "",
            "value": long["value"],
            "key": long["column"].str.replace("stat_", "stat."),
        }
    )
    tidy_path = tmp_path / "tidy.parquet"
    tidy.to_parquet(tidy_path, index=False)
    out = tmp_path / "surv"
    args = [
        "train",
        "--features",
        str(tidy_path),
        "--clinical",
        str(c),
        "--time",
        "os_months",
        "--event",
        "death",
    ]
    cfg = _config(tmp_path, survival={"time": "x", "event": "y", "kinds": ["cox"]}, target=None)
    result = CliRunner().invoke(app, [*args, "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 0, result.output
    surv = pd.read_csv(out / "survival_models.csv")
    assert list(surv["model"]) == ["radiomics [cox]"] and surv.loc[0, "n_patients"] == 45
    assert surv.loc[0, "harrell_c_ci_low"] <= surv.loc[0, "harrell_c"] <= surv.loc[0, "harrell_c_ci_high"]
    assert not (out / "models.csv").exists()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Kaplan-Meier" in html and "Harrell C" in html


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--target", "outcome"], "model.target 'outcome'"),
        (["--target", "label", "--clinical-column", "smoker"], "smoker"),
        (["--target", "label", "--id-column", "pid"], "--id-column 'pid'"),
        (["--time", "os_months"], "--time and --event go together"),
        (["--target", "label", "--kind", "deep_net"], "kinds"),
        ([], "give --target"),
    ],
)
def test_clear_errors_exit_non_zero(
    app: typer.Typer, tmp_path: Path, change: list[str], message: str
) -> None:
    f, c, _ = _tables(tmp_path, n=12)
    args = ["train", "--features", str(f), "--clinical", str(c), "--out", str(tmp_path / "o"), *change]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "o" / "report.html").exists()


def test_patient_ids_that_do_not_match_are_reported(app: typer.Typer, tmp_path: Path) -> None:
    f, c, features = _tables(tmp_path, n=12)
    features.assign(patient_id=[f"X{i}" for i in range(12)]).to_csv(f, index=False)
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--features",
            str(f),
            "--clinical",
            str(c),
            "--target",
            "label",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2
    assert "no patient ID is in both tables" in " ".join(result.output.split())
