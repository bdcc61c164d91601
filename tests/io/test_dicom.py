"""Discovery and series reading on real DICOM files written in the test and on the IBSI phantom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from _mask_dicom_factory import make_ct_series

from smartimaging.exceptions import DicomError
from smartimaging.image import Image
from smartimaging.io.dicom import discover, read_series


def _write_series(
    folder: Path, datasets: list[pydicom.Dataset], *, names: str = "slice_{:03d}.dcm"
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, ds in enumerate(datasets):
        p = folder / names.format(k)
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


def _sitk_read(paths: list[Path]) -> Image:
    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(paths[0].parent))
    reader.SetFileNames(names)
    return Image.from_sitk(reader.Execute())


def test_discover_groups_series_and_reports_junk(tmp_path: Path) -> None:
    ct_a, _ = make_ct_series(seed=0)
    ct_b, _ = make_ct_series(shape_zyx=(5, 16, 16), seed=1)
    for ds in ct_b:
        ds.PatientID = "SI-0002"
    _write_series(tmp_path / "mixed" / "deep" / "a", ct_a, names="IMG{:04d}")  # odd names, no suffix
    _write_series(tmp_path / "mixed" / "b", ct_b)
    (tmp_path / "mixed" / "notes.txt").write_text("not dicom", encoding="utf-8")
    good = tmp_path / "mixed" / "b" / "slice_000.dcm"
    truncated = tmp_path / "mixed" / "truncated.dcm"
    truncated.write_bytes(good.read_bytes()[:200])

    result = discover(tmp_path / "mixed")
    assert [(s.patient_id, s.modality, s.n_files) for s in result.series] == [
        ("SI-0001", "CT", 12),
        ("SI-0002", "CT", 5),
    ]
    problem_names = sorted(p.path.name for p in result.problems)
    assert problem_names == ["notes.txt", "truncated.dcm"]
    assert all(str(p.path) for p in result.problems) and all(p.reason for p in result.problems)
    assert list(result.by_patient()) == ["SI-0001", "SI-0002"]


def test_discover_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DicomError, match="not found"):
        discover(tmp_path / "nope")


def test_read_series_matches_simpleitk_and_the_intended_grid(tmp_path: Path) -> None:
    oblique = np.array([[0.8, -0.6, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
    datasets, grid = make_ct_series(direction=oblique, seed=4)
    paths = _write_series(tmp_path / "ct", datasets)
    img = read_series(paths[::-1])
    assert img.same_geometry(grid)
    ref = _sitk_read(paths)
    assert img.same_geometry(ref)
    assert np.array_equal(img.array, ref.array.astype(np.float32))
    assert img.meta["Modality"] == "CT" and len(img.meta["headers"]) == 12
    assert "PixelData" not in img.meta["header"]


def test_per_slice_rescale_slope_is_applied(tmp_path: Path) -> None:
    datasets, _ = make_ct_series(seed=5, shuffle=False)
    for k, ds in enumerate(datasets):
        ds.RescaleSlope = 0.5 + k
        ds.RescaleIntercept = -3
    paths = _write_series(tmp_path / "ct", datasets)
    img = read_series(paths)
    for k, ds in enumerate(datasets):
        stored = np.frombuffer(ds.PixelData, dtype=np.int16).reshape(ds.Rows, ds.Columns)
        assert np.allclose(img.array[k], stored * (0.5 + k) - 3)


def test_missing_slice_is_named(tmp_path: Path) -> None:
    datasets, _ = make_ct_series(seed=6, shuffle=False)
    paths = _write_series(tmp_path / "ct", datasets)
    with pytest.raises(DicomError, match=r"missing slice"):
        read_series([p for k, p in enumerate(paths) if k != 4])


def test_truncated_pixel_data_names_the_file(tmp_path: Path) -> None:
    datasets, _ = make_ct_series(seed=7, shuffle=False)
    datasets[3].PixelData = datasets[3].PixelData[:100]
    paths = _write_series(tmp_path / "ct", datasets)
    with pytest.raises(DicomError, match=str(paths[3].name)):
        read_series(paths)


def test_gantry_tilt_is_refused(tmp_path: Path) -> None:
    datasets, _ = make_ct_series(seed=8, shuffle=False)
    for ds in datasets:
        ds.GantryDetectorTilt = 15
    with pytest.raises(DicomError, match="GantryDetectorTilt"):
        read_series(_write_series(tmp_path / "ct", datasets))


def test_ibsi_ct_phantom_dicom_reads_to_the_nifti_values(shared_dir: Path) -> None:
    root = shared_dir / "ibsi" / "ibsi1" / "ct_phantom"
    found = discover(root / "dicom")
    ct = next(s for s in found.series if s.modality == "CT")
    img = read_series(ct)
    ref = Image.from_sitk(sitk.ReadImage(str(root / "nifti" / "image.nii.gz")))
    assert img.same_geometry(ref)
    assert np.array_equal(img.array, ref.array)


def test_real_pet_with_rounded_slice_positions_and_per_slice_slopes(shared_dir: Path) -> None:
    found = discover(shared_dir / "data" / "sts001_fdg_pet_raw" / "pet_dicom")
    pet = read_series(found.series[0])
    assert pet.shape == (267, 128, 128)
    assert pet.spacing[0] == pytest.approx(4.6875) and pet.spacing[2] == pytest.approx(3.27, abs=0.01)
    slopes = {float(h.RescaleSlope) for h in pet.meta["headers"]}
    assert len(slopes) == 267
