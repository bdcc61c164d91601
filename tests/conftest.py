"""Shared test fixtures.

Reference data lives in ``../shared`` beside the repository (or where ``SMARTIMAGING_SHARED``
points). Tests that need it take the ``shared_dir`` fixture and are skipped, with the reason
printed, when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_root() -> Path:
    env = os.environ.get("SMARTIMAGING_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Root of the shared reference data; skips the test when it is not there."""
    root = _shared_root()
    if not root.is_dir():
        pytest.skip(f"shared reference data not found at {root} (set SMARTIMAGING_SHARED to its path)")
    return root
