"""Wavelet IBSI 2 filters: separable wavelets (PyWavelets filter banks), the non-separable
Simoncelli wavelet, and Riesz transforms of LoG and Simoncelli responses.

References
----------
Depeursinge A., Andrearczyk V., Whybra P. et al., "Standardised convolutional filtering for
radiomics" (IBSI 2 reference manual), arXiv:2006.05470.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pywt

from smartimaging.exceptions import ConfigError
from smartimaging.filters._core import (
    DIMENSIONS,
    POOLING_METHODS,
    check_choice,
    check_positive,
    correlate_separable,
    fft_filter,
    ndi_mode,
    rotation_pool,
)
from smartimaging.filters.spatial import _float, _image, log_array
from smartimaging.image import Image

__all__ = [
    "WAVELET_FAMILIES",
    "riesz_log",
    "riesz_simoncelli",
    "separable_wavelet",
    "simoncelli",
    "wavelet_filters",
]

#: Discrete wavelet names PyWavelets knows (``haar``, ``db1``-``db38``, ``coif1``-``coif17``,
#: ``sym2``-``sym20``, ``bior*``, ``rbio*``, ``dmey``).
WAVELET_FAMILIES: tuple[str, ...] = tuple(pywt.wavelist(kind="discrete"))


def wavelet_filters(wavelet: str) -> tuple[np.ndarray, np.ndarray]:
    """Low- and high-pass decomposition filters of ``wavelet`` (convolution order, PyWavelets).

    Raises
    ------
    ConfigError
        ``wavelet`` is not a discrete wavelet known to PyWavelets.
    """
    if wavelet not in WAVELET_FAMILIES:
        raise ConfigError(
            f"wavelet {wavelet!r} is not a discrete PyWavelets wavelet; valid: haar, db1-db38, "
            f"coif1-coif17, sym2-sym20, bior*/rbio* (full list: {', '.join(WAVELET_FAMILIES)})"
        )
    w = pywt.Wavelet(wavelet)
    return np.asarray(w.dec_lo, dtype=np.float64), np.asarray(w.dec_hi, dtype=np.float64)


def _check_sub_band(sub_band: str, dimensions: str) -> str:
    n = 2 if dimensions == "2D" else 3
    if not isinstance(sub_band, str) or len(sub_band) != n or set(sub_band) - {"L", "H"}:
        example = "LH" if n == 2 else "LLH"
        raise ConfigError(
            f"sub_band for a {dimensions} wavelet must be {n} letters of 'L' (low-pass) and 'H' "
            f"(high-pass), first letter for x, e.g. {example!r}; got {sub_band!r}"
        )
    return sub_band


def _dilate(kernel: np.ndarray, level: int) -> np.ndarray:
    """A trous dilation: insert ``2**(level-1) - 1`` zeros between taps."""
    step = 2 ** (level - 1)
    out = np.zeros((len(kernel) - 1) * step + 1)
    out[::step] = kernel
    return out


def _separable_kernels(
    sub_band: str, lo: np.ndarray, hi: np.ndarray, level: int, dimensions: str
) -> list[np.ndarray | None]:
    """Correlation kernels per (z, y, x) axis for one sub-band at one level.

    Even-length filters get a trailing zero (convolution order) so that they have a centre
    tap, then are dilated a trous; the result is mirrored for correlation.
    """

    def one(c: str) -> np.ndarray:
        k = lo if c == "L" else hi
        if len(k) % 2 == 0:
            k = np.append(k, 0.0)
        return _dilate(k, level)[::-1]

    by_xyz = [one(c) for c in sub_band]
    if dimensions == "2D":
        return [None, by_xyz[1], by_xyz[0]]
    return [by_xyz[2], by_xyz[1], by_xyz[0]]


def separable_wavelet_array(
    array: np.ndarray,
    *,
    wavelet: str,
    sub_band: str,
    level: int,
    dimensions: str,
    boundary: str,
    rotation_invariance: bool,
    pooling_method: str,
) -> np.ndarray:
    """Undecimated separable wavelet response of a ``(z, y, x)`` array (see :func:`separable_wavelet`)."""
    lo, hi = wavelet_filters(wavelet)
    _check_sub_band(sub_band, dimensions)
    n = 2 if dimensions == "2D" else 3

    def apply(a: np.ndarray) -> np.ndarray:
        for j in range(1, level):
            ks = _separable_kernels("L" * n, lo, hi, j, dimensions)
            a = correlate_separable(a, ks, boundary=boundary)
        ks = _separable_kernels(sub_band, lo, hi, level, dimensions)
        return correlate_separable(a, ks, boundary=boundary)

    a = np.asarray(array, dtype=np.float64)
    if rotation_invariance:
        return rotation_pool(a, apply, dimensions=dimensions, pooling=pooling_method)
    return apply(a)


def separable_wavelet(
    image: Image,
    *,
    wavelet: str,
    sub_band: str,
    level: int = 1,
    dimensions: str = "3D",
    boundary: str = "mirror",
    rotation_invariance: bool = False,
    pooling_method: str = "average",
    decimated: bool = False,
) -> Image:
    """Separable wavelet sub-band response (undecimated / stationary, or decimated).

    The undecimated transform (IBSI 2 default) keeps the image grid: level ``j`` filters the
    low-pass response of level ``j - 1`` (all axes ``L``) with the filters dilated by
    ``2**(j-1)`` (a trous). The decimated transform (:func:`pywt.dwtn`, ``level`` times on
    the all-``L`` band) halves the grid at each level; its response map is returned on a
    grid with doubled spacing and is therefore not usable with an ROI of the original grid.

    Parameters
    ----------
    image : Image
        Input image.
    wavelet : str
        PyWavelets name: ``'haar'``, ``'db2'``, ``'db3'``, ``'coif1'``, ``'sym4'``, ...
    sub_band : str
        One letter per axis, x first: ``'L'`` low-pass, ``'H'`` high-pass (``'LLH'``: low
        along x and y, high along z; 2D: ``'LH'``).
    level : int
        Decomposition level (1 = finest).
    dimensions : {'3D', '2D'}
        ``'2D'`` filters every slice in-plane.
    boundary : {'constant', 'nearest', 'periodic', 'mirror'}
        Padding.
    rotation_invariance : bool
        Pool the sub-band responses over the right-angle rotations (24 in 3D, 4 in 2D).
    pooling_method : {'average', 'max'}
        Pooling over rotations (IBSI 2 phase 2 uses average).
    decimated : bool
        Decimated (critically sampled) transform instead of the stationary one.

    Returns
    -------
    Image
        Response map (float64).

    Raises
    ------
    ConfigError
        Unknown wavelet, malformed sub-band, level < 1, or an invalid option (rotation
        invariance is not defined for the decimated transform).

    References
    ----------
    IBSI 2 reference manual (arXiv:2006.05470), "Separable wavelets" (25BO).
    """
    dims = check_choice(dimensions, DIMENSIONS, "dimensions")
    lvl = int(check_positive(level, "level", integer=True))
    _check_sub_band(sub_band, dims)
    wavelet_filters(wavelet)
    check_choice(pooling_method, POOLING_METHODS, "pooling_method")
    mode = ndi_mode(boundary)
    if decimated:
        if rotation_invariance:
            raise ConfigError("rotation_invariance is only defined for the undecimated wavelet transform")
        return _decimated(image, wavelet=wavelet, sub_band=sub_band, level=lvl, dimensions=dims, mode=mode)
    out = separable_wavelet_array(
        _float(image),
        wavelet=wavelet,
        sub_band=sub_band,
        level=lvl,
        dimensions=dims,
        boundary=boundary,
        rotation_invariance=bool(rotation_invariance),
        pooling_method=pooling_method,
    )
    return _image(image, out)


_PYWT_MODE = {"constant": "zero", "nearest": "constant", "wrap": "periodization", "reflect": "symmetric"}


def _decimated(image: Image, *, wavelet: str, sub_band: str, level: int, dimensions: str, mode: str) -> Image:
    axes = (1, 2) if dimensions == "2D" else (0, 1, 2)
    a = _float(image)
    for _ in range(level - 1):
        a = pywt.dwtn(a, wavelet, mode=_PYWT_MODE[mode], axes=axes)["a" * len(axes)]
    key = "".join("a" if c == "L" else "d" for c in reversed(sub_band))  # pywt keys follow axes (z, y, x)
    out = pywt.dwtn(a, wavelet, mode=_PYWT_MODE[mode], axes=axes)[key]
    factor = 2**level
    sx, sy, sz = image.spacing
    spacing = (sx * factor, sy * factor, sz if dimensions == "2D" else sz * factor)
    return Image(out, spacing, image.origin, image.direction.copy(), dict(image.meta))


# --------------------------------------------------------------------------- Simoncelli


def _simoncelli_transfer(omegas: tuple[np.ndarray, ...], level: int) -> np.ndarray:
    norm = np.sqrt(sum(w**2 for w in omegas)) * 2.0 ** (level - 1)
    out = np.zeros(norm.shape)
    band = (norm >= math.pi / 4) & (norm <= math.pi)
    out[band] = np.cos(math.pi / 2 * np.log2(2.0 * norm[band] / math.pi))
    return out


def simoncelli_array(array: np.ndarray, *, level: int, dimensions: str, boundary: str) -> np.ndarray:
    """Simoncelli wavelet response of a ``(z, y, x)`` array (see :func:`simoncelli`)."""
    axes = (1, 2) if dimensions == "2D" else (0, 1, 2)
    return fft_filter(array, lambda w: _simoncelli_transfer(w, level), axes=axes, boundary=boundary)


def simoncelli(image: Image, *, level: int = 1, dimensions: str = "3D", boundary: str = "periodic") -> Image:
    """Non-separable Simoncelli (isotropic, band-pass) wavelet response.

    Applied in the Fourier domain with the radial transfer function
    ``cos(pi/2 log2(2 |w| 2**(j-1) / pi))`` for ``pi/4 < 2**(j-1) |w| <= pi`` (0 elsewhere),
    ``|w|`` the norm of the angular frequency in radians per voxel, ``j`` the level.
    Boundary conditions other than ``periodic`` pad the image by half its size per side.

    Parameters
    ----------
    image : Image
        Input image.
    level : int
        Decomposition level (1: the highest band, ``pi/4 .. pi``; each level halves it).
    dimensions : {'3D', '2D'}
        ``'2D'`` filters every slice in-plane.
    boundary : {'constant', 'nearest', 'periodic', 'mirror'}
        Padding.

    Returns
    -------
    Image
        Response map (float64, the real part of the inverse transform).

    Raises
    ------
    ConfigError
        level < 1 or an invalid option.

    References
    ----------
    IBSI 2 reference manual (arXiv:2006.05470), "Simoncelli wavelets" (PRT7).
    """
    dims = check_choice(dimensions, DIMENSIONS, "dimensions")
    lvl = int(check_positive(level, "level", integer=True))
    ndi_mode(boundary)
    return _image(image, simoncelli_array(_float(image), level=lvl, dimensions=dims, boundary=boundary))


# -------------------------------------------------------------------------------- Riesz


def _check_order(order: Sequence[int], dimensions: str) -> tuple[int, ...]:
    n = 2 if dimensions == "2D" else 3
    ok = (
        isinstance(order, Sequence)
        and len(order) == n
        and all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in order)
        and sum(order) > 0
    )
    if not ok:
        raise ConfigError(
            f"riesz order for a {dimensions} filter must be {n} non-negative integers (x, y"
            f"{', z' if n == 3 else ''}) with a positive sum, e.g. {[1, 0, 0][:n]}; got {order!r}"
        )
    return tuple(int(o) for o in order)


def _riesz_transfer(omegas: tuple[np.ndarray, ...], order_axes: Sequence[int]) -> np.ndarray:
    """Riesz transform of orders ``order_axes`` (one per filtered array axis)."""
    total = sum(order_axes)
    norm = np.sqrt(sum(w**2 for w in omegas))
    safe = np.where(norm > 0, norm, 1.0)
    coef = math.sqrt(math.factorial(total) / math.prod(math.factorial(o) for o in order_axes))
    num = np.ones(np.broadcast_shapes(*(w.shape for w in omegas)))
    for w, o in zip(omegas, order_axes, strict=True):
        if o:
            num = num * w**o
    out = (-1j) ** total * coef * num / safe**total
    return np.where(norm > 0, out, 0.0)


def _riesz_apply(array: np.ndarray, order: tuple[int, ...], dimensions: str, boundary: str) -> np.ndarray:
    axes = (1, 2) if dimensions == "2D" else (0, 1, 2)
    order_axes = tuple(reversed(order))  # x, y, z -> array axes (z,) y, x
    return fft_filter(array, lambda w: _riesz_transfer(w, order_axes), axes=axes, boundary=boundary)


def riesz_log(
    image: Image,
    *,
    sigma: float,
    order: Sequence[int],
    cutoff: float = 4.0,
    dimensions: str = "3D",
    boundary: str = "mirror",
) -> Image:
    """Riesz transform of a Laplacian-of-Gaussian response.

    The LoG response (:func:`~smartimaging.filters.spatial.laplacian_of_gaussian`) is
    transformed in the Fourier domain by ``(-i)^|l| sqrt(|l|! / prod l_k!) prod w_k^l_k / |w|^|l|``.

    Parameters
    ----------
    image : Image
        Input image.
    sigma : float
        LoG scale in mm.
    order : sequence of int
        Riesz order per axis, x first (``[1, 0, 0]``: first order along x).
    cutoff : float
        LoG truncation in sigmas.
    dimensions : {'3D', '2D'}
        ``'2D'`` filters every slice in-plane (order then has 2 entries).
    boundary : {'constant', 'nearest', 'periodic', 'mirror'}
        Padding.

    Returns
    -------
    Image
        Response map (float64, real part).

    Raises
    ------
    ConfigError
        Invalid order or option.

    References
    ----------
    IBSI 2 reference manual (arXiv:2006.05470), "Riesz transform" (AYRS).
    """
    dims = check_choice(dimensions, DIMENSIONS, "dimensions")
    o = _check_order(order, dims)
    log = log_array(
        _float(image),
        image.spacing_zyx,
        sigma=check_positive(sigma, "sigma"),
        cutoff=check_positive(cutoff, "cutoff"),
        dimensions=dims,
        boundary=boundary,
    )
    return _image(image, _riesz_apply(log, o, dims, boundary))


def riesz_simoncelli(
    image: Image,
    *,
    level: int,
    order: Sequence[int],
    dimensions: str = "3D",
    boundary: str = "periodic",
) -> Image:
    """Riesz transform of a Simoncelli wavelet response (see :func:`riesz_log`, :func:`simoncelli`).

    Raises
    ------
    ConfigError
        Invalid level, order or option.

    References
    ----------
    IBSI 2 reference manual (arXiv:2006.05470), "Riesz transform" (AYRS), "Simoncelli wavelets" (PRT7).
    """
    dims = check_choice(dimensions, DIMENSIONS, "dimensions")
    o = _check_order(order, dims)
    lvl = int(check_positive(level, "level", integer=True))
    axes = (1, 2) if dims == "2D" else (0, 1, 2)
    order_axes = tuple(reversed(o))
    out = fft_filter(
        _float(image),
        lambda w: _simoncelli_transfer(w, lvl) * _riesz_transfer(w, order_axes),
        axes=axes,
        boundary=boundary,
    )
    return _image(image, out)
