"""Image processing followed by feature extraction, driven by one settings file.

A study settings file is a YAML mapping with up to two sections::

    image_processing:   # ImageProcessingSettings (interpolation, rounding, re-segmentation)
      spacing: [2.0, 2.0, 2.0]
      ...
    features:           # ExtractionSettings (families, discretisation, aggregation, ...)
      discretisation: fixed_bin_size
      ...

See ``examples/ibsi/ibsi1_config_[A-E].yaml`` for the IBSI 1 CT phantom configurations.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from smartimaging.exceptions import ConfigError
from smartimaging.features.extract import _intensity_mask, extract
from smartimaging.features.settings import ExtractionSettings, load_settings
from smartimaging.filters.settings import apply_filter
from smartimaging.filters.settings import image_type as filter_image_type
from smartimaging.image import Image, Mask
from smartimaging.preprocess.resample import (
    ImageProcessingSettings,
    load_image_processing_settings,
    preprocess,
)

__all__ = ["SECTIONS", "extract_with_processing", "load_study_settings"]

#: Top-level sections a study settings file may hold.
SECTIONS: tuple[str, ...] = ("image_processing", "features")


#: IVH method names of the IBSI-style ``ivh.discretisation`` key, mapped to ``IVHSettings.method``.
_IVH_DISCRETISATION = {
    "none": "discrete",
    "fixed_bin_size": "fixed_bin_size",
    "fixed_bin_number": "fixed_bin_number",
}


def _ivh_alias(features: dict[str, Any]) -> dict[str, Any]:
    """Accept ``ivh.discretisation`` (IBSI wording, ``none`` = discrete intensities) for ``ivh.method``."""
    ivh = features.get("ivh")
    if not isinstance(ivh, dict) or "discretisation" not in ivh:
        return features
    if "method" in ivh:
        raise ConfigError("give either ivh.method or ivh.discretisation in the 'features' section, not both")
    value = ivh["discretisation"]
    if value not in _IVH_DISCRETISATION:
        raise ConfigError(
            f"ivh.discretisation {value!r} in the 'features' section is not one of {list(_IVH_DISCRETISATION)}"
        )
    rest = {k: v for k, v in ivh.items() if k != "discretisation"}
    return {**features, "ivh": {**rest, "method": _IVH_DISCRETISATION[value]}}


def load_study_settings(
    path: str | os.PathLike[str],
) -> tuple[ImageProcessingSettings | None, ExtractionSettings]:
    """Read a settings file with ``image_processing`` and ``features`` sections.

    In the ``features`` section, ``ivh.discretisation`` (``none``, ``fixed_bin_size``,
    ``fixed_bin_number``; the IBSI wording) is accepted for ``ivh.method`` (``none`` meaning
    ``discrete``). A file without either section is read as a plain extraction settings file (the format of
    :func:`smartimaging.features.settings.load_settings`), so existing files keep working.

    Parameters
    ----------
    path : str or path-like
        YAML settings file.

    Returns
    -------
    processing : ImageProcessingSettings or None
        The ``image_processing`` section, or ``None`` when the file has none (no processing).
    settings : ExtractionSettings
        The ``features`` section (defaults when it is absent or empty).

    Raises
    ------
    ConfigError
        The file cannot be read or parsed, holds a top-level section other than
        :data:`SECTIONS` beside them, or a section has an unknown key or invalid value.
    """
    p = Path(path)
    try:
        data: Any = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {p}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"settings file {p} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not set(data) & set(SECTIONS):
        return None, load_settings(p)
    unknown = [str(k) for k in data if k not in SECTIONS]
    if unknown:
        raise ConfigError(
            f"settings file {p} has unknown top-level section(s) {unknown}; valid sections: {list(SECTIONS)}"
        )
    processing = load_image_processing_settings(p) if data.get("image_processing") is not None else None
    features = data.get("features")
    if features is None:
        return processing, ExtractionSettings()
    if not isinstance(features, dict):
        raise ConfigError(f"'features' in {p} must be a mapping, got {type(features).__name__}")
    try:
        return processing, ExtractionSettings.model_validate(_ivh_alias(features))
    except ValidationError as exc:
        problems = "; ".join(
            f"features.{'.'.join(str(part) for part in err['loc']) or '(section)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings in {p}: {problems}") from None


def extract_with_processing(
    image: Image,
    mask: Mask,
    *,
    processing: ImageProcessingSettings | None,
    settings: ExtractionSettings | None = None,
    case: str = "",
    roi: str = "",
    modality: str = "",
    image_type: str = "original",
) -> pd.DataFrame:
    """Apply IBSI image processing, then extract features with separate masks.

    Filters (``settings.filters``, IBSI 2): after interpolation the *whole* image is
    filtered; the intensity mask is the one computed from the unfiltered image (including
    ``settings.resegmentation_range``), and ``settings.filter_families`` are computed on the
    filtered intensities inside it, one block of rows per filter with ``image_type`` naming
    the filter (:func:`smartimaging.filters.settings.image_type`). On response maps no range
    re-segmentation is applied, and fixed-bin-size discretisation starts at the ROI minimum.

    Parameters
    ----------
    image : Image
        Intensity image (HU for CT, SUV for PET).
    mask : Mask
        Region of interest on the image grid.
    processing : ImageProcessingSettings or None
        Interpolation, rounding and re-segmentation (see
        :func:`smartimaging.preprocess.resample.preprocess`); ``None`` extracts on the image
        as given.
    settings : ExtractionSettings, optional
        Extraction settings (defaults: ``ExtractionSettings()``).
    case, roi, modality, image_type : str
        Labels copied into the table.

    Returns
    -------
    pandas.DataFrame
        The table of :func:`smartimaging.features.extract.extract`: morphological features on
        the processed morphological mask, intensity and texture features on the intensity mask.

    Raises
    ------
    GeometryMismatchError
        Image and mask grids differ.
    EmptyMaskError
        The mask is empty, before or after processing.
    FeatureError
        See :func:`smartimaging.features.extract.extract`.

    References
    ----------
    IBSI 1 reference manual (arXiv:1612.07003), "Image processing" (interpolation,
    re-segmentation: intensity and morphological masks) and the CT phantom configurations A-E.
    IBSI 2 reference manual (arXiv:2006.05470), "Image processing" (order of filtering).
    """
    settings = settings if settings is not None else ExtractionSettings()
    if processing is None:
        processed = image.with_array(np.asarray(image.array, dtype=np.float64))
        intensity_mask: Mask | None = None
        morph_mask = mask
    else:
        processed, intensity_mask, morph_mask = preprocess(image, mask, processing)
    table = extract(
        processed,
        morph_mask,
        settings=settings,
        image_type=image_type,
        intensity_mask=intensity_mask,
        case=case,
        roi=roi,
        modality=modality,
    )
    if not settings.filters:
        return table
    where = ", ".join(f"{k} '{v}'" for k, v in (("case", case), ("roi", roi)) if v) or "unnamed ROI"
    roi_mask = _intensity_mask(
        processed, intensity_mask if intensity_mask is not None else morph_mask, settings, where
    )
    filtered_settings = settings.model_copy(
        update={
            "families": settings.filter_families,
            "resegmentation_range": None,
            "bin_lower_bound": None,
            "filters": (),
        }
    )
    tables = [table]
    for f in settings.filters:
        response = apply_filter(processed, f)
        tables.append(
            extract(
                response,
                morph_mask,
                settings=filtered_settings,
                image_type=filter_image_type(f),
                intensity_mask=roi_mask,
                case=case,
                roi=roi,
                modality=modality,
            )
        )
    return pd.concat(tables, ignore_index=True)
