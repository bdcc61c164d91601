"""Methods and whole-body detection against the synthetic cohort's ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from smartimaging.image import resample_to
from smartimaging.segment.methods import segment_lesion
from smartimaging.segment.metrics import dice
from smartimaging.segment.wholebody import detect_lesions

from ._synthetic import detection_counts, liver_point, organ_masks, patient, suv_of, truth_mask

pytestmark = pytest.mark.slow

PATIENTS = (0, 2, 3, 5)


@pytest.fixture(scope="module")
def cohort() -> list:
    return [patient(i) for i in PATIENTS]


def test_relative_40_percent_dice_on_primaries(cohort: list) -> None:
    scores = []
    for p in cohort:
        suv = suv_of(p)
        mask = segment_lesion(suv, method="relative", fraction=0.4, seed_mm=p.lesions[0].centre_mm)
        scores.append(dice(mask, truth_mask(p, suv, 1)))
    assert float(np.median(scores)) >= 0.8, scores


def test_gradient_dice_on_primaries(cohort: list) -> None:
    scores = []
    for p in cohort:
        suv = suv_of(p)
        mask = segment_lesion(suv, method="gradient", seed_mm=p.lesions[0].centre_mm)
        scores.append(dice(mask, truth_mask(p, suv, 1)))
    assert float(np.median(scores)) >= 0.75, scores


def test_whole_body_detection_with_organ_masks(cohort: list) -> None:
    n_true = n_hit = n_fp = 0
    for p in cohort:
        suv = suv_of(p)
        found = detect_lesions(
            suv, threshold="percist", liver_point_mm=liver_point(p), organ_masks=organ_masks(p, suv)
        )
        t, h, f = detection_counts(p.lesion_labels.array, found.labels.array)
        n_true, n_hit, n_fp = n_true + t, n_hit + h, n_fp + f
        assert set(found.excluded["organ"]) >= {"bladder"}  # the bladder is always hot
        assert list(found.table["label"]) == list(range(1, len(found.table) + 1))
        assert found.table["suv_max"].is_monotonic_decreasing
    assert n_hit / n_true >= 0.8, (n_hit, n_true)
    assert n_fp / len(cohort) <= 0.5, n_fp


def test_whole_body_anatomy_rules_exclude_the_hot_organs(cohort: list) -> None:
    p = cohort[0]
    suv = suv_of(p)
    ct = resample_to(p.ct, suv, default_value=-1000.0)
    kept = detect_lesions(suv, threshold="percist", liver_point_mm=liver_point(p), ct=ct)
    raw = detect_lesions(suv, threshold="percist", liver_point_mm=liver_point(p), ct=ct, exclude=())
    assert len(raw.excluded) == 0
    assert len(kept.table) < len(raw.table)
    # no kept lesion lies in the bladder or the kidneys of the phantom
    organs = organ_masks(p, suv)
    for name in ("bladder", "kidneys"):
        assert not (kept.labels.array > 0)[organs[name].array].any(), name
