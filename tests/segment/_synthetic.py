"""Helpers to use synthetic patients (smartimaging.synthetic) as segmentation ground truth."""

from __future__ import annotations

import numpy as np

from smartimaging.image import Image, Mask
from smartimaging.synthetic import make_patient
from smartimaging.synthetic.patient import SyntheticPatient


def patient(index: int, *, n_slices: int = 40) -> SyntheticPatient:
    return make_patient(index, seed=0, n_slices=n_slices)


def suv_of(p: SyntheticPatient) -> Image:
    """SUVbw as programmed (the site calibration is part of the truth)."""
    return p.pet_bqml.with_array(p.pet_bqml.array * p.weight_kg * 1000.0 / p.decayed_dose_bq)


def truth_mask(p: SyntheticPatient, suv: Image, label: int) -> Mask:
    return Mask(p.lesion_labels.array == label, suv.spacing, suv.origin, suv.direction.copy())


def organ_masks(p: SyntheticPatient, suv: Image) -> dict[str, Mask]:
    """Heart, bladder and kidneys of the phantom's analytic anatomy, on the PET grid."""
    assert p.body is not None
    org = p.body.organs()
    zz, yy, xx = np.indices(suv.shape)
    pts = suv.index_to_physical(np.stack([xx, yy, zz], -1).reshape(-1, 3)).reshape(*suv.shape, 3)
    out = {}
    for name, keys in {
        "heart": ["heart"],
        "bladder": ["bladder"],
        "kidneys": ["kidney_left", "kidney_right"],
    }.items():
        arr = np.zeros(suv.shape, bool)
        for k in keys:
            c, s = org[k]
            arr |= (((pts - c) / s) ** 2).sum(-1) <= 1
        out[name] = Mask(arr, suv.spacing, suv.origin, suv.direction.copy())
    return out


def liver_point(p: SyntheticPatient) -> tuple[float, float, float]:
    """A point in the right liver lobe as far as possible from every lesion."""
    assert p.body is not None
    c0, s0 = p.body.organs()["liver"]
    candidates = [
        c0 + np.array([dx, 0.0, dz])
        for dx in (-0.4 * s0[0], -0.2 * s0[0], 0.0)
        for dz in (0.0, 0.3 * s0[2], -0.3 * s0[2])
    ]
    lesions = [np.array(t.centre_mm) for t in p.lesions]
    best = max(candidates, key=lambda c: min(float(np.linalg.norm(c - q)) for q in lesions))
    return (float(best[0]), float(best[1]), float(best[2]))


def detection_counts(labels: np.ndarray, detected: np.ndarray) -> tuple[int, int, int]:
    """(true lesions, true lesions hit by a detected label, detected labels hitting no true lesion)."""
    n_true = int(labels.max())
    hit: set[int] = set()
    false_pos = 0
    for k in range(1, int(detected.max()) + 1):
        under = np.unique(labels[detected == k])
        under = under[under > 0]
        if under.size:
            hit.update(int(v) for v in under)
        else:
            false_pos += 1
    return n_true, len(hit), false_pos
