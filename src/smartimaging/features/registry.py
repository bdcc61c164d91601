"""Feature metadata as data: every feature is described once, with its IBSI identifier.

Family modules (``statistics``, ``glcm``, ...) each define a tuple ``FEATURES`` of
:class:`FeatureDef` and a function computing all their features at once from one matrix.
The extraction output is a tidy table whose columns are :data:`TIDY_COLUMNS`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AGGREGATIONS", "FAMILIES", "TIDY_COLUMNS", "FeatureDef"]

#: Family names exactly as the IBSI reference tables spell them.
FAMILIES: tuple[str, ...] = (
    "morphology",
    "local intensity",
    "intensity statistics",
    "intensity histogram",
    "intensity-volume histogram",
    "GLCM",
    "GLRLM",
    "GLSZM",
    "GLDZM",
    "NGTDM",
    "NGLDM",
    "PET",
)

#: Aggregation codes of the IBSI reference table ('' for families without texture aggregation).
AGGREGATIONS: tuple[str, ...] = (
    "",
    "2D",
    "2D_avg",
    "2D_smrg",
    "2.5D",
    "2.5D_dmrg",
    "2.5D_vmrg",
    "3D",
    "3D_avg",
    "3D_vmrg",
)

#: Columns of the tidy feature table, in order.
TIDY_COLUMNS: tuple[str, ...] = (
    "case",
    "roi",
    "modality",
    "image_type",
    "family",
    "feature",
    "ibsi_id",
    "aggregation",
    "value",
)


@dataclass(frozen=True)
class FeatureDef:
    """Description of one feature.

    Parameters
    ----------
    key : str
        Short machine key, IBSI-style (``"stat.mean"``, ``"cm.contrast"``); unique.
    name : str
        IBSI feature name (``"Mean intensity"``).
    family : str
        One of :data:`FAMILIES`.
    ibsi_id : str
        Four-character IBSI identifier (``"Q4LE"``); empty for non-IBSI features.
    unit : str
        Unit of the value, where it has one (``"mm^3"``, ``"SUV"``).
    """

    key: str
    name: str
    family: str
    ibsi_id: str
    unit: str = ""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown feature family {self.family!r}; expected one of {FAMILIES}")
        if self.ibsi_id and len(self.ibsi_id) != 4:
            raise ValueError(f"IBSI identifiers have 4 characters, got {self.ibsi_id!r} for {self.key}")
