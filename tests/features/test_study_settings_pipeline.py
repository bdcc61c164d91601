"""Study settings files (image_processing + features) and processing followed by extraction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import typer
from typer.testing import CliRunner

from smartimaging.exceptions import ConfigError, EmptyMaskError, GeometryMismatchError
from smartimaging.features.extract import extract
from smartimaging.features.pipeline import extract_with_processing, load_study_settings
from smartimaging.features.settings import ExtractionSettings
from smartimaging.image import Image, Mask
from smartimaging.preprocess.resample import ImageProcessingSettings, preprocess

REPO = Path(__file__).resolve().parents[2]
SP = (1.0, 1.0, 2.0)
STATS = ExtractionSettings(families=["morphology", "intensity statistics"])


def _case() -> tuple[Image, Mask]:
    rng = np.random.default_rng(7)
    arr = rng.normal(0.0, 300.0, size=(8, 12, 12))
    roi = np.zeros(arr.shape, bool)
    roi[2:6, 3:9, 3:9] = True
    return Image(arr, spacing=SP), Mask(roi, spacing=SP)


@pytest.mark.parametrize("config", ["A", "B", "C", "D", "E"])
def test_ibsi_config_files_load_both_sections(config: str) -> None:
    processing, settings = load_study_settings(REPO / "examples" / "ibsi" / f"ibsi1_config_{config}.yaml")
    assert isinstance(processing, ImageProcessingSettings) and isinstance(settings, ExtractionSettings)
    assert processing.round_to == 1
    expected_ivh = {"A": "discrete", "B": "discrete", "C": "fixed_bin_size", "D": "discrete"}
    assert settings.ivh.method == expected_ivh.get(config, "fixed_bin_number")


def test_plain_extraction_file_and_errors(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text("families: [intensity statistics]\n")
    assert load_study_settings(plain) == (None, ExtractionSettings(families=["intensity statistics"]))
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("image_processing: {round_to: 1}\nfeature: {}\n")
    with pytest.raises(ConfigError, match=r"unknown top-level section\(s\) \['feature'\].*image_processing"):
        load_study_settings(unknown)
    bad = tmp_path / "bad.yaml"
    bad.write_text("features:\n  distance: 0\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*features\.distance"):
        load_study_settings(bad)
    bad.write_text("features:\n  ivh: {discretisation: nope}\n")
    with pytest.raises(ConfigError, match=r"ivh\.discretisation 'nope'"):
        load_study_settings(bad)
    bad.write_text("image_processing:\n  round_to: -1\n")
    with pytest.raises(ConfigError, match=r"image_processing\.round_to"):
        load_study_settings(bad)
    with pytest.raises(ConfigError, match="cannot read settings file"):
        load_study_settings(tmp_path / "missing.yaml")


def test_extract_with_processing_uses_both_masks() -> None:
    image, mask = _case()
    processing = ImageProcessingSettings(
        spacing=(2.0, 2.0, 2.0), round_to=1, resegmentation_range=(-200.0, 200.0)
    )
    table = extract_with_processing(image, mask, processing=processing, settings=STATS).set_index("key")
    img2, intensity, morph = preprocess(image, mask, processing)
    assert intensity.n_voxels < morph.n_voxels  # re-segmentation removed voxels
    assert table.loc["stat.mean", "value"] == pytest.approx(img2.array[intensity.array].mean())
    assert table.loc["stat.min", "value"] >= -200 and table.loc["stat.max", "value"] <= 200
    assert table.loc["morph.approx.vol", "value"] == pytest.approx(morph.n_voxels * 8.0)
    unprocessed = extract_with_processing(image, mask, processing=None, settings=STATS)
    pd.testing.assert_frame_equal(unprocessed, extract(image, mask, settings=STATS))


def test_extract_intensity_mask_checks() -> None:
    image, mask = _case()
    outside = Mask(~mask.array, spacing=SP)
    with pytest.raises(GeometryMismatchError, match="outside the morphological mask"):
        extract(image, mask, settings=STATS, intensity_mask=outside)
    with pytest.raises(EmptyMaskError, match=r"intensity mask .* contains no voxel"):
        extract(image, mask, settings=STATS, intensity_mask=Mask(np.zeros_like(mask.array), spacing=SP))


def test_cli_applies_image_processing(tmp_path: Path) -> None:
    from smartimaging.cli_extract import extract_command

    image, mask = _case()
    ipath, mpath = tmp_path / "img.nii.gz", tmp_path / "mask.nii.gz"
    sitk.WriteImage(image.to_sitk(), str(ipath))
    sitk.WriteImage(Image(mask.array.astype(np.uint8), spacing=SP).to_sitk(), str(mpath))
    settings = tmp_path / "s.yaml"
    settings.write_text(
        "image_processing:\n  spacing: [2.0, 2.0, 2.0]\n  round_to: 1\n"
        "  resegmentation_range: [-200.0, 200.0]\nfeatures:\n  families: [intensity statistics]\n"
    )
    app = typer.Typer()
    app.command(name="extract")(extract_command)

    @app.command()
    def other() -> None:
        """Unused."""

    out = tmp_path / "f.csv"
    args = [
        "extract",
        "--image",
        str(ipath),
        "--mask",
        str(mpath),
        "--settings",
        str(settings),
        "--out",
        str(out),
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    got = pd.read_csv(out, keep_default_na=False).set_index("key")
    img2, intensity, _ = preprocess(
        image,
        mask,
        ImageProcessingSettings.model_validate(
            {"spacing": [2.0, 2.0, 2.0], "round_to": 1, "resegmentation_range": [-200.0, 200.0]}
        ),
    )
    assert got.loc["stat.mean", "value"] == pytest.approx(img2.array[intensity.array].mean(), rel=1e-6)
    settings.write_text("image_processing: {}\nextra: {}\n")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "['extra']" in res.output
