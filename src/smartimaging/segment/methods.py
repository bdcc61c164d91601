"""One entry point for every semi-automatic method: :func:`segment_lesion`.

============== ============================================================ =========================
method         what                                                          function
============== ============================================================ =========================
fixed          SUV >= ``threshold`` (connected to the seed when one is given) threshold.fixed_threshold
relative       >= ``fraction`` of SUVmax or SUVpeak (``reference``)          threshold.relative_threshold
adaptive       beta x mean(>70 % max) + background (Nestle 2005)             adaptive.adaptive_threshold
percist        >= 1.5 x liver mean + 2 SD (Wahl 2009)                        percist.percist_threshold
gradient       watershed of the gradient magnitude from the maximum          gradient.gradient_watershed
region_growing connected voxels in an SUV interval from the seed             region_growing.region_growing
============== ============================================================ =========================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from smartimaging.exceptions import SegmentationError
from smartimaging.image import Image, Mask
from smartimaging.segment.adaptive import adaptive_threshold
from smartimaging.segment.components import remove_small_components
from smartimaging.segment.gradient import gradient_watershed
from smartimaging.segment.percist import percist_threshold
from smartimaging.segment.region_growing import region_growing
from smartimaging.segment.seeds import component_at, resolve_seed
from smartimaging.segment.threshold import fixed_threshold, relative_threshold

__all__ = ["METHODS", "method_parameters", "segment_lesion"]

_SEED_KEYS = ("seed_voxel", "seed_mm", "box", "contour", "within", "search_radius_mm", "margin_mm")


def _fixed(suv: Image, *, threshold: float = 2.5, **seed: Any) -> Mask:
    if not any(seed.get(k) is not None for k in ("seed_voxel", "seed_mm", "box", "contour")):
        return fixed_threshold(suv, threshold=threshold, within=seed.get("within"))
    s = resolve_seed(suv, **seed)
    if s.suv_max < threshold:
        raise SegmentationError(
            f"the lesion SUVmax near the seed is {s.suv_max:.3g}, below the threshold SUV {threshold:g}"
        )
    values = np.asarray(suv.array, dtype=np.float64)
    keep = component_at(s.region & (values >= threshold), s.centre)
    return Mask(keep, suv.spacing, suv.origin, suv.direction.copy(), {"threshold_suv": float(threshold)})


def _relative(suv: Image, *, fraction: float = 0.4, reference: str = "max", **seed: Any) -> Mask:
    s = resolve_seed(suv, **seed)
    within = Mask(s.region, suv.spacing, suv.origin, suv.direction.copy())
    z, y, x = s.centre
    centre_mm = tuple(float(v) for v in suv.index_to_physical([x, y, z]))
    return relative_threshold(
        suv, fraction=fraction, within=within, seed_mm=centre_mm,  # type: ignore[arg-type]
        search_radius_mm=0.5 * min(suv.spacing), reference=reference,  # type: ignore[arg-type]
    )  # fmt: skip


#: method name -> function (SUV image first, options keyword-only, seed keywords accepted).
METHODS: dict[str, Callable[..., Mask]] = {
    "fixed": _fixed,
    "relative": _relative,
    "adaptive": adaptive_threshold,
    "percist": percist_threshold,
    "gradient": gradient_watershed,
    "region_growing": region_growing,
}


def method_parameters(method: str) -> dict[str, Any]:
    """The method-specific keyword parameters of ``method`` and their defaults (seed keywords excluded)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    sig = inspect.signature(METHODS[method])
    return {
        n: p.default
        for n, p in sig.parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in _SEED_KEYS
    }


def segment_lesion(
    suv: Image,
    *,
    method: str,
    seed_voxel: Sequence[int] | None = None,
    seed_mm: Sequence[float] | None = None,
    box: Mask | None = None,
    contour: Mask | None = None,
    within: Mask | None = None,
    search_radius_mm: float = 15.0,
    margin_mm: float = 10.0,
    min_volume_ml: float = 0.0,
    **params: Any,
) -> Mask:
    """Delineate one lesion (or, for ``fixed`` without a seed, every voxel above the threshold).

    Parameters
    ----------
    suv : Image
        SUV image.
    method : str
        One of :data:`METHODS` (``fixed``, ``relative``, ``adaptive``, ``percist``, ``gradient``,
        ``region_growing``).
    seed_voxel, seed_mm, box, contour, within, search_radius_mm, margin_mm
        The seed, see :func:`smartimaging.segment.seeds.resolve_seed`.
    min_volume_ml : float
        Drop connected components smaller than this (ml) from the result.
    **params
        Method parameters (see :func:`method_parameters`), e.g. ``fraction=0.41, reference='peak'``.

    Returns
    -------
    Mask
        ``meta['method']`` and ``meta['parameters']`` record what was run.

    Raises
    ------
    ValueError
        If the method or a parameter name is unknown (the message lists the valid ones).
    SegmentationError
        If nothing is left after ``min_volume_ml``, or the method fails.
    """
    valid = method_parameters(method)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for method {method!r}; valid: {sorted(valid)}")
    seed = {
        "seed_voxel": seed_voxel, "seed_mm": seed_mm, "box": box, "contour": contour, "within": within,
        "search_radius_mm": search_radius_mm, "margin_mm": margin_mm,
    }  # fmt: skip
    mask = METHODS[method](suv, **params, **seed)
    if min_volume_ml > 0:
        mask = remove_small_components(mask, min_volume_ml=min_volume_ml)
        if mask.n_voxels == 0:
            raise SegmentationError(
                f"method {method!r}: no connected component of at least {min_volume_ml:g} ml is left; "
                "lower min_volume_ml"
            )
    meta = {**mask.meta, "method": method, "parameters": {**valid, **params}}
    return Mask(mask.array, mask.spacing, mask.origin, mask.direction.copy(), meta)
