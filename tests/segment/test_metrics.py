"""Tests of segmentation agreement metrics (segment/metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest

from smartimaging.exceptions import EmptyMaskError, GeometryMismatchError
from smartimaging.image import Mask
from smartimaging.segment.metrics import dice, jaccard, volume_difference


def _m(bits, spacing=(1.0, 1.0, 1.0)):
    return Mask(np.array(bits, dtype=bool).reshape(1, 1, -1), spacing=spacing)


def test_hand_computed():
    a = _m([1, 1, 1, 0, 0])
    b = _m([0, 1, 1, 1, 1])
    # |A| = 3, |B| = 4, |A ∩ B| = 2, |A ∪ B| = 5
    assert dice(a, b) == pytest.approx(4 / 7)
    assert jaccard(a, b) == pytest.approx(2 / 5)
    assert volume_difference(a, b) == pytest.approx(-0.25)
    assert volume_difference(b, a) == pytest.approx(1 / 3)
    assert dice(a, a) == 1.0 and jaccard(a, a) == 1.0 and volume_difference(a, a) == 0.0
    assert dice(a, _m([0, 0, 0, 1, 1])) == 0.0


def test_errors():
    with pytest.raises(EmptyMaskError):
        dice(_m([0, 0]), _m([0, 0]))
    with pytest.raises(EmptyMaskError):
        volume_difference(_m([1, 0]), _m([0, 0]))
    assert dice(_m([1, 0]), _m([0, 0])) == 0.0
    with pytest.raises(GeometryMismatchError):
        jaccard(_m([1, 0]), _m([1, 0], spacing=(1.0, 1.0, 2.0)))
