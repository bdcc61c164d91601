"""Grey level size zone matrix (GLSZM) features, IBSI 1 section "Grey level size zone based features" (9SAK).

A zone is a set of connected ROI voxels sharing one grey level: 8-connected in-plane for 2D,
26-connected for 3D (IBSI linkage distance 1). ``s_ij`` counts zones of level ``i`` and size
(voxel count) ``j``. Zones are labelled by :class:`~smartimaging.features.texture_common.Zones`
(one compiled union-find pass, shared with GLDZM when the caller passes the same object) and
the features come from one compiled call per aggregation.

Aggregations: ``2D`` (per slice, features averaged over the slices holding ROI voxels),
``2.5D`` (slice matrices merged), ``3D``. ``Nv`` of the zone percentage is the number of ROI
voxels the matrix covers.

Degenerate input: every ROI voxel belongs to a zone, so a non-empty ROI always gives a non-empty
matrix and finite values (a one-voxel ROI is one zone of size 1; a flat connected ROI is one zone
whose variances are 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from smartimaging.exceptions import ConfigError
from smartimaging.features.registry import FeatureDef
from smartimaging.features.texture_common import (
    ZONE_SIZE,
    MatrixFeatureNames,
    Zones,
    check_distance,
    mean_rows,
    resolve_aggregations,
    size_features_pairs,
    zone_features,
)

__all__ = ["AGGREGATIONS", "FEATURES", "compute", "features_from_zones"]

AGGREGATIONS: tuple[str, ...] = ("2D", "2.5D", "3D")

# (key, IBSI name, IBSI id, generic quantity of size_matrix_features)
_SPEC = (
    ("szm.sze", "Small zone emphasis", "5QRC", "sje"),
    ("szm.lze", "Large zone emphasis", "48P8", "lje"),
    ("szm.lgze", "Low grey level zone emphasis", "XMSY", "lge"),
    ("szm.hgze", "High grey level zone emphasis", "5GN9", "hge"),
    ("szm.szlge", "Small zone low grey level emphasis", "5RAI", "sjlge"),
    ("szm.szhge", "Small zone high grey level emphasis", "HW1V", "sjhge"),
    ("szm.lzlge", "Large zone low grey level emphasis", "YH51", "ljlge"),
    ("szm.lzhge", "Large zone high grey level emphasis", "J17V", "ljhge"),
    ("szm.glnu", "Grey level non-uniformity", "JNSA", "glnu"),
    ("szm.glnu.norm", "Normalised grey level non-uniformity", "Y1RO", "glnu_norm"),
    ("szm.zsnu", "Zone size non-uniformity", "4JP3", "jnu"),
    ("szm.zsnu.norm", "Normalised zone size non-uniformity", "VB3A", "jnu_norm"),
    ("szm.z.perc", "Zone percentage", "P30P", "perc"),
    ("szm.gl.var", "Grey level variance", "BYLV", "gl_var"),
    ("szm.zs.var", "Zone size variance", "3NSA", "j_var"),
    ("szm.zs.entr", "Zone size entropy", "GU8N", "entr"),
)

#: The 16 GLSZM features (the reference csv leaves the id of small zone emphasis empty; the
#: IBSI manual gives 5QRC).
FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(k, n, "GLSZM", i) for k, n, i, _ in _SPEC)


#: Feature keys in the column order of the generic size-matrix features (the first 16).
_KEYS: tuple[str, ...] = tuple(key for key, _, _, _ in _SPEC)
assert [g for _, _, _, g in _SPEC] == list(MatrixFeatureNames[: len(_SPEC)])


def features_from_zones(zone_level: np.ndarray, zone_size: np.ndarray) -> dict[str, float]:
    """The 16 GLSZM features of a non-empty set of zones (grey level and size of each)."""
    row = size_features_pairs(zone_level, zone_size, float(np.sum(zone_size)))
    return dict(zip(_KEYS, row.tolist(), strict=False))


def compute(
    levels: np.ndarray,
    mask: np.ndarray,
    *,
    n_levels: int,
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0),
    aggregations: Sequence[str] | None = None,
    distance: int = 1,
    zones: Zones | None = None,
) -> dict[str, dict[str, float]]:
    """Compute the GLSZM features for the requested aggregations.

    Parameters
    ----------
    levels : numpy.ndarray
        Discretised grey levels ``(z, y, x)``, ``1..n_levels`` inside the ROI.
    mask : numpy.ndarray
        Boolean ROI of the same shape.
    n_levels : int
        Number of grey levels ``Ng``.
    spacing_zyx : tuple of float
        Accepted for a uniform family interface; unused.
    aggregations : sequence of str, optional
        Subset of :data:`AGGREGATIONS`; all by default.
    distance : int
        Linkage distance; must be 1 (the IBSI setting).
    zones : Zones, optional
        Zones already labelled from these very ``levels`` and ``mask`` objects (e.g. shared
        with :func:`smartimaging.features.gldzm.compute`); labelled here when absent.

    Returns
    -------
    dict
        ``{aggregation: {feature_key: value}}``.

    Raises
    ------
    ConfigError
        Unknown aggregation, ``distance != 1``, or ``zones`` built from other arrays.
    EmptyMaskError, FeatureError, GeometryMismatchError
        See :func:`~smartimaging.features.texture_common.prepare_levels`.

    References
    ----------
    IBSI 1, GLSZM features (9SAK).
    """
    aggs = resolve_aggregations(aggregations, AGGREGATIONS, "GLSZM")
    check_distance(distance, "GLSZM", only_one=True)
    if zones is None:
        zones = Zones(levels, mask, n_levels=n_levels, distances=False)
    elif not zones.built_from(levels, mask, zones.morphological_mask):
        raise ConfigError(
            "GLSZM: zones were labelled from other levels/mask arrays; pass the Zones built from "
            "these very arrays, or none"
        )
    out: dict[str, dict[str, float]] = {}
    if "2D" in aggs or "2.5D" in aggs:
        rows = zone_features(zones.table(three_d=False, family="GLSZM"), column=ZONE_SIZE, per_slice=True)
        if "2D" in aggs:
            out["2D"] = dict(zip(_KEYS, mean_rows(rows[:-1]).tolist(), strict=False))
        if "2.5D" in aggs:
            out["2.5D"] = dict(zip(_KEYS, rows[-1].tolist(), strict=False))
    if "3D" in aggs:
        rows = zone_features(zones.table(three_d=True, family="GLSZM"), column=ZONE_SIZE, per_slice=False)
        out["3D"] = dict(zip(_KEYS, rows[0].tolist(), strict=False))
    return {a: out[a] for a in aggs}
