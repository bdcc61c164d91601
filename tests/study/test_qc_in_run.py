"""Acquisition QC in a study run: qc.csv, qc_summary.csv and the report section."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from smartimaging.study.config import load_study
from smartimaging.study.demo import demo_study
from smartimaging.study.runner import run_study
from smartimaging.synthetic import SITES, generate_cohort


def test_run_writes_qc_tables_and_report_section(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate_cohort(data, n_patients=3, n_slices=48, progress=False)
    settings = {**demo_study(data, tmp_path / "out"), "model": None}
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(settings), encoding="utf-8")
    summary = run_study(load_study(study), quiet=True)

    out = tmp_path / "out"
    assert summary.files["qc"] == out / "qc.csv" and summary.files["qc_summary"] == out / "qc_summary.csv"
    qc = pd.read_csv(out / "qc.csv", dtype={"PatientID": str})
    clinical = pd.read_csv(data / "clinical.csv", dtype={"patient_id": str})
    assert len(qc) == 6  # one PET and one CT series per patient
    assert sorted(qc["Modality"]) == ["CT"] * 3 + ["PT"] * 3
    assert set(qc["PatientID"]) == set(clinical["patient_id"])
    pet = qc[qc["Modality"] == "PT"]
    assert pet["uptake_min"].notna().all() and pet["dose_per_kg_MBq"].notna().all()

    # Manufacturer varies across the cohort exactly when the patients come from sites of 2+ vendors
    vendors = {SITES[s].manufacturer for s in clinical["site"]}
    table = pd.read_csv(out / "qc_summary.csv")
    row = table[(table["Modality"] == "PT") & (table["attribute"] == "Manufacturer")].iloc[0]
    assert row["n_series"] == 3 and row["n_distinct"] == len(vendors)
    assert bool(row["varies"]) == (len(vendors) > 1)
    assert all(v in row["values"] for v in vendors)

    html = (out / "report.html").read_text(encoding="utf-8")
    assert '<section id="qc">' in html and '<a href="#qc">Acquisition QC</a>' in html
    flags = ["flag_uptake", "flag_dose_per_kg", "flag_glucose", "flag_missing"]
    n_flagged = int(qc[flags].astype(bool).any(axis=1).sum())
    assert f"{n_flagged} of 6 series flagged" in html
    assert "What varies across the cohort" in html
