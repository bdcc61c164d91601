"""Agreement between a predicted and a reference segmentation on the same grid.

* overlap: :func:`dice`, :func:`jaccard`, :func:`volume_difference`;
* surface distances (mm, physical spacing): :func:`hausdorff_distance`, :func:`hd95`,
  :func:`average_surface_distance`, :func:`surface_dice`;
* autoPET: :func:`false_positive_volume`, :func:`false_negative_volume` (ml);
* per lesion: :func:`lesion_detection` (sensitivity and false positives by connected
  components);
* all at once: :func:`evaluate_segmentation` (one case) and :func:`evaluate_cohort` (a table).

Surfaces and distances
----------------------
The surface of a mask is its set of voxels that have at least one 6-neighbour outside the
mask (``mask & ~binary_erosion(mask)``, voxels outside the grid counting as outside), as in
MONAI's ``get_mask_edges``. The distance of a surface voxel to the other mask is the
Euclidean distance (mm, using the voxel spacing) from its centre to the nearest surface-voxel
centre of the other mask, computed with a Euclidean distance transform on the bounding box
of the union of both masks (exact, because every surface voxel lies in that box). The
direction matrix is assumed orthonormal (it always is for DICOM and NIfTI images).

Empty masks
-----------
* both masks empty: every metric that compares the two raises
  :class:`~smartimaging.exceptions.EmptyMaskError` (it is undefined);
  :func:`evaluate_segmentation` reports ``None`` for those and still reports the volumes,
  the autoPET volumes (0 ml) and the detection counts;
* exactly one mask empty: Dice and Jaccard are 0, the surface Dice is 0, the Hausdorff
  distance, HD95 and the average surface distance are ``math.inf`` (the distance from a
  point to the empty set is infinite by convention; MONAI returns ``inf`` too).

References
----------
Taha A. A., Hanbury A., "Metrics for evaluating 3D medical image segmentation: analysis,
selection, and tool", BMC Med Imaging 2015;15:29.

Nikolov S. et al., "Clinically applicable segmentation of head and neck anatomy for
radiotherapy: deep learning algorithm development and validation study", J Med Internet Res
2021;23:e26151 (arXiv:1809.04430, 2018): surface Dice at a tolerance.

Gatidis S. et al., "A whole-body FDG-PET/CT dataset with manually annotated tumor lesions",
Sci Data 2022;9:601, and the autoPET challenge evaluation script (``autoPET/val_script.py``):
false-positive and false-negative volumes by 18-connected components.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from smartimaging.exceptions import EmptyMaskError
from smartimaging.image import Mask, check_same_geometry

__all__ = [
    "METRIC_COLUMNS",
    "LesionDetection",
    "average_surface_distance",
    "dice",
    "evaluate_cohort",
    "evaluate_segmentation",
    "false_negative_volume",
    "false_positive_volume",
    "hausdorff_distance",
    "hd95",
    "jaccard",
    "lesion_detection",
    "surface_dice",
    "surface_distances",
    "volume_difference",
]

#: Voxel connectivities accepted for connected components, and the scipy structure rank of each.
_CONNECTIVITY = {6: 1, 18: 2, 26: 3}


def _counts(a: Mask, b: Mask, name: str) -> tuple[int, int, int]:
    check_same_geometry(a, b, what=f"masks compared by {name}")
    inter = int(np.count_nonzero(a.array & b.array))
    na, nb = a.n_voxels, b.n_voxels
    if na == 0 and nb == 0:
        raise EmptyMaskError(f"{name} is undefined for two empty masks: check both segmentations")
    return inter, na, nb


def dice(a: Mask, b: Mask) -> float:
    """Dice similarity coefficient ``2 |A ∩ B| / (|A| + |B|)``.

    Parameters
    ----------
    a, b : Mask
        Masks on the same grid (not both empty).

    Returns
    -------
    float
        In ``[0, 1]``; 1 for identical masks.

    Raises
    ------
    GeometryMismatchError
        If the grids differ.
    EmptyMaskError
        If both masks are empty.

    Examples
    --------
    >>> import numpy as np
    >>> a = Mask(np.array([[[1, 1, 0, 0]]], bool), spacing=(1.0, 1.0, 1.0))
    >>> b = Mask(np.array([[[0, 1, 1, 0]]], bool), spacing=(1.0, 1.0, 1.0))
    >>> dice(a, b)
    0.5
    """
    inter, na, nb = _counts(a, b, "dice")
    return 2.0 * inter / (na + nb)


def jaccard(a: Mask, b: Mask) -> float:
    """Jaccard index (intersection over union) ``|A ∩ B| / |A ∪ B|``.

    Parameters
    ----------
    a, b : Mask
        Masks on the same grid (not both empty).

    Returns
    -------
    float
        In ``[0, 1]``.

    Raises
    ------
    GeometryMismatchError
        If the grids differ.
    EmptyMaskError
        If both masks are empty.
    """
    inter, na, nb = _counts(a, b, "jaccard")
    return inter / (na + nb - inter)


def volume_difference(a: Mask, b: Mask) -> float:
    """Relative volume difference ``(V_a - V_b) / V_b``, ``b`` being the reference.

    Parameters
    ----------
    a : Mask
        Tested segmentation.
    b : Mask
        Reference segmentation (not empty), on the same grid.

    Returns
    -------
    float
        Signed fraction: 0.1 means ``a`` is 10 % larger than ``b``.

    Raises
    ------
    GeometryMismatchError
        If the grids differ.
    EmptyMaskError
        If the reference ``b`` is empty.
    """
    check_same_geometry(a, b, what="masks compared by volume_difference")
    b.require_nonempty("reference of volume_difference")
    return (a.n_voxels - b.n_voxels) / b.n_voxels


# --- surface distances ----------------------------------------------------------------------


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a 6-neighbour outside it (outside the array counts as outside)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def surface_distances(pred: Mask, truth: Mask) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) between the surface voxels of two masks, in both directions.

    Parameters
    ----------
    pred, truth : Mask
        Masks on the same grid, neither empty.

    Returns
    -------
    pred_to_truth : numpy.ndarray
        For each surface voxel of ``pred`` (C order), the distance in mm from its centre to the
        nearest surface-voxel centre of ``truth``.
    truth_to_pred : numpy.ndarray
        The same from ``truth`` to ``pred``.

    Raises
    ------
    GeometryMismatchError
        If the grids differ.
    EmptyMaskError
        If either mask is empty (the distances are not defined).
    """
    check_same_geometry(pred, truth, what="masks compared by surface distances")
    pred.require_nonempty("prediction of surface_distances")
    truth.require_nonempty("reference of surface_distances")
    union = pred.array | truth.array
    # bounding box of the union: every surface voxel lies in it, so the distance transform
    # restricted to it is exact
    box = tuple(slice(int(ix.min()), int(ix.max()) + 1) for ix in np.nonzero(union))
    sp, st = _surface(pred.array[box]), _surface(truth.array[box])
    sampling = pred.spacing_zyx
    to_truth = ndimage.distance_transform_edt(~st, sampling=sampling)
    to_pred = ndimage.distance_transform_edt(~sp, sampling=sampling)
    return np.asarray(to_truth[sp], dtype=np.float64), np.asarray(to_pred[st], dtype=np.float64)


def _distances_or_empty(pred: Mask, truth: Mask, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Surface distances, or ``None`` when exactly one mask is empty; both empty raises."""
    check_same_geometry(pred, truth, what=f"masks compared by {name}")
    n_pred, n_truth = pred.n_voxels, truth.n_voxels
    if n_pred == 0 and n_truth == 0:
        raise EmptyMaskError(f"{name} is undefined for two empty masks: check both segmentations")
    if n_pred == 0 or n_truth == 0:
        return None
    return surface_distances(pred, truth)


def hausdorff_distance(pred: Mask, truth: Mask, *, percentile: float = 100.0) -> float:
    """(Percentile) Hausdorff distance between the surfaces of two masks, in mm.

    The larger of the two directed distances: ``max(P(d(pred -> truth)), P(d(truth -> pred)))``
    where ``P`` is the ``percentile``-th percentile (linear interpolation, as
    :func:`numpy.percentile`) of the surface distances (see :func:`surface_distances`); with
    ``percentile=100`` it is the Hausdorff distance. This is MONAI's
    ``compute_hausdorff_distance`` definition; some tools (e.g. MedPy's ``hd95``) instead take
    the percentile of the two distance sets pooled, which can give a slightly smaller value.

    Parameters
    ----------
    pred : Mask
        Tested segmentation.
    truth : Mask
        Reference segmentation on the same grid.
    percentile : float
        In ``[0, 100]``; 100 for the Hausdorff distance, 95 for HD95.

    Returns
    -------
    float
        Distance in mm; 0 for identical masks; ``math.inf`` when exactly one mask is empty.

    Raises
    ------
    ValueError
        If ``percentile`` is outside ``[0, 100]``.
    GeometryMismatchError
        If the grids differ.
    EmptyMaskError
        If both masks are empty.

    Examples
    --------
    >>> import numpy as np
    >>> a = Mask(np.array([[[1, 1, 0, 0, 0]]], bool), spacing=(2.0, 1.0, 1.0))
    >>> b = Mask(np.array([[[0, 0, 0, 1, 1]]], bool), spacing=(2.0, 1.0, 1.0))
    >>> hausdorff_distance(a, b)
    6.0
    """
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    dist = _distances_or_empty(pred, truth, "the Hausdorff distance")
    if dist is None:
        return math.inf
    return float(max(np.percentile(d, percentile) for d in dist))


def hd95(pred: Mask, truth: Mask) -> float:
    """95th-percentile Hausdorff distance in mm (:func:`hausdorff_distance` with ``percentile=95``).

    Parameters
    ----------
    pred, truth : Mask
        Tested and reference segmentations on the same grid.

    Returns
    -------
    float
        Distance in mm; ``math.inf`` when exactly one mask is empty.

    Raises
    ------
    GeometryMismatchError
        If the grids differ.
    EmptyMaskError
        If both masks are empty.
    """
    return hausdorff_distance(pred, truth, percentile=95.0)


def average_surface_distance(pred: Mask, truth: Mask, *, symmetric: bool = True) -> float:
    """Average (symmetric) surface distance in mm.

    Symmetric (ASSD): the mean of the distances of every surface voxel of either mask to the
    other surface, ``(sum d(pred -> truth) + sum d(truth -> pred)) / (|S_pred| + |S_truth|)``.
    Not symmetric: the mean of ``d(pred -> truth)``. Both as MONAI's
    ``compute_average_surface_distance``.

    Parameters
    ----------
    pred, truth : Mask
        Tested and reference segmentations on the same grid.
    symmetric : bool
        Average over both surfaces (default) or over the surface of ``pred`` only.

    Returns
    -------
    float
        Distance in mm; ``math.inf`` when exactly one mask is empty.

    Raises
    ------
    GeometryMismatchError
        If the grids differ.
    EmptyMaskError
        If both masks are empty.
    """
    dist = _distances_or_empty(pred, truth, "the average surface distance")
    if dist is None:
        return math.inf
    d = np.concatenate(dist) if symmetric else dist[0]
    return float(d.mean())


def surface_dice(pred: Mask, truth: Mask, *, tolerance_mm: float = 2.0) -> float:
    """Surface Dice (normalised surface distance) at a tolerance.

    The fraction of both surfaces lying within ``tolerance_mm`` of the other surface:
    ``(|{d(pred -> truth) <= tau}| + |{d(truth -> pred) <= tau}|) / (|S_pred| + |S_truth|)``,
    surfaces counted in voxels (MONAI's ``compute_surface_dice`` with ``use_subvoxels=False``;
    Nikolov et al. weigh surface elements by their area, which differs slightly on coarse
    grids).

    Parameters
    ----------
    pred, truth : Mask
        Tested and reference segmentations on the same grid.
    tolerance_mm : float
        Tolerance in mm (>= 0); choose it near the acceptable delineation error, e.g. one PET
        voxel.

    Returns
    -------
    float
        In ``[0, 1]``; 0 when exactly one mask is empty.

    Raises
    ------
    ValueError
        If ``tolerance_mm`` is negative or not finite.
    GeometryMismatchError
        If the grids differ.
    EmptyMaskError
        If both masks are empty.

    References
    ----------
    Nikolov S. et al., arXiv:1809.04430 (2018).
    """
    if not (math.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise ValueError(f"tolerance_mm must be a finite distance >= 0 mm, got {tolerance_mm}")
    dist = _distances_or_empty(pred, truth, "the surface Dice")
    if dist is None:
        return 0.0
    within = sum(int(np.count_nonzero(d <= tolerance_mm)) for d in dist)
    return within / (dist[0].size + dist[1].size)


# --- components: autoPET volumes and per-lesion detection -------------------------------------


def _label(array: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    if connectivity not in _CONNECTIVITY:
        raise ValueError(f"connectivity must be one of {sorted(_CONNECTIVITY)}, got {connectivity!r}")
    structure = ndimage.generate_binary_structure(3, _CONNECTIVITY[connectivity])
    labels, n = ndimage.label(array, structure=structure)
    return labels, int(n)


def _component_overlap(labels: np.ndarray, n: int, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Size of each component (1..n) and how many of its voxels lie in ``other``."""
    size = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    covered = np.bincount(labels[other], minlength=n + 1)[1:]
    return size, covered


def _matched(size: np.ndarray, covered: np.ndarray, min_overlap: float) -> np.ndarray:
    """Components whose covered fraction is > 0 and >= ``min_overlap``."""
    return (covered > 0) & (covered >= min_overlap * size)


def false_positive_volume(pred: Mask, truth: Mask, *, connectivity: int = 18) -> float:
    """autoPET false-positive volume: predicted components that do not touch the truth, in ml.

    The volume of every connected component of ``pred`` that shares no voxel with ``truth``
    (as the autoPET challenge evaluation script, with 18-connectivity by default).

    Parameters
    ----------
    pred : Mask
        Predicted lesion mask.
    truth : Mask
        Reference lesion mask on the same grid (may be empty: then every predicted voxel is a
        false positive).
    connectivity : {6, 18, 26}
        Voxel connectivity of the components.

    Returns
    -------
    float
        Volume in ml (>= 0).

    Raises
    ------
    GeometryMismatchError
        If the grids differ.
    ValueError
        If ``connectivity`` is not 6, 18 or 26.

    References
    ----------
    Gatidis S. et al., Sci Data 2022;9:601; autoPET challenge evaluation (``false_pos_pix``).
    """
    check_same_geometry(pred, truth, what="masks compared by false_positive_volume")
    labels, n = _label(pred.array, connectivity)
    size, covered = _component_overlap(labels, n, truth.array)
    return float(size[covered == 0].sum()) * pred.voxel_volume / 1000.0


def false_negative_volume(pred: Mask, truth: Mask, *, connectivity: int = 18) -> float:
    """autoPET false-negative volume: true components that the prediction misses entirely, in ml.

    The volume of every connected component of ``truth`` that shares no voxel with ``pred``.

    Parameters
    ----------
    pred : Mask
        Predicted lesion mask.
    truth : Mask
        Reference lesion mask on the same grid.
    connectivity : {6, 18, 26}
        Voxel connectivity of the components.

    Returns
    -------
    float
        Volume in ml (>= 0); 0 when ``truth`` is empty.

    Raises
    ------
    GeometryMismatchError
        If the grids differ.
    ValueError
        If ``connectivity`` is not 6, 18 or 26.

    References
    ----------
    Gatidis S. et al., Sci Data 2022;9:601; autoPET challenge evaluation (``false_neg_pix``).
    """
    check_same_geometry(pred, truth, what="masks compared by false_negative_volume")
    labels, n = _label(truth.array, connectivity)
    size, covered = _component_overlap(labels, n, pred.array)
    return float(size[covered == 0].sum()) * truth.voxel_volume / 1000.0


@dataclass(frozen=True)
class LesionDetection:
    """Per-lesion detection counts of one case (see :func:`lesion_detection`).

    Attributes
    ----------
    n_true : int
        Connected components (lesions) of the reference.
    n_detected : int
        Reference lesions matched by the prediction.
    n_predicted : int
        Connected components of the prediction.
    n_false_positive : int
        Predicted components matched by no reference lesion.
    sensitivity : float or None
        ``n_detected / n_true``; ``None`` when the reference has no lesion.
    """

    n_true: int
    n_detected: int
    n_predicted: int
    n_false_positive: int
    sensitivity: float | None


def lesion_detection(
    pred: Mask, truth: Mask, *, min_overlap: float = 0.0, connectivity: int = 26
) -> LesionDetection:
    """Lesion-wise detection: which reference lesions are found, which predicted ones are false.

    Lesions are the connected components of each mask. A reference lesion is *detected* when
    the prediction covers some of its voxels and at least the fraction ``min_overlap`` of them;
    a predicted component is a *false positive* unless the reference covers some of its
    voxels and at least ``min_overlap`` of them. With the default ``min_overlap=0`` any
    overlap counts (the autoPET rule).

    Parameters
    ----------
    pred : Mask
        Predicted lesion mask.
    truth : Mask
        Reference lesion mask on the same grid (may be empty).
    min_overlap : float
        Least covered fraction of a component's voxels, in ``[0, 1]``.
    connectivity : {6, 18, 26}
        Voxel connectivity of the components.

    Returns
    -------
    LesionDetection
        Counts and sensitivity.

    Raises
    ------
    GeometryMismatchError
        If the grids differ.
    ValueError
        If ``min_overlap`` is outside ``[0, 1]`` or ``connectivity`` is not 6, 18 or 26.
    """
    if not 0.0 <= min_overlap <= 1.0:
        raise ValueError(f"min_overlap must be a fraction in [0, 1], got {min_overlap}")
    check_same_geometry(pred, truth, what="masks compared by lesion_detection")
    lt, nt = _label(truth.array, connectivity)
    lp, npred = _label(pred.array, connectivity)
    t_size, t_cov = _component_overlap(lt, nt, pred.array)
    p_size, p_cov = _component_overlap(lp, npred, truth.array)
    n_detected = int(np.count_nonzero(_matched(t_size, t_cov, min_overlap)))
    n_fp = int(np.count_nonzero(~_matched(p_size, p_cov, min_overlap)))
    return LesionDetection(nt, n_detected, npred, n_fp, n_detected / nt if nt else None)


# --- evaluation of cases and cohorts -----------------------------------------------------------

#: Keys of :func:`evaluate_segmentation` (and columns of :func:`evaluate_cohort` after ``case``).
METRIC_COLUMNS: tuple[str, ...] = (
    "pred_volume_ml",
    "truth_volume_ml",
    "dice",
    "jaccard",
    "volume_difference",
    "hausdorff_mm",
    "hd95_mm",
    "assd_mm",
    "surface_dice",
    "false_positive_volume_ml",
    "false_negative_volume_ml",
    "n_true",
    "n_detected",
    "n_predicted",
    "n_false_positive",
    "sensitivity",
)


def evaluate_segmentation(
    pred: Mask,
    truth: Mask,
    *,
    tolerance_mm: float = 2.0,
    min_overlap: float = 0.0,
    autopet_connectivity: int = 18,
    lesion_connectivity: int = 26,
) -> dict[str, float | int | None]:
    """Every metric of this module for one case.

    Parameters
    ----------
    pred : Mask
        Predicted segmentation.
    truth : Mask
        Reference segmentation on the same grid.
    tolerance_mm : float
        Tolerance of the surface Dice (mm).
    min_overlap : float
        Overlap criterion of :func:`lesion_detection`.
    autopet_connectivity : {6, 18, 26}
        Connectivity of the autoPET false-positive / false-negative volumes (autoPET: 18).
    lesion_connectivity : {6, 18, 26}
        Connectivity of the lesions in :func:`lesion_detection`.

    Returns
    -------
    dict
        The keys :data:`METRIC_COLUMNS`. Metrics undefined for the case are ``None``: the
        overlap and surface metrics when both masks are empty, ``volume_difference`` when
        the reference is empty, ``sensitivity`` when the reference has no lesion. Distances
        are ``math.inf`` when exactly one mask is empty (see the module docstring).

    Raises
    ------
    GeometryMismatchError
        If the grids differ.
    ValueError
        If an option is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> t = Mask(np.array([[[1, 1, 1, 0, 0, 0]]], bool), spacing=(1.0, 1.0, 1.0))
    >>> p = Mask(np.array([[[0, 1, 1, 0, 0, 1]]], bool), spacing=(1.0, 1.0, 1.0))
    >>> m = evaluate_segmentation(p, t)
    >>> round(m["dice"], 3), m["n_false_positive"], m["false_positive_volume_ml"]
    (0.667, 1, 0.001)
    """
    check_same_geometry(pred, truth, what="predicted and reference masks")
    if not (math.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise ValueError(f"tolerance_mm must be a finite distance >= 0 mm, got {tolerance_mm}")
    det = lesion_detection(pred, truth, min_overlap=min_overlap, connectivity=lesion_connectivity)
    n_pred, n_truth = pred.n_voxels, truth.n_voxels
    both_empty = n_pred == 0 and n_truth == 0
    surface: dict[str, float | None]
    if both_empty:
        surface = dict.fromkeys(("hausdorff_mm", "hd95_mm", "assd_mm", "surface_dice"))
    elif n_pred == 0 or n_truth == 0:
        surface = {"hausdorff_mm": math.inf, "hd95_mm": math.inf, "assd_mm": math.inf, "surface_dice": 0.0}
    else:
        # one distance computation for the four surface metrics (same definitions as the functions)
        d_pt, d_tp = surface_distances(pred, truth)
        pooled = np.concatenate([d_pt, d_tp])
        surface = {
            "hausdorff_mm": float(max(d_pt.max(), d_tp.max())),
            "hd95_mm": float(max(np.percentile(d_pt, 95.0), np.percentile(d_tp, 95.0))),
            "assd_mm": float(pooled.mean()),
            "surface_dice": int(np.count_nonzero(pooled <= tolerance_mm)) / pooled.size,
        }
    out: dict[str, float | int | None] = {
        "pred_volume_ml": pred.volume_ml,
        "truth_volume_ml": truth.volume_ml,
        "dice": None if both_empty else dice(pred, truth),
        "jaccard": None if both_empty else jaccard(pred, truth),
        "volume_difference": None if n_truth == 0 else volume_difference(pred, truth),
        **surface,
        "false_positive_volume_ml": false_positive_volume(pred, truth, connectivity=autopet_connectivity),
        "false_negative_volume_ml": false_negative_volume(pred, truth, connectivity=autopet_connectivity),
    }
    out.update(asdict(det))
    return {k: out[k] for k in METRIC_COLUMNS}


def evaluate_cohort(
    cases: Iterable[tuple[str, Mask, Mask]],
    *,
    tolerance_mm: float = 2.0,
    min_overlap: float = 0.0,
    autopet_connectivity: int = 18,
    lesion_connectivity: int = 26,
) -> pd.DataFrame:
    """:func:`evaluate_segmentation` for many cases, one row each.

    Parameters
    ----------
    cases : iterable of (str, Mask, Mask)
        ``(case, pred, truth)`` triples.
    tolerance_mm, min_overlap, autopet_connectivity, lesion_connectivity
        As in :func:`evaluate_segmentation`.

    Returns
    -------
    pandas.DataFrame
        Columns ``case`` then :data:`METRIC_COLUMNS`; undefined metrics are missing values
        (NaN), which pandas' ``mean`` skips. Cohort figures: the pooled lesion sensitivity is
        ``n_detected.sum() / n_true.sum()``, false positives per patient ``n_false_positive.mean()``.

    Raises
    ------
    GeometryMismatchError
        If a case's grids differ (the message names the case).
    """
    rows = []
    for case, pred, truth in cases:
        check_same_geometry(pred, truth, what=f"predicted and reference masks of case {case!r}")
        metrics = evaluate_segmentation(
            pred,
            truth,
            tolerance_mm=tolerance_mm,
            min_overlap=min_overlap,
            autopet_connectivity=autopet_connectivity,
            lesion_connectivity=lesion_connectivity,
        )
        rows.append({"case": case, **metrics})
    table = pd.DataFrame(rows, columns=["case", *METRIC_COLUMNS])
    floats = [c for c in METRIC_COLUMNS if not c.startswith("n_")]
    return table.astype({c: "float64" for c in floats})
