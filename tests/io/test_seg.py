"""DICOM SEG write/read on real DICOM: exact round trip, IOD attributes, CT -> PET grid and back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from _mask_dicom_factory import make_ct_series, make_masks
from pydicom.dataset import Dataset

from smartimaging.exceptions import DicomError, GeometryMismatchError
from smartimaging.image import Image, Mask, resample_to
from smartimaging.io.seg import SEG_SOP_CLASS_UID, read_seg, write_seg


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


def two_segments(grid: Image) -> dict[str, Mask]:
    """Segment 'lesion' on slices 0-5, 'node' on slices 7-11: slice 6 is empty in both."""
    masks = make_masks(grid)
    lesion = masks["ring"].array.copy()
    lesion[0:3, 26:38, 20:32] = True  # reach the first slice
    lesion[6:] = False
    node = masks["concave"].array.copy()
    node[:7] = False
    node[7:12, 10:20, 8:18] = True  # reach the last slice
    assert lesion[0].any() and node[-1].any() and not (lesion[6].any() or node[6].any())
    return {
        "lesion": Mask(lesion, grid.spacing, grid.origin, grid.direction.copy()),
        "node": Mask(node, grid.spacing, grid.origin, grid.direction.copy()),
    }


@pytest.mark.parametrize("omit_empty_frames", [False, True])
def test_round_trip_identical_with_empty_middle_slice(tmp_path: Path, omit_empty_frames: bool) -> None:
    datasets, grid = make_ct_series()
    masks = two_segments(grid)
    path = write_seg(masks, datasets, tmp_path / "seg.dcm", omit_empty_frames=omit_empty_frames)
    ds = pydicom.dcmread(path)
    n_nonempty = sum(int(m.array.any(axis=(1, 2)).sum()) for m in masks.values())
    # one frame per slice and segment, or only the non-empty ones
    assert int(ds.NumberOfFrames) == (2 * grid.shape[0] if not omit_empty_frames else n_nonempty)
    back = read_seg(path)
    assert list(back) == ["lesion", "node"]
    for name, mask in masks.items():
        assert back[name].same_geometry(grid, atol=1e-6), (back[name].origin, grid.origin)
        np.testing.assert_allclose(back[name].direction, grid.direction, atol=1e-9)
        np.testing.assert_array_equal(back[name].array, mask.array, err_msg=name)
        assert back[name].meta["SegmentLabel"] == name
    assert not back["lesion"].array[6].any() and not back["node"].array[6].any()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.dcm"]


def test_omitted_empty_frames_and_full_reference_grid(tmp_path: Path) -> None:
    datasets, grid = make_ct_series()
    masks = make_masks(grid)  # the first slices are empty in every mask
    assert not any(m.array[0].any() for m in masks.values())
    path = write_seg(masks, datasets, tmp_path / "seg.dcm", omit_empty_frames=True)
    cropped = read_seg(path)
    first = min(int(np.flatnonzero(m.array.any(axis=(1, 2)))[0]) for m in masks.values())
    last = max(int(np.flatnonzero(m.array.any(axis=(1, 2)))[-1]) for m in masks.values())
    for name, mask in masks.items():
        # the SEG alone only knows the slices from its first to its last frame
        assert cropped[name].shape == (last - first + 1, 48, 40)
        np.testing.assert_allclose(cropped[name].origin, grid.index_to_physical([0, 0, first]), atol=1e-6)
        np.testing.assert_array_equal(cropped[name].array, mask.array[first : last + 1])
    full_grid = grid.with_array(grid.array, frame_of_reference_uid=datasets[0].FrameOfReferenceUID)
    full = read_seg(path, reference=full_grid)
    for name, mask in masks.items():
        assert full[name].same_geometry(grid) and full[name].meta["SegmentLabel"] == name
        np.testing.assert_array_equal(full[name].array, mask.array, err_msg=name)
    with pytest.raises(GeometryMismatchError, match="frame of reference"):
        read_seg(path, reference=grid.with_array(grid.array, frame_of_reference_uid="1.2.3"))


def test_round_trip_oblique_orientation(tmp_path: Path) -> None:
    c, s = np.cos(np.deg2rad(30)), np.sin(np.deg2rad(30))
    direction = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]) @ np.array(
        [[1, 0, 0], [0, 0, -1], [0, 1.0, 0]]
    )
    datasets, grid = make_ct_series(direction=direction, origin_xyz=(12.5, 230.0, -40.0), seed=5)
    masks = two_segments(grid)
    back = read_seg(write_seg(masks, datasets, tmp_path / "seg.dcm"))
    for name, mask in masks.items():
        assert back[name].same_geometry(grid, atol=1e-4)
        np.testing.assert_array_equal(back[name].array, mask.array, err_msg=name)


def test_iod_attributes(tmp_path: Path) -> None:
    datasets, grid = make_ct_series()
    masks = two_segments(grid)
    manual = pydicom.dcmread(write_seg(masks, datasets, tmp_path / "manual.dcm"))
    auto = pydicom.dcmread(
        write_seg(
            masks, datasets, tmp_path / "auto.dcm", algorithm="SUV 2.5 threshold", series_description="T"
        )
    )
    ct = datasets[0]
    for ds in (manual, auto):
        assert ds.SOPClassUID == SEG_SOP_CLASS_UID == ds.file_meta.MediaStorageSOPClassUID
        assert ds.Modality == "SEG" and ds.SegmentationType == "BINARY"
        assert ds.StudyInstanceUID == ct.StudyInstanceUID and ds.PatientID == ct.PatientID
        assert ds.FrameOfReferenceUID == ct.FrameOfReferenceUID
        assert ds.SeriesInstanceUID != ct.SeriesInstanceUID
        assert [s.SegmentLabel for s in ds.SegmentSequence] == ["lesion", "node"]
        for s in ds.SegmentSequence:
            assert s.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
            assert s.SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"
        (series,) = ds.ReferencedSeriesSequence
        assert series.SeriesInstanceUID == ct.SeriesInstanceUID
        assert {i.ReferencedSOPInstanceUID for i in series.ReferencedInstanceSequence} == {
            d.SOPInstanceUID for d in datasets
        }
    assert manual.SeriesDescription == "smartimaging SEG" and auto.SeriesDescription == "T"
    assert {s.SegmentAlgorithmType for s in manual.SegmentSequence} == {"MANUAL"}
    assert "SegmentAlgorithmName" not in manual.SegmentSequence[0]
    assert {s.SegmentAlgorithmType for s in auto.SegmentSequence} == {"AUTOMATIC"}
    (alg,) = auto.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence
    assert alg.AlgorithmName == "SUV 2.5 threshold"
    assert auto.SegmentSequence[0].SegmentAlgorithmName == "SUV 2.5 threshold"


def test_ct_to_pet_grid_and_back(tmp_path: Path) -> None:
    # lesions of a clinically usual size (radius 12 mm; an ellipsoid 10 x 14 x 11 mm) on a CT grid,
    # carried to a PET grid of twice the spacing with a shifted origin, and back
    datasets, grid = make_ct_series(shape_zyx=(24, 64, 64), spacing_xyz=(0.9, 0.9, 2.5))
    z, y, x = (np.asarray(a, float) for a in np.indices(grid.shape))
    sz, sy, sx = grid.spacing_zyx
    sphere = ((x - 18) * sx) ** 2 + ((y - 20) * sy) ** 2 + ((z - 11) * sz) ** 2 <= 12.0**2
    ellipsoid = ((x - 42) * sx / 10) ** 2 + ((y - 44) * sy / 14) ** 2 + ((z - 12) * sz / 11) ** 2 <= 1
    masks = {
        "sphere": Mask(sphere, grid.spacing, grid.origin, grid.direction.copy()),
        "ellipsoid": Mask(ellipsoid, grid.spacing, grid.origin, grid.direction.copy()),
    }
    back = read_seg(write_seg(masks, datasets, tmp_path / "seg.dcm"))
    pet = Image(
        np.zeros((12, 32, 32)), spacing=(1.8, 1.8, 5.0), origin=tuple(np.add(grid.origin, (0.45, 0.45, 1.25)))
    )
    for name, mask in back.items():
        on_pet = resample_to(mask, pet)
        assert isinstance(on_pet, Mask) and on_pet.same_geometry(pet)
        assert abs(on_pet.volume_ml - masks[name].volume_ml) <= 0.1 * masks[name].volume_ml
        again = resample_to(on_pet, grid)
        d = dice(again.array, masks[name].array)
        print(f"CT -> PET -> CT {name}: dice {d:.4f} ({again.n_voxels} vs {masks[name].n_voxels} voxels)")
        assert d >= 0.9, name


def test_writer_errors(tmp_path: Path) -> None:
    datasets, grid = make_ct_series()
    other = Mask(np.ones((12, 48, 40), bool), (1.0, 0.9, 2.5), grid.origin)
    with pytest.raises(GeometryMismatchError, match="'x'"):
        write_seg({"x": other}, datasets, tmp_path / "s.dcm")
    ok = make_masks(grid)
    with pytest.raises(ValueError, match="HistogramAnalysis"):
        write_seg(ok, datasets, tmp_path / "s.dcm", algorithm="a", algorithm_family="Magic")
    with pytest.raises(DicomError):
        write_seg({}, datasets, tmp_path / "s.dcm")
    assert not any(tmp_path.iterdir())


def test_reader_errors(tmp_path: Path) -> None:
    datasets, _ = make_ct_series()
    ct = tmp_path / "ct.dcm"
    datasets[0].save_as(ct, enforce_file_format=True)
    with pytest.raises(DicomError, match=r"ct\.dcm"):
        read_seg(ct)
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"\x00" * 10)
    with pytest.raises(DicomError, match=r"garbage\.dcm"):
        read_seg(garbage)


def test_segment_without_label_sequence_is_an_error(tmp_path: Path) -> None:
    datasets, grid = make_ct_series()
    path = write_seg(make_masks(grid), datasets, tmp_path / "seg.dcm")
    ds: Dataset = pydicom.dcmread(path)
    del ds.SegmentSequence
    broken = tmp_path / "broken.dcm"
    ds.save_as(broken)
    with pytest.raises(DicomError, match=r"broken\.dcm"):
        read_seg(broken)
