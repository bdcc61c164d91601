"""Neighbourhood grey tone difference matrix (NGTDM) features, IBSI 1 section "Neighbourhood grey tone difference based features" (IPET).

For each ROI voxel of level ``i`` the mean grey level of its neighbours within Chebyshev
``distance`` (8 in-plane neighbours in 2D, 26 in 3D at distance 1), taken over the neighbours
that lie inside the ROI only, gives ``|i - mean|``; ``s_i`` sums these over the voxels of level
``i`` and ``n_i`` counts them. As the IBSI prescribes, voxels without any neighbour in the ROI are
left out (they do not count in ``n_i`` nor in ``Nv,c``).

Aggregations: ``2D`` (per slice, averaged over the slices with a valid voxel), ``2.5D`` (slice
matrices merged by summing ``s_i`` and ``n_i``), ``3D``.

Degenerate input (values stay finite, MIRP conventions): coarseness is ``1e6`` when
``sum p_i s_i`` is below ``1e-6`` (flat ROI); contrast and busyness are 0 when only one grey
level is present (busyness also when its denominator is 0); strength is 0 when ``sum s_i = 0``.
A matrix without any valid voxel (one-voxel ROI, or only isolated voxels) is treated like a flat
one: coarseness ``1e6``, the four others 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from smartimaging.features.registry import FeatureDef
from smartimaging.features.texture_common import (
    chebyshev_neighbourhood,
    check_distance,
    mean_features,
    prepare_levels,
    resolve_aggregations,
)

__all__ = ["AGGREGATIONS", "FEATURES", "compute", "features_from_matrix", "ngtdm_per_slice"]

AGGREGATIONS: tuple[str, ...] = ("2D", "2.5D", "3D")

#: Coarseness of a texture-less ROI (IBSI / MIRP convention).
MAX_COARSENESS = 1.0e6

_SPEC = (
    ("ngt.coarseness", "Coarseness", "QCDE"),
    ("ngt.contrast", "Contrast", "65HE"),
    ("ngt.busyness", "Busyness", "NQ30"),
    ("ngt.complexity", "Complexity", "HDEZ"),
    ("ngt.strength", "Strength", "1X9X"),
)

#: The 5 NGTDM features.
FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(k, n, "NGTDM", i) for k, n, i in _SPEC)


@numba.njit(cache=True)
def _ngtdm_kernel(levels: np.ndarray, offsets: np.ndarray, n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    nz, ny, nx = levels.shape
    s = np.zeros((nz, n_levels), dtype=np.float64)
    n = np.zeros((nz, n_levels), dtype=np.int64)
    flat = levels.ravel()
    flat_off = np.empty(offsets.shape[0], dtype=np.int64)
    for k in range(offsets.shape[0]):
        flat_off[k] = (offsets[k, 0] * ny + offsets[k, 1]) * nx + offsets[k, 2]
    # flat indices: the background frame keeps every neighbour of a ROI voxel inside the array
    for z in range(nz):
        for y in range(ny):
            row = (z * ny + y) * nx
            for x in range(nx):
                p = row + x
                a = flat[p]
                if a == 0:
                    continue
                total = 0.0
                count = 0
                for k in range(flat_off.shape[0]):
                    b = flat[p + flat_off[k]]
                    if b > 0:
                        total += b
                        count += 1
                if count > 0:
                    s[z, a - 1] += abs(a - total / count)
                    n[z, a - 1] += 1
    return s, n


def ngtdm_per_slice(
    padded: np.ndarray, *, n_levels: int, three_d: bool, distance: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``s_i`` and ``n_i`` per slice of ``padded``, each ``(n_slices, Ng)``.

    ``padded`` comes from :func:`~smartimaging.features.texture_common.prepare_levels` with
    ``pad >= distance``. With ``three_d`` the neighbourhood spans slices; sum over slices for the
    volume matrix.
    """
    offs = chebyshev_neighbourhood(three_d=three_d, distance=distance)
    return _ngtdm_kernel(np.ascontiguousarray(padded, dtype=np.int32), offs, int(n_levels))


def features_from_matrix(s: np.ndarray, n: np.ndarray) -> dict[str, float]:
    """The 5 NGTDM features of one matrix (``s_i``, ``n_i`` for levels ``1..Ng``).

    References
    ----------
    IBSI 1 ids in :data:`FEATURES`.
    """
    nvc = float(n.sum())
    if nvc == 0:
        return dict.fromkeys((k for k, _, _ in _SPEC), 0.0) | {"ngt.coarseness": MAX_COARSENESS}
    p = n / nvc
    lv = np.arange(1, s.size + 1, dtype=np.float64)
    valid = p > 0
    pv, sv, iv = p[valid], s[valid], lv[valid]
    ngp = int(valid.sum())
    di = iv[:, None] - iv[None, :]
    ps = float(np.sum(pv * sv))
    coarseness = MAX_COARSENESS if ps < 1e-6 else 1.0 / ps
    s_total = float(sv.sum())
    if ngp > 1:
        contrast = float(np.sum(pv[:, None] * pv[None, :] * di**2)) / (ngp * (ngp - 1)) * s_total / nvc
    else:
        contrast = 0.0
    ip = iv * pv
    busy_den = float(np.sum(np.abs(ip[:, None] - ip[None, :])))
    busyness = ps / busy_den if (ngp > 1 and busy_den > 0) else 0.0
    psi = pv * sv
    complexity = float(np.sum(np.abs(di) * (psi[:, None] + psi[None, :]) / (pv[:, None] + pv[None, :]))) / nvc
    strength = float(np.sum((pv[:, None] + pv[None, :]) * di**2)) / s_total if s_total > 0 else 0.0
    return {
        "ngt.coarseness": float(coarseness),
        "ngt.contrast": float(contrast),
        "ngt.busyness": float(busyness),
        "ngt.complexity": complexity,
        "ngt.strength": float(strength),
    }


def compute(
    levels: np.ndarray,
    mask: np.ndarray,
    *,
    n_levels: int,
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0),
    aggregations: Sequence[str] | None = None,
    distance: int = 1,
) -> dict[str, dict[str, float]]:
    """Compute the NGTDM features for the requested aggregations.

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
        Chebyshev radius of the neighbourhood (IBSI default 1).

    Returns
    -------
    dict
        ``{aggregation: {feature_key: value}}``.

    Raises
    ------
    ConfigError
        Unknown aggregation or invalid distance.
    EmptyMaskError, FeatureError, GeometryMismatchError
        See :func:`~smartimaging.features.texture_common.prepare_levels`.

    References
    ----------
    IBSI 1, NGTDM features (IPET).
    """
    aggs = resolve_aggregations(aggregations, AGGREGATIONS, "NGTDM")
    d = check_distance(distance, "NGTDM")
    padded = prepare_levels(levels, mask, n_levels=n_levels, pad=d, family="NGTDM")
    ng = int(n_levels)
    out: dict[str, dict[str, float]] = {}
    if "2D" in aggs or "2.5D" in aggs:
        s2, n2 = ngtdm_per_slice(padded, n_levels=ng, three_d=False, distance=d)
        if "2D" in aggs:
            rows = [features_from_matrix(s2[z], n2[z]) for z in range(s2.shape[0]) if n2[z].sum() > 0]
            out["2D"] = mean_features(rows) if rows else features_from_matrix(s2[0], n2[0])
        if "2.5D" in aggs:
            out["2.5D"] = features_from_matrix(s2.sum(axis=0), n2.sum(axis=0))
    if "3D" in aggs:
        s3, n3 = ngtdm_per_slice(padded, n_levels=ng, three_d=True, distance=d)
        out["3D"] = features_from_matrix(s3.sum(axis=0), n3.sum(axis=0))
    return {a: out[a] for a in aggs}
