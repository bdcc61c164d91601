"""Percentiles without sorting: the order statistics IBSI features need, equal to NumPy's.

IBSI percentiles (P10, P25, median, P75, P90 of the intensity statistics and the intensity
histogram) are NumPy's default ``'linear'`` percentiles: at the virtual index
``q / 100 * (n - 1)`` between the order statistics ``x[k]`` and ``x[k + 1]``. NumPy finds them
with a partial sort (introselect) of the whole array per call, which dominates the intensity
families for large ROIs. Here:

* :func:`percentiles` (continuous intensities) puts the values into about ``n / 8``
  equal-width buckets between the minimum and maximum in one pass. Bucket numbers are a
  monotone function of the value, so every value of a bucket precedes every value of the next
  one; only the few buckets that hold a wanted order statistic are sorted. Time ``O(n)``.
* :func:`percentiles_from_counts` (discretised grey levels) reads the order statistics off the
  cumulative histogram, ``O(N_g)``.

Both interpolate exactly as NumPy does (its ``_lerp``: ``a + (b - a) t`` for ``t < 0.5``,
``b - (b - a)(1 - t)`` otherwise), so the results are bit-identical to
``np.percentile(x, q)``; the tests compare them with ``==``.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["IBSI_PERCENTILES", "percentiles", "percentiles_from_counts"]

#: The percentiles the IBSI intensity families use: P10, P25, median, P75, P90.
IBSI_PERCENTILES: tuple[float, ...] = (10.0, 25.0, 50.0, 75.0, 90.0)


@numba.njit(cache=True, nogil=True)
def _lerp(a: float, b: float, t: float) -> float:  # pragma: no cover - compiled
    diff = b - a
    if t >= 0.5:
        return b - diff * (1.0 - t)
    return a + diff * t


@numba.njit(cache=True, nogil=True)
def _ranks(q: float, n: int) -> tuple[int, int, float]:  # pragma: no cover - compiled
    """NumPy's linear method: the order statistics ``k``, ``k + 1`` (clipped) and the fraction between.

    The virtual index of percentile ``q`` among ``n`` sorted values is ``q / 100 * (n - 1)``.
    """
    virtual = q / 100.0 * (n - 1)
    k = int(np.floor(virtual))
    if k > n - 1:
        k = n - 1
    return k, k + 1 if k + 1 <= n - 1 else n - 1, virtual - k


@numba.njit(cache=True, nogil=True)
def _sort_segment(a: np.ndarray, lo: int, hi: int) -> None:  # pragma: no cover - compiled
    """Sort ``a[lo:hi]`` in place: insertion sort for short segments, heapsort otherwise.

    Hand-written rather than ``np.sort``, whose Numba implementation takes seconds to compile.
    """
    m = hi - lo
    if m <= 32:
        for i in range(lo + 1, hi):
            v = a[i]
            j = i - 1
            while j >= lo and a[j] > v:
                a[j + 1] = a[j]
                j -= 1
            a[j + 1] = v
        return
    # heapsort of the segment (max-heap, then repeatedly move the maximum to the end)
    for start in range(m // 2 - 1, -1, -1):
        _sift_down(a, lo, start, m)
    for end in range(m - 1, 0, -1):
        a[lo], a[lo + end] = a[lo + end], a[lo]
        _sift_down(a, lo, 0, end)


@numba.njit(cache=True, nogil=True)
def _sift_down(a: np.ndarray, lo: int, root: int, size: int) -> None:  # pragma: no cover - compiled
    while True:
        child = 2 * root + 1
        if child >= size:
            return
        if child + 1 < size and a[lo + child + 1] > a[lo + child]:
            child += 1
        if a[lo + root] >= a[lo + child]:
            return
        a[lo + root], a[lo + child] = a[lo + child], a[lo + root]
        root = child


@numba.njit(cache=True, nogil=True)
def _percentiles_kernel(x: np.ndarray, qs: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    n = x.size
    out = np.empty(qs.size)
    lo = x[0]
    hi = x[0]
    for i in range(n):
        v = x[i]
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    # the order statistics needed: floor(index) and the one after it, per percentile
    ks = np.empty(2 * qs.size, dtype=np.int64)
    ts = np.empty(qs.size)
    for j in range(qs.size):
        ks[2 * j], ks[2 * j + 1], ts[j] = _ranks(qs[j], n)
    vals = np.empty(ks.size)
    if hi == lo:
        for j in range(ks.size):
            vals[j] = lo
    else:
        nb = max(1, n // 8)
        scale = nb / (hi - lo)
        bucket = np.empty(n, dtype=np.int64)
        counts = np.zeros(nb + 1, dtype=np.int64)
        for i in range(n):
            b = int((x[i] - lo) * scale)
            if b >= nb:
                b = nb - 1
            bucket[i] = b
            counts[b + 1] += 1
        for b in range(nb):  # counts[b] becomes the rank of the first value of bucket b
            counts[b + 1] += counts[b]
        # which bucket holds each wanted rank (ranks ascend within each pair only: search each)
        want = np.zeros(nb, dtype=np.bool_)
        kb = np.empty(ks.size, dtype=np.int64)
        for j in range(ks.size):
            b = 0  # the last bucket whose first rank is <= ks[j] (ranks ascend with b)
            while b + 1 < nb and counts[b + 1] <= ks[j]:
                b += 1
            kb[j] = b
            want[b] = True
        # gather the wanted buckets' values in bucket order, then sort each bucket
        pos = np.zeros(nb, dtype=np.int64)
        total = 0
        for b in range(nb):
            if want[b]:
                pos[b] = total
                total += counts[b + 1] - counts[b]
        gathered = np.empty(total)
        fill = pos.copy()
        for i in range(n):
            b = bucket[i]
            if want[b]:
                gathered[fill[b]] = x[i]
                fill[b] += 1
        for b in range(nb):
            if want[b]:
                _sort_segment(gathered, pos[b], pos[b] + counts[b + 1] - counts[b])
        for j in range(ks.size):
            b = kb[j]
            vals[j] = gathered[pos[b] + ks[j] - counts[b]]
    for j in range(qs.size):
        out[j] = _lerp(vals[2 * j], vals[2 * j + 1], ts[j])
    return out


def percentiles(x: np.ndarray, qs: tuple[float, ...] = IBSI_PERCENTILES) -> np.ndarray:
    """``np.percentile(x, qs)`` (linear method), bit-identical, in ``O(n)`` without a full sort.

    Parameters
    ----------
    x : numpy.ndarray
        1-D float64 values, finite, at least one.
    qs : tuple of float
        Percentiles in ``[0, 100]``.

    Returns
    -------
    numpy.ndarray
        One value per percentile.
    """
    return _percentiles_kernel(np.ascontiguousarray(x, dtype=np.float64), np.asarray(qs, dtype=np.float64))


@numba.njit(cache=True, nogil=True)
def _count_percentiles_kernel(counts: np.ndarray, qs: np.ndarray) -> np.ndarray:  # pragma: no cover
    n = 0
    for c in counts:
        n += c
    out = np.empty(qs.size)
    for j in range(qs.size):
        k, k1, t = _ranks(qs[j], n)
        # values are the bin numbers 1..N: the k-th order statistic is the first bin whose
        # cumulative count exceeds k
        a = -1.0
        b = -1.0
        cum = 0
        for g in range(counts.size):
            cum += counts[g]
            if a < 0.0 and cum > k:
                a = g + 1.0
            if cum > k1:
                b = g + 1.0
                break
        out[j] = _lerp(a, b, t)
    return out


def percentiles_from_counts(counts: np.ndarray, qs: tuple[float, ...] = IBSI_PERCENTILES) -> np.ndarray:
    """Percentiles of grey levels ``1..N`` given their histogram, as ``np.percentile`` of the levels.

    Parameters
    ----------
    counts : numpy.ndarray
        ``counts[g - 1]`` voxels hold level ``g``; at least one voxel in all.
    qs : tuple of float
        Percentiles in ``[0, 100]``.

    Returns
    -------
    numpy.ndarray
        One value per percentile, equal to ``np.percentile(np.repeat(np.arange(1, N + 1),
        counts).astype(float), qs)``.
    """
    return _count_percentiles_kernel(
        np.ascontiguousarray(counts, dtype=np.int64), np.asarray(qs, dtype=np.float64)
    )
