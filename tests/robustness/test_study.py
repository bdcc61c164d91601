"""The robustness study runner and the ``smartimaging robustness`` command, on tiny patients."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from smartimaging.cli_robustness import robustness_command
from smartimaging.exceptions import SmartImagingError
from smartimaging.features.batch import Case
from smartimaging.features.extract import extract, to_wide
from smartimaging.features.settings import ExtractionSettings
from smartimaging.image import Image, Mask
from smartimaging.io.nifti import write_image
from smartimaging.robustness.icc import intraclass_correlation
from smartimaging.robustness.perturb import Perturbation, perturbation_set
from smartimaging.robustness.study import (
    ICC_COLUMNS,
    STABLE_COLUMNS,
    build_conditions,
    robustness_study,
    write_results,
)

SETTINGS = ExtractionSettings(families=["morphology", "intensity statistics"])
SPACING = (4.0, 4.0, 4.0)


def _patient(i: int, *, radius_mm: float = 14.0) -> tuple[Image, Mask]:
    """A hot sphere of SUV ~ 4-8 in a noisy background; size and uptake vary between patients."""
    rng = np.random.default_rng([11, i])
    shape = (16, 18, 18)
    z, y, x = np.indices(shape, dtype=float)
    r = np.sqrt(((x - 9) * 4) ** 2 + ((y - 9) * 4) ** 2 + ((z - 8) * 4) ** 2)
    size = radius_mm + 2.0 * i
    suv = 1.0 + (3.0 + i) * (r <= size) * (1.0 - 0.3 * r / size) + rng.normal(0, 0.15, shape)
    image = Image(suv, SPACING, origin=(-30.0, 12.0, 100.0))
    return image, Mask(r <= size, SPACING, origin=(-30.0, 12.0, 100.0))


def _cases(n: int = 4) -> list[Case]:
    return [Case(f"p{i}", *_patient(i), modality="PT") for i in range(n)]


def test_study_tables_and_icc():
    perts = perturbation_set(("dilate", "noise", "rotate"), noise_sd=0.2, angles_deg=(15.0,))
    res = robustness_study(_cases(), segmentations=["relative:0.5"], perturbations=perts, settings=SETTINGS)
    assert res.failures.empty
    assert res.conditions["condition"].tolist() == [
        "contour", "relative_50pct", "dilate_10pct", "dilate_20pct", "noise_1", "noise_2", "rotate_15deg",
    ]  # fmt: skip
    assert len(res.features) == 4 * 7
    assert res.features.columns[:3].tolist() == ["case", "condition", "group"]
    # the reference rows are exactly what extract() gives on the given contour (after the crop)
    image, mask = _patient(2)
    ref = to_wide(extract(image, mask, settings=SETTINGS, case="p2", roi="contour", modality="PT"))
    row = res.features[(res.features["case"] == "p2") & (res.features["condition"] == "contour")]
    for col in ("stat_mean", "morph_vol", "stat_max"):
        assert row[col].iloc[0] == pytest.approx(ref[col].iloc[0], rel=1e-12)
    assert list(res.icc.columns) == list(ICC_COLUMNS)
    assert set(res.icc["group"]) == {"segmentation", "dilate", "noise", "rotate", "all"}
    # ICCs of a group are those of the (patients x conditions) table of that group
    noise = res.icc[res.icc["group"] == "noise"].set_index("feature")
    cube = (
        res.features.set_index(["case", "condition"])["stat_mean"]
        .unstack()[["contour", "noise_1", "noise_2"]]
        .to_numpy()
    )
    assert noise.loc["stat_mean", "icc2"] == pytest.approx(intraclass_correlation(cube).icc2[0], rel=1e-12)
    # noise leaves the ROI, hence the shape, unchanged: ICC exactly 1
    assert noise.loc["morph_vol", "icc2"] == 1.0 and noise.loc["morph_vol", "icc2_low"] == 1.0
    assert noise.loc["stat_mean", "n_conditions"] == 3 and noise.loc["stat_mean", "n_cases"] == 4


def test_deterministic_and_parallel_equal():
    perts = [Perturbation("n", "noise", noise_sd="estimate"), Perturbation("c", "combined", rotate_deg=5.0,
             translate_voxels=(0.5, 0.0, 0.0), adapt_fraction=-0.1, noise_sd=0.3)]  # fmt: skip
    a = robustness_study(_cases(3), segmentations=[], perturbations=perts, settings=SETTINGS, seed=3)
    b = robustness_study(
        _cases(3), segmentations=[], perturbations=perts, settings=SETTINGS, seed=3, n_jobs=2
    )
    pd.testing.assert_frame_equal(a.features, b.features)
    pd.testing.assert_frame_equal(a.icc, b.icc)
    c = robustness_study(_cases(3), segmentations=[], perturbations=perts, settings=SETTINGS, seed=4)
    assert not np.allclose(a.features["stat_mean"], c.features["stat_mean"])


def test_failures_are_reported_not_fatal():
    cases = _cases(4)
    empty = Mask(np.zeros((16, 18, 18), bool), SPACING, origin=(-30.0, 12.0, 100.0))
    cases.append(Case("empty", cases[0].image, empty, modality="PT"))
    small_img, small = _patient(0, radius_mm=3.0)  # 1 voxel: eroded away
    cases.append(Case("tiny", small_img, small, modality="PT"))
    perts = [Perturbation("erode_4mm", "erode", adapt_mm=-4.0), Perturbation("n", "noise", noise_sd=0.1)]
    res = robustness_study(cases, segmentations=[], perturbations=perts, settings=SETTINGS)
    fails = res.failures.set_index("case")
    assert fails.loc["empty", "condition"] == "" and "no voxel" in fails.loc["empty", "reason"]
    assert fails.loc["tiny", "condition"] == "erode_4mm" and "empty" in fails.loc["tiny", "reason"]
    icc = res.icc.set_index(["group", "feature"])
    assert icc.loc[("erode", "stat_mean"), "n_cases"] == 4  # 'tiny' left out of the erosion group
    assert icc.loc[("noise", "stat_mean"), "n_cases"] == 5  # but kept where it is complete
    with pytest.raises(SmartImagingError, match="no patient"):
        robustness_study([Case("e", cases[0].image, empty)], settings=SETTINGS)


def test_conditions_and_outputs(tmp_path: Path):
    with pytest.raises(ValueError, match="unique"):
        build_conditions(["relative:0.4", "relative:40"])
    res = robustness_study(
        _cases(3),
        segmentations=["fixed:2.5"],
        perturbations=perturbation_set(("translate",)),
        settings=SETTINGS,
    )
    paths = write_results(res, tmp_path / "out", threshold=0.5, criterion="point")
    assert sorted(p.name for p in paths.values()) == [
        "conditions.csv", "failures.csv", "features.csv", "icc.csv", "stable_features.csv",
    ]  # fmt: skip
    stable = pd.read_csv(paths["stable_features"])
    assert stable.columns.tolist() == list(STABLE_COLUMNS)
    assert set(stable["feature"]) == set(res.icc["feature"])
    all_icc = res.icc[res.icc["group"] == "all"].set_index("feature")["icc2"]
    expected = (all_icc >= 0.5).to_dict()
    assert stable.set_index("feature")["stable"].to_dict() == expected
    assert 0 < stable["stable"].sum() < len(stable)  # the threshold separates the features


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("robustness")(robustness_command)

    @app.command("other")
    def _other() -> None:
        """Keep typer in multi-command mode."""

    return app


def test_cli(tmp_path: Path):
    for i in range(3):
        image, mask = _patient(i)
        write_image(image, tmp_path / "images" / f"p{i}.nii.gz")
        write_image(mask, tmp_path / "masks" / f"p{i}.nrrd")
    (tmp_path / "settings.yaml").write_text(
        "families: [morphology, intensity statistics]\n", encoding="utf-8"
    )
    args = ["robustness", "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"),
            "--out", str(tmp_path / "out"), "--settings", str(tmp_path / "settings.yaml"),
            "--segmentation", "relative:0.4", "--perturb", "erode,noise", "--adapt-mm", "4", "--noise-sd", "0.2",
            "--criterion", "point", "-q"]  # fmt: skip
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert "3 patient(s), 5 conditions, 0 failure(s)" in result.output
    assert "noise: " in result.output and "features with ICC(2,1) point estimate >= 0.75" in result.output
    icc = pd.read_csv(tmp_path / "out" / "icc.csv")
    assert set(icc["group"]) == {"segmentation", "erode", "noise", "all"}
    conds = pd.read_csv(tmp_path / "out" / "conditions.csv")
    assert conds["condition"].tolist() == ["contour", "relative_40pct", "erode_4mm", "noise_1", "noise_2"]
    bad = CliRunner().invoke(_app(), [*args[:-3], "--criterion", "median"])
    assert bad.exit_code == 2 and "--criterion" in bad.output
    (tmp_path / "masks" / "p0.nrrd").unlink()
    unpaired = CliRunner().invoke(_app(), args)
    assert unpaired.exit_code == 2 and "['p0']" in unpaired.output


def test_cli_from_study_file(tmp_path: Path):
    for i in range(3):
        image, mask = _patient(i)
        labels = Image(mask.array.astype(np.uint8), mask.spacing, mask.origin)
        labels.array[0, 0, 0] = 2  # a second, 1-voxel lesion: the primary ROI is the largest
        write_image(image, tmp_path / "n" / f"P{i}" / "suv.nii.gz")
        write_image(labels, tmp_path / "n" / f"P{i}" / "lesions.nii.gz")
    (tmp_path / "study.yaml").write_text(
        "input:\n  nifti:\n    images: n/{patient_id}/suv.nii.gz\n    masks: n/{patient_id}/lesions.nii.gz\n"
        "model: null\nseed: 5\nfeatures:\n  families: [morphology, intensity statistics, PET]\n",
        encoding="utf-8",
    )
    args = ["robustness", "--study", str(tmp_path / "study.yaml"), "--out", str(tmp_path / "out"),
            "--segmentation", "contour", "--perturb", "noise", "--noise-sd", "0.2", "-q"]  # fmt: skip
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert "3 patient(s), 3 conditions, 0 failure(s)" in result.output
    features = pd.read_csv(tmp_path / "out" / "features.csv")
    assert sorted(set(features["case"])) == ["P0", "P1", "P2"]
    ref = features[(features["case"] == "P1") & (features["condition"] == "contour")]
    assert ref["morph_approx_vol"].iloc[0] == pytest.approx(_patient(1)[1].n_voxels * 64.0, rel=1e-9)
    assert "PET_SUVmax" in features.columns  # the study's PET is modality PT
    both = CliRunner().invoke(_app(), [*args, "--images", str(tmp_path)])
    assert both.exit_code == 2 and "either --images and --masks, or --study" in both.output
