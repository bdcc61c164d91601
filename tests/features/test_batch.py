"""Tests of batch extraction (features/batch.py) and the ``extract`` command (cli_extract.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import typer
from typer.testing import CliRunner

from smartimaging.exceptions import SmartImagingError
from smartimaging.features.batch import BatchResult, Case, CaseFailure, extract_batch, extract_case, read_case
from smartimaging.features.extract import OUTPUT_COLUMNS, extract
from smartimaging.features.settings import ExtractionSettings
from smartimaging.image import Image, Mask
from smartimaging.io.rtstruct import write_rtstruct
from smartimaging.io.seg import write_seg

SP = (2.0, 2.0, 2.5)
SETTINGS = ExtractionSettings(families=["intensity statistics", "GLCM", "PET"], aggregation=["3D_avg"])


def _image_and_labels(seed: int = 0) -> tuple[Image, Image]:
    rng = np.random.default_rng(seed)
    img = Image(rng.gamma(3.0, 1.0, size=(10, 12, 14)), spacing=SP, origin=(-5.0, 3.0, 40.0))
    labels = np.zeros(img.shape, np.int16)
    labels[2:7, 3:8, 2:7] = 1
    labels[3:8, 4:10, 8:13] = 2
    return img, img.with_array(labels)


def _write(img: Image, path: Path) -> Path:
    sitk.WriteImage(img.to_sitk(), str(path))
    return path


@pytest.fixture
def volume_files(tmp_path: Path) -> tuple[Path, Path, Image, Image]:
    img, labels = _image_and_labels()
    return _write(img, tmp_path / "img.nii.gz"), _write(labels, tmp_path / "labels.nrrd"), img, labels


def test_read_case_from_files_and_labels(volume_files):
    ipath, lpath, img, labels = volume_files
    got_img, got_mask, roi, modality = read_case(ipath, lpath)
    assert np.allclose(got_img.array, img.array) and got_img.same_geometry(img)
    assert got_mask.n_voxels == int(np.count_nonzero(labels.array)) and roi == "" and modality == ""
    _, m2, _, _ = read_case(ipath, lpath, label=2, roi="node")
    assert m2.n_voxels == int(np.sum(labels.array == 2))
    with pytest.raises(SmartImagingError, match=r"label 3 does not occur.*labels present: \[0, 1, 2\]"):
        read_case(ipath, lpath, label=3)
    with pytest.raises(SmartImagingError, match="image not found"):
        read_case(ipath.with_name("nope.nii.gz"), lpath)
    bad = ipath.with_name("bad.nii.gz")
    bad.write_bytes(b"not an image")
    with pytest.raises(SmartImagingError, match="cannot read image"):
        read_case(bad, lpath)


def test_batch_with_a_failing_case_among_good_ones(volume_files, tmp_path):
    ipath, lpath, img, labels = volume_files
    lesion1 = Mask(labels.array == 1, img.spacing, img.origin)
    cases = [
        Case("p1", ipath, lpath, "gtv", "PT", 1),
        Case("p2", img, lesion1, "gtv", "PT"),
        Case("broken", tmp_path / "missing.nii.gz", lpath, "gtv", "PT"),
        Case("empty", img, Mask(np.zeros(img.shape, bool), img.spacing, img.origin), "node", "PT"),
        ("p3", ipath, lpath, "node", "CT", 2),  # a plain tuple works too
    ]
    result = extract_batch(cases, settings=SETTINGS, n_jobs=2)
    assert isinstance(result, BatchResult)
    assert [f.case for f in result.failures] == ["broken", "empty"]
    assert "missing.nii.gz" in result.failures[0].reason
    assert "contains no voxel" in result.failures[1].reason and result.failures[1].roi == "node"
    assert tuple(result.table.columns) == OUTPUT_COLUMNS
    assert list(result.table["case"].unique()) == ["p1", "p2", "p3"]  # order given, not completion
    t = result.table.set_index(["case", "key", "aggregation"])["value"]
    direct = extract(img, lesion1, settings=SETTINGS, case="p1", roi="gtv", modality="PT")
    assert t.loc["p1"].to_numpy() == pytest.approx(direct["value"].to_numpy())
    assert t.loc["p2"].to_numpy() == pytest.approx(direct["value"].to_numpy())
    assert set(result.table.loc[result.table["case"] == "p3", "modality"]) == {"CT"}
    # the serial path gives the same table
    serial = extract_batch(cases, settings=SETTINGS, n_jobs=1)
    pd.testing.assert_frame_equal(serial.table, result.table)
    assert serial.failures == result.failures


def test_batch_records_unexpected_errors_and_validates_n_jobs(monkeypatch, volume_files):
    ipath, lpath, _, _ = volume_files
    import smartimaging.features.batch as batch

    def boom(*args, **kwargs):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(batch, "extract", boom)
    result = extract_batch([Case("p1", ipath, lpath)], settings=SETTINGS)
    assert result.failures == [CaseFailure("p1", "", "unexpected ZeroDivisionError: oops")]
    assert result.table.empty and tuple(result.table.columns) == OUTPUT_COLUMNS
    with pytest.raises(ValueError, match="n_jobs must be a positive integer"):
        extract_batch([], n_jobs=0)


# --- DICOM inputs ------------------------------------------------------------------------------


def _factory():
    path = Path(__file__).resolve().parents[1] / "io" / "_mask_dicom_factory.py"
    spec = importlib.util.spec_from_file_location("_mask_dicom_factory_for_batch", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def dicom_case(tmp_path: Path):
    factory = _factory()
    datasets, grid = factory.make_ct_series(shape_zyx=(8, 24, 20), seed=4)
    ct_dir = tmp_path / "ct"
    ct_dir.mkdir()
    for i, ds in enumerate(datasets):
        ds.save_as(ct_dir / f"ct{i:03d}.dcm", enforce_file_format=True)
    masks = factory.make_masks(Image(np.zeros((12, 48, 40)), grid.spacing, grid.origin, grid.direction))
    cube = np.zeros(grid.shape, bool)
    cube[2:6, 5:15, 4:12] = True
    tumour = Mask(cube, grid.spacing, grid.origin, grid.direction.copy())
    other = Mask(np.roll(cube, 3, axis=2), grid.spacing, grid.origin, grid.direction.copy())
    rs = write_rtstruct({"GTV_1": tumour, "Lung": other}, datasets, tmp_path / "rs.dcm")
    seg = write_seg({"GTV_1": tumour}, datasets, tmp_path / "seg.dcm")
    assert masks  # the factory module loaded
    return ct_dir, rs, seg, tumour


def test_read_case_from_dicom_with_rtstruct_or_seg(dicom_case):
    ct_dir, rs, seg, tumour = dicom_case
    img, m, roi, modality = read_case(ct_dir, rs, roi="gtv_1")
    assert modality == "CT" and roi == "GTV_1" and img.same_geometry(m)
    assert np.array_equal(m.array, tumour.array)
    _, m2, roi2, _ = read_case(ct_dir, seg)  # a single segment needs no --roi
    assert roi2 == "GTV_1" and np.array_equal(m2.array, tumour.array)
    with pytest.raises(SmartImagingError, match=r"holds 2 ROIs \['GTV_1', 'Lung'\]; choose one with --roi"):
        read_case(ct_dir, rs)
    empty = ct_dir.parent / "empty"
    empty.mkdir()
    with pytest.raises(SmartImagingError, match="exactly one image series, found 0"):
        read_case(empty, rs, roi="GTV_1")
    table = extract_case(Case("ct1", ct_dir, rs, "GTV_1"), settings=SETTINGS)
    assert set(table["modality"]) == {"CT"} and set(table["roi"]) == {"GTV_1"}


# --- the extract command -----------------------------------------------------------------------


def _app() -> typer.Typer:
    from smartimaging.cli_extract import extract_command

    app = typer.Typer()
    app.command(name="extract")(extract_command)

    @app.command()
    def other() -> None:  # a second command, so that 'extract' is a sub-command as in the real CLI
        """Unused."""

    return app


def test_extract_command_tidy_and_wide(volume_files, tmp_path):
    ipath, lpath, img, labels = volume_files
    settings = tmp_path / "s.yaml"
    settings.write_text("families: [intensity statistics, GLCM]\naggregation: [3D_avg, 3D_vmrg]\n")
    runner = CliRunner()
    out = tmp_path / "out" / "features.csv"
    args = ["extract", "--image", str(ipath), "--mask", str(lpath), "--settings", str(settings)]
    res = runner.invoke(_app(), [*args, "--out", str(out), "--label", "2", "--roi", "node"])
    assert res.exit_code == 0, res.output
    assert "written to" in res.output
    tidy = pd.read_csv(out, keep_default_na=False)
    assert tuple(tidy.columns) == OUTPUT_COLUMNS
    assert set(tidy["case"]) == {"img"} and set(tidy["roi"]) == {"node"}
    mean = tidy.set_index("key").loc["stat.mean", "value"]
    assert float(mean) == pytest.approx(img.array[labels.array == 2].mean())
    assert tidy.set_index("key").loc["stat.mean", "feature"] == "Mean intensity"
    wide_out = tmp_path / "wide.csv"
    res = runner.invoke(_app(), [*args, "--out", str(wide_out), "--wide"])
    assert res.exit_code == 0, res.output
    wide = pd.read_csv(wide_out)
    assert len(wide) == 1 and "cm_joint_max_3D_vmrg" in wide.columns and "stat_mean" in wide.columns
    assert wide.loc[0, "stat_mean"] == pytest.approx(img.array[labels.array > 0].mean())
    assert sorted(p.name for p in wide_out.parent.iterdir() if p.name.startswith(".")) == []  # no temp left


def test_extract_command_errors_exit_2_with_the_reason(volume_files, tmp_path):
    ipath, lpath, _, _ = volume_files
    runner = CliRunner()
    bad = tmp_path / "bad.yaml"
    bad.write_text("distance: 0\n")
    out = tmp_path / "f.csv"
    res = runner.invoke(
        _app(),
        ["extract", "--image", str(ipath), "--mask", str(lpath), "--settings", str(bad), "--out", str(out)],
    )
    assert res.exit_code == 2 and "key 'distance'" in res.output and not out.exists()
    other_grid = _write(Image(np.zeros((4, 4, 4), np.int16), spacing=SP), tmp_path / "small.nii.gz")
    res = runner.invoke(
        _app(), ["extract", "--image", str(ipath), "--mask", str(other_grid), "--out", str(out)]
    )
    assert res.exit_code == 2 and "do not share a voxel grid" in res.output and not out.exists()


def test_pet_dicom_folder_is_read_as_suv(tmp_path):
    from smartimaging.io.dicom import discover, read_series
    from smartimaging.io.suv import to_suv
    from smartimaging.synthetic import make_patient
    from smartimaging.synthetic.dicom_write import write_pet_series

    patient = make_patient(0, seed=11, noise=False, n_slices=40)
    write_pet_series(patient, tmp_path / "pet")
    suv, _ = to_suv(read_series(discover(tmp_path / "pet").series[0]))
    lesion = patient.lesion_labels.array == 1
    assert lesion.shape == suv.shape and lesion.any()
    labels = _write(suv.with_array(lesion.astype(np.int16)), tmp_path / "lesion.nii.gz")
    table = extract_case(Case("syn", tmp_path / "pet", labels, "lesion"), settings=SETTINGS)
    assert set(table["modality"]) == {"PT"}
    v = table.set_index("key")["value"]
    assert v["PET.SUVmax"] == pytest.approx(float(suv.array[lesion].max()), rel=1e-6)


def test_workers_receive_in_memory_cases_cut_to_the_roi(volume_files):
    from smartimaging.features.batch import _for_worker

    ipath, lpath, img, labels = volume_files
    big = Image(np.pad(img.array, 20, constant_values=1.0), img.spacing, img.origin)
    lesion = Mask(np.pad(labels.array == 1, 20), img.spacing, img.origin)
    sent = _for_worker(Case("p", big, lesion, "gtv", "PT"))
    assert isinstance(sent.image, Image) and isinstance(sent.mask, Mask)
    assert sent.image.array.size < big.array.size / 10 and sent.mask.n_voxels == lesion.n_voxels
    full = extract(big, lesion, settings=ExtractionSettings(), modality="PT")
    cut = extract(sent.image, sent.mask, settings=ExtractionSettings(), modality="PT")
    pd.testing.assert_frame_equal(full, cut)  # the cut changes no value
    # paths, other grids and empty masks go as they are (the worker reports the problem)
    for case in (
        Case("f", ipath, lpath, "gtv"),
        Case("g", big, Mask(labels.array == 1, img.spacing, img.origin), "gtv"),
        Case("e", big, Mask(np.zeros(big.shape, bool), img.spacing, img.origin), "gtv"),
    ):
        assert _for_worker(case) is case
