"""The former NumPy implementations of the intensity statistics and histogram features.

Kept as references for tests/features/test_intensity_kernels.py: the compiled versions in
smartimaging.features.statistics / histogram must give the same values.
"""

from __future__ import annotations

import numpy as np

from smartimaging.features.histogram import _histogram_gradient


def _ratio(numerator: float, denominator: float) -> float:
    if denominator != 0.0:
        return numerator / denominator
    return 0.0 if numerator == 0.0 else float("nan")


def statistics(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, dtype=np.float64).ravel()
    mean = float(x.mean())
    dev = x - mean
    dev2 = dev * dev
    m2 = float(np.mean(dev2))
    if m2 > 0.0:
        skew = float(np.mean(dev2 * dev)) / m2**1.5
        kurt = float(np.mean(dev2 * dev2)) / m2**2 - 3.0
    else:
        skew = kurt = 0.0
    p10, p25, median, p75, p90 = (float(v) for v in np.percentile(x, [10, 25, 50, 75, 90]))
    x_min, x_max = float(x.min()), float(x.max())
    robust = x[(x >= p10) & (x <= p90)]
    if robust.size == 0:
        robust = x
    energy = float(np.sum(x * x))
    return {
        "stat.mean": mean,
        "stat.var": m2,
        "stat.skew": skew,
        "stat.kurt": kurt,
        "stat.median": median,
        "stat.min": x_min,
        "stat.p10": p10,
        "stat.p90": p90,
        "stat.max": x_max,
        "stat.iqr": p75 - p25,
        "stat.range": x_max - x_min,
        "stat.mad": float(np.mean(np.abs(dev))),
        "stat.rmad": float(np.mean(np.abs(robust - robust.mean()))),
        "stat.medad": float(np.mean(np.abs(x - median))),
        "stat.cov": _ratio(float(np.sqrt(m2)), mean),
        "stat.qcod": _ratio(p75 - p25, p75 + p25),
        "stat.energy": energy,
        "stat.rms": float(np.sqrt(energy / x.size)),
    }


def histogram(x: np.ndarray, n_levels: int) -> dict[str, float]:
    x = np.asarray(x, dtype=np.int64)
    xf = x.astype(float)
    n_v = x.size
    counts = np.bincount(x - 1, minlength=n_levels)
    p = counts / n_v
    g = np.arange(1, n_levels + 1, dtype=float)
    mu = float(np.sum(g * p))
    var = float(np.sum((g - mu) ** 2 * p))
    sigma = np.sqrt(var)
    if var > 0.0:
        skew = float(np.sum((g - mu) ** 3 * p) / sigma**3)
        kurt = float(np.sum((g - mu) ** 4 * p) / var**2 - 3.0)
    else:
        skew = kurt = 0.0
    p10, p25, median, p75, p90 = (float(v) for v in np.percentile(xf, [10, 25, 50, 75, 90]))
    modes = np.flatnonzero(counts == counts.max()) + 1
    mode = float(modes[np.argmin(np.abs(modes - mu))])
    robust = xf[(xf >= p10) & (xf <= p90)]
    rmad = float(np.mean(np.abs(robust - robust.mean()))) if robust.size else float("nan")
    nz = p[p > 0]
    grad = _histogram_gradient(counts)
    i_max = int(np.argmax(grad))
    i_min = int(np.argmin(grad))
    return {
        "ih.mean": mu,
        "ih.var": var,
        "ih.skew": skew,
        "ih.kurt": kurt,
        "ih.median": median,
        "ih.min": float(x.min()),
        "ih.p10": p10,
        "ih.p90": p90,
        "ih.max": float(x.max()),
        "ih.mode": mode,
        "ih.iqr": p75 - p25,
        "ih.range": float(x.max() - x.min()),
        "ih.mad": float(np.mean(np.abs(xf - mu))),
        "ih.rmad": rmad,
        "ih.medad": float(np.mean(np.abs(xf - median))),
        "ih.cov": float(sigma / mu),
        "ih.qcod": (p75 - p25) / (p75 + p25),
        "ih.entropy": float(-np.sum(nz * np.log2(nz))),
        "ih.uniformity": float(np.sum(p**2)),
        "ih.max.grad": float(grad[i_max]),
        "ih.max.grad.gl": float(i_max + 1),
        "ih.min.grad": float(grad[i_min]),
        "ih.min.grad.gl": float(i_min + 1),
    }
