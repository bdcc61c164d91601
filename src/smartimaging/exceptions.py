"""Exception hierarchy of smartimaging.

Every error raised on purpose by the package derives from :class:`SmartImagingError`.
Messages say what was found, where (file, tag, key) and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DicomError",
    "EmptyMaskError",
    "FeatureError",
    "GeometryMismatchError",
    "LearningError",
    "MissingTagError",
    "SUVError",
    "SegmentationError",
    "SmartImagingError",
]


class SmartImagingError(Exception):
    """Base class of every error raised by smartimaging."""


class ConfigError(SmartImagingError, ValueError):
    """A study or settings file is invalid (unknown key, wrong value)."""


class DicomError(SmartImagingError):
    """A DICOM file or series cannot be read or is inconsistent."""


class MissingTagError(DicomError):
    """A DICOM attribute needed for a computation is absent or empty."""


class SUVError(SmartImagingError):
    """Standardised uptake values cannot be computed reliably."""


class GeometryMismatchError(SmartImagingError, ValueError):
    """Two images (e.g. an image and its mask) do not share a voxel grid."""


class EmptyMaskError(SmartImagingError, ValueError):
    """A region of interest contains no voxel."""


class SegmentationError(SmartImagingError):
    """A segmentation method could not produce a mask."""


class FeatureError(SmartImagingError):
    """A feature cannot be computed from the given image and mask."""


class LearningError(SmartImagingError):
    """A model cannot be fitted or validated on the given data."""
