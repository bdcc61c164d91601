"""Tests of the PET metrics (features/pet.py) on synthetic lesions of known SUV and size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smartimaging.exceptions import EmptyMaskError, FeatureError, GeometryMismatchError
from smartimaging.features import pet
from smartimaging.image import Image, Mask

SPACING = (2.0, 2.0, 2.0)


def _ball(shape, centre_zyx, radius_mm, spacing=SPACING):
    zz, yy, xx = np.indices(shape, dtype=float)
    sz, sy, sx = spacing[2], spacing[1], spacing[0]
    cz, cy, cx = centre_zyx
    return ((zz - cz) * sz) ** 2 + ((yy - cy) * sy) ** 2 + ((xx - cx) * sx) ** 2 <= radius_mm**2


def test_uniform_sphere_metrics():
    shape, radius, suv_value = (40, 40, 40), 20.0, 6.0
    ball = _ball(shape, (20, 20, 20), radius)
    suv = Image(np.where(ball, suv_value, 1.0), spacing=SPACING)
    out = pet.lesion_metrics(suv, Mask(ball, spacing=SPACING))
    assert list(out) == [f.key for f in pet.LESION_FEATURES]
    assert out["PET.SUVmax"] == suv_value and out["PET.SUVmin"] == suv_value
    assert out["PET.SUVmean"] == pytest.approx(suv_value)
    assert out["PET.SUVsd"] == pytest.approx(0.0, abs=1e-12)
    assert out["PET.SUVpeak"] == pytest.approx(suv_value)  # uniform and the 1 cm³ sphere fits
    analytic_ml = 4 / 3 * math.pi * radius**3 / 1000
    assert out["PET.MTV"] == pytest.approx(analytic_ml, rel=0.03)  # voxelisation error of a 10-voxel radius
    assert out["PET.MTV"] == pytest.approx(ball.sum() * 8 / 1000)
    assert out["PET.TLG"] == pytest.approx(out["PET.SUVmean"] * out["PET.MTV"])


def test_hand_computed_lesion():
    arr = np.zeros((1, 1, 4))
    arr[0, 0] = [1.0, 2.0, 6.0, 3.0]
    suv = Image(arr, spacing=(10.0, 10.0, 10.0))  # 1 ml voxels; sphere of 6.2 mm holds one voxel
    out = pet.lesion_metrics(suv, Mask(arr > 1.5, spacing=(10.0, 10.0, 10.0)))
    assert out["PET.SUVmax"] == 6.0 and out["PET.SUVmin"] == 2.0
    assert out["PET.SUVmean"] == pytest.approx(11 / 3)
    assert out["PET.SUVsd"] == pytest.approx(np.std([2.0, 6.0, 3.0]))
    assert out["PET.SUVpeak"] == 6.0
    assert out["PET.MTV"] == pytest.approx(3.0)
    assert out["PET.TLG"] == pytest.approx(11.0)


def _two_lesions():
    shape = (30, 30, 40)
    a = _ball(shape, (15, 15, 8), 8.0)  # larger
    b = _ball(shape, (15, 15, 30), 4.0)  # centres 22 voxels * 2 mm = 44 mm apart along x
    suv = Image(np.where(a, 5.0, 0.5) + np.where(b, 3.0, 0.0), spacing=SPACING, origin=(-10.0, 5.0, 7.0))
    return (
        suv,
        Mask(a, spacing=SPACING, origin=(-10.0, 5.0, 7.0)),
        Mask(b, spacing=SPACING, origin=(-10.0, 5.0, 7.0)),
    )


def test_patient_metrics_from_masks_and_label_image_agree():
    suv, a, b = _two_lesions()
    from_masks = pet.patient_metrics(suv, [a, b])
    labels = suv.with_array(a.array * 1 + b.array * 2)
    from_labels = pet.patient_metrics(suv, labels)
    assert from_masks == pytest.approx(from_labels)
    assert list(from_masks) == [f.key for f in pet.PATIENT_FEATURES]
    assert from_masks["PET.n_lesions"] == 2
    assert from_masks["PET.Dmax"] == pytest.approx(44.0)
    assert from_masks["PET.Dmax_bulk"] == pytest.approx(44.0)
    la, lb = pet.lesion_metrics(suv, a), pet.lesion_metrics(suv, b)
    assert from_masks["PET.TMTV"] == pytest.approx(la["PET.MTV"] + lb["PET.MTV"])
    assert from_masks["PET.TTLG"] == pytest.approx(la["PET.TLG"] + lb["PET.TLG"])
    assert from_masks["PET.SUVmax_patient"] == 5.0


def test_dmax_bulk_differs_from_dmax_with_three_lesions():
    shape = (10, 10, 60)
    big = _ball(shape, (5, 5, 30), 6.0)
    left = _ball(shape, (5, 5, 3), 2.0)  # 27 voxels left of the bulk
    right = _ball(shape, (5, 5, 50), 2.0)  # 20 voxels right of it
    suv = Image(np.ones(shape) * 4.0, spacing=(1.0, 1.0, 1.0))
    out = pet.patient_metrics(suv, [Mask(m, spacing=(1.0, 1.0, 1.0)) for m in (left, big, right)])
    assert out["PET.Dmax"] == pytest.approx(47.0)
    assert out["PET.Dmax_bulk"] == pytest.approx(27.0)


def test_single_lesion_has_zero_distances():
    suv, a, _ = _two_lesions()
    out = pet.patient_metrics(suv, [a])
    assert out["PET.Dmax"] == 0.0 and out["PET.Dmax_bulk"] == 0.0 and out["PET.n_lesions"] == 1


def test_errors():
    suv, a, _ = _two_lesions()
    with pytest.raises(FeatureError, match="overlap"):
        pet.patient_metrics(suv, [a, a])
    with pytest.raises(EmptyMaskError):
        pet.patient_metrics(suv, suv.with_array(np.zeros(suv.shape)))
    with pytest.raises(FeatureError, match="whole numbers"):
        pet.patient_metrics(suv, suv.with_array(a.array * 1.5))
    with pytest.raises(GeometryMismatchError):
        pet.lesion_metrics(suv, Mask(a.array, spacing=(2.0, 2.0, 3.0)))
    bad = suv.with_array(np.where(a.array, np.nan, suv.array))
    with pytest.raises(FeatureError, match="non-finite"):
        pet.lesion_metrics(bad, a)
