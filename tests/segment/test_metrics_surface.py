"""Surface-distance, autoPET and per-lesion metrics (segment/metrics.py).

Surface metrics are checked against MONAI (reference only: the package does not import it)
and against small cases worked out by hand; the autoPET volumes and the detection counts on
hand-made masks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from smartimaging.exceptions import EmptyMaskError, GeometryMismatchError
from smartimaging.image import Mask
from smartimaging.segment.metrics import (
    METRIC_COLUMNS,
    average_surface_distance,
    evaluate_cohort,
    evaluate_segmentation,
    false_negative_volume,
    false_positive_volume,
    hausdorff_distance,
    hd95,
    lesion_detection,
    surface_dice,
    surface_distances,
)

SPACING = (1.5, 2.0, 3.0)  # x, y, z mm: anisotropic on purpose


def _mask(array: np.ndarray, spacing=SPACING) -> Mask:
    return Mask(np.asarray(array, dtype=bool), spacing=spacing)


def _blob(shape, centre, radii, spacing=SPACING) -> np.ndarray:
    """Ellipsoid with radii in mm (x, y, z) around ``centre`` (z, y, x index)."""
    z, y, x = np.indices(shape, dtype=float)
    sz, sy, sx = spacing[2], spacing[1], spacing[0]
    rx, ry, rz = radii
    d = ((x - centre[2]) * sx / rx) ** 2 + ((y - centre[1]) * sy / ry) ** 2 + ((z - centre[0]) * sz / rz) ** 2
    return d <= 1.0


def _random_pairs():
    rng = np.random.default_rng(7)
    shape = (14, 18, 20)
    for _ in range(4):
        a = _blob(shape, rng.uniform(4, 10, 3), rng.uniform(6, 12, 3))
        b = _blob(shape, rng.uniform(4, 10, 3), rng.uniform(6, 12, 3))
        # a detached lump and a mask touching the grid border
        b[0:2, 0:3, 15:20] = True
        yield a, b


# --- hand-computed --------------------------------------------------------------------------


def test_line_segments_by_hand():
    # x spacing 2 mm: A = voxels 0..1, B = voxels 3..5 in one row
    a = _mask([[[1, 1, 0, 0, 0, 0]]], spacing=(2.0, 1.0, 1.0))
    b = _mask([[[0, 0, 0, 1, 1, 1]]], spacing=(2.0, 1.0, 1.0))
    d_ab, d_ba = surface_distances(a, b)
    # every voxel is a surface voxel in a 1-voxel-thick row
    np.testing.assert_allclose(d_ab, [6.0, 4.0])
    np.testing.assert_allclose(d_ba, [4.0, 6.0, 8.0])
    assert hausdorff_distance(a, b) == 8.0
    assert average_surface_distance(a, b) == pytest.approx((6 + 4 + 4 + 6 + 8) / 5)
    assert average_surface_distance(a, b, symmetric=False) == pytest.approx(5.0)
    # 95th percentile, linear interpolation: [4, 6] -> 5.9 ; [4, 6, 8] -> 7.8
    assert hd95(a, b) == pytest.approx(7.8)
    assert surface_dice(a, b, tolerance_mm=4.0) == pytest.approx(2 / 5)
    assert surface_dice(a, b, tolerance_mm=6.0) == pytest.approx(4 / 5)
    assert surface_dice(a, b, tolerance_mm=3.9) == 0.0


def test_cube_interior_is_not_surface():
    a = np.zeros((5, 5, 5), bool)
    a[1:4, 1:4, 1:4] = True  # 27 voxels, the centre is interior
    b = np.zeros_like(a)
    b[2, 2, 2] = True
    d_ab, d_ba = surface_distances(_mask(a, (1.0, 1.0, 1.0)), _mask(b, (1.0, 1.0, 1.0)))
    assert d_ab.size == 26 and d_ba.size == 1
    # faces 1, edges sqrt 2, corners sqrt 3 from the centre
    assert sorted(np.round(d_ab**2).astype(int).tolist()) == [1] * 6 + [2] * 12 + [3] * 8
    assert d_ba[0] == 1.0


def test_identical_masks():
    a = _mask(_blob((10, 10, 10), (5, 5, 5), (6, 7, 8)))
    assert hausdorff_distance(a, a) == 0.0 and hd95(a, a) == 0.0
    assert average_surface_distance(a, a) == 0.0
    assert surface_dice(a, a, tolerance_mm=0.0) == 1.0


def test_empty_masks():
    full = _mask(_blob((8, 8, 8), (4, 4, 4), (5, 5, 5)))
    empty = _mask(np.zeros((8, 8, 8), bool))
    for f in (hausdorff_distance, hd95, average_surface_distance):
        assert f(full, empty) == math.inf and f(empty, full) == math.inf
        with pytest.raises(EmptyMaskError, match="two empty masks"):
            f(empty, empty)
    assert surface_dice(empty, full) == 0.0
    with pytest.raises(EmptyMaskError):
        surface_dice(empty, empty)
    with pytest.raises(EmptyMaskError):
        surface_distances(empty, full)


def test_errors():
    a = _mask(np.ones((2, 2, 2)))
    b = _mask(np.ones((2, 2, 2)), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(GeometryMismatchError):
        hd95(a, b)
    with pytest.raises(ValueError, match="percentile"):
        hausdorff_distance(a, a, percentile=101)
    with pytest.raises(ValueError, match="tolerance_mm"):
        surface_dice(a, a, tolerance_mm=-1)
    with pytest.raises(ValueError, match=r"\[6, 18, 26\]"):
        false_positive_volume(a, a, connectivity=8)
    with pytest.raises(ValueError, match="min_overlap"):
        lesion_detection(a, a, min_overlap=1.5)


# --- against MONAI ----------------------------------------------------------------------------


# MONAI 1.6 warns about its own internal use of a deprecated argument
@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy.*:FutureWarning")
def test_surface_metrics_equal_monai():
    torch = pytest.importorskip("torch")
    mm = pytest.importorskip("monai.metrics")
    spacing_zyx = (SPACING[2], SPACING[1], SPACING[0])
    n = 0
    for a, b in _random_pairs():
        pa, pb = _mask(a), _mask(b)
        ta = torch.from_numpy(a[None, None].astype(np.float32))
        tb = torch.from_numpy(b[None, None].astype(np.float32))
        ref_hd = float(mm.compute_hausdorff_distance(ta, tb, include_background=True, spacing=spacing_zyx))
        ref_hd95 = float(
            mm.compute_hausdorff_distance(ta, tb, include_background=True, percentile=95, spacing=spacing_zyx)
        )
        ref_assd = float(
            mm.compute_average_surface_distance(
                ta, tb, include_background=True, symmetric=True, spacing=spacing_zyx
            )
        )
        ref_sd = float(mm.compute_surface_dice(ta, tb, [3.0], include_background=True, spacing=spacing_zyx))
        assert hausdorff_distance(pa, pb) == pytest.approx(ref_hd, rel=1e-5)
        assert hd95(pa, pb) == pytest.approx(ref_hd95, rel=1e-5)
        assert average_surface_distance(pa, pb) == pytest.approx(ref_assd, rel=1e-5)
        assert surface_dice(pa, pb, tolerance_mm=3.0) == pytest.approx(ref_sd, rel=1e-5)
        assert 0.0 < ref_sd < 1.0 and ref_hd95 < ref_hd  # the cases are not degenerate
        n += 1
    assert n == 4


# --- autoPET volumes and detection --------------------------------------------------------------


def _lesions():
    """Truth: lesions T1 (8 voxels), T2 (1 voxel), T3 (2 voxels). Pred: P1 on T1, P2 alone (3 voxels),
    P3 touching T3 by one voxel, and P4 diagonal to P2 (18-connected to nothing, 26 to P2? no)."""
    t = np.zeros((6, 10, 10), bool)
    p = np.zeros_like(t)
    t[0:2, 0:2, 0:2] = True  # T1, 8 voxels
    t[4, 8, 8] = True  # T2, missed
    t[4, 0, 0:2] = True  # T3, 2 voxels
    p[0:2, 0:2, 1:3] = True  # P1, 8 voxels, 4 in T1
    p[3, 5, 5:8] = True  # P2, 3 voxels, false positive
    p[4, 0, 1:5] = True  # P3, 4 voxels, 1 in T3
    p[5, 9, 0] = True  # P4, 1 voxel, false positive
    return _mask(p, (2.0, 2.0, 2.0)), _mask(t, (2.0, 2.0, 2.0))


def test_autopet_volumes_by_hand():
    pred, truth = _lesions()
    voxel_ml = 8.0 / 1000.0
    assert false_positive_volume(pred, truth) == pytest.approx((3 + 1) * voxel_ml)
    assert false_negative_volume(pred, truth) == pytest.approx(1 * voxel_ml)
    empty = _mask(np.zeros(pred.shape, bool), (2.0, 2.0, 2.0))
    assert false_positive_volume(pred, empty) == pytest.approx(pred.n_voxels * voxel_ml)
    assert false_negative_volume(empty, truth) == pytest.approx(truth.n_voxels * voxel_ml)
    assert false_negative_volume(pred, empty) == 0.0


def test_autopet_connectivity_matters():
    # two voxels that touch only by an edge: one 18-connected component, two 6-connected ones
    t = np.zeros((3, 3, 3), bool)
    p = np.zeros_like(t)
    t[0, 0, 0] = True
    p[0, 0, 0] = p[0, 1, 1] = True
    pred, truth = _mask(p, (1.0, 1.0, 1.0)), _mask(t, (1.0, 1.0, 1.0))
    assert false_positive_volume(pred, truth) == 0.0
    assert false_positive_volume(pred, truth, connectivity=6) == pytest.approx(0.001)


def test_lesion_detection_by_hand():
    pred, truth = _lesions()
    det = lesion_detection(pred, truth)
    assert (det.n_true, det.n_detected, det.n_predicted, det.n_false_positive) == (3, 2, 4, 2)
    assert det.sensitivity == pytest.approx(2 / 3)
    # T1 half covered, T3 half covered; P1 half in T1, P3 a quarter in T3
    det = lesion_detection(pred, truth, min_overlap=0.5)
    assert (det.n_detected, det.n_false_positive) == (2, 3)
    det = lesion_detection(pred, truth, min_overlap=0.6)
    assert (det.n_detected, det.n_false_positive) == (0, 4)
    empty = _mask(np.zeros(pred.shape, bool), (2.0, 2.0, 2.0))
    none = lesion_detection(pred, empty)
    assert none.sensitivity is None and none.n_false_positive == 4


def test_evaluate_segmentation_and_cohort():
    pred, truth = _lesions()
    m = evaluate_segmentation(pred, truth, tolerance_mm=2.0)
    assert list(m) == list(METRIC_COLUMNS)
    assert m["n_detected"] == 2 and m["false_negative_volume_ml"] == pytest.approx(0.008)
    assert m["hd95_mm"] == pytest.approx(hd95(pred, truth))
    empty = _mask(np.zeros(pred.shape, bool), (2.0, 2.0, 2.0))
    both = evaluate_segmentation(empty, empty)
    assert both["dice"] is None and both["hd95_mm"] is None and both["sensitivity"] is None
    assert both["false_positive_volume_ml"] == 0.0 and both["n_false_positive"] == 0
    missed = evaluate_segmentation(empty, truth)
    assert missed["dice"] == 0.0 and missed["hd95_mm"] == math.inf and missed["sensitivity"] == 0.0
    table = evaluate_cohort([("a", pred, truth), ("b", empty, empty)])
    assert list(table.columns) == ["case", *METRIC_COLUMNS]
    assert table["dice"].isna().tolist() == [False, True]
    assert table["n_true"].sum() == 3
    with pytest.raises(GeometryMismatchError, match="'c'"):
        evaluate_cohort([("c", pred, _mask(np.zeros((2, 2, 2))))])


def test_evaluate_segmentation_equals_the_functions():
    for a, b in _random_pairs():
        pa, pb = _mask(a), _mask(b)
        m = evaluate_segmentation(pa, pb, tolerance_mm=3.0)
        assert m["hausdorff_mm"] == hausdorff_distance(pa, pb)
        assert m["hd95_mm"] == hd95(pa, pb)
        assert m["assd_mm"] == pytest.approx(average_surface_distance(pa, pb), rel=1e-12)
        assert m["surface_dice"] == surface_dice(pa, pb, tolerance_mm=3.0)
    with pytest.raises(ValueError, match="tolerance_mm"):
        evaluate_segmentation(pa, pb, tolerance_mm=float("nan"))
