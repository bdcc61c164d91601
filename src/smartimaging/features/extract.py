"""Feature extraction entry point: one image, one ROI -> a tidy table of features.

Families are plugged in through :data:`FAMILY_TABLE`, which maps a family name (as in
:data:`smartimaging.features.registry.FAMILIES`) to a :class:`FamilySpec`: the family's
feature definitions and a callable ``compute(image, mask, settings)`` returning
``{key: value}`` (aggregation ``''``) or ``{(key, aggregation): value}``. Adding a family is
adding one entry to that table.

The tidy table has the columns :data:`~smartimaging.features.registry.TIDY_COLUMNS`; its
``feature`` column holds the feature *key* (``"stat.mean"``, ``"PET.SUVmax"``), which is
unique and stable; the IBSI name is ``FeatureDef.name`` (see :func:`feature_definitions`).

Non-finite intensities: a NaN or infinite image value inside the ROI is an error
(:class:`~smartimaging.exceptions.FeatureError`) rather than being dropped silently, because a
NaN inside a tumour means the image or the mask is wrong (e.g. a resampling outside the field
of view). Fix it upstream, or exclude those voxels explicitly with
``Mask(mask.array & np.isfinite(image.array), ...)``. Non-finite voxels *outside* the ROI are
ignored by the local intensity sphere means.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from smartimaging.exceptions import EmptyMaskError, FeatureError
from smartimaging.features import local_intensity, pet, statistics
from smartimaging.features.registry import TIDY_COLUMNS, FeatureDef
from smartimaging.features.settings import ExtractionSettings
from smartimaging.image import Image, Mask, check_same_geometry

__all__ = ["FAMILY_TABLE", "FamilySpec", "extract", "feature_definitions", "to_wide", "wide_name"]

#: What a family computer returns: plain keys (aggregation '') or (key, aggregation) pairs.
FamilyResult = Mapping[str, float] | Mapping[tuple[str, str], float]


@dataclass(frozen=True)
class FamilySpec:
    """How to compute one feature family.

    Parameters
    ----------
    features : tuple of FeatureDef
        Every feature the family can return.
    compute : callable
        ``compute(image, mask, settings) -> {key: value} or {(key, aggregation): value}``.
    modalities : tuple of str
        Modalities for which the family runs by default (when the settings do not list
        families); empty means every modality.
    """

    features: tuple[FeatureDef, ...]
    compute: Callable[[Image, Mask, ExtractionSettings], FamilyResult]
    modalities: tuple[str, ...] = ()


#: Family name -> how to compute it. Order here is the row order of the output.
FAMILY_TABLE: dict[str, FamilySpec] = {
    statistics.FAMILY: FamilySpec(statistics.FEATURES, lambda im, m, s: statistics.compute_image(im, m)),
    local_intensity.FAMILY: FamilySpec(
        local_intensity.FEATURES, lambda im, m, s: local_intensity.compute_image(im, m)
    ),
    pet.FAMILY: FamilySpec(
        pet.LESION_FEATURES, lambda im, m, s: pet.lesion_metrics(im, m), modalities=("PT",)
    ),
}


def feature_definitions() -> dict[str, FeatureDef]:
    """Every feature the extractor can produce, by key."""
    return {f.key: f for spec in FAMILY_TABLE.values() for f in spec.features}


def _families_to_run(settings: ExtractionSettings, modality: str) -> list[str]:
    if settings.families is None:
        return [
            name for name, spec in FAMILY_TABLE.items() if not spec.modalities or modality in spec.modalities
        ]
    missing = [f for f in settings.families if f not in FAMILY_TABLE]
    if missing:
        raise FeatureError(
            f"feature famil{'y' if len(missing) == 1 else 'ies'} {missing} requested in the settings "
            f"are not implemented yet; implemented: {list(FAMILY_TABLE)}"
        )
    return list(settings.families)


def extract(
    image: Image,
    mask: Mask,
    *,
    settings: ExtractionSettings | None = None,
    case: str = "",
    roi: str = "",
    modality: str = "",
    image_type: str = "original",
) -> pd.DataFrame:
    """Compute features of ``image`` inside ``mask`` as a tidy table.

    Parameters
    ----------
    image : Image
        Intensity image (SUV for PET).
    mask : Mask
        Region of interest on the same grid.
    settings : ExtractionSettings, optional
        What to compute; defaults to ``ExtractionSettings()`` (every implemented family, PET
        metrics only when ``modality == 'PT'``).
    case, roi, modality, image_type : str
        Labels copied into the table (``modality`` as the DICOM Modality, e.g. ``'PT'``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`~smartimaging.features.registry.TIDY_COLUMNS`, one row per feature
        (and aggregation); ``value`` is float, ``ibsi_id`` is ``''`` for non-IBSI features.

    Raises
    ------
    GeometryMismatchError
        If image and mask grids differ.
    EmptyMaskError
        If the mask is empty.
    FeatureError
        If the image holds non-finite values inside the ROI, a requested family is not
        implemented, or a family returns a key it does not define.

    Examples
    --------
    >>> import numpy as np
    >>> from smartimaging.image import Image, Mask
    >>> img = Image(np.arange(27.0).reshape(3, 3, 3), spacing=(1.0, 1.0, 1.0))
    >>> table = extract(img, Mask(img.array > 10, spacing=(1.0, 1.0, 1.0)), case="p1", roi="gtv")
    >>> float(table.set_index("feature").loc["stat.max", "value"])
    26.0
    """
    settings = settings if settings is not None else ExtractionSettings()
    where = ", ".join(f"{k} '{v}'" for k, v in (("case", case), ("roi", roi)) if v) or "unnamed ROI"
    check_same_geometry(image, mask, what=f"image and mask ({where})")
    if mask.n_voxels == 0:
        raise EmptyMaskError(
            f"the mask of {where} contains no voxel: check the ROI name, the contour's frame of "
            "reference, or the segmentation threshold"
        )
    n_bad = int(np.count_nonzero(~np.isfinite(image.array[mask.array])))
    if n_bad:
        raise FeatureError(
            f"the image holds {n_bad} NaN or infinite value(s) inside the ROI ({where}, {mask.n_voxels} voxels); "
            "fill them upstream (e.g. resample with a finite default value) or exclude them explicitly: "
            "Mask(mask.array & np.isfinite(image.array), mask.spacing, mask.origin, mask.direction)"
        )
    rows: list[tuple[object, ...]] = []
    for family in _families_to_run(settings, modality):
        spec = FAMILY_TABLE[family]
        defs = {f.key: f for f in spec.features}
        for raw_key, value in spec.compute(image, mask, settings).items():
            key, aggregation = (raw_key, "") if isinstance(raw_key, str) else raw_key
            if key not in defs:
                raise FeatureError(f"family {family!r} returned feature {key!r}, which it does not define")
            d = defs[key]
            rows.append(
                (case, roi, modality, image_type, d.family, d.key, d.ibsi_id, aggregation, float(value))
            )
    table = pd.DataFrame(rows, columns=list(TIDY_COLUMNS))
    return table.astype({"value": "float64"})


def wide_name(feature: str, aggregation: str = "", image_type: str = "original", modality: str = "") -> str:
    """Column name of one feature in the wide table.

    The rule is ``[{modality}_][{image_type}_]{key with '.' -> '_'}[_{aggregation}]``, where
    the modality prefix is only added on request and the image type only when it is not
    ``'original'``: ``stat.mean`` -> ``stat_mean``, ``PET.SUVmax`` -> ``PET_SUVmax``,
    ``cm.joint.max`` in ``3D_avg`` -> ``cm_joint_max_3D_avg``, the same on a LoG image
    (``image_type='log_1.5mm'``) -> ``log_1.5mm_cm_joint_max_3D_avg``.
    """
    parts = [modality] if modality else []
    if image_type and image_type != "original":
        parts.append(image_type)
    parts.append(feature.replace(".", "_"))
    if aggregation:
        parts.append(aggregation)
    return "_".join(parts)


def to_wide(table: pd.DataFrame, *, include_modality: bool = False) -> pd.DataFrame:
    """Pivot a tidy feature table to one row per ``(case, roi)``.

    Parameters
    ----------
    table : pandas.DataFrame
        Tidy table with the columns :data:`~smartimaging.features.registry.TIDY_COLUMNS`
        (e.g. several :func:`extract` outputs concatenated).
    include_modality : bool
        Prefix every column with the modality (needed when one ROI has features from several
        modalities, e.g. PET and CT).

    Returns
    -------
    pandas.DataFrame
        Columns ``case``, ``roi`` then one float column per feature, named by
        :func:`wide_name`, in order of first appearance; rows in order of first appearance.

    Raises
    ------
    FeatureError
        If columns are missing, or two rows of one ``(case, roi)`` map to the same column.
    """
    missing = [c for c in TIDY_COLUMNS if c not in table.columns]
    if missing:
        raise FeatureError(f"to_wide needs the tidy columns {list(TIDY_COLUMNS)}; missing {missing}")
    names = [
        wide_name(f, a, t, m if include_modality else "")
        for f, a, t, m in zip(
            table["feature"], table["aggregation"], table["image_type"], table["modality"], strict=True
        )
    ]
    long = pd.DataFrame(
        {
            "case": table["case"].to_numpy(),
            "roi": table["roi"].to_numpy(),
            "name": names,
            "value": table["value"].to_numpy(dtype=float),
        }
    )
    dup = long.duplicated(["case", "roi", "name"], keep=False)
    if dup.any():
        first = long[dup].iloc[0]
        raise FeatureError(
            f"{int(dup.sum())} rows share a wide column, e.g. {first['name']!r} for case {first['case']!r}, "
            f"roi {first['roi']!r}; pass include_modality=True if several modalities are mixed, or give "
            "the rows distinct roi or image_type labels"
        )
    wide = long.pivot(index=["case", "roi"], columns="name", values="value")
    order_rows = long[["case", "roi"]].drop_duplicates()
    wide = wide.loc[pd.MultiIndex.from_frame(order_rows), list(dict.fromkeys(names))]
    wide.columns.name = None
    return wide.reset_index()
