"""RTSTRUCT write/read on real DICOM: exact round trip, other grids, ROI selection, IOD, IBSI CT phantom."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from _mask_dicom_factory import make_ct_series, make_masks
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from smartimaging.exceptions import (
    DicomError,
    EmptyMaskError,
    GeometryMismatchError,
    MissingTagError,
    SmartImagingError,
)
from smartimaging.image import Image, Mask, resample_to
from smartimaging.io.rtstruct import (
    RTSTRUCT_SOP_CLASS_UID,
    ROINotFoundError,
    list_rois,
    read_rtstruct,
    sort_series,
    write_rtstruct,
)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


def _rotation(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    a = np.deg2rad(angle_deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Dataset], Image, dict[str, Mask], Path]:
    datasets, grid = make_ct_series()
    masks = make_masks(grid)
    path = tmp_path_factory.mktemp("rt") / "rs.dcm"
    out = write_rtstruct(masks, datasets, path, colors={"ring": (1, 2, 3)})
    assert out == path
    return datasets, grid, masks, path


def test_masks_are_meaningful(written: tuple[list[Dataset], Image, dict[str, Mask], Path]) -> None:
    _, _, masks, _ = written
    ring = masks["ring"].array
    # the ring has a hole through its middle slice and the U shape a concavity
    assert not ring[6, 32, 26] and ring[6, 32, 20] and ring[6, 32, 32]
    assert not masks["concave"].array[5, 42, 12] and masks["concave"].array[5, 42, 6]
    assert all(m.n_voxels > 500 for m in masks.values())


def test_round_trip_same_grid_is_exact(written: tuple[list[Dataset], Image, dict[str, Mask], Path]) -> None:
    _, grid, masks, path = written
    back = read_rtstruct(path, grid)
    assert list(back) == ["sphere", "ring", "concave"]
    for name, mask in masks.items():
        assert back[name].same_geometry(grid)
        assert back[name].array.dtype == bool
        np.testing.assert_array_equal(back[name].array, mask.array, err_msg=name)


def test_round_trip_oblique_reversed_series(tmp_path: Path) -> None:
    direction = _rotation([0.3, -0.2, 1.0], 25.0)
    datasets, grid = make_ct_series(direction=direction, origin_xyz=(40.1, -12.6, 310.4), seed=3)
    masks = make_masks(grid)
    path = write_rtstruct(masks, datasets[::-1], tmp_path / "oblique.dcm")
    back = read_rtstruct(path, grid)
    for name, mask in masks.items():
        np.testing.assert_array_equal(back[name].array, mask.array, err_msg=name)


def test_read_onto_coarser_shifted_grid(written: tuple[list[Dataset], Image, dict[str, Mask], Path]) -> None:
    _, grid, masks, path = written
    # a PET-like grid: twice the spacing, origin shifted by a fraction of a voxel in every axis
    coarse = Image(
        np.zeros((6, 24, 20)),
        spacing=(1.8, 1.8, 5.0),
        origin=tuple(np.add(grid.origin, (0.37, -0.41, 1.1))),
    )
    back = read_rtstruct(path, coarse)
    for name, mask in masks.items():
        expected = resample_to(mask, coarse)
        assert back[name].same_geometry(coarse)
        d = dice(back[name].array, expected.array)
        print(f"coarse grid {name}: dice {d:.4f}, voxels {back[name].n_voxels} vs {expected.n_voxels}")
        assert d >= 0.9, name


def test_read_onto_finer_z_grid(written: tuple[list[Dataset], Image, dict[str, Mask], Path]) -> None:
    _, grid, masks, path = written
    # half the slice spacing: every contour plane covers the two fine slices of its slab
    fine = Image(
        np.zeros((24, 48, 40)), spacing=(0.9, 0.9, 1.25), origin=np.asarray(grid.origin) - (0, 0, 0.625)
    )
    back = read_rtstruct(path, fine)
    for name, mask in masks.items():
        np.testing.assert_array_equal(back[name].array, np.repeat(mask.array, 2, axis=0), err_msg=name)


def test_roi_selection_by_name_and_regex(written: tuple[list[Dataset], Image, dict[str, Mask], Path]) -> None:
    _, grid, _, path = written
    assert list_rois(path) == ["sphere", "ring", "concave"]
    assert list(read_rtstruct(path, grid, roi="ring")) == ["ring"]
    assert list(read_rtstruct(path, grid, roi="SPH.*")) == ["sphere"]
    assert list(read_rtstruct(path, grid, roi="(ring|CONCAVE)")) == ["ring", "concave"]
    # fullmatch, not search
    with pytest.raises(ROINotFoundError):
        read_rtstruct(path, grid, roi="phere")


def test_unknown_roi_lists_names(written: tuple[list[Dataset], Image, dict[str, Mask], Path]) -> None:
    _, grid, _, path = written
    with pytest.raises(SmartImagingError) as info:
        read_rtstruct(path, grid, roi="GTV.*")
    assert isinstance(info.value, ROINotFoundError)
    msg = str(info.value)
    assert str(path) in msg and "'GTV.*'" in msg
    for name in ("sphere", "ring", "concave"):
        assert name in msg


def test_iod_attributes(written: tuple[list[Dataset], Image, dict[str, Mask], Path]) -> None:
    datasets, _, masks, path = written
    ds = pydicom.dcmread(path)
    ct = datasets[0]
    assert ds.file_meta.MediaStorageSOPClassUID == RTSTRUCT_SOP_CLASS_UID == ds.SOPClassUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.Modality == "RTSTRUCT"
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate"):
        assert ds[kw].value == ct[kw].value, kw
    assert ds.SeriesInstanceUID != ct.SeriesInstanceUID
    assert ds.SOPInstanceUID not in {d.SOPInstanceUID for d in datasets}
    assert ds.StructureSetLabel == "ROIs" and ds.SeriesDescription == "smartimaging RTSTRUCT"

    (frame,) = ds.ReferencedFrameOfReferenceSequence
    assert frame.FrameOfReferenceUID == ct.FrameOfReferenceUID
    (study,) = frame.RTReferencedStudySequence
    assert study.ReferencedSOPInstanceUID == ct.StudyInstanceUID
    (series,) = study.RTReferencedSeriesSequence
    assert series.SeriesInstanceUID == ct.SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in series.ContourImageSequence} == {
        d.SOPInstanceUID for d in datasets
    }

    assert [r.ROIName for r in ds.StructureSetROISequence] == list(masks)
    assert [int(r.ROINumber) for r in ds.StructureSetROISequence] == [1, 2, 3]
    assert [int(o.ReferencedROINumber) for o in ds.RTROIObservationsSequence] == [1, 2, 3]
    assert list(ds.ROIContourSequence[1].ROIDisplayColor) == [1, 2, 3]

    z_of_instance = {d.SOPInstanceUID: float(d.ImagePositionPatient[2]) for d in datasets}
    ring_planes: dict[float, int] = {}
    for roi_item, mask in zip(ds.ROIContourSequence, masks.values(), strict=True):
        slices_with_contours = set()
        for c in roi_item.ContourSequence:
            assert c.ContourGeometricType == "CLOSED_PLANAR"
            pts = np.asarray(c.ContourData, dtype=float).reshape(-1, 3)
            assert len(pts) == int(c.NumberOfContourPoints) >= 3
            (img,) = c.ContourImageSequence
            # every point lies in the plane of the image it references
            np.testing.assert_allclose(pts[:, 2], z_of_instance[img.ReferencedSOPInstanceUID], atol=1e-4)
            slices_with_contours.add(img.ReferencedSOPInstanceUID)
            if int(roi_item.ReferencedROINumber) == 2:
                ring_planes[pts[0, 2]] = ring_planes.get(pts[0, 2], 0) + 1
        assert len(slices_with_contours) == int(mask.array.any(axis=(1, 2)).sum())
    # the hole of the ring is its own contour: at least one plane has an outer and an inner contour
    assert max(ring_planes.values()) >= 2


def test_no_temporary_file_left(written: tuple[list[Dataset], Image, dict[str, Mask], Path]) -> None:
    _, _, _, path = written
    assert sorted(p.name for p in path.parent.iterdir()) == ["rs.dcm"]


def test_writer_rejects_other_grid_and_empty_mask(tmp_path: Path) -> None:
    datasets, grid = make_ct_series()
    shifted = Mask(np.ones(grid.shape, bool), grid.spacing, tuple(np.add(grid.origin, (1.0, 0, 0))))
    with pytest.raises(GeometryMismatchError):
        write_rtstruct({"a": shifted}, datasets, tmp_path / "x.dcm")
    empty = Mask(np.zeros(grid.shape, bool), grid.spacing, grid.origin)
    with pytest.raises(EmptyMaskError, match="'a'"):
        write_rtstruct({"a": empty}, datasets, tmp_path / "x.dcm")
    with pytest.raises(DicomError):
        write_rtstruct({}, datasets, tmp_path / "x.dcm")
    ok = make_masks(grid)["sphere"]
    with pytest.raises(ValueError, match="64 characters"):
        write_rtstruct({"x" * 65: ok}, datasets, tmp_path / "x.dcm")
    with pytest.raises(ValueError, match="RGB"):
        write_rtstruct({"a": ok}, datasets, tmp_path / "x.dcm", colors={"a": (0, 300, 0)})
    other_series, _ = make_ct_series(seed=1)
    with pytest.raises(DicomError, match="mix 2 series"):
        write_rtstruct(make_masks(grid), [*datasets[:6], *other_series[6:]], tmp_path / "x.dcm")
    tilted, _ = make_ct_series(seed=2)
    for k, d in enumerate(sorted(tilted, key=lambda d: d.InstanceNumber)):
        d.ImagePositionPatient = [float(v) for v in np.add(d.ImagePositionPatient, (0.0, 0.5 * k, 0.0))]
    with pytest.raises(DicomError, match="gantry tilt"):
        write_rtstruct(make_masks(grid), tilted, tmp_path / "x.dcm")
    with pytest.raises(DicomError, match=r"missing slice\(s\): gap of 5\.000 mm"):
        write_rtstruct(make_masks(grid), [d for d in datasets if d.InstanceNumber != 5], tmp_path / "x.dcm")
    uneven, _ = make_ct_series(seed=3)
    for k, d in enumerate(sorted(uneven, key=lambda d: d.InstanceNumber)):
        d.ImagePositionPatient = [
            *d.ImagePositionPatient[:2],
            float(d.ImagePositionPatient[2]) + 0.4 * (k % 2),
        ]
    with pytest.raises(DicomError, match="uneven slice spacing"):
        write_rtstruct(make_masks(grid), uneven, tmp_path / "x.dcm")
    assert not any(tmp_path.iterdir())


def test_positions_rounded_by_the_scanner_are_accepted_as_a_regular_grid() -> None:
    # real PETs (e.g. TCIA STS_001) store steps of 3.27 mm with a few of 3.19 / 3.29: rounding, not gaps
    datasets, grid = make_ct_series()
    ordered = sorted(datasets, key=lambda d: d.InstanceNumber)
    pos = ordered[3].ImagePositionPatient
    ordered[3].ImagePositionPatient = [pos[0], pos[1], float(pos[2]) + 0.04]
    _, rounded = sort_series(ordered)
    assert rounded.shape == grid.shape
    assert np.allclose(rounded.spacing, grid.spacing, atol=1e-6)


def _edited(path: Path, tmp_path: Path, edit: object) -> Path:
    ds = pydicom.dcmread(path)
    edit(ds)  # type: ignore[operator]
    out = tmp_path / "edited.dcm"
    ds.save_as(out)
    return out


def test_non_closed_planar_contour_is_skipped_with_warning(
    written: tuple[list[Dataset], Image, dict[str, Mask], Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, grid, masks, path = written

    def add_point(ds: Dataset) -> None:
        point = Dataset()
        point.ContourGeometricType = "POINT"
        point.NumberOfContourPoints = 1
        point.ContourData = [str(v) for v in grid.index_to_physical([5.0, 5.0, 3.0])]
        ds.ROIContourSequence[0].ContourSequence.append(point)

    edited = _edited(path, tmp_path, add_point)
    with caplog.at_level(logging.WARNING, logger="smartimaging.io.rtstruct"):
        back = read_rtstruct(edited, grid, roi="sphere")
    assert "POINT" in caplog.text and "sphere" in caplog.text
    np.testing.assert_array_equal(back["sphere"].array, masks["sphere"].array)


def test_missing_contour_data_and_roi_without_contours(
    written: tuple[list[Dataset], Image, dict[str, Mask], Path], tmp_path: Path
) -> None:
    _, grid, _, path = written

    def drop_data(ds: Dataset) -> None:
        del ds.ROIContourSequence[1].ContourSequence[0].ContourData

    edited = _edited(path, tmp_path, drop_data)
    with pytest.raises(MissingTagError, match=r"ring.*ContourData"):
        read_rtstruct(edited, grid)
    assert list(read_rtstruct(edited, grid, roi="sphere")) == ["sphere"]

    def drop_contours(ds: Dataset) -> None:
        ds.ROIContourSequence[2].ContourSequence = DicomSequence([])

    edited = _edited(path, tmp_path, drop_contours)
    with pytest.raises(EmptyMaskError) as info:
        read_rtstruct(edited, grid, roi="concave")
    assert "concave" in str(info.value) and str(edited) in str(info.value)


def test_not_an_rtstruct_and_frame_of_reference(
    written: tuple[list[Dataset], Image, dict[str, Mask], Path], tmp_path: Path
) -> None:
    datasets, grid, _, path = written
    ct = tmp_path / "ct.dcm"
    datasets[0].save_as(ct, enforce_file_format=True)
    with pytest.raises(DicomError, match="not an RT Structure Set"):
        read_rtstruct(ct, grid)
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"not dicom at all")
    with pytest.raises(DicomError, match=r"garbage\.dcm"):
        list_rois(garbage)
    other_frame = grid.with_array(grid.array, frame_of_reference_uid="1.2.3.4")
    with pytest.raises(GeometryMismatchError, match="frame of reference"):
        read_rtstruct(path, other_frame)
    same_frame = grid.with_array(grid.array, frame_of_reference_uid=datasets[0].FrameOfReferenceUID)
    assert read_rtstruct(path, same_frame, roi="ring")["ring"].n_voxels > 0


def test_contours_not_parallel_to_grid_are_refused(
    written: tuple[list[Dataset], Image, dict[str, Mask], Path],
) -> None:
    _, grid, _, path = written
    tilted = Image(np.zeros((12, 48, 40)), grid.spacing, grid.origin, _rotation([1.0, 0.0, 0.0], 20.0))
    with pytest.raises(GeometryMismatchError, match="not parallel"):
        read_rtstruct(path, tilted)


@pytest.mark.shared
def test_ibsi_ct_phantom_gtv(shared_dir: Path) -> None:
    root = shared_dir / "ibsi" / "ibsi1" / "ct_phantom"
    image = Image.from_sitk(sitk.ReadImage(str(root / "nifti" / "image.nii.gz")))
    reference = Mask.from_image(Image.from_sitk(sitk.ReadImage(str(root / "nifti" / "mask.nii.gz"))))
    assert reference.same_geometry(image)
    rs = root / "dicom" / "rtstruct" / "DCM_RS_00060.dcm"
    assert list_rois(rs) == ["GTV-1"]
    mask = read_rtstruct(rs, image, roi="GTV-1")["GTV-1"]
    d = dice(mask.array, reference.array)
    print(
        f"IBSI CT phantom GTV-1: dice {d:.6f}, voxels {mask.n_voxels} (ours) vs {reference.n_voxels} (NIfTI)"
    )
    assert d >= 0.99
    assert abs(mask.n_voxels - reference.n_voxels) <= 0.01 * reference.n_voxels
    # the same contours read from the DICOM image headers' grid give the same mask
    headers = [
        pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((root / "dicom" / "image").glob("*.dcm"))
    ]
    _, dicom_grid = sort_series(headers)
    assert dicom_grid.same_geometry(image, atol=1e-2)
    from_dicom_grid = read_rtstruct(rs, dicom_grid, roi="gtv-\\d")["GTV-1"]
    np.testing.assert_array_equal(from_dicom_grid.array, mask.array)
