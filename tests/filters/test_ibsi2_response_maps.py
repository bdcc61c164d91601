"""IBSI 2 phase 1: response maps of the digital phantoms against the 33 consensus maps.

Pass rule (IBSI 2): every voxel lies within 1 % of the reference map's range (max - min)
of the reference value. Test settings: the shared README's table and the IBSI 2 reference
manual (arXiv:2006.05470). The Riesz tests' settings (9.b.1: LoG sigma 3 mm, second order
along y, zero padding; 10.b.1: Simoncelli level 1, second order along y, periodic) were
confirmed by these maps; orders are given x, y, z.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter

from smartimaging.filters import FilterSettings, apply_filter
from smartimaging.image import Image
from smartimaging.io.nifti import read_image

_ADAPTER: TypeAdapter[Any] = TypeAdapter(FilterSettings)

ZERO, MIRROR, PERIODIC = "constant", "mirror", "periodic"

#: test id -> (phantom, filter settings)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "1_a_1": ("checkerboard", {"filter": "mean", "support": 15, "boundary": ZERO}),
    "1_a_2": ("checkerboard", {"filter": "mean", "support": 15, "boundary": "nearest"}),
    "1_a_3": ("checkerboard", {"filter": "mean", "support": 15, "boundary": PERIODIC}),
    "1_a_4": ("checkerboard", {"filter": "mean", "support": 15, "boundary": MIRROR}),
    "1_b_1": ("impulse", {"filter": "mean", "support": 15, "dimensions": "2D", "boundary": ZERO}),
    "2_a": ("impulse", {"filter": "log", "sigma": 3.0, "cutoff": 4.0, "boundary": ZERO}),
    "2_b": ("checkerboard", {"filter": "log", "sigma": 5.0, "cutoff": 4.0, "boundary": MIRROR}),
    "2_c": (
        "checkerboard",
        {"filter": "log", "sigma": 5.0, "cutoff": 4.0, "dimensions": "2D", "boundary": MIRROR},
    ),
}
for _t, _ph, _k, _b, _d in (
    ("3_a", "impulse", "E5L5S5", ZERO, "3D"),
    ("3_b", "checkerboard", "E3W5R5", MIRROR, "3D"),
    ("3_c", "checkerboard", "L5S5", MIRROR, "2D"),
):
    _base = {"filter": "laws", "kernel": _k, "boundary": _b, "dimensions": _d}
    CASES[f"{_t}_1"] = (_ph, _base)
    CASES[f"{_t}_2"] = (_ph, {**_base, "rotation_invariance": True, "pooling_method": "max"})
    CASES[f"{_t}_3"] = (
        _ph,
        {**_base, "rotation_invariance": True, "pooling_method": "max", "energy_distance": 7},
    )
_G1 = {"filter": "gabor", "sigma": 10.0, "wavelength": 4.0, "gamma": 0.5, "boundary": ZERO}
_G2 = {"filter": "gabor", "sigma": 20.0, "wavelength": 8.0, "gamma": 2.5, "boundary": MIRROR}
CASES.update(
    {
        "4_a_1": ("impulse", {**_G1, "theta": math.pi / 3, "dimensions": "2D"}),
        "4_a_2": ("impulse", {**_G1, "theta_step": "pi/4", "dimensions": "3D", "orthogonal_planes": True}),
        "4_b_1": ("sphere", {**_G2, "theta": "5*pi/4", "dimensions": "2D"}),
        "4_b_2": ("sphere", {**_G2, "theta_step": "pi/8", "dimensions": "3D", "orthogonal_planes": True}),
        "5_a_1": ("impulse", {"filter": "wavelet", "wavelet": "db2", "sub_band": "LHL", "boundary": ZERO}),
        "5_a_2": (
            "impulse",
            {
                "filter": "wavelet",
                "wavelet": "db2",
                "sub_band": "LHL",
                "boundary": ZERO,
                "rotation_invariance": True,
            },
        ),
        "6_a_1": (
            "sphere",
            {"filter": "wavelet", "wavelet": "coif1", "sub_band": "HHL", "boundary": PERIODIC},
        ),
        "6_a_2": (
            "sphere",
            {
                "filter": "wavelet",
                "wavelet": "coif1",
                "sub_band": "HHL",
                "boundary": PERIODIC,
                "rotation_invariance": True,
            },
        ),
        "7_a_1": (
            "checkerboard",
            {
                "filter": "wavelet",
                "wavelet": "haar",
                "sub_band": "LLL",
                "level": 2,
                "boundary": MIRROR,
                "rotation_invariance": True,
            },
        ),
        "7_a_2": (
            "checkerboard",
            {
                "filter": "wavelet",
                "wavelet": "haar",
                "sub_band": "HHH",
                "level": 2,
                "boundary": MIRROR,
                "rotation_invariance": True,
            },
        ),
        "8_a_1": ("checkerboard", {"filter": "simoncelli", "level": 1, "boundary": PERIODIC}),
        "8_a_2": ("checkerboard", {"filter": "simoncelli", "level": 2, "boundary": PERIODIC}),
        "8_a_3": ("checkerboard", {"filter": "simoncelli", "level": 3, "boundary": PERIODIC}),
        "9_a": (
            "impulse",
            {"filter": "riesz_log", "sigma": 3.0, "cutoff": 4.0, "order": [1, 0, 0], "boundary": ZERO},
        ),
        "9_b_1": (
            "sphere",
            {"filter": "riesz_log", "sigma": 3.0, "cutoff": 4.0, "order": [0, 2, 0], "boundary": ZERO},
        ),
        "10_b_1": (
            "pattern_1",
            {"filter": "riesz_simoncelli", "level": 1, "order": [0, 2, 0], "boundary": PERIODIC},
        ),
    }
)
SLOW = {"4_a_2", "4_b_2"}


def test_all_33_reference_maps_have_a_case(shared_dir: Path) -> None:
    maps = sorted(
        p.name.split("-")[0] for p in (shared_dir / "ibsi" / "ibsi2" / "reference_response_maps").iterdir()
    )
    assert len(maps) == 33
    assert sorted(CASES) == maps


@cache
def _phantom(root: Path, name: str) -> Image:
    return read_image(root / "ibsi" / "ibsi2" / "digital_phantoms" / name / "image.nii.gz")


def _params() -> list[Any]:
    marks = {t: [pytest.mark.slow] for t in SLOW}
    return [pytest.param(t, id=t, marks=marks.get(t, [])) for t in CASES]


@pytest.mark.shared
@pytest.mark.parametrize("test_id", _params())
def test_response_map(shared_dir: Path, test_id: str) -> None:
    phantom, params = CASES[test_id]
    image = _phantom(shared_dir, phantom)
    response = apply_filter(image, _ADAPTER.validate_python(params))
    reference = read_image(
        shared_dir / "ibsi" / "ibsi2" / "reference_response_maps" / f"{test_id}-ValidCRM.nii.gz"
    )
    assert response.same_geometry(reference)
    ref = np.asarray(reference.array, dtype=np.float64)
    tolerance = 0.01 * (ref.max() - ref.min())
    dev = np.abs(response.array - ref)
    n_bad = int(np.count_nonzero(dev > tolerance))
    print(
        f"IBSI 2 test {test_id}: max deviation {dev.max() / (ref.max() - ref.min()):.3%} of the reference range"
    )
    assert n_bad == 0, (
        f"test {test_id}: {n_bad} of {ref.size} voxels differ from the consensus map by more than 1 % of its "
        f"range ({tolerance:.4g}); max deviation {dev.max():.4g}"
    )
