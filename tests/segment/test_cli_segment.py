"""``smartimaging segment``: options-only runs writing NIfTI, DICOM SEG and RTSTRUCT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import typer
from typer.testing import CliRunner

from smartimaging.cli_segment import segment_app
from smartimaging.io.dicom import discover, read_series
from smartimaging.io.nifti import read_image
from smartimaging.io.rtstruct import read_rtstruct
from smartimaging.io.seg import read_seg
from smartimaging.io.suv import to_suv
from smartimaging.segment.metrics import dice
from smartimaging.synthetic import generate_cohort

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("syn")
    generate_cohort(out, n_patients=1, seed=0, n_slices=40, progress=False)
    return out


def _invoke(args: list[str]) -> str:
    result = CliRunner().invoke(segment_app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_relative_peak_from_a_point_to_seg_rtstruct_and_nifti(cohort: Path, tmp_path: Path) -> None:
    pet_dir = cohort / "dicom" / "SYN001" / "PET"
    suv, _ = to_suv(read_series(next(s for s in discover(pet_dir).series if s.modality == "PT")))
    truth = read_seg(cohort / "dicom" / "SYN001" / "SEG" / "SEG.dcm", reference=suv)["GTV_1"]
    idx = np.argwhere(truth.array).mean(axis=0)[::-1]
    seed = ",".join(f"{v:.2f}" for v in suv.index_to_physical(idx))
    common = [
        "--method",
        "relative",
        "--fraction",
        "0.4",
        "--reference",
        "peak",
        "--pet",
        str(pet_dir),
        "--seed-mm",
        seed,
    ]
    out = _invoke([*common, "--out", str(tmp_path / "seg.dcm")])
    assert "written:" in out
    seg = read_seg(tmp_path / "seg.dcm", reference=suv)
    assert list(seg) == ["lesion_1"] and dice(seg["lesion_1"], truth) > 0.7
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    desc = ds.SegmentSequence[0]
    assert desc.SegmentAlgorithmType == "AUTOMATIC"
    assert desc.SegmentAlgorithmName == "smartimaging relative"
    pet_uids = {pydicom.dcmread(f, stop_before_pixels=True).SeriesInstanceUID for f in pet_dir.iterdir()}
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID in pet_uids
    _invoke([*common, "--out", str(tmp_path / "rtstruct.dcm")])
    rts = read_rtstruct(tmp_path / "rtstruct.dcm", suv)
    assert np.array_equal(rts["lesion_1"].array, seg["lesion_1"].array)
    _invoke([*common, "--out", str(tmp_path / "mask.nii.gz")])
    assert np.array_equal(read_image(tmp_path / "mask.nii.gz").array == 1, seg["lesion_1"].array)


def test_contour_refined_by_gradient_and_whole_body(cohort: Path, tmp_path: Path) -> None:
    pet_dir = cohort / "dicom" / "SYN001" / "PET"
    seg_path = cohort / "dicom" / "SYN001" / "SEG" / "SEG.dcm"
    out = _invoke(
        ["--method", "gradient", "--pet", str(pet_dir), "--contour", str(seg_path), "--roi", "GTV_1",
         "--out", str(tmp_path / "g.nii.gz")]
    )  # fmt: skip
    assert "gradient:" in out
    out = _invoke(
        ["--whole-body", "--threshold", "4", "--pet", str(pet_dir), "--min-volume-ml", "0.5",
         "--out", str(tmp_path / "seg_wb.dcm")]
    )  # fmt: skip
    assert "whole-body: threshold SUV 4" in out
    table = (tmp_path / "seg_wb_lesions.csv").read_text().splitlines()
    assert table[0] == "label,volume_ml,suv_max,suv_mean,centroid_x_mm,centroid_y_mm,centroid_z_mm"
    segs = read_seg(tmp_path / "seg_wb.dcm")
    assert list(segs) == [f"lesion_{i}" for i in range(1, len(table))]


def test_errors_are_clear(cohort: Path, tmp_path: Path) -> None:
    pet_dir = cohort / "dicom" / "SYN001" / "PET"
    nifti = cohort / "nifti" / "SYN001" / "pet.nii.gz"
    runner = CliRunner()
    r = runner.invoke(
        segment_app, ["--method", "otsu", "--pet", str(pet_dir), "--out", str(tmp_path / "m.nii.gz")]
    )
    assert r.exit_code == 2 and "--method must be one of" in r.output
    r = runner.invoke(segment_app, ["--pet", str(nifti), "--out", str(tmp_path / "seg.dcm")])
    assert r.exit_code == 2 and "needs the source PET DICOM series" in r.output
    r = runner.invoke(
        segment_app, ["--pet", str(pet_dir), "--seed-mm", "1,2", "--out", str(tmp_path / "m.nii.gz")]
    )
    assert r.exit_code == 2 and "--seed-mm expects 3" in r.output


def test_subcommands_bypass_the_callback() -> None:
    app = typer.Typer()
    group = typer.Typer()
    group.callback(invoke_without_command=True)(segment_app.registered_callback.callback)  # type: ignore[union-attr]
    called = []

    @group.command("evaluate")
    def evaluate() -> None:
        called.append(True)

    app.add_typer(group, name="segment")
    result = CliRunner().invoke(app, ["segment", "evaluate"])
    assert result.exit_code == 0, result.output
    assert called == [True]
