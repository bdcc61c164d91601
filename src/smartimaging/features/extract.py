"""Feature extraction entry point: one image, one ROI -> a tidy table of IBSI 1 features.

Families are plugged in through :data:`FAMILY_TABLE`, which maps a family name (as in
:data:`smartimaging.features.registry.FAMILIES`) to a :class:`FamilySpec`: the family's
feature definitions and a callable ``compute(roi)`` taking a :class:`RoiData` and returning
``{key: value}`` (aggregation ``''``) or ``{(key, aggregation): value}``. Adding a family is
adding one entry to that table. Texture families compute their matrices once for all the
requested aggregations; the discretised grey levels are computed once per ROI and shared by
the texture families and the intensity histogram.

Masks (IBSI 1, "Re-segmentation"): the *morphological mask* is the ROI as given; the
*intensity mask* is the morphological mask restricted to ``resegmentation_range`` when one is
set. Morphology uses the morphological mask (and the intensity mask for its intensity-based
features), GLDZM measures border distances in the morphological mask, every other family uses
the intensity mask.

Output table (:func:`extract`): the columns
:data:`~smartimaging.features.registry.TIDY_COLUMNS` followed by :data:`KEY_COLUMN`:

* ``family``: the IBSI family name (``"GLCM"``, ``"intensity statistics"``) or ``"PET"``;
* ``feature``: the IBSI feature name exactly as the IBSI reference table spells it
  (``"Mean intensity"``, ``"volume fraction at 10% intensity"``); the parameterised IVH
  features that share an IBSI id (V10/V90: BC2M; I10/I90: GBPN) carry the fraction in their
  name;
* ``ibsi_id``: the IBSI identifier (``""`` for non-IBSI features such as the PET metrics);
* ``aggregation``: ``""`` or a texture aggregation code (``2D_avg`` ... ``3D``);
* ``key``: the short machine key (``"stat.mean"``, ``"cm.joint.max"``, ``"PET.SUVmax"``), unique
  within the extractor; :func:`to_wide` names its columns from it.

Non-finite intensities: a NaN or infinite image value inside the ROI is an error
(:class:`~smartimaging.exceptions.FeatureError`) rather than being dropped silently, because a
NaN inside a tumour means the image or the mask is wrong (e.g. a resampling outside the field
of view). Fix it upstream, or exclude those voxels explicitly with
``Mask(mask.array & np.isfinite(image.array), ...)``. Non-finite voxels *outside* the ROI are
ignored by the local intensity sphere means.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

import numpy as np
import pandas as pd

from smartimaging.exceptions import EmptyMaskError, FeatureError, GeometryMismatchError
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
from smartimaging.features.registry import TIDY_COLUMNS, FeatureDef
from smartimaging.features.settings import TEXTURE_AGGREGATIONS, ExtractionSettings
from smartimaging.features.texture_common import Zones, mask_bounds
from smartimaging.image import Image, Mask, check_same_geometry
from smartimaging.preprocess.discretise import discretise
from smartimaging.preprocess.sphere import RADIUS_MM

__all__ = [
    "FAMILY_TABLE",
    "KEY_COLUMN",
    "OUTPUT_COLUMNS",
    "THREAD_MIN_VOXELS",
    "FamilySpec",
    "RoiData",
    "extract",
    "feature_definitions",
    "to_wide",
    "wide_name",
]

_ImageT = TypeVar("_ImageT", bound=Image)

#: A box of a 3D array: one slice per axis (z, y, x).
Box = tuple[slice, slice, slice]

#: Extra column of the tidy table holding the machine key of each feature.
KEY_COLUMN = "key"
#: Columns of the table returned by :func:`extract`.
OUTPUT_COLUMNS: tuple[str, ...] = (*TIDY_COLUMNS, KEY_COLUMN)

#: What a family computer returns: plain keys (aggregation '') or (key, aggregation) pairs.
FamilyResult = Mapping[str, float] | Mapping[tuple[str, str], float]


@dataclass(eq=False)
class RoiData:
    """Everything a family needs about one ROI; derived data are computed once, on demand.

    Parameters
    ----------
    image : Image
        Intensity image.
    morph_mask : Mask
        Morphological mask (the ROI as given).
    intensity_mask : Mask
        Intensity mask (the ROI after range re-segmentation).
    settings : ExtractionSettings
        Extraction settings.
    roi_box : tuple of slice, optional
        The morphological mask's bounding box, when the caller knows it (found otherwise).
    """

    image: Image
    morph_mask: Mask
    intensity_mask: Mask
    settings: ExtractionSettings
    roi_box: Box | None = None

    @property
    def wants_autocorrelation(self) -> bool:
        """Whether Moran's I or Geary's C is wanted (not both excluded)."""
        return not _AUTOCORRELATION <= self.settings.excluded_keys()

    @cached_property
    def values(self) -> np.ndarray:
        """Intensities of the voxels in the intensity mask (1-D float64)."""
        return np.asarray(self.image.array[self.intensity_mask.array], dtype=np.float64)

    @cached_property
    def levels(self) -> tuple[np.ndarray, int]:
        """Discretised grey levels (int32, 0 outside the intensity mask) and their number ``Ng``."""
        s = self.settings
        if s.discretisation == "fixed_bin_number":
            return discretise(
                self.image.array, self.intensity_mask.array, method=s.discretisation, n_bins=s.n_bins
            )
        lower = s.bin_lower_bound
        if lower is None and s.resegmentation_range is not None:
            lower = s.resegmentation_range[0]
        return discretise(
            self.image.array,
            self.intensity_mask.array,
            method=s.discretisation,
            bin_width=s.bin_width,
            lower_bound=lower,
        )

    @cached_property
    def texture_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Grey levels, intensity mask and morphological mask cut to the ROI's bounding box.

        The box is that of the morphological mask, which holds the intensity mask. Texture
        families only read voxels of the masks (and GLDZM the morphological mask's border,
        where everything beyond the box is outside anyway), so cutting changes no value; it
        spares each family its own pass over the margin kept for the local intensity spheres.
        """
        morph = self.morph_mask.array
        box = self.roi_box
        if box is None:
            found = mask_bounds(morph)
            if found is None:
                raise EmptyMaskError("the morphological mask contains no voxel; texture features need one")
            box = found
        levels, _ = self.levels
        # contiguous copies once here, rather than one per texture family
        return (
            np.ascontiguousarray(levels[box]),
            np.ascontiguousarray(self.intensity_mask.array[box]),
            np.ascontiguousarray(morph[box]),
        )

    @cached_property
    def zones(self) -> Zones:
        """Zones of :attr:`texture_arrays` (GLSZM, GLDZM), labelled once; distances in the morphological mask."""
        levels, inten, morph = self.texture_arrays
        return Zones(levels, inten, n_levels=self.levels[1], morphological_mask=morph)

    @cached_property
    def local_peaks(self) -> dict[str, float]:
        """Local and global intensity peaks (shared by the local intensity family and SUVpeak)."""
        return local_intensity.compute_image(self.image, self.intensity_mask, _checked=True)


def _texture(
    module_compute: Callable[..., dict[str, dict[str, float]]], family: str, **options: object
) -> Callable[[RoiData], FamilyResult]:
    """Adapter: run a texture family once for all its requested aggregations."""

    def compute(roi: RoiData) -> FamilyResult:
        _, n_levels = roi.levels
        levels, inten, _ = roi.texture_arrays
        by_agg = module_compute(
            levels,
            inten,
            n_levels=n_levels,
            spacing_zyx=roi.image.spacing_zyx,
            aggregations=roi.settings.aggregations_for(family),
            **{k: (v(roi) if callable(v) else v) for k, v in options.items()},
        )
        keys = next(iter(by_agg.values())).keys()
        return {(k, agg): by_agg[agg][k] for k in keys for agg in by_agg}

    return compute


def _morphology(roi: RoiData) -> FamilyResult:
    return morphology.compute(
        roi.image, roi.morph_mask, roi.intensity_mask, autocorrelation=roi.wants_autocorrelation
    )


def _histogram(roi: RoiData) -> FamilyResult:
    levels, n_levels = roi.levels
    return histogram.compute(levels[roi.intensity_mask.array], n_levels=n_levels)


def _ivh(roi: RoiData) -> FamilyResult:
    s = roi.settings.ivh
    rng = roi.settings.resegmentation_range or (None, None)
    if s.method == "fixed_bin_number":
        return ivh.compute(roi.values, n_bins=s.effective_n_bins, discrete=False)
    if s.method == "fixed_bin_size":
        lower = s.bin_lower_bound if s.bin_lower_bound is not None else rng[0]
        return ivh.compute(roi.values, bin_width=s.bin_width, lower=lower, upper=rng[1], discrete=False)
    return ivh.compute(roi.values, bin_width=s.bin_width, lower=rng[0], upper=rng[1], discrete=True)


@dataclass(frozen=True)
class FamilySpec:
    """How to compute one feature family.

    Parameters
    ----------
    features : tuple of FeatureDef
        Every feature the family can return.
    compute : callable
        ``compute(roi: RoiData) -> {key: value} or {(key, aggregation): value}``.
    modalities : tuple of str
        Modalities for which the family runs by default (when the settings do not list
        families); empty means every modality.
    """

    features: tuple[FeatureDef, ...]
    compute: Callable[[RoiData], FamilyResult]
    modalities: tuple[str, ...] = ()

    @cached_property
    def by_key(self) -> dict[str, FeatureDef]:
        """The family's feature definitions by machine key."""
        return {f.key: f for f in self.features}


#: Moran's I and Geary's C: computed only when at least one of them is wanted.
_AUTOCORRELATION = frozenset({"morph.moran.i", "morph.geary.c"})

#: Family name -> how to compute it. Order here is the row order of the output.
FAMILY_TABLE: dict[str, FamilySpec] = {
    "morphology": FamilySpec(morphology.FEATURES, _morphology),
    local_intensity.FAMILY: FamilySpec(local_intensity.FEATURES, lambda r: dict(r.local_peaks)),
    statistics.FAMILY: FamilySpec(statistics.FEATURES, lambda r: statistics.compute(r.values)),
    "intensity histogram": FamilySpec(histogram.FEATURES, _histogram),
    "intensity-volume histogram": FamilySpec(ivh.FEATURES, _ivh),
    "GLCM": FamilySpec(glcm.FEATURES, _texture(glcm.compute, "GLCM", distance=lambda r: r.settings.distance)),
    "GLRLM": FamilySpec(glrlm.FEATURES, _texture(glrlm.compute, "GLRLM")),
    "GLSZM": FamilySpec(glszm.FEATURES, _texture(glszm.compute, "GLSZM", zones=lambda r: r.zones)),
    "GLDZM": FamilySpec(
        gldzm.FEATURES,
        _texture(
            gldzm.compute,
            "GLDZM",
            morphological_mask=lambda r: r.texture_arrays[2],
            zones=lambda r: r.zones,
        ),
    ),
    "NGTDM": FamilySpec(
        ngtdm.FEATURES, _texture(ngtdm.compute, "NGTDM", distance=lambda r: r.settings.distance)
    ),
    "NGLDM": FamilySpec(
        ngldm.FEATURES,
        _texture(
            ngldm.compute,
            "NGLDM",
            distance=lambda r: r.settings.distance,
            alpha=lambda r: r.settings.ngldm_alpha,
        ),
    ),
    pet.FAMILY: FamilySpec(
        pet.LESION_FEATURES,
        lambda r: pet.lesion_metrics(
            r.image, r.intensity_mask, local_peak=r.local_peaks["loc.peak.local"], _checked=True
        ),
        modalities=("PT",),
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
            f"are not implemented; implemented: {list(FAMILY_TABLE)}"
        )
    return list(settings.families)


def _intensity_mask(image: Image, mask: Mask, settings: ExtractionSettings, where: str) -> Mask:
    """The morphological mask restricted to the re-segmentation range (IBSI range re-segmentation)."""
    if settings.resegmentation_range is None:
        return mask
    lower, upper = settings.resegmentation_range
    keep = mask.array.copy()
    if lower is not None:
        keep &= image.array >= lower
    if upper is not None:
        keep &= image.array <= upper
    if not keep.any():
        lo = "-inf" if lower is None else f"{lower:g}"
        hi = "inf" if upper is None else f"{upper:g}"
        roi_vals = image.array[mask.array]
        raise EmptyMaskError(
            f"no voxel of {where} lies in resegmentation_range [{lo}, {hi}] (ROI intensities span "
            f"{float(roi_vals.min()):g} to {float(roi_vals.max()):g}); widen the range or check the image units"
        )
    return Mask(keep, mask.spacing, mask.origin, mask.direction.copy(), dict(mask.meta))


def _roi_box(image: Image, mask: Mask) -> tuple[Box, Box] | None:
    """The ROI's bounding box plus the 1 cm³ sphere's half-width, clipped to the grid; None if empty.

    Returns that box and, relative to it, the ROI's own bounding box.

    Every family only reads voxels of the masks, except the local intensity sphere means (and
    SUVpeak), which read the image within :data:`~smartimaging.preprocess.sphere.RADIUS_MM` of
    ROI voxels; the margin keeps those, so cropping changes no value but confines all work
    (and every ``nonzero`` over the grid) to the ROI. One pass over the whole mask.
    """
    roi = mask_bounds(mask.array)
    if roi is None:
        return None
    spacing = image.spacing_zyx
    shape = mask.array.shape
    outer = []
    inner = []
    for ax in range(3):
        margin = math.floor(RADIUS_MM / spacing[ax] + 1e-9) + 1
        first, stop = roi[ax].start, roi[ax].stop
        lo = max(first - margin, 0)
        outer.append(slice(lo, min(stop + margin, shape[ax])))
        inner.append(slice(first - lo, stop - lo))
    return (outer[0], outer[1], outer[2]), (inner[0], inner[1], inner[2])


def _crop(image: Image, mask: Mask, intensity_mask: Mask | None, box: Box) -> tuple[Image, Mask, Mask | None]:
    """Image and masks cut to ``box``; positions shift consistently (the origin moves with the crop)."""
    if all(b.start == 0 and b.stop == n for b, n in zip(box, image.shape, strict=True)):
        return image, mask, intensity_mask
    o = image.index_to_physical([box[2].start, box[1].start, box[0].start])
    origin = (float(o[0]), float(o[1]), float(o[2]))

    def crop(img: _ImageT) -> _ImageT:
        return type(img)(
            np.ascontiguousarray(img.array[box]), img.spacing, origin, img.direction.copy(), dict(img.meta)
        )

    return crop(image), crop(mask), None if intensity_mask is None else crop(intensity_mask)


def _crop_to_roi(image: Image, morph_mask: Mask, intensity_mask: Mask) -> tuple[Image, Mask, Mask]:
    """Image and masks cropped to the ROI's bounding box plus the 1 cm³ sphere's half-width.

    See :func:`_roi_box`; the masks must not be empty. Cropping changes no feature value:
    no feature depends on the absolute position.
    """
    boxes = _roi_box(image, morph_mask)
    if boxes is None:
        raise EmptyMaskError("the morphological mask contains no voxel; nothing to crop to")
    cropped_image, cropped_morph, cropped_inten = _crop(image, morph_mask, intensity_mask, boxes[0])
    assert cropped_inten is not None
    return cropped_image, cropped_morph, cropped_inten


#: Smallest ROI (voxels) for which :func:`extract` uses a second thread; below it, starting a
#: thread and handing the GIL over cost more than they save (2-core benchmark machine, STS ROIs
#: of 4-6.5k voxels: even to 1.25x faster; 2k voxels and fewer: up to 1.5x slower).
THREAD_MIN_VOXELS = 5_000

#: Families that share data computed on first use (``RoiData.zones``, ``RoiData.local_peaks``)
#: run one after the other in the same thread, so that it is computed once.
_TOGETHER = (("GLSZM", "GLDZM"), (local_intensity.FAMILY, pet.FAMILY))

#: Rough cost of each family (ms for a 40k-voxel ROI, one thread, 2-core benchmark machine):
#: with two threads the dearest work is handed out first (longest processing time first), each
#: thread taking the next task when it is done, so that both finish at about the same time.
_COST = {
    "morphology": 1.8,
    "GLRLM": 1.8,
    "GLSZM": 1.6,
    "GLCM": 0.8,
    local_intensity.FAMILY: 0.5,
    "intensity histogram": 0.45,
    "NGLDM": 0.4,
    statistics.FAMILY: 0.35,
    "NGTDM": 0.35,
    "intensity-volume histogram": 0.3,
    "GLDZM": 0.05,  # its zones come with GLSZM's
    pet.FAMILY: 0.1,  # its SUVpeak comes with the local intensity peaks
}
#: Moran's I and Geary's C make morphology the dearest task by far (about 10 ms more).
_COST_AUTOCORRELATION = 12.0


def _default_threads() -> int:
    value = os.environ.get("SMARTIMAGING_THREADS", "").strip()
    if not value:
        return 2
    try:
        return max(1, int(value))
    except ValueError:
        raise FeatureError(f"SMARTIMAGING_THREADS must be a whole number of threads, got {value!r}") from None


def _tasks(data: RoiData, families: list[str]) -> list[tuple[str, ...]]:
    """``families`` as tasks for two threads, dearest first (see :data:`_COST`)."""
    tasks: list[tuple[str, ...]] = []
    for family in families:
        group = next((g for g in _TOGETHER if family in g), (family,))
        task = tuple(f for f in group if f in families)
        if task not in tasks:
            tasks.append(task)

    def cost(task: tuple[str, ...]) -> float:
        if "morphology" in task and data.wants_autocorrelation:
            return _COST_AUTOCORRELATION
        return sum(_COST.get(f, 1.0) for f in task)

    return sorted(tasks, key=cost, reverse=True)


def _compute_families(data: RoiData, families: list[str], *, threaded: bool) -> dict[str, FamilyResult]:
    """Every family's result; with ``threaded``, over two threads.

    The second thread starts at once with morphology (which needs no grey levels) while the
    calling thread computes the data the other families share (intensities, grey levels, the
    texture arrays); then both threads take the remaining families, dearest first, until none
    is left. The families run in compiled code and FFTs that release the GIL. Which thread
    computes a family changes no value.
    """
    results: dict[str, FamilyResult] = {}
    if not threaded or len(families) < 2:
        for family in families:
            results[family] = FAMILY_TABLE[family].compute(data)
        return results
    pending = _tasks(data, families)
    first = next((t for t in pending if "morphology" in t), None)
    if first is not None:
        pending.remove(first)
    lock = threading.Lock()
    shared_ready = threading.Event()
    errors: list[BaseException] = []

    def run(task: tuple[str, ...] | None) -> None:
        for family in task or ():
            results[family] = FAMILY_TABLE[family].compute(data)

    def take() -> tuple[str, ...] | None:
        with lock:
            return pending.pop(0) if pending else None

    def give_up() -> None:
        with lock:
            pending.clear()

    def second_thread() -> None:
        try:
            run(first)
            shared_ready.wait()
            while (task := take()) is not None:
                run(task)
        except BaseException as exc:  # re-raised in the calling thread
            errors.append(exc)
            give_up()

    worker = threading.Thread(target=second_thread, name="smartimaging-features", daemon=True)
    worker.start()
    try:
        try:
            # computed once here, before two threads could each compute them
            if any(f in (statistics.FAMILY, "intensity-volume histogram") for f in families):
                _ = data.values
            if any(f == "intensity histogram" or f in TEXTURE_AGGREGATIONS for f in families):
                _ = data.levels
            if any(f in TEXTURE_AGGREGATIONS for f in families):
                _ = data.texture_arrays
        except BaseException:
            give_up()
            raise
        finally:
            shared_ready.set()
        while (task := take()) is not None:
            run(task)
    except BaseException:
        give_up()
        raise
    finally:
        worker.join()
    if errors:
        raise errors[0]
    return results


def extract(
    image: Image,
    mask: Mask,
    *,
    settings: ExtractionSettings | None = None,
    case: str = "",
    roi: str = "",
    modality: str = "",
    image_type: str = "original",
    intensity_mask: Mask | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """Compute IBSI 1 features of ``image`` inside ``mask`` as a tidy table.

    Parameters
    ----------
    image : Image
        Intensity image (SUV for PET, HU for CT).
    mask : Mask
        Region of interest on the same grid (the morphological mask).
    settings : ExtractionSettings, optional
        What to compute and how; defaults to ``ExtractionSettings()`` (every family, PET
        metrics only when ``modality == 'PT'``, fixed bin number 32, 3D aggregations).
    case, roi, modality, image_type : str
        Labels copied into the table (``modality`` as the DICOM Modality, e.g. ``'PT'``).
    intensity_mask : Mask, optional
        Intensity mask from image processing (e.g. the second output of
        :func:`smartimaging.preprocess.resample.preprocess`); it must lie on the image grid and
        within ``mask``. ``settings.resegmentation_range`` is then applied to it. Default: ``mask``.
    threads : int, optional
        Threads for one ROI: with 2 or more, ROIs of at least :data:`THREAD_MIN_VOXELS` voxels
        are computed by two threads (morphology in the second while the calling thread
        discretises, then both take the remaining families, dearest first; the families run in
        compiled code that releases the GIL). Default: the environment variable
        ``SMARTIMAGING_THREADS``, else 2. Batch extraction with several processes passes 1.
        Values do not depend on it.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`OUTPUT_COLUMNS` (the tidy columns, then ``key``), one row per feature
        and aggregation; ``value`` is float64, ``ibsi_id`` is ``''`` for non-IBSI features.

    Raises
    ------
    GeometryMismatchError
        If image and mask grids differ.
    EmptyMaskError
        If the mask is empty, or no voxel lies in the re-segmentation range.
    FeatureError
        If the image holds non-finite values inside the ROI, or a family returns a key it
        does not define.

    References
    ----------
    Zwanenburg A. et al., IBSI 1 reference manual, arXiv:1612.07003: re-segmentation,
    intensity discretisation, feature families and texture aggregation.

    Examples
    --------
    >>> import numpy as np
    >>> from smartimaging.image import Image, Mask
    >>> img = Image(np.arange(27.0).reshape(3, 3, 3), spacing=(1.0, 1.0, 1.0))
    >>> s = ExtractionSettings(families=["intensity statistics"])
    >>> table = extract(img, Mask(img.array > 10, spacing=(1.0, 1.0, 1.0)), settings=s, case="p1")
    >>> row = table.set_index("key").loc["stat.max"]
    >>> row["feature"], row["ibsi_id"], float(row["value"])
    ('Maximum intensity', '84IY', 26.0)
    """
    settings = settings if settings is not None else ExtractionSettings()
    where = ", ".join(f"{k} '{v}'" for k, v in (("case", case), ("roi", roi)) if v) or "unnamed ROI"
    check_same_geometry(image, mask, what=f"image and mask ({where})")
    if intensity_mask is not None:
        check_same_geometry(image, intensity_mask, what=f"image and intensity mask ({where})")
        outside = int(np.count_nonzero(intensity_mask.array & ~mask.array))
        if outside:
            raise GeometryMismatchError(
                f"the intensity mask of {where} has {outside} voxel(s) outside the morphological mask; "
                "pass the masks of preprocess() in the order (image, intensity_mask, morph_mask)"
            )
    # every other check below runs on the ROI's box only: the whole-image work is one any()
    # reduction of the mask and a scan of its set rows, which matters for whole-body images
    boxes = _roi_box(image, mask)
    if boxes is None:
        raise EmptyMaskError(
            f"the mask of {where} contains no voxel: check the ROI name, the contour's frame of "
            "reference, or the segmentation threshold"
        )
    outer, roi_box = boxes
    whole = image
    image, mask, given_inten = _crop(image, mask, intensity_mask, outer)
    if image is whole:  # not cropped: the ROI's box in grid indices
        roi_box = (
            slice(outer[0].start + roi_box[0].start, outer[0].start + roi_box[0].stop),
            slice(outer[1].start + roi_box[1].start, outer[1].start + roi_box[1].stop),
            slice(outer[2].start + roi_box[2].start, outer[2].start + roi_box[2].stop),
        )
    n_bad = int(np.count_nonzero(~np.isfinite(image.array[mask.array])))
    if n_bad:
        raise FeatureError(
            f"the image holds {n_bad} NaN or infinite value(s) inside the ROI ({where}, {mask.n_voxels} voxels); "
            "fill them upstream (e.g. resample with a finite default value) or exclude them explicitly: "
            "Mask(mask.array & np.isfinite(image.array), mask.spacing, mask.origin, mask.direction)"
        )
    base = mask
    if given_inten is not None:
        if not given_inten.array.any():
            raise EmptyMaskError(
                f"the intensity mask of {where} contains no voxel: re-segmentation removed the whole ROI; "
                "widen resegmentation_range or check the image units"
            )
        base = given_inten
    inten = _intensity_mask(image, base, settings, where)
    data = RoiData(image, mask, inten, settings, roi_box=roi_box)
    excluded = settings.excluded_keys()
    families = [
        f for f in _families_to_run(settings, modality) if not FAMILY_TABLE[f].by_key.keys() <= excluded
    ]
    n_threads = _default_threads() if threads is None else threads
    results = _compute_families(data, families, threaded=n_threads > 1 and mask.n_voxels >= THREAD_MIN_VOXELS)
    defs_out: list[FeatureDef] = []
    aggs_out: list[str] = []
    values_out: list[float] = []
    for family in families:
        defs = FAMILY_TABLE[family].by_key
        for raw_key, value in results[family].items():
            key, aggregation = (raw_key, "") if isinstance(raw_key, str) else raw_key
            d = defs.get(key)
            if d is None:
                raise FeatureError(f"family {family!r} returned feature {key!r}, which it does not define")
            if key in excluded:
                continue
            defs_out.append(d)
            aggs_out.append(aggregation)
            values_out.append(value)
    return _table(defs_out, aggs_out, values_out, (case, roi, modality, image_type))


#: Tidy tables without case label and values, by row layout and the other labels (see _table).
_TEMPLATES: dict[tuple[object, ...], pd.DataFrame] = {}
_MAX_TEMPLATES = 64


def _table(
    defs: list[FeatureDef], aggregations: list[str], values: list[float], labels: tuple[str, str, str, str]
) -> pd.DataFrame:
    """The tidy table.

    Building a ~200-row table of string columns costs pandas 0.3 ms (pandas 2) to 0.9 ms
    (pandas 3, which converts every column to its string dtype), more than several feature
    families. Every ROI extracted with the same settings has the same rows, so the table is
    built once per row layout and ``roi``/``modality``/``image_type`` labels, kept, and copied
    for each ROI, which then only sets its ``case`` label and values (a deep copy: nothing
    returned shares memory with the kept table).
    """
    case, roi, modality, image_type = labels
    key = (tuple(d.key for d in defs), tuple(aggregations), roi, modality, image_type)
    template = _TEMPLATES.get(key)
    if template is None:
        n = len(defs)
        columns: dict[str, object] = {
            "case": [case] * n,
            "roi": [roi] * n,
            "modality": [modality] * n,
            "image_type": [image_type] * n,
            "family": [d.family for d in defs],
            "feature": [d.name for d in defs],
            "ibsi_id": [d.ibsi_id for d in defs],
            "aggregation": list(aggregations),
            "value": np.zeros(n),
            KEY_COLUMN: [d.key for d in defs],
        }
        template = pd.DataFrame({c: columns[c] for c in OUTPUT_COLUMNS})
        if len(_TEMPLATES) >= _MAX_TEMPLATES:
            _TEMPLATES.clear()
        _TEMPLATES[key] = template
    table = template.copy()
    if len(table) and table["case"].iat[0] != case:
        table["case"] = case
    table["value"] = np.array(values, dtype=np.float64)
    return table


def wide_name(feature: str, aggregation: str = "", image_type: str = "original", modality: str = "") -> str:
    """Column name of one feature in the wide table.

    ``feature`` is the machine key. The rule is
    ``[{modality}_][{image_type}_]{key with '.' -> '_'}[_{aggregation}]``, where the modality
    prefix is only added on request and the image type only when it is not ``'original'``:
    ``stat.mean`` -> ``stat_mean``, ``PET.SUVmax`` -> ``PET_SUVmax``, ``cm.joint.max`` in
    ``3D_avg`` -> ``cm_joint_max_3D_avg``, the same on a LoG image (``image_type='log_1.5mm'``)
    -> ``log_1.5mm_cm_joint_max_3D_avg``.
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
        Tidy table with the columns :data:`~smartimaging.features.registry.TIDY_COLUMNS` and
        ``key`` (e.g. several :func:`extract` outputs concatenated). Column names come from
        ``key`` (see :func:`wide_name`).
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
    missing = [c for c in OUTPUT_COLUMNS if c not in table.columns]
    if missing:
        raise FeatureError(f"to_wide needs the columns {list(OUTPUT_COLUMNS)}; missing {missing}")
    names = [
        wide_name(k, a, t, m if include_modality else "")
        for k, a, t, m in zip(
            table[KEY_COLUMN], table["aggregation"], table["image_type"], table["modality"], strict=True
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
