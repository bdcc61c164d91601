"""Filter settings as typed models (one per filter, IBSI 2 parameter names), their
``image_type`` label, and :func:`apply_filter`.

In a settings file a filter is a mapping with a ``filter`` key naming it, e.g.::

    filters:
      - {filter: log, sigma: 1.5, cutoff: 4}
      - {filter: laws, kernel: L5E5E5, rotation_invariance: true, pooling_method: max, energy_distance: 7}
      - {filter: gabor, sigma: 5, wavelength: 2, gamma: 1.5, theta_step: pi/8, dimensions: 3D}
      - {filter: wavelet, wavelet: db3, sub_band: LLH, level: 1, rotation_invariance: true}
      - {filter: simoncelli, level: 2}

Angles (``theta``, ``theta_step``) are radians and may be written as ``pi/8``, ``3*pi/4``.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from smartimaging.filters import spatial, wavelets
from smartimaging.filters._core import BOUNDARY_CONDITIONS
from smartimaging.image import Image

__all__ = [
    "FilterSettings",
    "GaborSettings",
    "LawsSettings",
    "LoGSettings",
    "MeanSettings",
    "RieszLoGSettings",
    "RieszSimoncelliSettings",
    "SimoncelliSettings",
    "WaveletSettings",
    "apply_filter",
    "image_type",
]

Boundary = Literal["constant", "nearest", "periodic", "mirror"]
Dimensions = Literal["2D", "3D"]
Pooling = Literal["max", "average"]
assert set(BOUNDARY_CONDITIONS) == {"constant", "nearest", "periodic", "mirror"}

_PI_EXPR = re.compile(r"^\s*(?:(\d+(?:\.\d*)?)\s*\*?\s*)?pi\s*(?:/\s*(\d+(?:\.\d*)?))?\s*$")


def _angle(value: object) -> object:
    """Accept radians as a number or as ``'pi/8'``, ``'3*pi/4'``, ``'2pi'``."""
    if isinstance(value, str):
        m = _PI_EXPR.match(value.lower())
        if not m:
            raise ValueError(f"angle {value!r} must be a number of radians or of the form 'pi/8', '3*pi/4'")
        num = float(m.group(1)) if m.group(1) else 1.0
        den = float(m.group(2)) if m.group(2) else 1.0
        return num * math.pi / den
    return value


def _num(x: float) -> str:
    """Compact number for labels: 1.5 -> '1.5', 7.0 -> '7'."""
    return f"{x:g}"


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dimensions: Dimensions = "3D"
    boundary: Boundary = "mirror"

    def _suffix(self) -> str:
        return "_2D" if self.dimensions == "2D" else ""


class MeanSettings(_Base):
    """Mean filter (:func:`smartimaging.filters.spatial.mean`)."""

    filter: Literal["mean"] = "mean"
    support: int = Field(ge=1)

    @field_validator("support")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"support must be odd (the kernel needs a centre voxel), got {v}")
        return v

    def label(self) -> str:
        return f"mean_support{self.support}{self._suffix()}"


class LoGSettings(_Base):
    """Laplacian of Gaussian (:func:`smartimaging.filters.spatial.laplacian_of_gaussian`); sigma in mm."""

    filter: Literal["log"] = "log"
    sigma: float = Field(gt=0)
    cutoff: float = Field(default=4.0, gt=0)

    def label(self) -> str:
        return f"log_sigma{_num(self.sigma)}{self._suffix()}"


class LawsSettings(_Base):
    """Laws kernels (:func:`smartimaging.filters.spatial.laws`)."""

    filter: Literal["laws"] = "laws"
    kernel: str
    rotation_invariance: bool = False
    pooling_method: Pooling = "max"
    energy_distance: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _kernel(self) -> LawsSettings:
        parts = spatial.laws_kernels(self.kernel)
        need = 2 if self.dimensions == "2D" else 3
        if len(parts) != need:
            raise ValueError(f"a {self.dimensions} Laws kernel needs {need} 1D kernels, got {self.kernel!r}")
        return self

    def label(self) -> str:
        parts = [f"laws_{self.kernel}"]
        if self.energy_distance is not None:
            parts.append(f"energy{self.energy_distance}")
        if self.rotation_invariance:
            parts.append("max" if self.pooling_method == "max" else "avg")
        return "_".join(parts) + self._suffix()


class GaborSettings(_Base):
    """Gabor filter (:func:`smartimaging.filters.spatial.gabor`); sigma and wavelength in mm."""

    filter: Literal["gabor"] = "gabor"
    dimensions: Dimensions = "2D"
    sigma: float = Field(gt=0)
    wavelength: float = Field(gt=0)
    gamma: float = Field(default=1.0, gt=0)
    theta: float = 0.0
    theta_step: float | None = Field(default=None, gt=0)
    orthogonal_planes: bool = True
    pooling_method: Pooling = "average"
    cutoff: float = Field(default=4.0, gt=0)

    _angles = field_validator("theta", "theta_step", mode="before")(classmethod(lambda cls, v: _angle(v)))

    def label(self) -> str:
        parts = [f"gabor_sigma{_num(self.sigma)}_lambda{_num(self.wavelength)}_gamma{_num(self.gamma)}"]
        if self.theta_step is None:
            parts.append(f"theta{_num(round(math.degrees(self.theta), 4))}")
        else:
            parts.append(f"thetastep{_num(round(math.degrees(self.theta_step), 4))}")
            parts.append("max" if self.pooling_method == "max" else "avg")
        if self.dimensions == "3D" and self.orthogonal_planes:
            parts.append("3D")
        else:
            parts.append("2D")
        return "_".join(parts)


class WaveletSettings(_Base):
    """Separable wavelet (:func:`smartimaging.filters.wavelets.separable_wavelet`), undecimated."""

    filter: Literal["wavelet"] = "wavelet"
    wavelet: str
    sub_band: str
    level: int = Field(default=1, ge=1)
    rotation_invariance: bool = False
    pooling_method: Pooling = "average"

    @model_validator(mode="after")
    def _valid(self) -> WaveletSettings:
        wavelets.wavelet_filters(self.wavelet)
        wavelets._check_sub_band(self.sub_band, self.dimensions)
        return self

    def label(self) -> str:
        out = f"wavelet_{self.wavelet}_{self.sub_band}_level{self.level}"
        if self.rotation_invariance:
            out += "_max" if self.pooling_method == "max" else "_avg"
        return out + self._suffix()


class SimoncelliSettings(_Base):
    """Simoncelli wavelet (:func:`smartimaging.filters.wavelets.simoncelli`)."""

    filter: Literal["simoncelli"] = "simoncelli"
    level: int = Field(default=1, ge=1)

    def label(self) -> str:
        return f"simoncelli_level{self.level}{self._suffix()}"


class _RieszOrder(_Base):
    order: tuple[int, ...]

    @model_validator(mode="after")
    def _order(self) -> _RieszOrder:
        wavelets._check_order(list(self.order), self.dimensions)
        return self

    def _order_label(self) -> str:
        return "riesz" + "".join(str(o) for o in self.order)


class RieszLoGSettings(_RieszOrder):
    """Riesz-transformed LoG (:func:`smartimaging.filters.wavelets.riesz_log`)."""

    filter: Literal["riesz_log"] = "riesz_log"
    sigma: float = Field(gt=0)
    cutoff: float = Field(default=4.0, gt=0)

    def label(self) -> str:
        return f"log_sigma{_num(self.sigma)}_{self._order_label()}{self._suffix()}"


class RieszSimoncelliSettings(_RieszOrder):
    """Riesz-transformed Simoncelli wavelet (:func:`smartimaging.filters.wavelets.riesz_simoncelli`)."""

    filter: Literal["riesz_simoncelli"] = "riesz_simoncelli"
    level: int = Field(default=1, ge=1)

    def label(self) -> str:
        return f"simoncelli_level{self.level}_{self._order_label()}{self._suffix()}"


#: Any filter; the ``filter`` key selects the model.
FilterSettings = Annotated[
    MeanSettings
    | LoGSettings
    | LawsSettings
    | GaborSettings
    | WaveletSettings
    | SimoncelliSettings
    | RieszLoGSettings
    | RieszSimoncelliSettings,
    Field(discriminator="filter"),
]


def image_type(settings: FilterSettings) -> str:
    """The ``image_type`` label of a filter's response map, e.g. ``'log_sigma1.5'``,
    ``'wavelet_db3_LLH_level1_avg'``, ``'laws_L5E5E5_energy7_max'``. 2D filters end in ``_2D``."""
    return settings.label()


def apply_filter(image: Image, settings: FilterSettings) -> Image:
    """Filter ``image`` as described by ``settings``.

    Parameters
    ----------
    image : Image
        Input image (the whole, interpolated image: IBSI 2 filters before masking).
    settings : FilterSettings
        One filter model.

    Returns
    -------
    Image
        Response map on the image grid (float64).

    Raises
    ------
    ConfigError
        Invalid parameter (the models validate most on construction).
    """
    s = settings
    if isinstance(s, MeanSettings):
        return spatial.mean(image, support=s.support, dimensions=s.dimensions, boundary=s.boundary)
    if isinstance(s, LoGSettings):
        return spatial.laplacian_of_gaussian(
            image, sigma=s.sigma, cutoff=s.cutoff, dimensions=s.dimensions, boundary=s.boundary
        )
    if isinstance(s, LawsSettings):
        return spatial.laws(
            image,
            kernel=s.kernel,
            dimensions=s.dimensions,
            boundary=s.boundary,
            rotation_invariance=s.rotation_invariance,
            pooling_method=s.pooling_method,
            energy_distance=s.energy_distance,
        )
    if isinstance(s, GaborSettings):
        return spatial.gabor(
            image,
            sigma=s.sigma,
            wavelength=s.wavelength,
            gamma=s.gamma,
            theta=s.theta,
            theta_step=s.theta_step,
            dimensions=s.dimensions,
            orthogonal_planes=s.orthogonal_planes,
            boundary=s.boundary,
            pooling_method=s.pooling_method,
            cutoff=s.cutoff,
        )
    if isinstance(s, WaveletSettings):
        return wavelets.separable_wavelet(
            image,
            wavelet=s.wavelet,
            sub_band=s.sub_band,
            level=s.level,
            dimensions=s.dimensions,
            boundary=s.boundary,
            rotation_invariance=s.rotation_invariance,
            pooling_method=s.pooling_method,
        )
    if isinstance(s, SimoncelliSettings):
        return wavelets.simoncelli(image, level=s.level, dimensions=s.dimensions, boundary=s.boundary)
    if isinstance(s, RieszLoGSettings):
        return wavelets.riesz_log(
            image,
            sigma=s.sigma,
            order=list(s.order),
            cutoff=s.cutoff,
            dimensions=s.dimensions,
            boundary=s.boundary,
        )
    return wavelets.riesz_simoncelli(
        image, level=s.level, order=list(s.order), dimensions=s.dimensions, boundary=s.boundary
    )
