"""``smartimaging segment evaluate`` and segment/evaluation.py: files, folders, DICOM SEG/RTSTRUCT."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from smartimaging.cli_segeval import register
from smartimaging.exceptions import SmartImagingError
from smartimaging.image import Image, Mask
from smartimaging.io.nifti import write_image
from smartimaging.io.rtstruct import write_rtstruct
from smartimaging.io.seg import write_seg
from smartimaging.segment.evaluation import case_name, evaluate_paths, pair_folders
from smartimaging.segment.metrics import METRIC_COLUMNS, evaluate_segmentation


def _factory():
    path = Path(__file__).resolve().parents[1] / "io" / "_mask_dicom_factory.py"
    spec = importlib.util.spec_from_file_location("_mask_dicom_factory_segeval", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _app() -> typer.Typer:
    group = typer.Typer()

    @group.callback()
    def _segment() -> None:
        """Throwaway 'segment' group."""

    register(group)
    return group


def _masks(seed: int):
    rng = np.random.default_rng(seed)
    t = np.zeros((8, 12, 12), bool)
    t[2:6, 3:8, 3:8] = True
    p = np.roll(t, int(rng.integers(1, 3)), axis=2)
    p[7, 11, 11] = True  # a false-positive voxel
    geom = dict(spacing=(2.0, 2.0, 3.0), origin=(-10.0, 5.0, 20.0))
    return Mask(p, **geom), Mask(t, **geom)


def test_case_name():
    assert case_name("a/p001.nii.gz") == "p001" and case_name("p1.NRRD") == "p1" and case_name("x.dcm") == "x"


def test_folders_cli(tmp_path: Path):
    (tmp_path / "pred").mkdir()
    (tmp_path / "truth").mkdir()
    expected = {}
    for i, case in enumerate(["p1", "p2"]):
        pred, truth = _masks(i)
        write_image(pred, tmp_path / "pred" / f"{case}.nii.gz")
        write_image(truth, tmp_path / "truth" / f"{case}.nrrd")
        expected[case] = evaluate_segmentation(pred, truth, tolerance_mm=3.0)
    out = tmp_path / "res" / "metrics.csv"
    result = CliRunner().invoke(
        _app(),
        [
            "evaluate",
            str(tmp_path / "pred"),
            str(tmp_path / "truth"),
            "--out",
            str(out),
            "--tolerance-mm",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 case(s)" in result.output and "lesion sensitivity: 2/2" in result.output
    table = pd.read_csv(out)
    assert table["case"].tolist() == ["p1", "p2"]
    for _, row in table.iterrows():
        for col in METRIC_COLUMNS:
            assert row[col] == pytest.approx(expected[row["case"]][col]), col
    assert (table["n_false_positive"] == 1).all()


def test_unpaired_and_mixed_inputs(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    pred, truth = _masks(0)
    write_image(pred, tmp_path / "a" / "p1.nii.gz")
    write_image(truth, tmp_path / "b" / "p2.nii.gz")
    with pytest.raises(SmartImagingError, match=r"only in .*\['p1'\].*\['p2'\]"):
        pair_folders(tmp_path / "a", tmp_path / "b")
    result = CliRunner().invoke(_app(), ["evaluate", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 2 and "paired by file name" in result.output
    with pytest.raises(SmartImagingError, match="two mask files or two folders"):
        evaluate_paths(tmp_path / "a" / "p1.nii.gz", tmp_path / "b")


def test_dicom_seg_and_rtstruct(tmp_path: Path):
    factory = _factory()
    datasets, grid = factory.make_ct_series(shuffle=False)
    masks = factory.make_masks(grid)
    seg = write_seg({"sphere": masks["sphere"], "ring": masks["ring"]}, datasets, tmp_path / "seg.dcm")
    rts = write_rtstruct({"sphere": masks["sphere"]}, datasets, tmp_path / "rs.dcm")
    union = Mask(
        masks["sphere"].array | masks["ring"].array, grid.spacing, grid.origin, grid.direction.copy()
    )
    write_image(union, tmp_path / "union.nii.gz")
    write_image(masks["sphere"], tmp_path / "sphere.nii.gz")
    # a SEG (all segments united) against the same voxels in NIfTI: perfect agreement
    row = evaluate_paths(seg, tmp_path / "union.nii.gz").iloc[0]
    assert row["dice"] == 1.0 and row["hd95_mm"] == 0.0 and row["n_true"] == 2 and row["n_detected"] == 2
    # one segment selected by name
    row = evaluate_paths(seg, tmp_path / "sphere.nii.gz", roi="SPHERE").iloc[0]
    assert row["dice"] == 1.0
    # an RTSTRUCT is rasterised onto the other mask's grid
    row = evaluate_paths(rts, tmp_path / "union.nii.gz").iloc[0]
    assert row["dice"] == pytest.approx(
        2 * masks["sphere"].n_voxels / (masks["sphere"].n_voxels + union.n_voxels)
    )
    assert row["n_detected"] == 1 and row["false_negative_volume_ml"] == pytest.approx(
        masks["ring"].volume_ml
    )
    # two RTSTRUCTs need a reference grid
    with pytest.raises(SmartImagingError, match="reference"):
        evaluate_paths(rts, rts)
    write_image(
        Image(np.zeros(grid.shape, np.int16), grid.spacing, grid.origin, grid.direction),
        tmp_path / "ct.nii.gz",
    )
    row = evaluate_paths(rts, rts, reference=tmp_path / "ct.nii.gz").iloc[0]
    assert row["dice"] == 1.0
