"""Grey level distance zone matrix (GLDZM) features, IBSI 1 section "Grey level distance zone based features" (VMDZ).

Zones are those of the GLSZM (connected voxels of one grey level: 8-connected in-plane for 2D,
26-connected for 3D). ``d_ij`` counts zones of level ``i`` whose distance to the ROI border is
``j``. The distance of a voxel is its city-block distance to the nearest voxel outside the
morphological mask, with 4-connectivity in-plane (2D, per slice) or 6-connectivity (3D); voxels
outside the ROI and beyond the image edge count as outside, so a voxel on the ROI border has
distance 1. The distance of a zone is the smallest distance among its voxels.

Aggregations: ``2D`` (per slice, averaged over slices holding ROI voxels), ``2.5D`` (slice
matrices merged), ``3D``. ``Nv`` of the zone percentage is the number of ROI voxels.

Degenerate input: every ROI voxel belongs to a zone and every zone has a distance >= 1, so a
non-empty ROI gives finite values (a one-voxel ROI is one zone at distance 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from smartimaging.exceptions import GeometryMismatchError
from smartimaging.features.registry import FeatureDef
from smartimaging.features.texture_common import (
    MatrixFeatureNames,
    bounding_box,
    check_distance,
    label_zones,
    mean_rows,
    prepare_levels,
    resolve_aggregations,
    size_features_pairs,
)

__all__ = ["AGGREGATIONS", "FEATURES", "border_distance", "compute", "features_from_zones"]

AGGREGATIONS: tuple[str, ...] = ("2D", "2.5D", "3D")

# (key, IBSI name, IBSI id, generic quantity of size_matrix_features)
_SPEC = (
    ("dzm.sde", "Small distance emphasis", "0GBI", "sje"),
    ("dzm.lde", "Large distance emphasis", "MB4I", "lje"),
    ("dzm.lgze", "Low grey level zone emphasis", "S1RA", "lge"),
    ("dzm.hgze", "High grey level zone emphasis", "K26C", "hge"),
    ("dzm.sdlge", "Small distance low grey level emphasis", "RUVG", "sjlge"),
    ("dzm.sdhge", "Small distance high grey level emphasis", "DKNJ", "sjhge"),
    ("dzm.ldlge", "Large distance low grey level emphasis", "A7WM", "ljlge"),
    ("dzm.ldhge", "Large distance high grey level emphasis", "KLTH", "ljhge"),
    ("dzm.glnu", "Grey level non-uniformity", "VFT7", "glnu"),
    ("dzm.glnu.norm", "Normalised grey level non-uniformity", "7HP3", "glnu_norm"),
    ("dzm.zdnu", "Zone distance non-uniformity", "V294", "jnu"),
    ("dzm.zdnu.norm", "Normalised zone distance non-uniformity", "IATH", "jnu_norm"),
    ("dzm.z.perc", "Zone percentage", "VIWW", "perc"),
    ("dzm.gl.var", "Grey level variance", "QK93", "gl_var"),
    ("dzm.zd.var", "Zone distance variance", "7WT1", "j_var"),
    ("dzm.zd.entr", "Zone distance entropy", "GBDU", "entr"),
)

#: The 16 GLDZM features.
FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(k, n, "GLDZM", i) for k, n, i, _ in _SPEC)


def border_distance(mask: np.ndarray, *, three_d: bool) -> np.ndarray:
    """City-block distance of each mask voxel to the nearest voxel outside the mask (int64).

    Border voxels get 1; voxels outside the mask 0. Beyond the array edge counts as outside.
    In 2D (``three_d=False``) distances are measured within each slice (4-connectivity).
    """
    padded = np.pad(np.asarray(mask, dtype=bool), 1)
    if three_d:
        structure = ndimage.generate_binary_structure(3, 1)
    else:
        structure = np.zeros((3, 3, 3), dtype=bool)
        structure[1] = ndimage.generate_binary_structure(2, 1)
    dist = ndimage.distance_transform_cdt(padded, metric=structure)
    return np.asarray(dist[1:-1, 1:-1, 1:-1], dtype=np.int64)


_COLUMN = {name: c for c, name in enumerate(MatrixFeatureNames)}


def _as_dict(generic: np.ndarray) -> dict[str, float]:
    return {key: float(generic[_COLUMN[g]]) for key, _, _, g in _SPEC}


def features_from_zones(
    zone_level: np.ndarray, zone_distance: np.ndarray, n_voxels: float
) -> dict[str, float]:
    """The 16 GLDZM features of a non-empty set of zones (grey level and border distance)."""
    return _as_dict(size_features_pairs(zone_level, zone_distance, float(n_voxels)))


def _zone_distances(labels: np.ndarray, dist: np.ndarray, n_zones: int) -> np.ndarray:
    inside = labels > 0
    zd = np.full(n_zones, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(zd, labels[inside] - 1, dist[inside])
    return zd


def compute(
    levels: np.ndarray,
    mask: np.ndarray,
    *,
    n_levels: int,
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0),
    aggregations: Sequence[str] | None = None,
    distance: int = 1,
    morphological_mask: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Compute the GLDZM features for the requested aggregations.

    Parameters
    ----------
    levels : numpy.ndarray
        Discretised grey levels ``(z, y, x)``, ``1..n_levels`` inside the ROI.
    mask : numpy.ndarray
        Boolean (intensity) ROI of the same shape: it defines the zones.
    n_levels : int
        Number of grey levels ``Ng``.
    spacing_zyx : tuple of float
        Accepted for a uniform family interface; unused (distances are in voxels, per IBSI).
    aggregations : sequence of str, optional
        Subset of :data:`AGGREGATIONS`; all by default.
    distance : int
        Linkage distance of zones; must be 1.
    morphological_mask : numpy.ndarray, optional
        Mask the border distance is measured to (IBSI uses the morphological mask, which
        differs from ``mask`` after re-segmentation); ``mask`` by default.

    Returns
    -------
    dict
        ``{aggregation: {feature_key: value}}``.

    Raises
    ------
    ConfigError
        Unknown aggregation or ``distance != 1``.
    GeometryMismatchError
        ``morphological_mask`` does not have the shape of ``mask`` or does not contain it.
    EmptyMaskError, FeatureError
        See :func:`~smartimaging.features.texture_common.prepare_levels`.

    References
    ----------
    IBSI 1, GLDZM features (VMDZ).
    """
    aggs = resolve_aggregations(aggregations, AGGREGATIONS, "GLDZM")
    check_distance(distance, "GLDZM", only_one=True)
    padded = prepare_levels(levels, mask, n_levels=n_levels, pad=1, family="GLDZM")
    roi = np.asarray(mask, dtype=bool)
    morph = roi if morphological_mask is None else np.asarray(morphological_mask, dtype=bool)
    if morph.shape != roi.shape:
        raise GeometryMismatchError(
            f"GLDZM: morphological_mask shape {morph.shape} differs from mask shape {roi.shape}"
        )
    if np.any(roi & ~morph):
        raise GeometryMismatchError(
            "GLDZM: the intensity mask has voxels outside morphological_mask; re-segmentation only "
            "removes voxels, so pass the mask before re-segmentation as morphological_mask"
        )
    box = bounding_box(roi)
    out: dict[str, dict[str, float]] = {}
    for three_d in (False, True):
        wanted = [a for a in aggs if (a == "3D") == three_d]
        if not wanted:
            continue
        dist = np.pad(border_distance(morph, three_d=three_d)[box], 1)
        labels, z_level, _, z_slice = label_zones(padded, three_d=three_d)
        z_dist = _zone_distances(labels, dist, z_level.size)
        if "2D" in wanted:
            per_slice_nv = np.count_nonzero(padded, axis=(1, 2))
            order = np.argsort(z_slice, kind="stable")
            bounds = np.flatnonzero(np.diff(z_slice[order])) + 1
            rows = [
                size_features_pairs(z_level[sel], z_dist[sel], float(per_slice_nv[z_slice[sel[0]]]))
                for sel in np.split(order, bounds)
            ]
            out["2D"] = _as_dict(mean_rows(np.stack(rows)))
        if "2.5D" in wanted or "3D" in wanted:
            key = "3D" if three_d else "2.5D"
            out[key] = features_from_zones(z_level, z_dist, float(np.count_nonzero(padded)))
    return {a: out[a] for a in aggs}
