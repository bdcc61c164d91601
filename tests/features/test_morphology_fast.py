"""The compiled morphology path equals the former implementation (scikit-image, Qhull, NumPy).

``_reference_kernels.morphology_features`` is the family as it was computed before the single
compiled pass: scikit-image's marching cubes, the mesh sums, Qhull on every mesh vertex, all-pairs
distances on its corners, NumPy voxel points and covariance. Every value is compared to 1e-12
relative. Values whose exact result is 0 (the centre of mass shift of a uniform ROI, the missing
PCA axes of a flat or linear ROI) come out as rounding noise of either order of summation, so an
absolute tolerance of 1e-12 (mm, or unitless) applies as well. Two values of the former code were
themselves rounding noise (an ellipsoid density divided by a noise-sized axis, see
``FORMER_NOISE``); they are now the documented 0.
"""

from __future__ import annotations

import numpy as np
import pytest
from _reference_kernels import morphology_features
from scipy.spatial import ConvexHull
from skimage.measure import marching_cubes

from smartimaging.exceptions import GeometryMismatchError
from smartimaging.features import morphology
from smartimaging.image import Image, Mask, check_same_geometry

KEYS = [f.key for f in morphology.FEATURES]


def _ellipsoid(shape: tuple[int, int, int], semi: tuple[float, float, float]) -> np.ndarray:
    z, y, x = np.indices(shape).astype(float)
    c = [(s - 1) / 2 for s in shape]
    return ((z - c[0]) / semi[0]) ** 2 + ((y - c[1]) / semi[1]) ** 2 + ((x - c[2]) / semi[2]) ** 2 <= 1.0


def _case(name: str) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """(morphological mask, intensity mask, spacing x, y, z) of a named test ROI."""
    rng = np.random.default_rng(CASES.index(name))
    iso = (1.0, 1.0, 1.0)
    m = np.zeros((7, 8, 9), dtype=bool)
    if name == "one voxel":
        m[3, 4, 4] = True
        return m, m, (2.0, 1.5, 3.0)
    if name == "line x":
        m[3, 4, 1:8] = True
        return m, m, iso
    if name == "line z":
        m[0:7, 2, 2] = True  # also touches the array border on both ends
        return m, m, (0.8, 0.8, 2.5)
    if name == "flat slab":
        m[2, 1:7, 2:8] = rng.random((6, 6)) < 0.8
        m[2, 3, 4] = True
        return m, m, (0.9765625, 0.9765625, 3.27)
    if name == "thin shell":
        big = _ellipsoid((15, 17, 19), (6.5, 7.5, 8.5))
        small = _ellipsoid((15, 17, 19), (5.5, 6.5, 7.5))
        return big & ~small, big & ~small, iso
    if name == "border touching":
        m = rng.random((5, 6, 7)) < 0.7
        m[0, 0, 0] = m[-1, -1, -1] = True
        return m, m, (1.2, 0.7, 2.0)
    if name == "two components":
        m[1:3, 1:3, 1:3] = True
        m[4:7, 5:8, 6:9] = True
        return m, m, iso
    if name == "random 50 % (ambiguous cubes)":
        m = rng.random((9, 10, 11)) < 0.5
        return m, m, (1.3, 0.6, 2.2)
    if name == "intensity mask subset":
        m = _ellipsoid((9, 11, 13), (4.0, 5.0, 6.0))
        return m, m & (rng.random(m.shape) < 0.7), (1.0, 2.0, 3.0)
    if name == "anisotropic ellipsoid":
        return (
            _ellipsoid((13, 21, 33), (5.2, 9.7, 15.1)),
            _ellipsoid((13, 21, 33), (5.2, 9.7, 15.1)),
            (0.5, 0.75, 1.25),
        )
    if name == "30k blob":
        m = _ellipsoid((40, 48, 56), (16.0, 19.0, 24.0)) & (rng.random((40, 48, 56)) < 0.97)
        return m, m, (1.5, 1.0, 2.0)
    raise AssertionError(name)


CASES = [
    "one voxel",
    "line x",
    "line z",
    "flat slab",
    "thin shell",
    "border touching",
    "two components",
    "random 50 % (ambiguous cubes)",
    "intensity mask subset",
    "anisotropic ellipsoid",
    "30k blob",
]

#: Values the former code returned as rounding noise where a PCA axis is exactly 0 (a line or a
#: plane of voxels at a spacing that is no power of two), and that are now exactly the documented 0.
FORMER_NOISE = {"line z": ("morph.a.dens.aee",), "flat slab": ("morph.v.dens.aee",)}


@pytest.mark.parametrize("name", CASES)
def test_compute_equals_former_implementation(name: str) -> None:
    morph, inten, spacing = _case(name)
    rng = np.random.default_rng(len(name))
    values = rng.normal(size=morph.shape) * 20.0 + 100.0
    if name == "flat slab":
        values = np.full(morph.shape, 3.0)  # uniform: centre of mass shift is 0 (rounding noise)
    img = Image(values, spacing=spacing)
    got = morphology.compute(img, Mask(morph, spacing=spacing), Mask(inten, spacing=spacing))
    expected = morphology_features(values, morph, inten, img.spacing_zyx)
    moran_geary = morphology.spatial_autocorrelation_grid(values, inten, spacing=img.spacing_zyx)
    expected["morph.moran.i"], expected["morph.geary.c"] = moran_geary
    assert list(got) == KEYS
    for key in KEYS:
        if key in FORMER_NOISE.get(name, ()):
            # the former covariance left rounding noise (~1e-32 mm^2) on an axis where every voxel
            # has the same coordinate, and divided by an ellipsoid of that noise; the documented
            # convention (module docstring) is a zero axis and a density of 0
            assert expected[key] > 1e6 and got[key] == 0.0, key
            continue
        assert got[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-12), key
    if name == "30k blob":
        assert 29_000 < int(morph.sum()) < 32_000


def test_compute_accepts_views_and_integer_images() -> None:
    """Non-contiguous mask arrays and non-float images give the values of their float copies."""
    morph, _, spacing = _case("border touching")
    values = np.random.default_rng(3).integers(-100, 400, size=morph.shape).astype(np.int16)
    view = morph[:, ::-1, :]
    img = Image(values[:, ::-1, :], spacing=spacing)
    got = morphology.compute(img, Mask(view, spacing=spacing))
    expected = morphology.compute(
        Image(np.ascontiguousarray(values[:, ::-1, :], dtype=float), spacing=spacing),
        Mask(np.ascontiguousarray(view), spacing=spacing),
    )
    assert got == expected


def _cube_configs(padded: np.ndarray) -> np.ndarray:
    """Lookup index of every cube of a 0/1 volume (corner (dz, dy, dx) -> bit 4 dz + 2 dy + dx)."""
    p = padded.astype(np.int64)
    c = np.zeros(tuple(s - 1 for s in p.shape), dtype=np.int64)
    for bit in range(8):
        dz, dy, dx = bit >> 2 & 1, bit >> 1 & 1, bit & 1
        c |= p[dz : dz + c.shape[0], dy : dy + c.shape[1], dx : dx + c.shape[2]] << bit
    return c


def _table_triangles(padded: np.ndarray) -> np.ndarray:
    """The mesh of the lookup table: triangles (half-voxel units) in cube order z, y, x."""
    counts, tris = morphology._mc_tables()
    configs = _cube_configs(padded)
    out = [tris[c, : counts[c]] + 2 * np.array(idx) for idx, c in np.ndenumerate(configs) if counts[c]]
    return np.concatenate(out)


def _every_configuration_volume() -> np.ndarray:
    """Each of the 256 cube configurations as an isolated 2 x 2 x 2 block (4 x 8 x 8 cells)."""
    vol = np.zeros((4 * 4, 8 * 4, 8 * 4), dtype=np.float32)
    for c in range(256):
        z, y, x = (4 * v + 1 for v in np.unravel_index(c, (4, 8, 8)))
        for bit in range(8):
            vol[z + (bit >> 2 & 1), y + (bit >> 1 & 1), x + (bit & 1)] = c >> bit & 1
    return vol


@pytest.mark.parametrize("kind", ["every configuration", "random 30 %", "random 50 %", "random 70 %"])
def test_lookup_table_reproduces_scikit_image_mesh(kind: str) -> None:
    """Same triangles, same order, same vertex order within each triangle as scikit-image."""
    if kind == "every configuration":
        padded = _every_configuration_volume()
        assert set(np.unique(_cube_configs(padded))) == set(range(256))
    else:
        rng = np.random.default_rng(int(kind.split()[1]))
        padded = np.pad(rng.random((9, 10, 12)) < int(kind.split()[1]) / 100, 1).astype(np.float32)
    verts, faces, _n, _v = marching_cubes(padded, level=0.5)
    assert np.array_equal(2.0 * verts, np.rint(2.0 * verts))
    expected = np.rint(2.0 * verts).astype(np.int64)[faces]
    got = _table_triangles(padded)
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)


def test_cube_centre_vertices_are_no_hull_corners() -> None:
    """Lewiner's extra vertex at a cube centre lies midway between two of that cube's edge midpoints.

    The kernel hands only edge midpoints (voxel faces between inside and outside) to the hull, so
    this is why dropping the centres loses no hull corner.
    """
    counts, tris = morphology._mc_tables()
    with_centre = 0
    for c in range(256):
        v = tris[c, : counts[c]].reshape(-1, 3)
        odd = (v % 2).sum(axis=1)
        assert set(np.unique(odd)) <= {1, 3}  # edge midpoints or the cube centre
        if (odd == 3).any():
            with_centre += 1
            edges = {tuple(p) for p in v[odd == 1]}
            assert any(tuple(2 - np.array(p)) in edges for p in edges), c
    assert with_centre > 0


@pytest.mark.parametrize("seed", range(6))
def test_integer_hull_equals_qhull(seed: int) -> None:
    rng = np.random.default_rng(seed)
    if seed < 2:  # a full lattice: many coplanar and collinear points
        pts = np.argwhere(np.ones((3 + seed, 4, 5), dtype=bool)).astype(np.int64) * 2 + 1
    elif seed < 4:  # points in a few planes
        pts = rng.integers(0, 9, size=(200, 3)).astype(np.int64)
        pts[:, seed - 2] = rng.integers(0, 2, size=200) * 6
    elif seed == 4:  # random cloud
        pts = rng.integers(0, 60, size=(300, 3)).astype(np.int64)
    else:  # a spherical shell: most points are corners, many faces are created and removed
        pts = rng.integers(0, 41, size=(3000, 3)).astype(np.int64)
        dist = np.linalg.norm(pts - 20, axis=1)
        pts = pts[(dist > 17) & (dist < 20)]
    pts = np.unique(pts, axis=0)
    spacing = rng.uniform(0.5, 3.0, size=3)
    mm = (pts * 0.5) * spacing
    ref = ConvexHull(mm)
    faces, is_vertex = morphology._hull_kernel(pts)
    volume, area = morphology._hull_measures(pts, faces, spacing)
    assert volume == pytest.approx(ref.volume, rel=1e-12)
    assert area == pytest.approx(ref.area, rel=1e-12)
    corners = set(ref.vertices.tolist())
    assert corners <= set(np.flatnonzero(is_vertex).tolist())
    # every triangle is outward and no point lies above any of them
    for f in faces:
        a, b, c = pts[f]
        normal = np.cross(b - a, c - a)
        assert np.any(normal != 0)
        assert np.all((pts - a) @ normal <= 0)


def test_geometry_checks_unchanged() -> None:
    """The exact-grid shortcut accepts what check_same_geometry accepts and nothing else."""
    m = np.zeros((4, 4, 4), dtype=bool)
    m[1:3, 1:3, 1:3] = True
    img = Image(np.ones(m.shape), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))
    near = Mask(m, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 1e-4))  # within the 1e-3 mm tolerance
    assert morphology.compute(img, near) == morphology.compute(img, Mask(m, spacing=(1.0, 1.0, 1.0)))
    far = Mask(m, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.5))
    with pytest.raises(GeometryMismatchError) as direct:
        check_same_geometry(img, far, what="image and morphological mask")
    with pytest.raises(GeometryMismatchError) as via_compute:
        morphology.compute(img, far)
    assert str(via_compute.value) == str(direct.value)
    rotated = Mask(m, spacing=(1.0, 1.0, 1.0), direction=np.diag([1.0, -1.0, -1.0]))
    with pytest.raises(GeometryMismatchError, match="intensity mask"):
        morphology.compute(img, Mask(m, spacing=(1.0, 1.0, 1.0)), rotated)
