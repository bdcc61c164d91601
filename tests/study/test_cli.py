"""The command line: errors are printed with the key and the fix, and exit with status 2."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from smartimaging import __version__
from smartimaging.cli import app

runner = CliRunner()


def test_version_lists_dependencies() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert __version__ in result.output and "pydicom" in result.output


def test_run_with_an_invalid_study_names_the_key(tmp_path: Path) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(
        yaml.safe_dump({"input": {"dicom_dir": "d", "clinical": "c.csv"}, "jbos": 2}), encoding="utf-8"
    )
    result = runner.invoke(app, ["run", str(study)])
    assert result.exit_code == 2
    assert "unknown key 'jbos'" in result.output


def test_run_with_a_missing_folder_says_which(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("patient_id,label\nA,1\n", encoding="utf-8")
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"input": {"dicom_dir": "nope", "clinical": "c.csv"}}), encoding="utf-8")
    result = runner.invoke(app, ["run", str(study), "--quiet"])
    assert result.exit_code == 2
    assert "input.dicom_dir" in result.output and "nope" in result.output


def test_synth_writes_a_cohort(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", str(tmp_path / "c"), "--patients", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "2 patients written" in result.output
    assert (tmp_path / "c" / "clinical.csv").is_file()
    assert sorted(p.name for p in (tmp_path / "c" / "dicom").iterdir()) == ["SYN001", "SYN002"]


def test_demo_reuses_a_cohort_only_from_the_same_generator(tmp_path: Path) -> None:
    import json

    from smartimaging.study.demo import _cohort_matches
    from smartimaging.synthetic import generate_cohort

    data = tmp_path / "data"
    generate_cohort(data, n_patients=2, seed=3, n_slices=48, progress=False)
    assert _cohort_matches(data, 2, 3)
    assert not _cohort_matches(data, 2, 4)
    meta = json.loads((data / "cohort.json").read_text(encoding="utf-8"))
    meta["generator_version"] = "0.9"
    (data / "cohort.json").write_text(json.dumps(meta), encoding="utf-8")
    assert not _cohort_matches(data, 2, 3)
