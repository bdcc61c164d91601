"""`smartimaging suv`: one PET series to an SUV NIfTI, printing the factor and the tags used."""

from __future__ import annotations

from pathlib import Path

import pytest
import SimpleITK as sitk
import typer
from typer.testing import CliRunner

from smartimaging.cli_suv import suv_command


@pytest.fixture(scope="module")
def suv_cli() -> typer.Typer:
    app = typer.Typer()
    app.command("suv")(suv_command)
    app.command("noop")(lambda: None)  # two commands, so that "suv" is a sub-command as in cli.py
    return app


def test_cli_suv_on_sts001(shared_dir: Path, tmp_path: Path, suv_cli: typer.Typer) -> None:
    out = tmp_path / "suv.nii.gz"
    root = shared_dir / "data" / "sts001_fdg_pet_raw"  # PET + RTSTRUCT: the PT series is picked
    result = CliRunner().invoke(suv_cli, ["suv", str(root), "--type", "bw", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "SUVbw factor: 0.000242903" in result.output
    for tag in ("PatientWeight_kg: 71", "RadionuclideTotalDose_Bq: 3.88777e+08", "uptake_s: 2711"):
        assert tag in result.output
    suv = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    assert suv.shape == (267, 128, 128)
    assert float(suv.max()) == pytest.approx(66.5, abs=0.05)  # whole-volume SUVmax (README)


def test_cli_suv_errors_list_the_series_and_the_override(
    shared_dir: Path, tmp_path: Path, suv_cli: typer.Typer
) -> None:
    out = tmp_path / "suv.nii.gz"
    runner = CliRunner()
    several = runner.invoke(
        suv_cli, ["suv", str(shared_dir / "data" / "ibsi_suv_dro" / "DRO"), "--out", str(out)]
    )
    assert several.exit_code == 2 and "17 PET series found" in several.output
    none = runner.invoke(
        suv_cli, ["suv", str(shared_dir / "data" / "sts001_fdg_pet_raw" / "rtstruct"), "-o", str(out)]
    )
    assert none.exit_code == 2 and "no PET (Modality PT) series" in none.output and "RTSTRUCT" in none.output
    bad = runner.invoke(
        suv_cli,
        [
            "suv",
            str(shared_dir / "data" / "sts001_fdg_pet_raw" / "pet_dicom"),
            "--type",
            "xyz",
            "-o",
            str(out),
        ],
    )
    assert bad.exit_code == 2 and "--type must be one of" in bad.output
    assert not out.exists()


def test_cli_suv_on_a_bqml_nifti(tmp_path: Path, suv_cli: typer.Typer) -> None:
    import numpy as np

    from smartimaging.image import Image
    from smartimaging.io.nifti import write_image

    pet = tmp_path / "PET.nii.gz"
    write_image(Image(np.full((2, 3, 4), 5000.0, dtype=np.float32), spacing=(2.0, 2.0, 3.0)), pet)
    out = tmp_path / "suv.nii.gz"
    runner = CliRunner()
    args = ["suv", str(pet), "--dose-mbq", "350", "--weight-kg", "72", "--uptake-min", "62", "-o", str(out)]
    result = runner.invoke(suv_cli, [*args, "--type", "bw"])
    assert result.exit_code == 0, result.output
    factor = 72000 / (350e6 * 2 ** (-62 * 60 / 6586.2))
    assert f"SUVbw factor: {factor:.6g}" in result.output and "uptake_s: 3720" in result.output
    suv = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    np.testing.assert_allclose(suv, 5000.0 * factor, rtol=1e-6)
    # SUL needs height and sex: the message names the option; nothing is written
    out.unlink()
    missing = runner.invoke(suv_cli, [*args, "--type", "lbm"])
    assert missing.exit_code == 2 and "patient height" in missing.output and "--height-m" in missing.output
    assert not out.exists()
    no_uptake = runner.invoke(
        suv_cli, ["suv", str(pet), "--dose-mbq", "350", "--weight-kg", "72", "-o", str(out)]
    )
    assert no_uptake.exit_code == 2 and "--uptake-min" in no_uptake.output
    both = runner.invoke(suv_cli, [*args, "--dose-bq", "3.5e8"])
    assert both.exit_code == 2 and "not both" in both.output
    admin = runner.invoke(
        suv_cli,
        [
            "suv",
            str(pet),
            "--dose-mbq",
            "350",
            "--weight-kg",
            "72",
            "--decay-corrected-to",
            "admin",
            "-o",
            str(out),
        ],
    )
    assert admin.exit_code == 0 and f"SUVbw factor: {72000 / 350e6:.6g}" in admin.output
