"""IBSI 2 convolutional filters (mean, LoG, Laws, Gabor, separable and Simoncelli wavelets,
Riesz transforms) for 2D (per slice) and 3D images, and their settings models.

See ``docs/filters.md``. Reference: IBSI 2 reference manual, arXiv:2006.05470.
"""

from smartimaging.filters._core import BOUNDARY_CONDITIONS, DIMENSIONS, POOLING_METHODS
from smartimaging.filters.settings import FilterSettings, apply_filter, image_type
from smartimaging.filters.spatial import LAWS_KERNELS, gabor, laplacian_of_gaussian, laws, mean
from smartimaging.filters.wavelets import riesz_log, riesz_simoncelli, separable_wavelet, simoncelli

__all__ = [
    "BOUNDARY_CONDITIONS",
    "DIMENSIONS",
    "LAWS_KERNELS",
    "POOLING_METHODS",
    "FilterSettings",
    "apply_filter",
    "gabor",
    "image_type",
    "laplacian_of_gaussian",
    "laws",
    "mean",
    "riesz_log",
    "riesz_simoncelli",
    "separable_wavelet",
    "simoncelli",
]
