"""Settings of feature extraction: a typed model that rejects unknown keys.

Example YAML file (every key optional)::

    families: [intensity statistics, local intensity, PET]
    discretisation: fixed_bin_size      # or fixed_bin_number
    bin_width: 0.25                     # for fixed_bin_size (same units as the image)
    bin_lower_bound: 0.0                # first bin edge for fixed_bin_size
    n_bins: 32                          # for fixed_bin_number
    resegmentation_range: [0.0, null]   # keep ROI voxels within [lower, upper]; null = open
    aggregation: [3D, 3D_avg, 3D_vmrg]
    distance: 1                         # Chebyshev neighbourhood distance (GLCM, NGTDM, NGLDM)
    ngldm_alpha: 0                      # NGLDM coarseness parameter

Only ``families`` is used by :func:`smartimaging.features.extract.extract` today; the other
fields are validated now for the discretisation and texture families.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from smartimaging.exceptions import ConfigError
from smartimaging.features.registry import AGGREGATIONS, FAMILIES

__all__ = ["ExtractionSettings", "load_settings"]

_TEXTURE_AGGREGATIONS = tuple(a for a in AGGREGATIONS if a)


class ExtractionSettings(BaseModel):
    """What to extract and how to prepare intensities for it.

    The model is immutable and hashable (sequences are tuples; YAML lists are accepted).

    Parameters
    ----------
    families : tuple of str or None
        Feature families to compute, spelled as in
        :data:`smartimaging.features.registry.FAMILIES`. ``None`` (default) means every family
        the extractor implements, with ``"PET"`` only for PET images (modality ``PT``).
    discretisation : {'fixed_bin_number', 'fixed_bin_size'}
        Intensity discretisation for texture and histogram families (IBSI 2.7).
    n_bins : int
        Number of bins for ``fixed_bin_number``.
    bin_width : float or None
        Bin width for ``fixed_bin_size`` (required then), in image units.
    bin_lower_bound : float or None
        Lower edge of the first bin for ``fixed_bin_size``; ``None`` uses the lower end of
        the re-segmentation range, or the ROI minimum when there is none.
    resegmentation_range : tuple of (float or None, float or None) or None
        Keep only ROI voxels with intensities in ``[lower, upper]`` (IBSI 2.5); ``None`` on a
        side leaves it open.
    aggregation : tuple of str
        Texture aggregation variants to report (codes of
        :data:`smartimaging.features.registry.AGGREGATIONS`).
    distance : int
        Chebyshev neighbourhood distance for GLCM, NGTDM and NGLDM.
    ngldm_alpha : int
        NGLDM coarseness parameter.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    families: tuple[str, ...] | None = None
    discretisation: Literal["fixed_bin_number", "fixed_bin_size"] = "fixed_bin_number"
    n_bins: int = Field(default=32, ge=1)
    bin_width: float | None = Field(default=None, gt=0)
    bin_lower_bound: float | None = None
    resegmentation_range: tuple[float | None, float | None] | None = None
    aggregation: tuple[str, ...] = ("3D", "3D_avg", "3D_vmrg")
    distance: int = Field(default=1, ge=1)
    ngldm_alpha: int = Field(default=0, ge=0)

    @field_validator("families")
    @classmethod
    def _known_families(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        unknown = [f for f in value if f not in FAMILIES]
        if unknown:
            raise ValueError(
                f"unknown feature famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; valid: {list(FAMILIES)}"
            )
        if not value:
            raise ValueError(f"families is empty; list at least one of {list(FAMILIES)} or leave it out")
        return tuple(dict.fromkeys(value))

    @field_validator("aggregation")
    @classmethod
    def _known_aggregations(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [a for a in value if a not in _TEXTURE_AGGREGATIONS]
        if unknown:
            raise ValueError(f"unknown aggregation {unknown}; valid: {list(_TEXTURE_AGGREGATIONS)}")
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _consistent(self) -> ExtractionSettings:
        if self.discretisation == "fixed_bin_size" and self.bin_width is None:
            raise ValueError("discretisation 'fixed_bin_size' needs bin_width (e.g. 0.25 SUV or 25 HU)")
        if self.resegmentation_range is not None:
            lower, upper = self.resegmentation_range
            if lower is not None and upper is not None and not lower < upper:
                raise ValueError(
                    f"resegmentation_range lower bound {lower} must be below upper bound {upper}"
                )
        return self

    def settings_hash(self) -> str:
        """SHA-256 (hex) of the resolved settings, to store beside every output."""
        return hashlib.sha256(self.model_dump_json().encode("utf-8")).hexdigest()


def load_settings(path: str | os.PathLike[str]) -> ExtractionSettings:
    """Read :class:`ExtractionSettings` from a YAML file.

    Parameters
    ----------
    path : str or path-like
        YAML file holding a mapping of settings (an empty file gives the defaults).

    Returns
    -------
    ExtractionSettings

    Raises
    ------
    ConfigError
        If the file is missing, is not valid YAML, is not a mapping, or a key is unknown or
        has an invalid value; the message names the file and each offending key.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read extraction settings file {p}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"extraction settings file {p} is not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"extraction settings file {p} must hold a mapping of keys to values, got a {type(data).__name__}"
        )
    try:
        return ExtractionSettings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"key '{'.'.join(str(part) for part in err['loc']) or '<root>'}': {err['msg']}"
            + (f" (got {err['input']!r})" if err["type"] != "missing" and err["loc"] else "")
            for err in exc.errors()
        )
        raise ConfigError(f"invalid extraction settings in {p}: {problems}") from exc
