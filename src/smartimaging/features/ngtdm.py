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
    mean_rows_into,
    pairwise_sum,
    prepare_roi,
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


@numba.njit(cache=True, nogil=True)
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


@numba.njit(cache=True, nogil=True)
def _line_sums(src: np.ndarray, out: np.ndarray, stride: int, distance: int) -> None:  # pragma: no cover
    """``out[p] = sum(src[p + o * stride] for o in -distance..distance)`` where defined."""
    lo = distance * stride
    hi = src.size - lo
    if distance == 1:  # the usual case, on shifted views so that it vectorises
        below = src[: hi - lo]
        mid = src[lo:hi]
        above = src[2 * lo :]
        dst = out[lo:hi]
        for q in range(hi - lo):
            dst[q] = below[q] + mid[q] + above[q]
        return
    for p in range(lo, hi):
        t = 0
        for o in range(-distance, distance + 1):
            t += src[p + o * stride]
        out[p] = t


@numba.njit(cache=True, nogil=True)
def _plane_sums(
    flat: np.ndarray, nx: int, distance: int
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """In-plane Chebyshev box sums of the levels and of the ROI indicator (exact integers).

    Separable: along x, then along y. Valid at voxels at least ``distance`` from the faces of
    the padded array (every ROI voxel).
    """
    size = flat.size
    ind = np.empty(size, dtype=np.int32)
    for p in range(size):
        ind[p] = flat[p] > 0
    tmp = np.zeros(size, dtype=np.int32)
    tot = np.zeros(size, dtype=np.int32)
    cnt = np.zeros(size, dtype=np.int32)
    _line_sums(flat, tmp, 1, distance)
    _line_sums(tmp, tot, nx, distance)
    tmp[:] = 0
    _line_sums(ind, tmp, 1, distance)
    _line_sums(tmp, cnt, nx, distance)
    return tot, cnt


@numba.njit(cache=True, nogil=True)
def _ngtdm_row(s: np.ndarray, n: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """The 5 features of one matrix into ``out``; the NumPy arithmetic of
    :func:`features_from_matrix` in the same order (pairwise sums), so the same values."""
    ng = s.shape[0]
    nvc_int = 0
    ngp = 0
    for i in range(ng):
        nvc_int += n[i]
        ngp += n[i] > 0
    if nvc_int == 0:
        out[0] = MAX_COARSENESS
        out[1:] = 0.0
        return
    nvc = float(nvc_int)
    pv = np.empty(ngp)
    sv = np.empty(ngp)
    iv = np.empty(ngp)
    k = 0
    for i in range(ng):
        if n[i] > 0:
            pv[k] = n[i] / nvc
            sv[k] = s[i]
            iv[k] = i + 1.0
            k += 1
    buf = np.empty(ngp * ngp)
    for i in range(ngp):
        buf[i] = pv[i] * sv[i]
    ps = pairwise_sum(buf, 0, ngp)
    coarseness = MAX_COARSENESS if ps < 1e-6 else 1.0 / ps
    s_total = pairwise_sum(sv, 0, ngp)
    if ngp > 1:
        for i in range(ngp):
            for j in range(ngp):
                di = iv[i] - iv[j]
                buf[i * ngp + j] = pv[i] * pv[j] * (di * di)
        contrast = pairwise_sum(buf, 0, ngp * ngp) / (ngp * (ngp - 1)) * s_total / nvc
    else:
        contrast = 0.0
    for i in range(ngp):
        ipi = iv[i] * pv[i]
        for j in range(ngp):
            buf[i * ngp + j] = abs(ipi - iv[j] * pv[j])
    busy_den = pairwise_sum(buf, 0, ngp * ngp)
    busyness = ps / busy_den if (ngp > 1 and busy_den > 0) else 0.0
    for i in range(ngp):
        psi = pv[i] * sv[i]
        for j in range(ngp):
            di = iv[i] - iv[j]
            buf[i * ngp + j] = abs(di) * (psi + pv[j] * sv[j]) / (pv[i] + pv[j])
    complexity = pairwise_sum(buf, 0, ngp * ngp) / nvc
    if s_total > 0:
        for i in range(ngp):
            for j in range(ngp):
                di = iv[i] - iv[j]
                buf[i * ngp + j] = (pv[i] + pv[j]) * (di * di)
        strength = pairwise_sum(buf, 0, ngp * ngp) / s_total
    else:
        strength = 0.0
    out[0] = coarseness
    out[1] = contrast
    out[2] = busyness
    out[3] = complexity
    out[4] = strength


@numba.njit(cache=True, nogil=True)
def _ngtdm_kernel_all(
    padded: np.ndarray, n_levels: int, distance: int, planar: bool
) -> np.ndarray:  # pragma: no cover
    """Feature rows of one ROI in one call: ``(2, 5)``, 2D and 2.5D when ``planar``, else
    3D in row 0. ``s_i`` is accumulated per slice in scan order and the slices are then added
    in order, the summation order of the per-slice kernel and ``sum(axis=0)``."""
    nz, ny, nx = padded.shape
    ng = n_levels
    flat = padded.ravel()
    tot, cnt = _plane_sums(flat, nx, distance)
    plane = ny * nx
    # 3D: the box is the sum of the in-plane boxes of the 2 * distance + 1 slices around
    span = 0 if planar else distance
    s_z = np.zeros(ng)
    n_z = np.zeros(ng, dtype=np.int64)
    s_all = np.zeros(ng)
    n_all = np.zeros(ng, dtype=np.int64)
    res = np.zeros((2, 5))
    rows = np.empty((max(nz, 1), 5))
    n_rows = 0
    val = np.empty(plane)
    cnt_z = np.empty(plane, dtype=np.int32)
    for z in range(nz):
        s_z[:] = 0.0
        n_z[:] = 0
        any_valid = False
        if z < distance or z >= nz - distance:
            pass  # the background frame: no ROI voxel
        else:
            lo = z * plane
            lv = flat[lo : lo + plane]
            if span == 0:
                tot_z = tot[lo : lo + plane]
                cnt_z[:] = cnt[lo : lo + plane]
            else:
                tot_z = np.zeros(plane, dtype=np.int32)
                cnt_z[:] = 0
                for o in range(-span, span + 1):
                    t_o = tot[lo + o * plane : lo + (o + 1) * plane]
                    c_o = cnt[lo + o * plane : lo + (o + 1) * plane]
                    for q in range(plane):
                        tot_z[q] += t_o[q]
                        cnt_z[q] += c_o[q]
            # |i - mean of the neighbours| of every voxel (vectorised; used where valid)
            for q in range(plane):
                a = lv[q]
                val[q] = abs(a - (tot_z[q] - a) / float(max(cnt_z[q] - 1, 1)))
            for q in range(plane):
                a = lv[q]
                if a > 0 and cnt_z[q] > 1:
                    s_z[a - 1] += val[q]
                    n_z[a - 1] += 1
                    any_valid = True
        for i in range(ng):
            s_all[i] += s_z[i]
            n_all[i] += n_z[i]
        if planar and any_valid:
            _ngtdm_row(s_z, n_z, rows[n_rows])
            n_rows += 1
    if planar:
        if n_rows == 0:
            _ngtdm_row(s_z, n_z, rows[0])
            res[0, :] = rows[0]
        else:
            mean_rows_into(rows, n_rows, res[0])
        _ngtdm_row(s_all, n_all, res[1])
    else:
        _ngtdm_row(s_all, n_all, res[0])
    return res


_KEYS: tuple[str, ...] = tuple(k for k, _, _ in _SPEC)


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

    One compiled call per dimensionality (2D/2.5D, 3D) sums the neighbourhoods (separable box
    sums), accumulates ``s_i`` and ``n_i`` slice by slice and computes the features with the
    summation order of :func:`features_from_matrix` (NumPy's pairwise sums), so the values are
    those of :func:`ngtdm_per_slice` and :func:`features_from_matrix`, bit for bit.

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
    padded = prepare_roi(levels, mask, n_levels=n_levels, pad=d, family="NGTDM")
    ng = int(n_levels)
    out: dict[str, dict[str, float]] = {}
    if "2D" in aggs or "2.5D" in aggs:
        rows = _ngtdm_kernel_all(padded, ng, d, True).tolist()
        out["2D"] = dict(zip(_KEYS, rows[0], strict=True))
        out["2.5D"] = dict(zip(_KEYS, rows[1], strict=True))
    if "3D" in aggs:
        out["3D"] = dict(zip(_KEYS, _ngtdm_kernel_all(padded, ng, d, False)[0].tolist(), strict=True))
    return {a: out[a] for a in aggs}
