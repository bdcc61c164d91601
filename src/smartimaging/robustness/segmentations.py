"""Named, picklable segmentation methods for the robustness study.

Each method takes the (SUV) image and the given contour and returns a mask on the image grid:

* ``contour``: the given contour itself;
* ``relative:F``: :func:`smartimaging.segment.threshold.refine_contour`: the connected region at
  ``F`` x SUVmax around the hottest voxel of the contour, grown or shrunk within the contour's
  bounding box enlarged by 10 mm (``relative:0.4`` = 40 % SUVmax; ``F`` may be given in
  percent: ``relative:40``);
* ``fixed:T``: voxels with SUV >= ``T`` in the contour's bounding box enlarged by 10 mm, the
  26-connected components that touch the contour (``fixed:2.5``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from smartimaging.exceptions import SegmentationError
from smartimaging.image import Image, Mask, check_same_geometry
from smartimaging.segment.threshold import bounding_box, fixed_threshold, refine_contour

__all__ = ["METHOD_KINDS", "SegmentationMethod", "method_name", "parse_method"]

#: Method kinds understood by :func:`parse_method`.
METHOD_KINDS: tuple[str, ...] = ("contour", "relative", "fixed")

_MARGIN_MM = 10.0


@dataclass(frozen=True)
class SegmentationMethod:
    """A segmentation method applied to an image and a given contour.

    Parameters
    ----------
    kind : {'contour', 'relative', 'fixed'}
        See the module docstring.
    value : float
        Fraction of SUVmax (``relative``) or SUV threshold (``fixed``); unused for ``contour``.
    """

    kind: str
    value: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in METHOD_KINDS:
            raise ValueError(f"segmentation kind must be one of {list(METHOD_KINDS)}, got {self.kind!r}")
        if self.kind == "relative" and not 0.0 < self.value <= 1.0:
            raise ValueError(f"a relative threshold is a fraction in (0, 1], got {self.value}")

    @property
    def name(self) -> str:
        """Label of the method (``contour``, ``relative_40pct``, ``fixed_2.5``)."""
        if self.kind == "contour":
            return "contour"
        if self.kind == "relative":
            return f"relative_{self.value * 100:g}pct"
        return f"fixed_{self.value:g}"

    def __call__(self, image: Image, contour: Mask) -> Mask:
        """Segment ``image`` starting from ``contour``.

        Raises
        ------
        SegmentationError
            If the method finds no voxel (e.g. no voxel reaches a fixed threshold).
        EmptyMaskError
            If the contour is empty.
        """
        check_same_geometry(image, contour, what=f"image and contour of segmentation {self.name}")
        contour.require_nonempty(f"contour given to segmentation {self.name}")
        if self.kind == "contour":
            return contour
        if self.kind == "relative":
            return refine_contour(image, contour, fraction=self.value, margin_mm=_MARGIN_MM)
        above = fixed_threshold(
            image, threshold=self.value, within=bounding_box(contour, margin_mm=_MARGIN_MM)
        )
        labels, _ = ndimage.label(above.array, structure=np.ones((3, 3, 3), dtype=bool))
        touching = np.unique(labels[contour.array & above.array])
        touching = touching[touching > 0]
        if touching.size == 0:
            raise SegmentationError(
                f"no voxel of the contour reaches SUV {self.value:g} (segmentation {self.name}); "
                "lower the threshold or drop this method"
            )
        return contour.with_array(np.isin(labels, touching))


def parse_method(
    spec: str | SegmentationMethod | Callable[[Image, Mask], Mask],
) -> Callable[[Image, Mask], Mask]:
    """A method from its text form (``'contour'``, ``'relative:0.4'``, ``'relative:40'``, ``'fixed:2.5'``).

    Objects that are already callables are returned unchanged.

    Raises
    ------
    ValueError
        If the text is not a valid method (the message lists the forms).
    """
    if not isinstance(spec, str):
        return spec
    kind, _, value = spec.strip().partition(":")
    kind = kind.strip().lower()
    forms = "'contour', 'relative:0.4' (or 'relative:40'), 'fixed:2.5'"
    if kind == "contour" and not value:
        return SegmentationMethod("contour")
    if kind not in ("relative", "fixed") or not value:
        raise ValueError(f"segmentation method {spec!r} is not one of the forms {forms}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"segmentation method {spec!r}: {value!r} is not a number; forms: {forms}") from None
    if kind == "relative" and number > 1.0:
        number /= 100.0
    return SegmentationMethod(kind, number)


def method_name(method: Callable[[Image, Mask], Mask]) -> str:
    """Label of a method: its ``name`` attribute, else its ``__name__``."""
    name = getattr(method, "name", None) or getattr(method, "__name__", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"segmentation method {method!r} has no name; give it a 'name' or '__name__'")
    return name
