"""Shared machinery of the IBSI 2 filters: validation, padding, separable and FFT convolution,
right-angle rotations.

Arrays are indexed ``(z, y, x)`` as everywhere in smartimaging. A 2D filter acts in the
``(y, x)`` plane of every slice; a 3D filter on the whole volume.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np
from scipy import ndimage

from smartimaging.exceptions import ConfigError

__all__ = [
    "BOUNDARY_CONDITIONS",
    "DIMENSIONS",
    "POOLING_METHODS",
    "centred_frequencies",
    "check_choice",
    "correlate_separable",
    "fft_filter",
    "pad",
    "rotation_pool",
    "rotations",
]

#: IBSI 2 boundary conditions (padding) -> SciPy ``ndimage`` mode.
BOUNDARY_CONDITIONS: dict[str, str] = {
    "constant": "constant",  # zero padding
    "nearest": "nearest",
    "periodic": "wrap",
    "mirror": "reflect",  # IBSI "mirror": d c b a | a b c d | d c b a (symmetric)
}
#: ``ndimage`` mode -> ``numpy.pad`` mode.
_NP_PAD = {"constant": "constant", "nearest": "edge", "wrap": "wrap", "reflect": "symmetric"}
#: Filter dimensionality: ``"2D"`` (per slice, in-plane) or ``"3D"``.
DIMENSIONS: tuple[str, ...] = ("2D", "3D")
#: Rotation-invariance pooling methods.
POOLING_METHODS: tuple[str, ...] = ("max", "average")


def check_choice(value: object, valid: Sequence[str], name: str) -> str:
    """Return ``value`` if it is one of ``valid``, else raise a :class:`ConfigError` listing them."""
    if not isinstance(value, str) or value not in valid:
        raise ConfigError(f"{name} must be one of {list(valid)}, got {value!r}")
    return value


def check_positive(value: object, name: str, *, integer: bool = False) -> float:
    """Return ``value`` as a number if it is finite and > 0 (and integral if asked)."""
    number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    ok = math.isfinite(number) and number > 0 and (not integer or number == int(number))
    if not ok:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
    return number


def axes_for(dimensions: str) -> tuple[int, ...]:
    """Array axes a filter of ``dimensions`` acts on."""
    return (1, 2) if dimensions == "2D" else (0, 1, 2)


def ndi_mode(boundary: str) -> str:
    """SciPy mode of an IBSI boundary condition (validated)."""
    return BOUNDARY_CONDITIONS[check_choice(boundary, tuple(BOUNDARY_CONDITIONS), "boundary")]


def pad(array: np.ndarray, widths: Sequence[tuple[int, int]], boundary: str) -> np.ndarray:
    """Pad ``array`` by ``widths`` (per axis) with an IBSI boundary condition.

    Padding wider than the array repeats the rule (mirror and periodic tile; nearest and
    constant extend).
    """
    mode = _NP_PAD[ndi_mode(boundary)]
    if mode == "constant":
        return np.pad(array, widths, mode="constant", constant_values=0.0)
    return np.pad(array, widths, mode=mode)  # type: ignore[call-overload]


def correlate_separable(
    array: np.ndarray,
    kernels: Sequence[np.ndarray | None],
    *,
    boundary: str,
    origins: Sequence[int] | None = None,
) -> np.ndarray:
    """Correlate ``array`` with one 1D kernel per axis (``None``: leave the axis).

    ``origins`` shift each kernel as in :func:`scipy.ndimage.correlate1d`.
    """
    mode = ndi_mode(boundary)
    out = np.asarray(array, dtype=np.float64)
    for axis, k in enumerate(kernels):
        if k is None:
            continue
        origin = 0 if origins is None else int(origins[axis])
        out = ndimage.correlate1d(out, np.asarray(k, dtype=np.float64), axis=axis, mode=mode, origin=origin)
    return out


def centred_frequencies(n: int) -> np.ndarray:
    """Angular frequencies of an ``n``-point axis on the IBSI 2 consensus grid, centred order.

    The ``n`` samples span ``[-pi, pi]`` symmetrically about the centre
    ``c = (n - 1) / 2``: ``omega_i = pi (i - c) / c``. This is the grid of the IBSI 2
    consensus (reference) response maps for the Fourier-domain filters (Simoncelli, Riesz);
    for even ``n`` it holds no exact zero frequency.
    """
    if n == 1:
        return np.zeros(1)
    c = (n - 1) / 2.0
    return np.pi * (np.arange(n) - c) / c


def fft_filter(
    array: np.ndarray,
    transfer: Callable[[tuple[np.ndarray, ...]], np.ndarray],
    *,
    axes: tuple[int, ...],
    boundary: str,
    pad_width: Sequence[int] | None = None,
) -> np.ndarray:
    """Filter ``array`` in the Fourier domain over ``axes``.

    ``transfer(omegas)`` receives the angular frequencies (radians per voxel, see
    :func:`centred_frequencies`; in FFT order) of each filtered axis, broadcastable against
    the transformed array, and returns the complex transfer function. For boundary conditions other than periodic the
    array is padded by ``pad_width`` voxels per side of each filtered axis (default: half the
    axis length) before the transform and cropped after it. The real part is returned.
    """
    mode = ndi_mode(boundary)
    a = np.asarray(array, dtype=np.float64)
    widths = [(0, 0)] * a.ndim
    if mode != "wrap":
        for i, ax in enumerate(axes):
            w = a.shape[ax] // 2 if pad_width is None else int(pad_width[i])
            widths[ax] = (w, w)
        a = pad(a, widths, boundary)
    omegas = []
    for ax in axes:
        shape = [1] * a.ndim
        shape[ax] = a.shape[ax]
        omegas.append(np.fft.ifftshift(centred_frequencies(a.shape[ax])).reshape(shape))
    spectrum = np.fft.fftn(a, axes=axes)
    out = np.fft.ifftn(spectrum * transfer(tuple(omegas)), axes=axes).real
    if mode != "wrap":
        out = out[tuple(slice(lo, out.shape[i] - hi) for i, (lo, hi) in enumerate(widths))]
    return np.ascontiguousarray(out)


@cache
def _rotations3d() -> tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...]:
    """The 24 proper right-angle rotations of a cube as (axis permutation, axis signs)."""
    out: list[tuple[tuple[int, int, int], tuple[int, int, int]]] = []
    for perm in itertools.permutations((0, 1, 2)):
        parity = 1 if perm in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1
        for signs in itertools.product((1, -1), repeat=3):
            if parity * signs[0] * signs[1] * signs[2] == 1:
                out.append(((perm[0], perm[1], perm[2]), (signs[0], signs[1], signs[2])))
    return tuple(out)


def rotations(dimensions: str) -> tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...]:
    """Right-angle rotations as ``(perm, signs)`` on the ``(z, y, x)`` axes.

    3D: the 24 rotations of the cube. 2D: the 4 rotations within the ``(y, x)`` plane.
    The identity comes first.
    """
    if dimensions == "3D":
        return _rotations3d()
    return (
        ((0, 1, 2), (1, 1, 1)),
        ((0, 2, 1), (1, 1, -1)),
        ((0, 1, 2), (1, -1, -1)),
        ((0, 2, 1), (1, -1, 1)),
    )


def _rotate(array: np.ndarray, perm: tuple[int, int, int], signs: tuple[int, int, int]) -> np.ndarray:
    out = np.transpose(array, perm)
    flips = tuple(i for i, s in enumerate(signs) if s < 0)
    return np.flip(out, axis=flips) if flips else out


def _unrotate(array: np.ndarray, perm: tuple[int, int, int], signs: tuple[int, int, int]) -> np.ndarray:
    flips = tuple(i for i, s in enumerate(signs) if s < 0)
    out = np.flip(array, axis=flips) if flips else array
    return np.transpose(out, np.argsort(perm))


def rotation_pool(
    array: np.ndarray,
    apply: Callable[[np.ndarray], np.ndarray],
    *,
    dimensions: str,
    pooling: str,
) -> np.ndarray:
    """Pool ``apply`` over the right-angle rotations of the image (equivalently, of the kernel).

    Each rotation turns the image, filters it, and turns the response back, so the response
    is that of the rotated kernel. ``pooling`` is ``"max"`` or ``"average"``.
    """
    check_choice(pooling, POOLING_METHODS, "pooling_method")
    out: np.ndarray | None = None
    rots = rotations(dimensions)
    for perm, signs in rots:
        r = _unrotate(apply(np.ascontiguousarray(_rotate(array, perm, signs))), perm, signs)
        if out is None:
            out = np.array(r, dtype=np.float64, copy=True)
        elif pooling == "max":
            np.maximum(out, r, out=out)
        else:
            out += r
    assert out is not None
    return out if pooling == "max" else out / len(rots)
