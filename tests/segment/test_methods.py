"""Semi-automatic methods on analytic phantoms: each finds the sphere, errors are clear."""

from __future__ import annotations

import numpy as np
import pytest

from smartimaging.exceptions import GeometryMismatchError, SegmentationError
from smartimaging.image import Image, Mask
from smartimaging.segment.adaptive import adaptive_threshold
from smartimaging.segment.components import label_components, remove_small_components
from smartimaging.segment.gradient import gradient_magnitude, gradient_watershed
from smartimaging.segment.methods import METHODS, method_parameters, segment_lesion
from smartimaging.segment.metrics import dice
from smartimaging.segment.percist import liver_reference, percist_threshold
from smartimaging.segment.region_growing import region_growing
from smartimaging.segment.seeds import box_mask, resolve_seed

from ._phantom import SPACING, centre_mm, sphere_phantom


@pytest.fixture(scope="module")
def phantom() -> tuple[Image, Mask]:
    return sphere_phantom(radius_mm=12.0, lesion_suv=8.0, background=1.0)


def test_seed_point_voxel_box_contour_agree(phantom: tuple[Image, Mask]) -> None:
    suv, truth = phantom
    by_voxel = resolve_seed(suv, seed_voxel=(18, 21, 20))
    by_mm = resolve_seed(suv, seed_mm=centre_mm(suv, (20, 21, 18)))
    box = box_mask(suv, corner_a_mm=(-15, -15, -15), corner_b_mm=(15, 15, 15))
    by_box = resolve_seed(suv, box=box)
    by_contour = resolve_seed(suv, contour=truth)
    assert by_voxel.centre == by_mm.centre == by_box.centre == by_contour.centre == (20, 20, 20)
    assert by_box.region.sum() == box.n_voxels
    assert by_contour.region.sum() > truth.n_voxels  # bounding box + margin


def test_seed_errors(phantom: tuple[Image, Mask]) -> None:
    suv, truth = phantom
    with pytest.raises(ValueError, match="outside the image"):
        resolve_seed(suv, seed_mm=(500.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="give one seed"):
        resolve_seed(suv, seed_voxel=(1, 1, 1), contour=truth)
    with pytest.raises(SegmentationError, match="holds no voxel"):
        box_mask(suv, corner_a_mm=(100, 100, 100), corner_b_mm=(120, 120, 120))
    other = Mask(truth.array, (1.0, 1.0, 1.0))
    with pytest.raises(GeometryMismatchError):
        resolve_seed(suv, contour=other)


@pytest.mark.parametrize(
    ("method", "params", "floor"),
    [
        ("fixed", {"threshold": 4.5}, 0.85),
        ("relative", {"fraction": 0.5}, 0.85),
        ("relative", {"fraction": 0.5, "reference": "peak"}, 0.85),
        ("adaptive", {"beta": 0.5}, 0.85),
        ("gradient", {}, 0.85),
        ("region_growing", {"fraction": 0.5}, 0.85),
    ],
)
def test_each_method_finds_the_sphere(
    phantom: tuple[Image, Mask], method: str, params: dict[str, object], floor: float
) -> None:
    suv, truth = phantom
    mask = segment_lesion(suv, method=method, seed_mm=centre_mm(suv, (20, 20, 20)), **params)
    assert dice(mask, truth) >= floor
    assert mask.meta["method"] == method


def test_confidence_connected_on_a_noisy_sphere() -> None:
    suv, truth = sphere_phantom(radius_mm=12.0, lesion_suv=8.0, background=1.0, fwhm_mm=2.0, noise=0.4)
    mask = region_growing(suv, criterion="confidence", multiplier=2.5, seed_voxel=(20, 20, 20))
    assert dice(mask, truth) >= 0.8


def test_fixed_without_seed_keeps_every_hot_voxel() -> None:
    suv, _ = sphere_phantom(radius_mm=8.0, background=0.5)
    mask = segment_lesion(suv, method="fixed", threshold=4.0)
    assert mask.n_voxels == int((suv.array >= 4.0).sum())


def test_relative_40_half_max_edge_is_at_the_true_boundary() -> None:
    # a large blurred sphere on zero background: 50 % of the max falls on the sphere edge
    suv, truth = sphere_phantom(radius_mm=16.0, background=0.0, shape=(44, 44, 44), centre=(22, 22, 22))
    half = segment_lesion(suv, method="relative", fraction=0.5, seed_voxel=(22, 22, 22))
    assert abs(half.volume_ml - truth.volume_ml) / truth.volume_ml < 0.08
    forty = segment_lesion(suv, method="relative", fraction=0.4, seed_voxel=(22, 22, 22))
    assert forty.volume_ml > half.volume_ml


def test_adaptive_threshold_formula() -> None:
    suv, _ = sphere_phantom(radius_mm=12.0, lesion_suv=10.0, background=2.0)
    mask = adaptive_threshold(suv, beta=0.3, seed_voxel=(20, 20, 20))
    values = suv.array
    top = values.max()
    from smartimaging.segment.seeds import component_at

    source = component_at(values >= 0.7 * top, (20, 20, 20))
    assert mask.meta["background_suv"] == pytest.approx(2.0, abs=0.15)  # uniform background in the shell
    assert mask.meta["threshold_suv"] == pytest.approx(
        0.3 * values[source].mean() + mask.meta["background_suv"]
    )
    assert values[mask.array].min() >= mask.meta["threshold_suv"]
    given = adaptive_threshold(suv, beta=0.3, background=2.0, seed_voxel=(20, 20, 20))
    assert given.meta["threshold_suv"] == pytest.approx(0.3 * values[source].mean() + 2.0)


def test_adaptive_rejects_a_background_hotter_than_the_lesion(phantom: tuple[Image, Mask]) -> None:
    suv, _ = phantom
    with pytest.raises(SegmentationError, match="exceeds SUVmax"):
        adaptive_threshold(suv, background=50.0, seed_voxel=(20, 20, 20))
    with pytest.raises(ValueError, match="shell_inner_mm < shell_outer_mm"):
        adaptive_threshold(suv, shell_inner_mm=20, shell_outer_mm=10)


def test_liver_reference_and_percist_threshold() -> None:
    rng = np.random.default_rng(3)
    arr = rng.normal(2.0, 0.2, (30, 30, 30))
    arr[5:9, 5:9, 5:9] = 9.0
    suv = Image(arr, (3.0, 3.0, 3.0))
    point = tuple(float(v) for v in suv.index_to_physical([20, 20, 20]))
    ref = liver_reference(suv, liver_point_mm=point)
    zyx = np.indices(arr.shape)
    inside = sum(((zyx[a] - 20) * 3.0) ** 2 for a in range(3)) <= 15.0**2
    assert ref.n_voxels == int(inside.sum())
    assert ref.mean == pytest.approx(arr[inside].mean())
    assert ref.sd == pytest.approx(arr[inside].std(ddof=1))
    assert ref.threshold == pytest.approx(1.5 * ref.mean + 2 * ref.sd)
    mask = percist_threshold(suv, liver_point_mm=point, seed_voxel=(6, 6, 6))
    assert mask.n_voxels == 64
    with pytest.raises(SegmentationError, match="not measurable by PERCIST"):
        percist_threshold(suv, liver_point_mm=point, seed_voxel=(25, 25, 25), search_radius_mm=3.0)
    with pytest.raises(ValueError, match="exactly one"):
        liver_reference(suv)


def test_gradient_watershed_keeps_a_necrotic_core() -> None:
    suv, truth = sphere_phantom(radius_mm=14.0, lesion_suv=10.0, background=1.0)
    arr = suv.array.copy()
    zyx = np.indices(arr.shape)
    core = sum(((zyx[a] - 20) * 2.0) ** 2 for a in range(3)) <= 6.0**2
    arr[core] = 1.0
    lesion = gradient_watershed(
        suv.with_array(arr), seed_mm=centre_mm(suv, (20, 20, 27)), search_radius_mm=8.0
    )
    assert lesion.array[20, 20, 20]  # the cold core lies inside the lesion
    assert dice(lesion, truth) > 0.8


def test_gradient_magnitude_units() -> None:
    z = np.arange(10, dtype=float)[:, None, None] * np.ones((10, 6, 6))
    g = gradient_magnitude(z * 3.0, (2.0, 1.0, 1.0), sigma_mm=0.0)  # 3 SUV per slice of 2 mm
    assert g[5, 3, 3] == pytest.approx(1.5)


def test_region_growing_respects_the_interval(phantom: tuple[Image, Mask]) -> None:
    suv, _ = phantom
    grown = region_growing(suv, lower=3.0, seed_voxel=(20, 20, 20))
    assert suv.array[grown.array].min() >= 3.0
    with pytest.raises(SegmentationError, match="outside the growing interval"):
        region_growing(suv, lower=1.0, upper=2.0, seed_voxel=(20, 20, 20))
    with pytest.raises(ValueError, match="criterion must be one of"):
        region_growing(suv, criterion="nope", seed_voxel=(20, 20, 20))  # type: ignore[arg-type]


def test_components_min_volume() -> None:
    arr = np.zeros((10, 10, 10), bool)
    arr[1:4, 1:4, 1:4] = True  # 27 voxels
    arr[7, 7, 7] = True  # 1 voxel
    m = Mask(arr, (10.0, 10.0, 10.0))  # 1 ml voxels
    labels = label_components(m)
    assert labels.array.max() == 2 and labels.array[2, 2, 2] == 1 and labels.array[7, 7, 7] == 2
    assert remove_small_components(m, min_volume_ml=2.0).n_voxels == 27
    with pytest.raises(ValueError, match="min_volume_ml"):
        label_components(m, min_volume_ml=-1)


def test_dispatcher_validates_names(phantom: tuple[Image, Mask]) -> None:
    suv, _ = phantom
    with pytest.raises(ValueError, match="method must be one of"):
        segment_lesion(suv, method="magic")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['fractoin'\].*valid"):
        segment_lesion(suv, method="relative", fractoin=0.4)
    with pytest.raises(SegmentationError, match="no connected component of at least"):
        segment_lesion(suv, method="relative", seed_voxel=(20, 20, 20), min_volume_ml=1e6)
    assert set(METHODS) == {"fixed", "relative", "adaptive", "percist", "gradient", "region_growing"}
    assert method_parameters("relative") == {"fraction": 0.4, "reference": "max"}
    assert SPACING == (2.0, 2.0, 2.0)
