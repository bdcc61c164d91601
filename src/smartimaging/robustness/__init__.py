"""Robustness of radiomic features to segmentation and image perturbations (MIRP-style), with ICCs.

May import io, segment, preprocess and features; never learn.
"""

from __future__ import annotations

from smartimaging.robustness.icc import ICCResult, intraclass_correlation
from smartimaging.robustness.perturb import PERTURBATION_KINDS, Perturbation, perturbation_set
from smartimaging.robustness.segmentations import SegmentationMethod, parse_method
from smartimaging.robustness.study import (
    Condition,
    RobustnessResult,
    build_conditions,
    icc_table,
    robustness_study,
    stable_features,
    write_results,
)

__all__ = [
    "PERTURBATION_KINDS",
    "Condition",
    "ICCResult",
    "Perturbation",
    "RobustnessResult",
    "SegmentationMethod",
    "build_conditions",
    "icc_table",
    "intraclass_correlation",
    "parse_method",
    "perturbation_set",
    "robustness_study",
    "stable_features",
    "write_results",
]
