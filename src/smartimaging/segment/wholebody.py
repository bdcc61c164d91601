"""Whole-body lesion detection: candidates above a threshold, physiological uptake excluded.

1. Candidates: voxels with SUV at or above ``threshold`` (an SUV, e.g. 2.5, or ``'percist'``:
   1.5 x liver SUVmean + 2 SD from a liver mask or point), split into 26-connected components of
   at least ``min_volume_ml``.
2. Physiological uptake is excluded, either from supplied organ masks (a component is dropped
   when at least ``organ_overlap`` of its volume lies in an organ mask dilated by
   ``organ_margin_mm``), or, for the organs without a mask, by simple anatomy rules on the
   component's centroid relative to the body (see :data:`ANATOMY_RULES`). The body is the
   largest connected region of CT > -500 HU (when a CT on the PET grid is given) or of
   SUV > 0.1; its axial extent and its left-right / anterior-posterior half sizes define
   normalised coordinates ``s`` (0 at the caudal end, 1 at the cranial end), ``u``
   (-1 patient right .. +1 left) and ``v`` (-1 anterior .. +1 posterior).
3. The kept components are labelled ``1..n`` by decreasing SUVmax; a table gives per lesion its
   label, volume (ml), SUVmax, SUVmean and centroid (mm).

The anatomy rules are heuristics for a torso or whole-body FDG scan with the patient head
first or feet first (DICOM LPS, +z cranial); they assume the field of view reaches from the
pelvis upwards and are no substitute for organ masks (e.g. from TotalSegmentator) where those
are available.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import ndimage

from smartimaging.exceptions import SegmentationError
from smartimaging.image import Image, Mask, check_same_geometry
from smartimaging.segment.adaptive import _ball
from smartimaging.segment.components import label_components
from smartimaging.segment.percist import liver_reference

__all__ = ["ANATOMY_RULES", "ORGANS", "LesionDetection", "detect_lesions"]

ORGANS = ("brain", "heart", "bladder", "kidneys")


@dataclass(frozen=True)
class _Rule:
    s: tuple[float, float]
    abs_u: tuple[float, float]
    v: tuple[float, float]
    min_volume_ml: float


#: Anatomy rule per organ: ranges of the centroid's normalised body coordinates (s axial,
#: |u| lateral, v anterior-posterior) and the least component volume (ml).
ANATOMY_RULES: dict[str, _Rule] = {
    "brain": _Rule(s=(0.85, 1.0), abs_u=(0.0, 0.5), v=(-1.0, 1.0), min_volume_ml=150.0),
    "heart": _Rule(s=(0.5, 0.9), abs_u=(0.0, 0.55), v=(-1.0, 0.3), min_volume_ml=3.0),
    "bladder": _Rule(s=(0.0, 0.3), abs_u=(0.0, 0.4), v=(-1.0, 0.3), min_volume_ml=5.0),
    "kidneys": _Rule(s=(0.2, 0.6), abs_u=(0.15, 0.75), v=(0.0, 1.0), min_volume_ml=2.0),
}


@dataclass(frozen=True)
class LesionDetection:
    """Result of :func:`detect_lesions`.

    Attributes
    ----------
    labels : Image
        Lesion labels (int32, 0 background, 1..n by decreasing SUVmax) on the SUV grid.
    table : pandas.DataFrame
        One row per lesion: label, volume_ml, suv_max, suv_mean, centroid_x_mm, centroid_y_mm,
        centroid_z_mm.
    excluded : pandas.DataFrame
        The candidates dropped as physiological: the same columns plus ``organ`` and ``rule``
        (``'mask'`` or ``'anatomy'``).
    threshold_suv : float
        The candidate threshold used.
    """

    labels: Image
    table: pd.DataFrame
    excluded: pd.DataFrame
    threshold_suv: float

    def lesion_masks(self, *, prefix: str = "lesion_") -> dict[str, Mask]:
        """One mask per lesion, named ``<prefix><label>``."""
        arr = self.labels.array
        return {
            f"{prefix}{int(k)}": Mask(
                arr == k, self.labels.spacing, self.labels.origin, self.labels.direction.copy()
            )
            for k in self.table["label"]
        }


def _body(suv: Image, ct: Image | None) -> np.ndarray:
    if ct is not None:
        check_same_geometry(suv, ct, what="SUV image and CT (resample the CT onto the PET grid first)")
        inside = np.asarray(ct.array) > -500
    else:
        inside = np.nan_to_num(np.asarray(suv.array, dtype=np.float64)) > 0.1
    labels, n = ndimage.label(inside)
    if n == 0:
        raise SegmentationError("no body found (no CT > -500 HU / no SUV > 0.1): check the images")
    counts = np.bincount(labels.ravel())[1:]
    return np.asarray(labels == (int(np.argmax(counts)) + 1))


def _physical(suv: Image, zyx: np.ndarray) -> np.ndarray:
    """Physical (x, y, z) mm of array indices given as (n, 3) in z, y, x order."""
    return suv.index_to_physical(np.asarray(zyx, dtype=float)[:, ::-1])


_COLUMNS = ["label", "volume_ml", "suv_max", "suv_mean", "centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]


def detect_lesions(
    suv: Image,
    *,
    threshold: float | Literal["percist"] = 2.5,
    liver: Mask | None = None,
    liver_point_mm: Sequence[float] | None = None,
    ct: Image | None = None,
    organ_masks: Mapping[str, Mask] | None = None,
    exclude: Sequence[str] = ORGANS,
    organ_margin_mm: float = 5.0,
    organ_overlap: float = 0.5,
    min_volume_ml: float = 0.5,
) -> LesionDetection:
    """Detect lesions in a whole-body (or torso) PET.

    Parameters
    ----------
    suv : Image
        SUV image.
    threshold : float or 'percist'
        Candidate SUV threshold, or ``'percist'`` (needs ``liver`` or ``liver_point_mm``).
    liver, liver_point_mm
        Liver reference for ``'percist'``, see :func:`smartimaging.segment.percist.liver_reference`.
    ct : Image, optional
        CT on the PET grid (HU), used only to find the body outline.
    organ_masks : mapping of str to Mask, optional
        Organ masks on the SUV grid, keyed by names in :data:`ORGANS`; organs without a mask
        fall back to the anatomy rules.
    exclude : sequence of str
        Organs whose uptake is excluded (subset of :data:`ORGANS`).
    organ_margin_mm : float
        Dilation of the organ masks.
    organ_overlap : float
        Fraction of a candidate inside a (dilated) organ mask from which it is excluded.
    min_volume_ml : float
        Least candidate volume (ml).

    Returns
    -------
    LesionDetection

    Raises
    ------
    ValueError
        If an organ name or an option is invalid.
    GeometryMismatchError
        If a mask or the CT is not on the SUV grid.
    SegmentationError
        If ``'percist'`` is asked without a liver reference.
    """
    bad = sorted(set(exclude) - set(ORGANS)) + sorted(set(organ_masks or {}) - set(ORGANS))
    if bad:
        raise ValueError(f"unknown organ(s) {bad}; valid: {list(ORGANS)}")
    if not 0 < organ_overlap <= 1:
        raise ValueError(f"organ_overlap must be in (0, 1], got {organ_overlap}")
    if isinstance(threshold, str):
        if threshold != "percist":
            raise ValueError(f"threshold must be an SUV or 'percist', got {threshold!r}")
        if liver is None and liver_point_mm is None:
            raise SegmentationError(
                "threshold 'percist' needs a liver reference: give liver (mask) or liver_point_mm"
            )
        level = liver_reference(suv, liver=liver, liver_point_mm=liver_point_mm).threshold
    else:
        level = float(threshold)
        if not np.isfinite(level):
            raise ValueError(f"threshold must be a finite SUV, got {threshold}")
    values = np.asarray(suv.array, dtype=np.float64)
    candidates = Mask(np.isfinite(values) & (values >= level), suv.spacing, suv.origin, suv.direction.copy())
    comp = label_components(candidates, min_volume_ml=min_volume_ml).array
    n = int(comp.max())
    idx = np.arange(1, n + 1)
    organ_arrays: dict[str, np.ndarray] = {}
    for organ, m in (organ_masks or {}).items():
        if organ not in exclude:
            continue
        check_same_geometry(suv, m, what=f"SUV image and organ mask {organ!r}")
        arr = np.asarray(m.array)
        if organ_margin_mm > 0:
            arr = ndimage.binary_dilation(arr, structure=_ball(suv.spacing_zyx, organ_margin_mm))
        organ_arrays[organ] = arr
    rows = []
    if n:
        counts = ndimage.sum_labels(np.ones_like(values), comp, idx)
        sums = ndimage.sum_labels(values, comp, idx)
        maxima = ndimage.maximum(values, comp, idx)
        centres = np.asarray(ndimage.center_of_mass(np.ones_like(values), comp, idx), dtype=float).reshape(
            n, 3
        )
        xyz = _physical(suv, centres)
        rule_organs = [o for o in exclude if o not in organ_arrays]
        if rule_organs:
            body = _body(suv, ct)
            bz, by, bx = np.nonzero(body)
            pts = _physical(suv, np.column_stack([bz, by, bx])[:: max(1, bz.size // 200_000)])
            lo, hi = np.percentile(pts, 1, axis=0), np.percentile(pts, 99, axis=0)
            centre = 0.5 * (lo + hi)
            half = np.maximum(0.5 * (hi - lo), 1e-6)
        overlaps = {
            o: ndimage.sum_labels(a.astype(np.float64), comp, idx) / counts for o, a in organ_arrays.items()
        }
        for i in range(n):
            vol = float(counts[i]) * suv.voxel_volume / 1000.0
            organ, how = "", ""
            for o, frac in overlaps.items():
                if frac[i] >= organ_overlap:
                    organ, how = o, "mask"
                    break
            if not organ and rule_organs:
                s = (xyz[i, 2] - lo[2]) / (hi[2] - lo[2]) if hi[2] > lo[2] else 0.5
                u = (xyz[i, 0] - centre[0]) / half[0]
                v = (xyz[i, 1] - centre[1]) / half[1]
                for o in rule_organs:
                    r = ANATOMY_RULES[o]
                    if (
                        r.s[0] <= s <= r.s[1]
                        and r.abs_u[0] <= abs(u) <= r.abs_u[1]
                        and r.v[0] <= v <= r.v[1]
                        and vol >= r.min_volume_ml
                    ):
                        organ, how = o, "anatomy"
                        break
            rows.append(
                {
                    "component": i + 1, "volume_ml": vol, "suv_max": float(maxima[i]),
                    "suv_mean": float(sums[i] / counts[i]), "centroid_x_mm": float(xyz[i, 0]),
                    "centroid_y_mm": float(xyz[i, 1]), "centroid_z_mm": float(xyz[i, 2]),
                    "organ": organ, "rule": how,
                }
            )  # fmt: skip
    frame = pd.DataFrame(rows, columns=["component", *_COLUMNS[1:], "organ", "rule"])
    kept = frame[frame["organ"] == ""].sort_values("suv_max", ascending=False, kind="stable")
    lut = np.zeros(n + 1, dtype=np.int32)
    lut[kept["component"].to_numpy(dtype=int)] = np.arange(1, len(kept) + 1, dtype=np.int32)
    labels = Image(lut[comp], suv.spacing, suv.origin, suv.direction.copy(), {"threshold_suv": level})
    table = kept.assign(label=np.arange(1, len(kept) + 1))[_COLUMNS].reset_index(drop=True)
    excluded = frame[frame["organ"] != ""].drop(columns="component").reset_index(drop=True)
    return LesionDetection(labels, table, excluded, level)
