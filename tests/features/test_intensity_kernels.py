"""The compiled intensity statistics, histogram, IVH and percentiles against the former NumPy code."""

from __future__ import annotations

from typing import Any

import _reference_intensity as ref
import numpy as np
import pytest

from smartimaging.features import histogram, ivh, statistics
from smartimaging.features.order_statistics import percentiles, percentiles_from_counts

QS = (0.0, 10.0, 25.0, 33.3, 50.0, 75.0, 90.0, 100.0)


def _samples(rng: np.random.Generator, n: int, kind: int) -> np.ndarray:
    return [
        rng.normal(size=n) * 3.0 + 1.0,
        rng.integers(-3, 4, size=n).astype(float),  # many ties
        np.full(n, 2.5),  # flat
        np.exp(rng.normal(size=n) * 3.0),  # heavy tail: crowded buckets
        1e5 + rng.normal(size=n) * 1e-3,  # a spread far below the magnitude
    ][kind]


def _close(expected: dict[str, float], got: dict[str, float], scale: float) -> None:
    """Equal up to rounding: 1e-12 relative, or 1e-12 of the data's scale for values near 0."""
    assert list(got) == list(expected)
    for key, e in expected.items():
        g = got[key]
        if np.isnan(e):
            assert np.isnan(g), key
        else:
            assert g == pytest.approx(e, rel=1e-12, abs=1e-12 * scale), key


@pytest.mark.parametrize("kind", range(5))
def test_percentiles_are_numpys_bit_for_bit(kind: int) -> None:
    rng = np.random.default_rng(kind)
    for n in [1, 2, 3, 7, 8, 9, 100, 1001, 5000]:
        x = _samples(rng, n, kind)
        assert np.array_equal(percentiles(x, QS), np.percentile(x, QS)), n
        levels = rng.integers(1, 30, size=n)
        counts = np.bincount(levels - 1, minlength=35)
        assert np.array_equal(percentiles_from_counts(counts, QS), np.percentile(levels.astype(float), QS))


@pytest.mark.parametrize("kind", range(5))
def test_statistics_equal_the_numpy_implementation(kind: int) -> None:
    rng = np.random.default_rng(10 + kind)
    for n in [1, 2, 3, 5, 64, 999, 4000]:
        x = _samples(rng, n, kind)
        # skewness and kurtosis of near-symmetric data are differences of large sums: compare
        # them on the scale of the moments they come from
        scale = max(1.0, float(np.abs(x).max()))
        _close(ref.statistics(x), statistics.compute(x), scale)


def test_statistics_reject_nan_with_a_count() -> None:
    with pytest.raises(Exception, match="1 non-finite"):
        statistics.compute(np.array([1.0, np.nan, 2.0]))


@pytest.mark.parametrize("n_levels", [1, 2, 7, 64, 300])
def test_histogram_equals_the_numpy_implementation(n_levels: int) -> None:
    rng = np.random.default_rng(n_levels)
    for n in [1, 2, 3, 4, 50, 3000]:
        for levels in (
            rng.integers(1, n_levels + 1, size=n),
            np.minimum(n_levels, 1 + rng.poisson(2.0, size=n)),
            np.full(n, n_levels),
        ):
            _close(
                ref.histogram(levels, n_levels), histogram.compute(levels, n_levels=n_levels), float(n_levels)
            )


@pytest.mark.parametrize(
    "options",
    [
        {"discrete": False, "n_bins": 1000},
        {"discrete": False, "n_bins": 7},
        {"discrete": False, "bin_width": 0.25, "lower": 0.0},
        {"discrete": False, "bin_width": 2.5, "lower": -10.0, "upper": 400.0},
    ],
)
def test_ivh_counting_equals_sorting(options: dict[str, Any]) -> None:
    """Continuous IVH curves from bin counts are those from sorting the discretised values."""
    rng = np.random.default_rng(5)
    for n in [1, 2, 10, 500, 5000]:
        for x in (
            np.exp(rng.normal(size=n)) * 40.0,
            np.round(rng.normal(size=n) ** 2, 1) + 3.0,
            np.full(n, 3.3),
        ):
            intensities, _gamma, nu = ivh.ivh_curve(x, **options)
            x_dgl, *_ = ivh._discretise(
                x, **{"bin_width": None, "n_bins": None, "lower": None, "upper": None, **options}
            )
            below = np.searchsorted(
                np.sort(x_dgl),
                intensities - 1e-6 * (intensities[1] - intensities[0] if intensities.size > 1 else 1.0),
                side="left",
            )
            assert np.array_equal(nu, 1.0 - below / n)
