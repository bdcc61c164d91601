"""IBSI 1 digital phantom and its reference rows, for the morphology / histogram / IVH tests.

Pass rule (documented once, used by every reference test here): a computed value matches its
reference row when ``|value - reference| <= tolerance``. Where the table gives tolerance 0 the
reference is exact after rounding, so the allowed difference is half a unit of the last digit
shown in the csv (``0.0946`` -> 5e-5, ``-50`` -> 0.5), which is the IBSI rule "rounds to the
reference at the precision given".
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import SimpleITK as sitk

from smartimaging.image import Image, Mask

PHANTOM_DIR = ("ibsi", "ibsi1", "digital_phantom")
REFERENCE_CSV = ("ibsi", "reference", "ibsi1_digital_phantom_reference.csv")


@dataclass(frozen=True)
class ReferenceRow:
    key: str
    ibsi_id: str
    family: str
    feature: str
    value: float
    value_text: str
    tolerance: float

    @property
    def allowed(self) -> float:
        """Allowed absolute difference (see the module docstring)."""
        if self.tolerance > 0:
            return self.tolerance
        exponent = Decimal(self.value_text).as_tuple().exponent
        assert isinstance(exponent, int)
        return 0.5 * 10.0**exponent

    def matches(self, computed: float) -> bool:
        # a tiny relative slack absorbs float noise on exact boundaries (e.g. 0.23 vs 0.2297...)
        return abs(computed - self.value) <= self.allowed * (1 + 1e-9)


def load_phantom(shared_dir: Path) -> tuple[Image, Mask]:
    """The digital phantom image and its mask (morphological = intensity mask)."""
    folder = shared_dir.joinpath(*PHANTOM_DIR)
    image = Image.from_sitk(sitk.ReadImage(str(folder / "image.nii.gz")))
    mask = Mask.from_image(Image.from_sitk(sitk.ReadImage(str(folder / "mask.nii.gz"))))
    return image, mask


def reference_rows(shared_dir: Path, family: str) -> dict[str, ReferenceRow]:
    """Reference rows of one family, by key."""
    path = shared_dir.joinpath(*REFERENCE_CSV)
    rows: dict[str, ReferenceRow] = {}
    with path.open(newline="") as fh:
        for rec in csv.DictReader(fh):
            if rec["family"] != family:
                continue
            rows[rec["key"]] = ReferenceRow(
                key=rec["key"],
                ibsi_id=rec["ibsi_id"],
                family=rec["family"],
                feature=rec["feature"],
                value=float(rec["value"]),
                value_text=rec["value"],
                tolerance=float(rec["tolerance"]),
            )
    return rows
