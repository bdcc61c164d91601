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
