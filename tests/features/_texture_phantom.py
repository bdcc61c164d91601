"""Loader of the IBSI 1 digital phantom and of its texture reference rows (texture tests only).

Matching rule (:func:`matches`): a computed value matches a reference row when
``abs(value - ref) <= tolerance``. Where the reference table gives tolerance 0, the value is
exact after rounding: the csv shows 3 significant digits, so the value must lie within half a
unit of the last digit shown (e.g. ref ``0.0567`` -> ``abs(value - 0.0567) <= 0.00005``;
ref ``550`` -> ``<= 0.5``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from smartimaging.image import Image, Mask

PHANTOM = Path("ibsi") / "ibsi1" / "digital_phantom"
REFERENCE = Path("ibsi") / "reference" / "ibsi1_digital_phantom_reference.csv"
TEXTURE_FAMILIES = ("GLCM", "GLRLM", "GLSZM", "GLDZM", "NGTDM", "NGLDM")


@dataclass(frozen=True)
class ReferenceRow:
    key: str  # feature key without the aggregation suffix, e.g. 'cm.contrast'
    ibsi_id: str
    family: str
    feature: str
    aggregation: str
    value: float
    value_text: str
    tolerance: float


def load_phantom(shared_dir: Path) -> tuple[Image, Mask]:
    """The digital phantom image and mask (SimpleITK -> Image / Mask)."""
    img = Image.from_sitk(sitk.ReadImage(str(shared_dir / PHANTOM / "image.nii.gz")))
    msk = Mask.from_image(Image.from_sitk(sitk.ReadImage(str(shared_dir / PHANTOM / "mask.nii.gz"))))
    return img, msk


def phantom_levels(shared_dir: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Grey levels, mask and Ng of the phantom (no discretisation: levels are the values)."""
    img, msk = load_phantom(shared_dir)
    levels = np.where(msk.array, img.array, 0).astype(np.int32)
    return levels, msk.array, int(levels[msk.array].max())


def reference_rows(shared_dir: Path, family: str | None = None) -> list[ReferenceRow]:
    """Texture rows of the reference csv (all six families, or one)."""
    rows = []
    with open(shared_dir / REFERENCE, newline="") as fh:
        for r in csv.DictReader(fh):
            if r["family"] not in TEXTURE_FAMILIES or (family and r["family"] != family):
                continue
            agg = r["aggregation"]
            rows.append(
                ReferenceRow(
                    key=r["key"][: -len(agg) - 1],
                    ibsi_id=r["ibsi_id"],
                    family=r["family"],
                    feature=r["feature"],
                    aggregation=agg,
                    value=float(r["value"]),
                    value_text=r["value"],
                    tolerance=float(r["tolerance"]),
                )
            )
    return rows


def allowed_deviation(row: ReferenceRow) -> float:
    """The row's tolerance, or half a unit of the last shown digit when the tolerance is 0."""
    if row.tolerance > 0:
        return row.tolerance
    exponent = Decimal(row.value_text).normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    if Decimal(row.value_text) == 0:
        return 0.5e-3  # '0' given for a 3-significant-digit table: 0.000 shown
    return 0.5 * 10.0**exponent


def matches(value: float, row: ReferenceRow) -> bool:
    """Whether ``value`` matches the reference row (see the module docstring)."""
    return bool(np.isfinite(value)) and abs(value - row.value) <= allowed_deviation(row) * (1 + 1e-9)
