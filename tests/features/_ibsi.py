"""IBSI 1 digital phantom and its reference table, for tests of every feature family.

Usage from a test module in ``tests/features``::

    from _ibsi import load_digital_phantom, reference_rows, matches

    def test_x(shared_dir):
        image, mask = load_digital_phantom(shared_dir)
        rows = reference_rows(shared_dir, "intensity statistics")

The phantom is used as the IBSI intends it: no resampling, no re-segmentation, no
discretisation; the morphological and intensity masks are the same.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pandas as pd
import SimpleITK as sitk

from smartimaging.features.registry import FAMILIES
from smartimaging.image import Image, Mask

__all__ = ["PHANTOM_DIR", "REFERENCE_CSV", "load_digital_phantom", "matches", "reference_rows"]

PHANTOM_DIR = Path("ibsi") / "ibsi1" / "digital_phantom"
REFERENCE_CSV = Path("ibsi") / "reference" / "ibsi1_digital_phantom_reference.csv"


def load_digital_phantom(shared_dir: Path) -> tuple[Image, Mask]:
    """The IBSI 1 digital phantom (5 x 4 x 4 voxels of 2 mm) and its 74-voxel ROI mask.

    The image is converted to float64; the mask is a :class:`Mask` on the same grid.
    """
    root = Path(shared_dir) / PHANTOM_DIR
    image = Image.from_sitk(sitk.ReadImage(str(root / "image.nii.gz")))
    image = image.with_array(image.array.astype("float64"))
    mask = Mask.from_image(Image.from_sitk(sitk.ReadImage(str(root / "mask.nii.gz"))))
    return image, mask


@functools.cache
def _reference_table(csv_path: Path) -> pd.DataFrame:
    return pd.read_csv(csv_path, dtype={"ibsi_id": str, "aggregation": str}, keep_default_na=False)


def reference_rows(shared_dir: Path, family: str) -> pd.DataFrame:
    """Reference rows of one family (spelled as in ``registry.FAMILIES``).

    Columns: key, ibsi_id, family, feature, aggregation ('' when none), value, tolerance,
    consensus. ``value`` and ``tolerance`` are floats.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid: {list(FAMILIES)}")
    table = _reference_table(Path(shared_dir) / REFERENCE_CSV)
    rows = table[table["family"] == family].reset_index(drop=True)
    return rows.astype({"value": "float64", "tolerance": "float64"})


def _round_sig(x: float, digits: int = 3) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def matches(value: float, reference: float, tolerance: float) -> bool:
    """IBSI match rule: within the tolerance, or equal after rounding to 3 significant digits."""
    if not math.isfinite(value):
        return False
    return abs(value - reference) <= tolerance + 1e-12 * max(1.0, abs(reference)) or (
        _round_sig(value) == _round_sig(reference)
    )
