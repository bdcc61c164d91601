"""Moran's I and Geary's C: every exact path of ``spatial_autocorrelation_grid`` (direct pair
loop, FFT + Toeplitz pass, three-axis FFT) against the exact all-pairs sums (NumPy, in
``_reference_kernels``) and the former FFT implementation, on ROIs of many shapes."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
from _reference_kernels import moran_geary_fft, moran_geary_pairs

from smartimaging.exceptions import FeatureError
from smartimaging.features import morphology

# (_FFT_COST_FACTOR, _TOEPLITZ_COST) forcing each path; "auto" lets the cost model choose
PATHS = {
    "direct": (np.inf, 0.5),
    "toeplitz": (0.0, 0.0),
    "fft3": (0.0, np.inf),
    "auto": (1.0, 0.5),
}


def _force(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    factor, toeplitz = PATHS[path]
    monkeypatch.setattr(morphology, "_FFT_COST_FACTOR", factor)
    monkeypatch.setattr(morphology, "_TOEPLITZ_COST", toeplitz)


def _case(name: str) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    rng = np.random.default_rng(sum(map(ord, name)))
    shape = (9, 11, 13)
    values = rng.normal(size=shape) * 30.0 + 100.0 + 5.0 * np.indices(shape)[1]
    mask = np.zeros(shape, dtype=bool)
    spacing = (2.0, 0.8, 1.0)
    if name == "two voxels":
        mask[3, 4, 5] = mask[6, 2, 11] = True
    elif name == "adjacent pair":
        mask[0, 0, 0:2] = True
    elif name == "line":
        mask[4, 5, 1:12] = True
    elif name == "slab":
        mask[2, 1:10, 2:12] = True
    elif name == "column":
        mask[:, 5, 6] = True
    elif name == "blob":
        z, y, x = np.indices(shape)
        mask = ((z - 4) / 4.5) ** 2 + ((y - 5) / 5.0) ** 2 + ((x - 6) / 6.5) ** 2 <= 1.0
    elif name == "sparse":
        mask = rng.random(shape) < 0.15
    elif name == "border":
        mask = rng.random(shape) < 0.7
        mask[0, 0, 0] = mask[-1, -1, -1] = True
    elif name == "anisotropic":
        mask = rng.random(shape) < 0.6
        spacing = (5.0, 0.7, 1.3)
    elif name == "long thin axis first":
        values = rng.normal(size=(2, 11, 13))
        mask = rng.random((2, 11, 13)) < 0.8
        spacing = (3.0, 1.0, 1.0)
    else:
        raise AssertionError(name)
    return values, mask, spacing


CASES = [
    "two voxels",
    "adjacent pair",
    "line",
    "slab",
    "column",
    "blob",
    "sparse",
    "border",
    "anisotropic",
    "long thin axis first",
]


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("name", CASES)
def test_every_path_equals_exact_pair_sums(name: str, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    values, mask, spacing = _case(name)
    expected = moran_geary_pairs(np.argwhere(mask), values[mask], spacing)
    _force(monkeypatch, path)
    got = morphology.spatial_autocorrelation_grid(values, mask, spacing=spacing)
    tol = 1e-12 if path == "direct" else 1e-10
    assert got == pytest.approx(expected, rel=tol, abs=tol * 1e-2)
    # the point-set entry point is the exact pair loop
    pts = np.argwhere(mask) * np.asarray(spacing)
    assert morphology.spatial_autocorrelation(pts, values[mask]) == pytest.approx(
        expected, rel=1e-12, abs=1e-14
    )


@pytest.mark.parametrize("path", list(PATHS))
def test_degenerate_rois_give_no_autocorrelation(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _force(monkeypatch, path)
    shape = (4, 5, 6)
    one = np.zeros(shape, dtype=bool)
    one[2, 3, 4] = True
    values = np.random.default_rng(1).normal(size=shape)
    assert morphology.spatial_autocorrelation_grid(values, one, spacing=(1.0, 1.0, 1.0)) == (0.0, 1.0)
    # constant intensities whose mean is not exactly representable (0.1 * 3 / 3 != 0.1): the
    # rounding residue of the centring must not be read as perfect autocorrelation
    flat = np.full(shape, 0.1)
    for mask in (
        np.ones(shape, dtype=bool),
        np.pad(np.ones((1, 1, 3), dtype=bool), ((1, 2), (1, 3), (1, 2))),
    ):
        assert morphology.spatial_autocorrelation_grid(flat, mask, spacing=(1.0, 2.0, 1.0)) == (0.0, 1.0)
    pts = np.argwhere(np.ones(shape, dtype=bool)).astype(float)
    assert morphology.spatial_autocorrelation(pts, flat.ravel()) == (0.0, 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_random_rois_around_the_crossover(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """ROIs of 30 to 1500 voxels, random boxes and spacings: all paths equal the exact sums."""
    rng = np.random.default_rng(100 + seed)
    shape = tuple(int(v) for v in rng.integers(2, 16, size=3))
    mask = rng.random(shape) < rng.uniform(0.3, 1.0)
    mask.flat[rng.integers(mask.size)] = True
    mask.flat[rng.integers(mask.size)] = True
    values = rng.gamma(2.0, 3.0, size=shape) + np.indices(shape)[int(seed % 3)]
    spacing = tuple(float(v) for v in rng.uniform(0.5, 4.0, size=3))
    expected = moran_geary_pairs(np.argwhere(mask), values[mask], spacing)
    for path in PATHS:
        _force(monkeypatch, path)
        got = morphology.spatial_autocorrelation_grid(values, mask, spacing=spacing)
        tol = 1e-12 if path == "direct" else 1e-10
        assert got == pytest.approx(expected, rel=tol, abs=tol * 1e-2), path


def test_larger_roi_equals_former_fft_and_exact_sums(monkeypatch: pytest.MonkeyPatch) -> None:
    """About 3k voxels in a 17 x 22 x 26 box (spacing 1.5, 1, 1.2 mm)."""
    rng = np.random.default_rng(7)
    z, y, x = np.indices((17, 22, 26))
    mask = ((z - 8) / 8.5) ** 2 + ((y - 10.5) / 11.0) ** 2 + ((x - 12.5) / 13.0) ** 2 <= 1.0
    mask &= rng.random(mask.shape) < 0.9
    values = rng.normal(size=mask.shape) + 0.1 * y
    spacing = (1.5, 1.0, 1.2)
    exact = moran_geary_pairs(np.argwhere(mask), values[mask], spacing)
    former = moran_geary_fft(values, mask, spacing)
    assert former == pytest.approx(exact, rel=1e-10)
    for path in ("toeplitz", "fft3", "auto"):
        _force(monkeypatch, path)
        got = morphology.spatial_autocorrelation_grid(values, mask, spacing=spacing)
        assert got == pytest.approx(exact, rel=1e-10), path
        assert got == pytest.approx(former, rel=1e-10), path


def test_cached_weight_spectra_are_keyed_by_spacing_and_read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    values, mask, _ = _case("border")
    for path in ("toeplitz", "fft3"):
        _force(monkeypatch, path)
        for spacing in ((1.0, 1.0, 1.0), (2.0, 0.5, 1.0), (1.0, 1.0, 1.0)):
            got = morphology.spatial_autocorrelation_grid(values, mask, spacing=spacing)
            expected = moran_geary_pairs(np.argwhere(mask), values[mask], spacing)
            assert got == pytest.approx(expected, rel=1e-10)
    monkeypatch.setattr(morphology, "_CACHE_MAX_ELEMENTS", 0)  # large spectra are not cached
    for path in ("toeplitz", "fft3"):
        _force(monkeypatch, path)
        got = morphology.spatial_autocorrelation_grid(values, mask, spacing=(1.5, 1.0, 0.7))
        expected = moran_geary_pairs(np.argwhere(mask), values[mask], (1.5, 1.0, 0.7))
        assert got == pytest.approx(expected, rel=1e-10)
    planes = morphology._weight_spectrum_planes(3, (8, 10), (1.0, 1.0, 1.0))
    octant = morphology._weight_spectrum_octant((8, 8, 10), (1.0, 1.0, 1.0))
    for arr in (planes, octant):
        with pytest.raises(ValueError):
            arr[0, 0, 0] = 1.0


def _child(conn: object, values: np.ndarray, mask: np.ndarray) -> None:
    out = [morphology.spatial_autocorrelation_grid(values, mask, spacing=(1.0, 1.0, 2.0)) for _ in range(2)]
    conn.send(out)  # type: ignore[attr-defined]
    conn.close()  # type: ignore[attr-defined]


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork start method")
def test_works_in_a_process_forked_after_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch extraction forks workers after the parent has extracted: the kernels must still run."""
    values, mask, _ = _case("blob")
    expected = []
    for path in ("direct", "toeplitz"):
        _force(monkeypatch, path)
        expected.append(morphology.spatial_autocorrelation_grid(values, mask, spacing=(1.0, 1.0, 2.0)))
    _force(monkeypatch, "toeplitz")
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(child, values, mask))
    proc.start()
    assert parent.poll(60), "the forked child did not answer"
    got = parent.recv()
    proc.join(10)
    assert proc.exitcode == 0
    for g in got:
        assert g == pytest.approx(expected[0], rel=1e-10)
        assert g == pytest.approx(expected[1], rel=1e-10)


def test_coinciding_points_are_an_error() -> None:
    pts = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    with pytest.raises(FeatureError, match="coincide"):
        morphology.spatial_autocorrelation(pts, np.array([1.0, 2.0, 4.0]))


@pytest.mark.parametrize("path", ["direct", "toeplitz"])
def test_no_blas_call(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sum of squares is not ``np.dot``: OpenBLAS threads a dot product of more than about
    10,000 values, and its idle workers then spin on the other cores, slowing the second
    thread of ``extract`` (1.7x on the 2-core benchmark machine) and whatever runs next."""
    _force(monkeypatch, path)
    rng = np.random.default_rng(7)
    values = rng.normal(size=(30, 30, 30)) * 10.0 + 50.0
    mask = np.zeros(values.shape, dtype=bool)
    mask[2:28, 3:27, 1:29] = True  # 17,472 voxels, above OpenBLAS's threading size
    expected = morphology.spatial_autocorrelation_grid(values, mask, spacing=(2.0, 2.0, 2.0))

    def no_blas(*args: object, **kwargs: object) -> None:
        raise AssertionError("np.dot called (a threaded BLAS call)")

    monkeypatch.setattr(np, "dot", no_blas)
    monkeypatch.setattr(np, "vdot", no_blas)
    monkeypatch.setattr(np, "inner", no_blas)
    monkeypatch.setattr(np, "matmul", no_blas)
    assert morphology.spatial_autocorrelation_grid(values, mask, spacing=(2.0, 2.0, 2.0)) == expected
    d = values[mask] - values[mask].mean()
    assert morphology._sum_of_squares(d) == pytest.approx(float(np.sum(d * d)), rel=1e-15)
