"""smartimaging: PET/CT radiomics and AI, from DICOM to a validated, explained model and a report.

Data flows one way: ``io`` → ``segment`` → ``features`` → ``learn`` → ``report``; ``study`` and
``cli`` sit on top.
"""

from __future__ import annotations

import logging
import platform
import sys
from importlib import metadata

from smartimaging.exceptions import SmartImagingError
from smartimaging.image import Image, Mask, resample_to

__all__ = ["Image", "Mask", "SmartImagingError", "__version__", "resample_to", "show_versions", "versions"]

try:
    __version__ = metadata.version("smartimaging")
except metadata.PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.4.1"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_DEPENDENCIES = (
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "pydicom",
    "SimpleITK",
    "highdicom",
    "scikit-learn",
    "scikit-image",
    "numba",
    "pydantic",
    "PyYAML",
    "matplotlib",
    "jinja2",
    "rich",
    "typer",
)


def versions() -> dict[str, str]:
    """Versions of Python, smartimaging and its dependencies (for provenance records)."""
    out = {"python": sys.version.split()[0], "platform": platform.platform(), "smartimaging": __version__}
    for name in _DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def show_versions() -> None:
    """Print the versions returned by :func:`versions` (for bug reports)."""
    for key, value in versions().items():
        print(f"{key:>14}: {value}")
