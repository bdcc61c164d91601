"""The IBSI 1 digital phantom and its reference table: the one loader and match rule of the tests.

Usage from a test module in ``tests/features``::

    from _ibsi import load_digital_phantom, reference_rows

    def test_x(shared_dir):
        image, mask = load_digital_phantom(shared_dir)
        for row in reference_rows(shared_dir, "intensity statistics"):
            assert row.matches(my_values[row.key]), row.describe(my_values[row.key])

The phantom is used as the IBSI intends it: no resampling, no re-segmentation, no
discretisation; the morphological and intensity masks are the same.

Match rule (IBSI 1 manual, "Reference values"): a computed value matches a reference row when
``|value - reference| <= tolerance``. Where the table gives tolerance 0 the reference value is
exact, and the computed value must round to it at the precision shown. The IBSI reports values
to 3 significant digits, so that precision is the third significant digit of the reference, or
the last digit shown when the table shows more (``2.15`` -> 0.005, ``1490`` -> 5, ``0.6`` ->
0.0005, ``0.0946`` -> 0.00005); a reference of exactly ``0`` must be computed as 0 (up to
floating-point noise, 1e-12). See :func:`allowed_deviation`.
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from smartimaging.features.registry import FAMILIES
from smartimaging.image import Image, Mask

__all__ = [
    "PHANTOM_DIR",
    "REFERENCE_CSV",
    "ReferenceRow",
    "allowed_deviation",
    "load_digital_phantom",
    "matches",
    "phantom_levels",
    "reference_by_key",
    "reference_rows",
]

PHANTOM_DIR = Path("ibsi") / "ibsi1" / "digital_phantom"
REFERENCE_CSV = Path("ibsi") / "reference" / "ibsi1_digital_phantom_reference.csv"
_ZERO_SLACK = 1e-12  # floating-point noise allowed around an exact reference of 0
_RELATIVE_SLACK = 1e-9  # values exactly on a rounding boundary (0.23 vs 0.2297...)


def allowed_deviation(value_text: str, tolerance: float) -> float:
    """Largest allowed ``|value - reference|`` for a reference written as ``value_text``.

    ``tolerance`` when positive; otherwise half a unit of the finer of the third significant
    digit and the last digit shown (module docstring), and 0 for a reference of 0.
    """
    if tolerance > 0:
        return float(tolerance)
    d = Decimal(value_text)
    if d == 0:
        return 0.0
    last_shown = d.normalize().as_tuple().exponent  # trailing zeros (1490) are not precision
    assert isinstance(last_shown, int)
    third_significant = math.floor(math.log10(abs(float(d)))) - 2
    return 0.5 * 10.0 ** min(last_shown, third_significant)


@dataclass(frozen=True)
class ReferenceRow:
    """One row of the IBSI 1 digital-phantom reference table."""

    key: str  # feature key without the aggregation suffix, e.g. 'cm.contrast'
    ibsi_id: str
    family: str
    feature: str
    aggregation: str  # '' when the family has no texture aggregation
    value: float
    value_text: str  # the value as written in the table (its digits set the precision)
    tolerance: float

    @property
    def ref_key(self) -> str:
        """The key as the table writes it: ``key`` or ``key_aggregation``."""
        return f"{self.key}_{self.aggregation}" if self.aggregation else self.key

    @property
    def allowed(self) -> float:
        """Allowed absolute deviation (:func:`allowed_deviation`)."""
        return allowed_deviation(self.value_text, self.tolerance)

    def matches(self, computed: float) -> bool:
        """Whether ``computed`` matches this reference (module docstring)."""
        if not math.isfinite(computed):
            return False
        slack = _ZERO_SLACK if self.value == 0 else self.allowed * _RELATIVE_SLACK
        return abs(computed - self.value) <= self.allowed + slack

    def describe(self, computed: float) -> str:
        """A failure message: the row, the computed value and the allowed deviation."""
        return (
            f"{self.ref_key} ({self.ibsi_id or 'no id'}): got {computed!r}, "
            f"IBSI reference {self.value_text} ± {self.allowed:g}"
        )


def matches(value: float, row: ReferenceRow) -> bool:
    """Function form of :meth:`ReferenceRow.matches`."""
    return row.matches(value)


def load_digital_phantom(shared_dir: Path) -> tuple[Image, Mask]:
    """The IBSI 1 digital phantom (5 x 4 x 4 voxels of 2 mm, float64) and its 74-voxel mask."""
    root = Path(shared_dir) / PHANTOM_DIR
    image = Image.from_sitk(sitk.ReadImage(str(root / "image.nii.gz")))
    image = image.with_array(np.asarray(image.array, dtype=np.float64))
    mask = Mask.from_image(Image.from_sitk(sitk.ReadImage(str(root / "mask.nii.gz"))))
    return image, mask


def phantom_levels(shared_dir: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Grey levels (int32, 0 outside the ROI), mask and ``Ng`` of the phantom.

    No discretisation: the phantom's intensities 1..6 are its grey levels.
    """
    image, mask = load_digital_phantom(shared_dir)
    levels = np.where(mask.array, image.array, 0).astype(np.int32)
    return levels, mask.array, int(levels[mask.array].max())


@functools.cache
def _all_rows(csv_path: Path) -> tuple[ReferenceRow, ...]:
    rows = []
    with csv_path.open(encoding="utf-8", newline="") as fh:
        for rec in csv.DictReader(fh):
            agg = rec["aggregation"]
            rows.append(
                ReferenceRow(
                    key=rec["key"][: -len(agg) - 1] if agg else rec["key"],
                    ibsi_id=rec["ibsi_id"],
                    family=rec["family"],
                    feature=rec["feature"],
                    aggregation=agg,
                    value=float(rec["value"]),
                    value_text=rec["value"],
                    tolerance=float(rec["tolerance"]),
                )
            )
    return tuple(rows)


def reference_rows(shared_dir: Path, family: str | None = None) -> list[ReferenceRow]:
    """Reference rows, all 482 or those of one family (spelled as in ``registry.FAMILIES``)."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid: {list(FAMILIES)}")
    rows = _all_rows(Path(shared_dir) / REFERENCE_CSV)
    return [r for r in rows if family is None or r.family == family]


def reference_by_key(shared_dir: Path, family: str) -> dict[str, ReferenceRow]:
    """Rows of a family without texture aggregation, by feature key."""
    rows = reference_rows(shared_dir, family)
    if any(r.aggregation for r in rows):
        raise ValueError(f"{family} rows carry aggregations; use reference_rows() instead")
    return {r.key: r for r in rows}
