"""Settings of feature extraction: a typed model that rejects unknown keys.

Example YAML file (every key optional; these are the defaults unless noted)::

    families: null                      # every family; e.g. [morphology, GLCM, PET]
    discretisation: fixed_bin_number    # texture + intensity histogram: or fixed_bin_size
    n_bins: 32                          # for fixed_bin_number
    bin_width: null                     # for fixed_bin_size (image units, e.g. 0.25 SUV, 25 HU)
    bin_lower_bound: null               # first bin edge for fixed_bin_size (default: range / ROI min)
    resegmentation_range: null          # e.g. [-500, 400] or [0, null]: keep ROI voxels in range
    aggregation: [3D, 3D_avg, 3D_vmrg]  # texture aggregation codes (see below)
    distance: 1                         # Chebyshev distance of GLCM, NGTDM and NGLDM
    ngldm_alpha: 0                      # NGLDM coarseness parameter
    exclude_features: []                # e.g. ["Moran's I index", NPT7, cm.joint.max]
    ivh:                                # intensity-volume histogram discretisation
      method: fixed_bin_number          # discrete | fixed_bin_size | fixed_bin_number
      n_bins: 1000                      # fixed_bin_number
      bin_width: null                   # fixed_bin_size: bin width; discrete: step (default 1)
      bin_lower_bound: null             # fixed_bin_size: first bin edge (default: range / ROI min)

Aggregation codes are those of the IBSI reference table: ``2D_avg``, ``2D_smrg``,
``2.5D_dmrg``, ``2.5D_vmrg``, ``3D_avg``, ``3D_vmrg`` (GLCM, GLRLM) and ``2D``, ``2.5D``,
``3D`` (GLSZM, GLDZM, NGTDM, NGLDM). Each texture family reports the codes of the list that it
defines; a list that leaves a requested texture family without any of its codes is an error.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from smartimaging.exceptions import ConfigError
from smartimaging.features import (
    glcm,
    gldzm,
    glrlm,
    glszm,
    histogram,
    ivh,
    local_intensity,
    morphology,
    ngldm,
    ngtdm,
    pet,
    statistics,
)
from smartimaging.features.registry import AGGREGATIONS, FAMILIES, FeatureDef
from smartimaging.filters.settings import FilterSettings

__all__ = [
    "TEXTURE_AGGREGATIONS",
    "ExtractionSettings",
    "IVHSettings",
    "load_settings",
    "resolve_feature_names",
]

_TEXTURE_AGGREGATIONS = tuple(a for a in AGGREGATIONS if a)

#: Aggregation codes each texture family defines.
TEXTURE_AGGREGATIONS: dict[str, tuple[str, ...]] = {
    "GLCM": glcm.AGGREGATIONS,
    "GLRLM": glrlm.AGGREGATIONS,
    "GLSZM": glszm.AGGREGATIONS,
    "GLDZM": gldzm.AGGREGATIONS,
    "NGTDM": ngtdm.AGGREGATIONS,
    "NGLDM": ngldm.AGGREGATIONS,
}


_ALL_FEATURES: tuple[FeatureDef, ...] = (
    morphology.FEATURES
    + local_intensity.FEATURES
    + statistics.FEATURES
    + histogram.FEATURES
    + ivh.FEATURES
    + glcm.FEATURES
    + glrlm.FEATURES
    + glszm.FEATURES
    + gldzm.FEATURES
    + ngtdm.FEATURES
    + ngldm.FEATURES
    + pet.LESION_FEATURES
)


def _feature_index() -> dict[str, frozenset[str]]:
    """Lower-cased IBSI name, IBSI id or machine key -> the machine keys it designates."""
    index: dict[str, set[str]] = {}
    for f in _ALL_FEATURES:
        for label in (f.name, f.ibsi_id, f.key):
            if label:
                index.setdefault(label.lower(), set()).add(f.key)
    return {k: frozenset(v) for k, v in index.items()}


_FEATURE_INDEX = _feature_index()


def resolve_feature_names(names: tuple[str, ...] | list[str]) -> frozenset[str]:
    """Machine keys of features given by IBSI name, IBSI identifier or machine key.

    Matching ignores case and surrounding spaces. An IBSI identifier shared by parameterised
    features (``BC2M``: V10 and V90; ``GBPN``: I10 and I90) designates all of them.

    Parameters
    ----------
    names : sequence of str
        E.g. ``["Moran's I index", "NPT7", "cm.joint.max"]``.

    Returns
    -------
    frozenset of str
        Machine keys (``"morph.moran.i"``, ...).

    Raises
    ------
    ValueError
        If a name matches no feature; the message lists the unknown names with the closest
        known spellings.
    """
    keys: set[str] = set()
    unknown: list[str] = []
    for name in names:
        found = _FEATURE_INDEX.get(name.strip().lower())
        if found is None:
            unknown.append(name)
        else:
            keys |= found
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name.strip().lower(), _FEATURE_INDEX, n=3, cutoff=0.6)
            spelled = sorted({_spelling(c) for c in close})
            hints.append(f"{name!r}" + (f" (did you mean {', '.join(spelled)}?)" if spelled else ""))
        raise ValueError(
            f"unknown feature{'s' if len(unknown) > 1 else ''} in exclude_features: {'; '.join(hints)}. "
            'Give IBSI feature names as in docs/features.md (e.g. "Moran\'s I index"), IBSI identifiers '
            "(e.g. 'N365') or machine keys (e.g. 'morph.moran.i')"
        )
    return frozenset(keys)


def _spelling(label: str) -> str:
    """The original spelling of a lower-cased index label."""
    for f in _ALL_FEATURES:
        for original in (f.name, f.ibsi_id, f.key):
            if original.lower() == label:
                return repr(original)
    return repr(label)


class IVHSettings(BaseModel):
    """Discretisation of the intensity-volume histogram (IBSI 1, "Intensity-volume histogram").

    Parameters
    ----------
    method : {'discrete', 'fixed_bin_size', 'fixed_bin_number'}
        ``discrete``: intensities are already discrete (CT HU, grey levels), the IVH steps by
        ``bin_width`` (default 1) over the re-segmentation range or the ROI range.
        ``fixed_bin_size``: calibrated continuous intensities (SUV), bins of ``bin_width``
        starting at ``bin_lower_bound`` (default: the lower end of the re-segmentation range,
        else the ROI minimum). ``fixed_bin_number``: arbitrary units, ``n_bins`` bins over the
        ROI range (IBSI: 1000).
    n_bins : int or None
        Number of bins (``fixed_bin_number`` only; default 1000).
    bin_width : float or None
        Bin width (``fixed_bin_size``, required) or step (``discrete``, default 1).
    bin_lower_bound : float or None
        First bin edge (``fixed_bin_size`` only).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["discrete", "fixed_bin_size", "fixed_bin_number"] = "fixed_bin_number"
    n_bins: int | None = Field(default=None, ge=1)
    bin_width: float | None = Field(default=None, gt=0)
    bin_lower_bound: float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> IVHSettings:
        if self.method == "fixed_bin_size" and self.bin_width is None:
            raise ValueError("ivh method 'fixed_bin_size' needs ivh.bin_width (e.g. 0.1 SUV or 2.5 HU)")
        if self.method != "fixed_bin_number" and self.n_bins is not None:
            raise ValueError(f"ivh.n_bins applies only to method 'fixed_bin_number', not {self.method!r}")
        if self.method == "fixed_bin_number" and self.bin_width is not None:
            raise ValueError(
                "ivh.bin_width applies only to methods 'fixed_bin_size' and 'discrete', not 'fixed_bin_number'"
            )
        if self.method != "fixed_bin_size" and self.bin_lower_bound is not None:
            raise ValueError(
                f"ivh.bin_lower_bound applies only to method 'fixed_bin_size', not {self.method!r}"
            )
        return self

    @property
    def effective_n_bins(self) -> int:
        """``n_bins``, or the IBSI default 1000."""
        return 1000 if self.n_bins is None else self.n_bins


class ExtractionSettings(BaseModel):
    """What to extract and how to prepare intensities for it.

    The model is immutable and hashable (sequences are tuples; YAML lists are accepted).

    Parameters
    ----------
    families : tuple of str or None
        Feature families to compute, spelled as in
        :data:`smartimaging.features.registry.FAMILIES`. ``None`` (default) means every family,
        with ``"PET"`` only for PET images (modality ``PT``).
    discretisation : {'fixed_bin_number', 'fixed_bin_size'}
        Intensity discretisation for the texture and intensity histogram families (IBSI 1,
        "Intensity discretisation": fixed bin number K15C, fixed bin size Q3RU).
    n_bins : int
        Number of bins for ``fixed_bin_number``.
    bin_width : float or None
        Bin width for ``fixed_bin_size`` (required then), in image units.
    bin_lower_bound : float or None
        Lower edge of the first bin for ``fixed_bin_size``; ``None`` uses the lower end of
        the re-segmentation range, or the ROI minimum when there is none.
    resegmentation_range : tuple of (float or None, float or None) or None
        Keep only ROI voxels with intensities in ``[lower, upper]`` in the intensity mask
        (IBSI 1, "Re-segmentation", range re-segmentation); ``None`` on a side leaves it open.
        The morphological mask is not changed.
    aggregation : tuple of str
        Texture aggregation variants to report (codes of
        :data:`smartimaging.features.registry.AGGREGATIONS`).
    distance : int
        Chebyshev neighbourhood distance for GLCM, NGTDM and NGLDM (GLRLM, GLSZM and GLDZM
        always use adjacency, distance 1).
    ngldm_alpha : int
        NGLDM coarseness parameter.
    ivh : IVHSettings
        Discretisation of the intensity-volume histogram.
    filters : tuple of FilterSettings
        IBSI 2 convolutional filters (see :mod:`smartimaging.filters.settings`). Each filter's
        response map of the whole (interpolated) image yields its own rows, labelled by
        ``image_type`` (e.g. ``log_sigma1.5``); the unfiltered image's rows say ``original``.
    filter_families : tuple of str
        Families computed on the response maps (IBSI 2 phase 2: the intensity statistics).
    exclude_features : tuple of str
        Features to leave out of the output, by IBSI name (``"Moran's I index"``), IBSI
        identifier (``"N365"``) or machine key (``"morph.moran.i"``), case-insensitive; see
        :func:`resolve_feature_names`. A family whose features are all excluded is not computed.
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
    ivh: IVHSettings = Field(default_factory=IVHSettings)
    exclude_features: tuple[str, ...] = ()
    filters: tuple[FilterSettings, ...] = ()
    filter_families: tuple[str, ...] = ("intensity statistics",)

    @field_validator("filter_families")
    @classmethod
    def _known_filter_families(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [f for f in value if f not in FAMILIES or f == "morphology"]
        if unknown or not value:
            valid = [f for f in FAMILIES if f != "morphology"]
            raise ValueError(
                f"filter_families {list(value)} must list at least one of {valid} "
                "(morphology does not depend on intensities)"
            )
        return tuple(dict.fromkeys(value))

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
        if not value:
            raise ValueError(f"aggregation is empty; list at least one of {list(_TEXTURE_AGGREGATIONS)}")
        return tuple(dict.fromkeys(value))

    @field_validator("exclude_features")
    @classmethod
    def _known_features(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        resolve_feature_names(value)
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _consistent(self) -> ExtractionSettings:
        if self.discretisation == "fixed_bin_size" and self.bin_width is None:
            raise ValueError("discretisation 'fixed_bin_size' needs bin_width (e.g. 0.25 SUV or 25 HU)")
        if self.discretisation == "fixed_bin_number" and (
            self.bin_width is not None or self.bin_lower_bound is not None
        ):
            raise ValueError(
                "bin_width and bin_lower_bound apply only to discretisation 'fixed_bin_size'; "
                "remove them or set discretisation: fixed_bin_size"
            )
        if self.resegmentation_range is not None:
            lower, upper = self.resegmentation_range
            if lower is not None and upper is not None and not lower < upper:
                raise ValueError(
                    f"resegmentation_range lower bound {lower} must be below upper bound {upper}"
                )
        families = self.families if self.families is not None else FAMILIES
        if self.filters:
            families = (*families, *self.filter_families)
            labels = [f.label() for f in self.filters]
            twice = sorted({x for x in labels if labels.count(x) > 1})
            if twice:
                raise ValueError(f"filters lists the same filter twice: {twice}; remove the duplicates")
        for family in families:
            codes = TEXTURE_AGGREGATIONS.get(family)
            if codes is not None and not set(codes) & set(self.aggregation):
                raise ValueError(
                    f"aggregation {list(self.aggregation)} holds none of the codes of {family} "
                    f"({list(codes)}); add one, or leave {family} out of families"
                )
        return self

    def aggregations_for(self, family: str) -> tuple[str, ...]:
        """The requested aggregation codes that ``family`` defines, in the settings' order."""
        codes = TEXTURE_AGGREGATIONS.get(family, ())
        return tuple(a for a in self.aggregation if a in codes)

    def excluded_keys(self) -> frozenset[str]:
        """Machine keys of the features named in ``exclude_features``."""
        return resolve_feature_names(self.exclude_features)

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
