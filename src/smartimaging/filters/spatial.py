"""Spatial IBSI 2 filters: mean, Laplacian of Gaussian, Laws kernels and Gabor.

Every public function takes an :class:`~smartimaging.image.Image` first and its options
keyword-only, and returns the response map as a float64 :class:`Image` on the same grid.

References
----------
Depeursinge A., Andrearczyk V., Whybra P. et al., "Standardised convolutional filtering for
radiomics" (IBSI 2 reference manual), arXiv:2006.05470.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage

from smartimaging.exceptions import ConfigError
from smartimaging.filters._core import (
    DIMENSIONS,
    POOLING_METHODS,
    axes_for,
    check_choice,
    check_positive,
    correlate_separable,
    ndi_mode,
    pad,
    rotation_pool,
)
from smartimaging.image import Image

__all__ = [
    "LAWS_KERNELS",
    "gabor",
    "laplacian_of_gaussian",
    "laws",
    "laws_kernels",
    "mean",
]

_S6, _S2, _S10, _S70 = math.sqrt(6.0), math.sqrt(2.0), math.sqrt(10.0), math.sqrt(70.0)
#: Normalised 1D Laws kernels of the IBSI 2 manual (convolution kernels, centre in the middle).
LAWS_KERNELS: dict[str, tuple[float, ...]] = {
    "L3": (1 / _S6, 2 / _S6, 1 / _S6),
    "E3": (-1 / _S2, 0.0, 1 / _S2),
    "S3": (-1 / _S6, 2 / _S6, -1 / _S6),
    "L5": (1 / _S70, 4 / _S70, 6 / _S70, 4 / _S70, 1 / _S70),
    "E5": (-1 / _S10, -2 / _S10, 0.0, 2 / _S10, 1 / _S10),
    "S5": (-1 / _S6, 0.0, 2 / _S6, 0.0, -1 / _S6),
    "W5": (-1 / _S10, 2 / _S10, 0.0, -2 / _S10, 1 / _S10),
    "R5": (1 / _S70, -4 / _S70, 6 / _S70, -4 / _S70, 1 / _S70),
}


def _dims(dimensions: str) -> str:
    return check_choice(dimensions, DIMENSIONS, "dimensions")


def _image(image: Image, array: np.ndarray) -> Image:
    return Image(
        np.asarray(array, dtype=np.float64),
        image.spacing,
        image.origin,
        image.direction.copy(),
        dict(image.meta),
    )


def _float(image: Image) -> np.ndarray:
    return np.asarray(image.array, dtype=np.float64)


# ----------------------------------------------------------------------------------- mean


def mean_array(array: np.ndarray, *, support: int, dimensions: str, boundary: str) -> np.ndarray:
    """Mean filter of a ``(z, y, x)`` array (see :func:`mean`)."""
    size = [1, support, support] if dimensions == "2D" else [support] * 3
    return ndimage.uniform_filter(np.asarray(array, dtype=np.float64), size=size, mode=ndi_mode(boundary))


def mean(image: Image, *, support: int, dimensions: str = "3D", boundary: str = "mirror") -> Image:
    """Mean filter: average over a cube (3D) or square (2D) of ``support`` voxels a side.

    Parameters
    ----------
    image : Image
        Input image.
    support : int
        Filter support ``M`` in voxels (odd, so that the kernel has a centre).
    dimensions : {'3D', '2D'}
        ``'2D'`` filters every slice in-plane.
    boundary : {'constant', 'nearest', 'periodic', 'mirror'}
        Padding (IBSI 2 boundary condition; ``constant`` is zero padding).

    Returns
    -------
    Image
        Response map (float64) on the image grid.

    Raises
    ------
    ConfigError
        Invalid support, dimensions or boundary condition.

    References
    ----------
    IBSI 2 reference manual (arXiv:2006.05470), "Mean filter" (S60F).
    """
    s = int(check_positive(support, "support", integer=True))
    if s % 2 == 0:
        raise ConfigError(f"support must be odd so that the kernel has a centre voxel, got {support}")
    return _image(
        image, mean_array(_float(image), support=s, dimensions=_dims(dimensions), boundary=boundary)
    )


# ---------------------------------------------------------------------------------- LoG


def log_array(
    array: np.ndarray,
    spacing_zyx: Sequence[float],
    *,
    sigma: float,
    cutoff: float,
    dimensions: str,
    boundary: str,
) -> np.ndarray:
    """Laplacian of Gaussian of a ``(z, y, x)`` array (see :func:`laplacian_of_gaussian`)."""
    axes = axes_for(dimensions)
    sig = tuple(sigma / float(spacing_zyx[a]) for a in axes)
    return ndimage.gaussian_laplace(
        np.asarray(array, dtype=np.float64), sigma=sig, mode=ndi_mode(boundary), truncate=cutoff, axes=axes
    )


def laplacian_of_gaussian(
    image: Image,
    *,
    sigma: float,
    cutoff: float = 4.0,
    dimensions: str = "3D",
    boundary: str = "mirror",
) -> Image:
    """Laplacian of Gaussian (LoG) filter.

    The kernel is the Laplacian of a Gaussian of scale ``sigma`` mm (converted to voxels per
    axis from the spacing), truncated at ``cutoff`` sigmas: the kernel reaches
    ``floor(cutoff * sigma_voxels + 0.5)`` voxels each side of its centre. It is applied as a
    sum of separable passes (second derivative along one axis, Gaussian along the others).

    Parameters
    ----------
    image : Image
        Input image.
    sigma : float
        Gaussian scale in mm.
    cutoff : float
        Kernel truncation in multiples of sigma (IBSI 2 tests use 4).
    dimensions : {'3D', '2D'}
        ``'2D'`` filters every slice in-plane.
    boundary : {'constant', 'nearest', 'periodic', 'mirror'}
        Padding.

    Returns
    -------
    Image
        Response map (float64).

    Raises
    ------
    ConfigError
        A parameter is not positive, or a string option is invalid.

    References
    ----------
    IBSI 2 reference manual (arXiv:2006.05470), "Laplacian of Gaussian" (L6PA).
    """
    s = check_positive(sigma, "sigma")
    c = check_positive(cutoff, "cutoff")
    out = log_array(
        _float(image), image.spacing_zyx, sigma=s, cutoff=c, dimensions=_dims(dimensions), boundary=boundary
    )
    return _image(image, out)


# --------------------------------------------------------------------------------- Laws


def laws_kernels(name: str) -> list[str]:
    """Split a Laws kernel name such as ``'E5L5S5'`` or ``'L5S5'`` into its 1D kernel names.

    The first name acts along x, the second along y, the third along z (IBSI 2 order).

    Raises
    ------
    ConfigError
        The name is not a concatenation of 2 or 3 of :data:`LAWS_KERNELS`.
    """
    parts = [name[i : i + 2] for i in range(0, len(name), 2)] if isinstance(name, str) else []
    if len(parts) not in (2, 3) or any(p not in LAWS_KERNELS for p in parts) or "".join(parts) != name:
        raise ConfigError(
            f"Laws kernel {name!r} must concatenate 2 (2D) or 3 (3D) of {list(LAWS_KERNELS)}, e.g. 'L5E5E5'"
        )
    return parts


def laws_array(
    array: np.ndarray,
    *,
    kernel: str,
    dimensions: str,
    boundary: str,
    rotation_invariance: bool,
    pooling_method: str,
    energy_distance: int | None,
) -> np.ndarray:
    """Laws filter of a ``(z, y, x)`` array (see :func:`laws`)."""
    names = laws_kernels(kernel)
    need = 2 if dimensions == "2D" else 3
    if len(names) != need:
        raise ConfigError(
            f"a {dimensions} Laws filter needs {need} 1D kernels, got {kernel!r}; "
            f"e.g. {'L5E5' if need == 2 else 'L5E5E5'}"
        )
    # Convolution (not correlation): the kernels are mirrored before correlating.
    ks = [np.asarray(LAWS_KERNELS[n])[::-1] for n in names]  # x, y[, z]
    per_axis: list[np.ndarray | None] = [None, ks[1], ks[0]] if need == 2 else [ks[2], ks[1], ks[0]]

    def apply(a: np.ndarray) -> np.ndarray:
        return correlate_separable(a, per_axis, boundary=boundary)

    a = np.asarray(array, dtype=np.float64)
    if rotation_invariance:
        out = rotation_pool(a, apply, dimensions=dimensions, pooling=pooling_method)
    else:
        out = apply(a)
    if energy_distance is not None:
        size = 2 * energy_distance + 1
        sizes = [1, size, size] if dimensions == "2D" else [size] * 3
        out = ndimage.uniform_filter(np.abs(out), size=sizes, mode=ndi_mode(boundary))
    return out


def laws(
    image: Image,
    *,
    kernel: str,
    dimensions: str = "3D",
    boundary: str = "mirror",
    rotation_invariance: bool = False,
    pooling_method: str = "max",
    energy_distance: int | None = None,
) -> Image:
    """Laws kernel filter, optionally rotation invariant, optionally as a local energy map.

    Parameters
    ----------
    image : Image
        Input image.
    kernel : str
        Concatenated 1D kernel names from :data:`LAWS_KERNELS`: 3 for 3D (``'E5L5S5'``:
        E5 along x, L5 along y, S5 along z), 2 for 2D (``'L5S5'``: x, y).
    dimensions : {'3D', '2D'}
        ``'2D'`` filters every slice in-plane.
    boundary : {'constant', 'nearest', 'periodic', 'mirror'}
        Padding (also used by the energy map).
    rotation_invariance : bool
        Pool the responses of the kernel turned through every right-angle rotation (24 in 3D,
        4 in-plane in 2D).
    pooling_method : {'max', 'average'}
        Pooling over rotations.
    energy_distance : int or None
        Chebyshev distance ``delta`` of the energy map: the (pooled) response is replaced by
        the mean of its absolute value over a ``(2 delta + 1)`` cube (square in 2D). ``None``:
        no energy map.

    Returns
    -------
    Image
        Response map (float64).

    Raises
    ------
    ConfigError
        Unknown kernel name, wrong number of 1D kernels, or invalid option.

    References
    ----------
    IBSI 2 reference manual (arXiv:2006.05470), "Laws kernels" (JTXT), energy map (PQSD).
    """
    dims = _dims(dimensions)
    check_choice(pooling_method, POOLING_METHODS, "pooling_method")
    ndi_mode(boundary)
    dist = (
        None
        if energy_distance is None
        else int(check_positive(energy_distance, "energy_distance", integer=True))
    )
    out = laws_array(
        _float(image),
        kernel=kernel,
        dimensions=dims,
        boundary=boundary,
        rotation_invariance=bool(rotation_invariance),
        pooling_method=pooling_method,
        energy_distance=dist,
    )
    return _image(image, out)


# -------------------------------------------------------------------------------- Gabor


def gabor_kernel(
    sigma: float, wavelength: float, gamma: float, theta: float, spacing_yx: Sequence[float], cutoff: float
) -> np.ndarray:
    """Complex 2D Gabor kernel on the ``(y, x)`` grid (rows, columns), physical units in mm.

    ``g(x, y) = exp(-(u^2 + gamma^2 v^2) / (2 sigma^2)) exp(i 2 pi u / lambda) / (2 pi sigma^2)``
    with ``u = x cos(theta) + y sin(theta)``, ``v = -x sin(theta) + y cos(theta)``.
    """
    sy, sx = float(spacing_yx[0]), float(spacing_yx[1])
    extent = cutoff * sigma * max(1.0, 1.0 / gamma)
    ry, rx = math.floor(extent / sy + 0.5), math.floor(extent / sx + 0.5)
    y = np.arange(-ry, ry + 1, dtype=np.float64)[:, None] * sy
    x = np.arange(-rx, rx + 1, dtype=np.float64)[None, :] * sx
    u = x * math.cos(theta) + y * math.sin(theta)
    v = -x * math.sin(theta) + y * math.cos(theta)
    env = np.exp(-(u**2 + gamma**2 * v**2) / (2.0 * sigma**2))
    return env * np.exp(1j * 2.0 * math.pi * u / wavelength)


def _gabor_plane(
    array: np.ndarray,
    spacing_zyx: Sequence[float],
    plane_axes: tuple[int, int],
    *,
    sigma: float,
    wavelength: float,
    gamma: float,
    thetas: Sequence[float],
    boundary: str,
    pooling_method: str,
    cutoff: float,
) -> np.ndarray:
    """Gabor modulus in every plane spanned by ``plane_axes`` (rows, columns), pooled over thetas."""
    rest = next(a for a in range(3) if a not in plane_axes)
    moved = np.moveaxis(array, (rest, *plane_axes), (0, 1, 2))
    sp = (float(spacing_zyx[plane_axes[0]]), float(spacing_zyx[plane_axes[1]]))
    # All orientations share the kernel size: transform the padded stack once.
    k0 = gabor_kernel(sigma, wavelength, gamma, thetas[0], sp, cutoff)
    ky, kx = k0.shape
    padded = pad(moved, [(0, 0), (ky // 2, ky // 2), (kx // 2, kx // 2)], boundary)
    shape = (sp_fft.next_fast_len(padded.shape[1] + ky - 1), sp_fft.next_fast_len(padded.shape[2] + kx - 1))
    spectrum = sp_fft.fft2(padded, s=shape, axes=(1, 2))
    valid = (slice(None), slice(ky - 1, padded.shape[1]), slice(kx - 1, padded.shape[2]))
    out: np.ndarray | None = None
    for theta in thetas:
        k = gabor_kernel(sigma, wavelength, gamma, theta, sp, cutoff)
        resp = np.abs(sp_fft.ifft2(spectrum * sp_fft.fft2(k, s=shape)[None], axes=(1, 2))[valid])
        if out is None:
            out = resp
        elif pooling_method == "max":
            np.maximum(out, resp, out=out)
        else:
            out = out + resp
    assert out is not None
    if pooling_method == "average":
        out = out / len(thetas)
    return np.moveaxis(out, (0, 1, 2), (rest, *plane_axes))


def gabor_array(
    array: np.ndarray,
    spacing_zyx: Sequence[float],
    *,
    sigma: float,
    wavelength: float,
    gamma: float,
    theta: float,
    theta_step: float | None,
    dimensions: str,
    orthogonal_planes: bool,
    boundary: str,
    pooling_method: str,
    cutoff: float,
) -> np.ndarray:
    """Gabor filter of a ``(z, y, x)`` array (see :func:`gabor`)."""
    if theta_step is None:
        thetas = [theta]
    else:
        n = round(2.0 * math.pi / theta_step)
        if n < 1 or not math.isclose(n * theta_step, 2.0 * math.pi, rel_tol=1e-6):
            raise ConfigError(f"theta_step must divide 2 pi into whole steps (e.g. pi/4), got {theta_step!r}")
        thetas = [theta + i * theta_step for i in range(n)]
    a = np.asarray(array, dtype=np.float64)
    kw = dict(
        sigma=sigma,
        wavelength=wavelength,
        gamma=gamma,
        thetas=thetas,
        boundary=boundary,
        pooling_method=pooling_method,
        cutoff=cutoff,
    )
    planes: list[tuple[int, int]] = [(1, 2)]
    if dimensions == "3D" and orthogonal_planes:
        planes = [(1, 2), (0, 2), (0, 1)]
    responses = [_gabor_plane(a, spacing_zyx, p, **kw) for p in planes]  # type: ignore[arg-type]
    return responses[0] if len(responses) == 1 else sum(responses[1:], responses[0]) / len(responses)


def gabor(
    image: Image,
    *,
    sigma: float,
    wavelength: float,
    gamma: float = 1.0,
    theta: float = 0.0,
    theta_step: float | None = None,
    dimensions: str = "2D",
    orthogonal_planes: bool = True,
    boundary: str = "mirror",
    pooling_method: str = "average",
    cutoff: float = 4.0,
) -> Image:
    """Gabor filter (modulus of the complex response), per slice or over orthogonal planes.

    Parameters
    ----------
    image : Image
        Input image.
    sigma : float
        Scale of the Gaussian envelope in mm.
    wavelength : float
        Wavelength ``lambda`` of the complex sinusoid in mm.
    gamma : float
        Spatial aspect ratio of the envelope.
    theta : float
        Orientation in radians, counter-clockwise from the x axis in the ``(x, y)`` plane
        (y pointing to increasing row index). With ``theta_step`` it is the first angle.
    theta_step : float or None
        Rotation invariance: pool the responses for ``theta, theta + step, ...`` over a
        full turn (``step`` must divide 2 pi). ``None``: the single orientation ``theta``.
    dimensions : {'2D', '3D'}
        ``'2D'``: every axial slice. ``'3D'``: with ``orthogonal_planes`` the 2D filter is
        applied in the axial, coronal and sagittal planes and the three responses averaged;
        without, it equals ``'2D'``.
    orthogonal_planes : bool
        See ``dimensions``.
    boundary : {'constant', 'nearest', 'periodic', 'mirror'}
        Padding.
    pooling_method : {'average', 'max'}
        Pooling over orientations.
    cutoff : float
        Kernel half-size in multiples of ``sigma / min(1, gamma)`` (the envelope's largest scale).

    Returns
    -------
    Image
        Response map (float64, non-negative).

    Raises
    ------
    ConfigError
        Non-positive scale, a step that does not divide 2 pi, or an invalid option.

    References
    ----------
    IBSI 2 reference manual (arXiv:2006.05470), "Gabor kernels" (Q88H).
    """
    out = gabor_array(
        _float(image),
        image.spacing_zyx,
        sigma=check_positive(sigma, "sigma"),
        wavelength=check_positive(wavelength, "wavelength"),
        gamma=check_positive(gamma, "gamma"),
        theta=float(theta),
        theta_step=None if theta_step is None else check_positive(theta_step, "theta_step"),
        dimensions=_dims(dimensions),
        orthogonal_planes=bool(orthogonal_planes),
        boundary=check_choice(boundary, ("constant", "nearest", "periodic", "mirror"), "boundary"),
        pooling_method=check_choice(pooling_method, POOLING_METHODS, "pooling_method"),
        cutoff=check_positive(cutoff, "cutoff"),
    )
    return _image(image, out)
