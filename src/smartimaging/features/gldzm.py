"""Grey level distance zone matrix (GLDZM) features, IBSI 1 section "Grey level distance zone based features" (VMDZ).

Zones are those of the GLSZM (connected voxels of one grey level: 8-connected in-plane for 2D,
26-connected for 3D). ``d_ij`` counts zones of level ``i`` whose distance to the ROI border is
``j``. The distance of a voxel is its city-block distance to the nearest voxel outside the
morphological mask, with 4-connectivity in-plane (2D, per slice) or 6-connectivity (3D); voxels
outside the ROI and beyond the image edge count as outside, so a voxel on the ROI border has
distance 1. The distance of a zone is the smallest distance among its voxels. Zones, their
sizes and distances come from one compiled pass of
:class:`~smartimaging.features.texture_common.Zones` (which a caller may share with GLSZM);
:func:`border_distance` is the same distance map on a whole array.

Aggregations: ``2D`` (per slice, averaged over slices holding ROI voxels), ``2.5D`` (slice
matrices merged), ``3D``. ``Nv`` of the zone percentage is the number of ROI voxels.

Degenerate input: every ROI voxel belongs to a zone and every zone has a distance >= 1, so a
non-empty ROI gives finite values (a one-voxel ROI is one zone at distance 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from smartimaging.exceptions import ConfigError
from smartimaging.features.registry import FeatureDef
from smartimaging.features.texture_common import (
    ZONE_DISTANCE,
    MatrixFeatureNames,
    Zones,
    check_distance,
    mean_rows,
    resolve_aggregations,
    size_features_pairs,
    zone_features,
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


#: Feature keys in the column order of the generic size-matrix features (the first 16).
_KEYS: tuple[str, ...] = tuple(key for key, _, _, _ in _SPEC)
assert [g for _, _, _, g in _SPEC] == list(MatrixFeatureNames[: len(_SPEC)])


def features_from_zones(
    zone_level: np.ndarray, zone_distance: np.ndarray, n_voxels: float
) -> dict[str, float]:
    """The 16 GLDZM features of a non-empty set of zones (grey level and border distance)."""
    return dict(
        zip(_KEYS, size_features_pairs(zone_level, zone_distance, float(n_voxels)).tolist(), strict=False)
    )


def compute(
    levels: np.ndarray,
    mask: np.ndarray,
    *,
    n_levels: int,
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0),
    aggregations: Sequence[str] | None = None,
    distance: int = 1,
    morphological_mask: np.ndarray | None = None,
    zones: Zones | None = None,
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
    zones : Zones, optional
        Zones with distances, already labelled from these very ``levels``, ``mask`` and
        ``morphological_mask`` objects (e.g. shared with
        :func:`smartimaging.features.glszm.compute`); labelled here when absent.

    Returns
    -------
    dict
        ``{aggregation: {feature_key: value}}``.

    Raises
    ------
    ConfigError
        Unknown aggregation, ``distance != 1``, or ``zones`` built from other arrays or
        without distances.
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
    if zones is None:
        zones = Zones(levels, mask, n_levels=n_levels, morphological_mask=morphological_mask)
    elif not (zones.has_distances and zones.built_from(levels, mask, morphological_mask)):
        raise ConfigError(
            "GLDZM: zones were labelled from other levels/mask/morphological_mask arrays or "
            "without distances; pass Zones(levels, mask, n_levels=..., morphological_mask=...) "
            "built from these very arrays, or none"
        )
    out: dict[str, dict[str, float]] = {}
    if "2D" in aggs or "2.5D" in aggs:
        table = zones.table(three_d=False, family="GLDZM")
        rows = zone_features(table, column=ZONE_DISTANCE, per_slice=True)
        if "2D" in aggs:
            out["2D"] = dict(zip(_KEYS, mean_rows(rows[:-1]).tolist(), strict=False))
        if "2.5D" in aggs:
            out["2.5D"] = dict(zip(_KEYS, rows[-1].tolist(), strict=False))
    if "3D" in aggs:
        table = zones.table(three_d=True, family="GLDZM")
        rows = zone_features(table, column=ZONE_DISTANCE, per_slice=False)
        out["3D"] = dict(zip(_KEYS, rows[0].tolist(), strict=False))
    return {a: out[a] for a in aggs}
