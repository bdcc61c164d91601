"""Shared machinery of the IBSI 1 texture families (GLCM, GLRLM, GLSZM, GLDZM, NGTDM, NGLDM).

Conventions used by every texture module:

* ``levels`` is an integer array indexed ``(z, y, x)`` holding discretised grey levels
  ``1..n_levels`` inside the ROI (values outside ``mask`` are ignored). Matrices are sized by
  ``n_levels``, so empty grey levels keep their rows (sums over ``i`` run over ``1..Ng``).
* Only ROI voxels count: a neighbour outside the ROI (or outside the image) is never used.
* Work is done on the ROI bounding box, padded with a frame of background (level 0) so the
  Numba kernels never need bounds checks.
* 2D means per slice (in-plane neighbours only, slices along the array's first axis);
  2.5D merges the per-slice matrices; 3D uses the full 3D neighbourhood.

References
----------
Zwanenburg A. et al., The Image Biomarker Standardisation Initiative (IBSI 1), arXiv:1612.07003,
section "Feature calculation", texture matrix aggregation (2D_avg, 2D_smrg, 2.5D_dmrg, 2.5D_vmrg,
3D_avg, 3D_vmrg; 2D, 2.5D, 3D for the rotation-independent matrices).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numba
import numpy as np

from smartimaging.exceptions import ConfigError, EmptyMaskError, FeatureError, GeometryMismatchError

__all__ = [
    "MatrixFeatureNames",
    "bounding_box",
    "chebyshev_neighbourhood",
    "check_distance",
    "dense_to_triples",
    "directions",
    "label_zones",
    "mean_features",
    "mean_rows",
    "prepare_levels",
    "resolve_aggregations",
    "size_features_dense",
    "size_features_pairs",
    "size_matrix_features",
    "triples_from_pairs",
]


# --------------------------------------------------------------------------------------------
# neighbour offsets
# --------------------------------------------------------------------------------------------
def directions(*, three_d: bool, distance: int = 1) -> np.ndarray:
    """Unique co-occurrence / run directions as ``(n, 3)`` int64 offsets ``(dz, dy, dx)``.

    One direction of each opposite pair is kept: 4 in-plane directions (0°, 45°, 90°, 135°)
    for 2D, 13 for 3D. Offsets are multiplied by ``distance`` (Chebyshev distance).
    """
    offs = []
    for dz in (0, 1) if three_d else (0,):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                vec = (dz, dy, dx)
                # keep the first non-zero component positive: one of each pair
                first = next((v for v in vec if v != 0), 0)
                if first > 0:
                    offs.append(vec)
    arr = np.asarray(offs, dtype=np.int64) * int(distance)
    return arr


def chebyshev_neighbourhood(*, three_d: bool, distance: int = 1) -> np.ndarray:
    """All offsets within Chebyshev ``distance`` except the centre, as ``(n, 3)`` int64 array.

    8 offsets in 2D and 26 in 3D for distance 1.
    """
    d = int(distance)
    rng = range(-d, d + 1)
    offs = [
        (dz, dy, dx)
        for dz in (rng if three_d else (0,))
        for dy in rng
        for dx in rng
        if (dz, dy, dx) != (0, 0, 0)
    ]
    return np.asarray(offs, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# input checks and cropping
# --------------------------------------------------------------------------------------------
def prepare_levels(
    levels: np.ndarray, mask: np.ndarray, *, n_levels: int, pad: int = 1, family: str = "texture"
) -> np.ndarray:
    """Validate inputs and return the padded ROI bounding box as an int32 array (0 outside).

    Parameters
    ----------
    levels : numpy.ndarray
        3D integer grey levels ``(z, y, x)``.
    mask : numpy.ndarray
        3D boolean ROI of the same shape.
    n_levels : int
        Number of grey levels ``Ng``; levels inside the ROI must lie in ``1..n_levels``.
    pad : int
        Width of the background frame added on every side.
    family : str
        Family name used in error messages.

    Raises
    ------
    GeometryMismatchError
        Shapes differ or arrays are not 3D.
    EmptyMaskError
        The mask has no voxel.
    FeatureError
        Levels inside the ROI lie outside ``1..n_levels`` or are not integers.
    ConfigError
        ``n_levels`` is not a positive integer.
    """
    lv = np.asarray(levels)
    mk = np.asarray(mask)
    if lv.ndim != 3 or mk.shape != lv.shape:
        raise GeometryMismatchError(
            f"{family}: levels and mask must be 3D arrays (z, y, x) of the same shape, got "
            f"{lv.shape} and {mk.shape}"
        )
    if isinstance(n_levels, bool) or not isinstance(n_levels, int | np.integer) or n_levels < 1:
        raise ConfigError(f"{family}: n_levels must be a positive integer, got {n_levels!r}")
    mk = mk.astype(bool, copy=False)
    if not mk.any():
        raise EmptyMaskError(f"{family}: the ROI mask contains no voxel; texture features need at least one")
    box = bounding_box(mk)
    sub = lv[box]
    sub_mask = mk[box]
    roi_vals = sub[sub_mask]
    if not np.issubdtype(roi_vals.dtype, np.integer):
        if not np.all(np.isfinite(roi_vals)) or not np.all(roi_vals == np.round(roi_vals)):
            raise FeatureError(
                f"{family}: grey levels inside the ROI must be integers 1..n_levels; discretise the "
                "image first with smartimaging.preprocess.discretise.discretise()"
            )
    vmin, vmax = roi_vals.min(), roi_vals.max()
    if vmin < 1 or vmax > n_levels:
        raise FeatureError(
            f"{family}: grey levels inside the ROI span {vmin}..{vmax} but must lie in 1..{n_levels} "
            "(n_levels); discretise the image first or pass the right n_levels"
        )
    out = np.zeros(tuple(s + 2 * pad for s in sub.shape), dtype=np.int32)
    inner = tuple(slice(pad, pad + s) for s in sub.shape)
    out[inner] = np.where(sub_mask, sub, 0).astype(np.int32)
    return out


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """Slices of the smallest box holding every voxel of a non-empty boolean ``mask``."""
    m = np.asarray(mask, dtype=bool)
    out = []
    for ax in range(m.ndim):
        # projections onto each axis: a few boolean passes instead of a full nonzero()
        hits = np.flatnonzero(m.any(axis=tuple(a for a in range(m.ndim) if a != ax)))
        out.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(out)


def resolve_aggregations(
    aggregations: Sequence[str] | str | None, supported: tuple[str, ...], family: str
) -> tuple[str, ...]:
    """Validate requested aggregation codes (``None`` means all that ``family`` supports)."""
    if aggregations is None:
        return supported
    if isinstance(aggregations, str):
        aggregations = (aggregations,)
    out = tuple(aggregations)
    bad = [a for a in out if a not in supported]
    if bad or not out:
        raise ConfigError(
            f"{family}: unknown aggregation(s) {bad or out!r}; valid values are {list(supported)}"
        )
    return tuple(dict.fromkeys(out))


def check_distance(distance: int, family: str, *, only_one: bool = False) -> int:
    """Validate a neighbourhood / co-occurrence distance (a positive integer)."""
    if isinstance(distance, bool) or not isinstance(distance, int | np.integer) or distance < 1:
        raise ConfigError(f"{family}: distance must be a positive integer, got {distance!r}")
    if only_one and distance != 1:
        raise ConfigError(
            f"{family}: only distance=1 is defined (IBSI linkage / run adjacency), got {distance}"
        )
    return int(distance)


def mean_features(rows: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Average feature dictionaries key by key (IBSI 'averaged' aggregation)."""
    rows = list(rows)
    keys = rows[0].keys()
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


# --------------------------------------------------------------------------------------------
# zones (GLSZM, GLDZM)
# --------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def _label_zones_kernel(
    levels: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ny, nx = levels.shape[1], levels.shape[2]
    flat = levels.ravel()
    n = flat.size
    labels = np.zeros(n, dtype=np.int32)
    sz = ny * nx
    flat_off = np.empty(offsets.shape[0], dtype=np.int64)
    for k in range(offsets.shape[0]):
        flat_off[k] = offsets[k, 0] * sz + offsets[k, 1] * nx + offsets[k, 2]
    n_roi = 0
    for p in range(n):
        if flat[p] > 0:
            n_roi += 1
    zone_level = np.empty(n_roi, dtype=np.int64)
    zone_size = np.empty(n_roi, dtype=np.int64)
    zone_z = np.empty(n_roi, dtype=np.int64)
    stack = np.empty(n_roi, dtype=np.int64)
    n_zones = 0
    for p in range(n):
        a = flat[p]
        if a == 0 or labels[p] != 0:
            continue
        n_zones += 1
        labels[p] = n_zones
        top = 0
        stack[top] = p
        top += 1
        size = 0
        while top > 0:
            top -= 1
            q = stack[top]
            size += 1
            for k in range(flat_off.shape[0]):
                r = q + flat_off[k]
                if flat[r] == a and labels[r] == 0:
                    labels[r] = n_zones
                    stack[top] = r
                    top += 1
        zone_level[n_zones - 1] = a
        zone_size[n_zones - 1] = size
        zone_z[n_zones - 1] = p // sz
    return (
        labels.reshape(levels.shape),
        zone_level[:n_zones],
        zone_size[:n_zones],
        zone_z[:n_zones],
    )


def label_zones(
    padded: np.ndarray, *, three_d: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Label zones: connected voxels of equal grey level (8-connected in-plane, or 26 in 3D).

    ``padded`` must carry a background frame of at least one voxel (see :func:`prepare_levels`).

    Returns
    -------
    labels : numpy.ndarray
        int32 array of zone labels ``1..n_zones`` (0 outside the ROI).
    zone_level, zone_size, zone_z : numpy.ndarray
        Grey level, voxel count and slice index (of the padded array) of each zone. In 2D a
        zone never crosses slices.
    """
    offs = chebyshev_neighbourhood(three_d=three_d, distance=1)
    return _label_zones_kernel(np.ascontiguousarray(padded, dtype=np.int32), offs)


# --------------------------------------------------------------------------------------------
# features of (grey level x size) matrices: GLRLM, GLSZM, GLDZM, NGLDM share their formulas
# --------------------------------------------------------------------------------------------
#: Generic names of the quantities returned by :func:`size_matrix_features`; "j" is the second
#: matrix index (run length, zone size, zone distance, dependence count).
MatrixFeatureNames = (
    "sje", "lje", "lge", "hge", "sjlge", "sjhge", "ljlge", "ljhge",
    "glnu", "glnu_norm", "jnu", "jnu_norm", "perc", "gl_var", "j_var", "entr", "energy",
)  # fmt: skip


_N_SIZE_FEATURES = len(MatrixFeatureNames)


@numba.njit(cache=True)
def _cell_features(
    ci: np.ndarray, cj: np.ndarray, cm: np.ndarray, n_cells: int, n_voxels: float, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """The 17 generic features of the aggregated non-zero cells ``(ci, cj, cm)[:n_cells]``."""
    ns = 0.0
    max_i = 0
    max_j = 0
    for c in range(n_cells):
        ns += cm[c]
        max_i = max(max_i, ci[c])
        max_j = max(max_j, cj[c])
    per_i = np.zeros(max_i + 1)
    per_j = np.zeros(max_j + 1)
    sje = lje = lge = hge = sjlge = sjhge = ljlge = ljhge = 0.0
    mu_i = mu_j = entr = energy = 0.0
    for c in range(n_cells):
        fi = float(ci[c])
        fj = float(cj[c])
        p = cm[c] / ns
        i2 = fi * fi
        j2 = fj * fj
        per_i[ci[c]] += cm[c]
        per_j[cj[c]] += cm[c]
        sje += p / j2
        lje += p * j2
        lge += p / i2
        hge += p * i2
        sjlge += p / (i2 * j2)
        sjhge += p * i2 / j2
        ljlge += p * j2 / i2
        ljhge += p * i2 * j2
        mu_i += fi * p
        mu_j += fj * p
        entr -= p * np.log2(p)
        energy += p * p
    gl_var = 0.0
    j_var = 0.0
    for c in range(n_cells):
        p = cm[c] / ns
        gl_var += (ci[c] - mu_i) ** 2 * p
        j_var += (cj[c] - mu_j) ** 2 * p
    sum_i2 = 0.0
    for v in per_i:
        sum_i2 += v * v
    sum_j2 = 0.0
    for v in per_j:
        sum_j2 += v * v
    out[0] = sje
    out[1] = lje
    out[2] = lge
    out[3] = hge
    out[4] = sjlge
    out[5] = sjhge
    out[6] = ljlge
    out[7] = ljhge
    out[8] = sum_i2 / ns
    out[9] = sum_i2 / ns**2
    out[10] = sum_j2 / ns
    out[11] = sum_j2 / ns**2
    out[12] = ns / n_voxels
    out[13] = gl_var
    out[14] = j_var
    out[15] = entr
    out[16] = energy


@numba.njit(cache=True)
def _dense_features_kernel(mats: np.ndarray, n_voxels: np.ndarray) -> np.ndarray:  # pragma: no cover
    n_mats, n_i, n_j = mats.shape
    out = np.empty((n_mats, 17))
    ci = np.empty(n_i * n_j, dtype=np.int64)
    cj = np.empty(n_i * n_j, dtype=np.int64)
    cm = np.empty(n_i * n_j)
    for k in range(n_mats):
        n_cells = 0
        for i in range(n_i):
            for j in range(n_j):
                v = mats[k, i, j]
                if v != 0:
                    ci[n_cells] = i + 1
                    cj[n_cells] = j + 1
                    cm[n_cells] = v
                    n_cells += 1
        _cell_features(ci, cj, cm, n_cells, n_voxels[k], out[k])
    return out


@numba.njit(cache=True)
def _pair_features_kernel(
    i: np.ndarray, j: np.ndarray, w: np.ndarray, n_voxels: float
) -> np.ndarray:  # pragma: no cover - compiled
    width = 0
    for v in j:
        width = max(width, v)
    width += 1
    code = i * width + j
    order = np.argsort(code, kind="mergesort")
    n = code.size
    ci = np.empty(n, dtype=np.int64)
    cj = np.empty(n, dtype=np.int64)
    cm = np.empty(n)
    n_cells = 0
    for t in range(n):
        q = order[t]
        if n_cells > 0 and code[q] == code[order[t - 1]]:
            cm[n_cells - 1] += w[q]
        else:
            ci[n_cells] = i[q]
            cj[n_cells] = j[q]
            cm[n_cells] = w[q]
            n_cells += 1
    out = np.empty(17)
    _cell_features(ci, cj, cm, n_cells, n_voxels, out)
    return out


def size_features_dense(mats: np.ndarray, n_voxels: np.ndarray) -> np.ndarray:
    """Generic features of each dense grey-level x size matrix of a stack, in one compiled pass.

    Parameters
    ----------
    mats : numpy.ndarray
        ``(n_matrices, Ng, Nj)`` counts; cell ``[k, i - 1, j - 1]`` is ``m_ij`` of matrix ``k``.
        Every matrix must hold at least one count.
    n_voxels : numpy.ndarray
        ``Nv`` of each matrix (percentage feature).

    Returns
    -------
    numpy.ndarray
        ``(n_matrices, 17)`` float64, columns in the order of :data:`MatrixFeatureNames`.
    """
    stack = np.ascontiguousarray(mats, dtype=np.float64)
    if stack.ndim != 3:
        raise ValueError(f"mats must be a (n, Ng, Nj) stack, got shape {stack.shape}")
    if stack.shape[0] and not np.all(stack.sum(axis=(1, 2)) > 0):
        raise ValueError("every matrix of the stack must hold at least one count")
    nv = np.ascontiguousarray(n_voxels, dtype=np.float64).reshape(stack.shape[0])
    return np.asarray(_dense_features_kernel(stack, nv))


def size_features_pairs(
    i: np.ndarray, j: np.ndarray, n_voxels: float, weights: np.ndarray | None = None
) -> np.ndarray:
    """Generic features of a grey-level x size matrix given as (possibly repeated) index pairs.

    Parameters
    ----------
    i, j : numpy.ndarray
        Grey level (``1..Ng``) and second index (``>= 1``) of each entry (e.g. one per zone);
        repeated pairs are summed into one cell.
    n_voxels : float
        ``Nv`` for the percentage feature.
    weights : numpy.ndarray, optional
        Count of each entry (default 1).

    Returns
    -------
    numpy.ndarray
        ``(17,)`` float64 in the order of :data:`MatrixFeatureNames`.
    """
    ii = np.ascontiguousarray(i, dtype=np.int64)
    jj = np.ascontiguousarray(j, dtype=np.int64)
    if ii.size == 0:
        raise ValueError("size_features_pairs needs at least one (i, j) entry")
    w = np.ones(ii.size) if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
    return np.asarray(_pair_features_kernel(ii, jj, w, float(n_voxels)))


def size_matrix_features(
    i: np.ndarray, j: np.ndarray, counts: np.ndarray, n_voxels: float
) -> dict[str, float]:
    """Features of a grey-level x size matrix given as sparse triples.

    Parameters
    ----------
    i, j : numpy.ndarray
        Grey level (``1..Ng``) and second index (``>= 1``) of each non-zero cell.
    counts : numpy.ndarray
        Cell counts ``m_ij`` (> 0).
    n_voxels : float
        ``Nv`` for the percentage feature.

    Returns
    -------
    dict
        Keys of :data:`MatrixFeatureNames`: short/long ``j`` emphasis, low/high grey level
        emphasis and their four combinations, grey level and ``j`` non-uniformity (plain and
        normalised), percentage ``Ns / Nv``, grey level and ``j`` variance, entropy (log2) and
        energy (sum of squared probabilities).
    """
    row = size_features_pairs(i, j, n_voxels, weights=counts)
    return dict(zip(MatrixFeatureNames, (float(v) for v in row), strict=True))


def mean_rows(rows: np.ndarray) -> np.ndarray:
    """Column means of a ``(n_rows, n_features)`` array, each column reduced contiguously.

    Reducing each column as one contiguous vector gives exactly ``np.mean`` of the list of
    its values (pairwise summation), the rule of :func:`mean_features`.
    """
    return np.ascontiguousarray(np.asarray(rows, dtype=np.float64).T).mean(axis=1)


def dense_to_triples(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero cells of a dense ``(Ng, Nj)`` matrix as 1-based ``(i, j, count)`` triples."""
    ii, jj = np.nonzero(matrix)
    return ii + 1, jj + 1, matrix[ii, jj]


def triples_from_pairs(
    i: np.ndarray, j: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aggregate repeated ``(i, j)`` pairs into unique cells with summed counts."""
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    if i.size == 0:
        return i, j, np.zeros(0)
    w = np.ones(i.size) if weights is None else np.asarray(weights, dtype=np.float64)
    width = int(j.max()) + 1
    code = i * width + j
    uniq, inv = np.unique(code, return_inverse=True)
    cnt = np.bincount(inv, weights=w)
    return uniq // width, uniq % width, cnt


# --------------------------------------------------------------------------------------------
# texture-a: one-call fast paths of GLCM, GLRLM, NGTDM and NGLDM
# --------------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _pairwise_block(a: np.ndarray, lo: int, n: int) -> float:  # pragma: no cover - compiled
    """NumPy's pairwise sum of a block of at most 128 values (8 interleaved partial sums)."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = 8
    stop = n - (n % 8)
    while i < stop:
        b = lo + i
        r0 += a[b]
        r1 += a[b + 1]
        r2 += a[b + 2]
        r3 += a[b + 3]
        r4 += a[b + 4]
        r5 += a[b + 5]
        r6 += a[b + 6]
        r7 += a[b + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@numba.njit(cache=True, nogil=True)
def pairwise_sum(a: np.ndarray, lo: int, n: int) -> float:  # pragma: no cover - compiled
    """Sum of ``a[lo:lo + n]`` in NumPy's pairwise order, so it equals ``np.sum`` bit for bit.

    NumPy reduces a contiguous float64 vector by blocks of 8 partial sums (up to 128 values)
    and halves longer vectors recursively (the first half a multiple of 8); repeating that
    order makes a compiled mean or sum give exactly the value of the NumPy code it replaces.
    The recursion runs on an explicit stack (Numba's cache cannot reload recursive functions).
    """
    if n <= 128:
        return _pairwise_block(a, lo, n)
    f_lo = np.empty(128, dtype=np.int64)
    f_n = np.empty(128, dtype=np.int64)
    f_state = np.zeros(128, dtype=np.int64)
    vals = np.empty(128)
    top = 0
    n_vals = 0
    f_lo[0] = lo
    f_n[0] = n
    f_state[0] = 0
    while top >= 0:
        m = f_n[top]
        if m <= 128:
            vals[n_vals] = _pairwise_block(a, f_lo[top], m)
            n_vals += 1
            top -= 1
            continue
        half = m // 2
        half -= half % 8
        state = f_state[top]
        if state == 0:
            f_state[top] = 1
            f_lo[top + 1] = f_lo[top]
            f_n[top + 1] = half
            f_state[top + 1] = 0
            top += 1
        elif state == 1:
            f_state[top] = 2
            f_lo[top + 1] = f_lo[top] + half
            f_n[top + 1] = m - half
            f_state[top + 1] = 0
            top += 1
        else:
            vals[n_vals - 2] = vals[n_vals - 2] + vals[n_vals - 1]
            n_vals -= 1
            top -= 1
    return vals[0]


@numba.njit(cache=True, nogil=True)
def mean_rows_into(rows: np.ndarray, n_rows: int, out: np.ndarray) -> None:  # pragma: no cover
    """Column means of ``rows[:n_rows]`` into ``out``, equal bit for bit to :func:`mean_rows`."""
    col = np.empty(n_rows)
    for c in range(rows.shape[1]):
        for r in range(n_rows):
            col[r] = rows[r, c]
        out[c] = pairwise_sum(col, 0, n_rows) / n_rows


@numba.njit(cache=True, nogil=True)
def _pad_roi_kernel(
    levels: np.ndarray, mask: np.ndarray, pad: int
) -> tuple[np.ndarray, int, int, int]:  # pragma: no cover - compiled
    """Bounding box of ``mask`` (uint8), padded by ``pad`` voxels of level 0.

    Returns the padded int32 box (levels inside the mask, 0 elsewhere), the smallest and largest
    level inside the mask and the number of mask voxels (0: empty mask, nothing else is valid).
    Both inputs are C-contiguous; rows are scanned without branches (vectorised), and only rows
    holding mask voxels are searched for the box's x extent.
    """
    nz, ny, nx = levels.shape
    big = np.iinfo(np.int32).max
    small = np.iinfo(np.int32).min
    z0, y0, x0 = nz, ny, nx
    z1 = y1 = x1 = -1
    n_roi = 0
    vmin = big
    vmax = small
    for z in range(nz):
        for y in range(ny):
            lr = levels[z, y]
            mr = mask[z, y]
            c = 0
            lo = big
            hi = small
            for x in range(nx):
                m = mr[x]
                v = lr[x]
                c += m
                lo = min(lo, v if m != 0 else big)
                hi = max(hi, v if m != 0 else small)
            if c == 0:
                continue
            n_roi += c
            vmin = min(vmin, lo)
            vmax = max(vmax, hi)
            z0 = min(z0, z)
            z1 = max(z1, z)
            y0 = min(y0, y)
            y1 = max(y1, y)
            x = 0
            while mr[x] == 0:
                x += 1
            x0 = min(x0, x)
            x = nx - 1
            while mr[x] == 0:
                x -= 1
            x1 = max(x1, x)
    if n_roi == 0:
        return np.zeros((1, 1, 1), dtype=np.int32), 0, 0, 0
    out = np.zeros((z1 - z0 + 1 + 2 * pad, y1 - y0 + 1 + 2 * pad, x1 - x0 + 1 + 2 * pad), dtype=np.int32)
    width = x1 - x0 + 1
    for z in range(z0, z1 + 1):
        for y in range(y0, y1 + 1):
            dst = out[z - z0 + pad, y - y0 + pad, pad : pad + width]
            lr = levels[z, y, x0 : x0 + width]
            mr = mask[z, y, x0 : x0 + width]
            for x in range(width):
                dst[x] = lr[x] if mr[x] != 0 else 0
    return out, int(vmin), int(vmax), n_roi


def prepare_roi(
    levels: np.ndarray, mask: np.ndarray, *, n_levels: int, pad: int = 1, family: str = "texture"
) -> np.ndarray:
    """:func:`prepare_levels` in one compiled call for int32 levels and a boolean mask.

    Same result (a C-contiguous int32 padded box) and the same errors; other dtypes go
    through :func:`prepare_levels`. Views (the ROI box cut from a larger array) are copied to
    contiguous arrays first, which the compiled scan vectorises.

    Raises
    ------
    GeometryMismatchError, EmptyMaskError, FeatureError, ConfigError
        As :func:`prepare_levels`.
    """
    if (
        not isinstance(levels, np.ndarray)
        or not isinstance(mask, np.ndarray)
        or levels.dtype != np.int32
        or mask.dtype != np.bool_
        or levels.ndim != 3
        or mask.shape != levels.shape
        or isinstance(n_levels, bool)
        or not isinstance(n_levels, int | np.integer)
        or n_levels < 1
    ):
        return prepare_levels(levels, mask, n_levels=n_levels, pad=pad, family=family)
    out, vmin, vmax, n_roi = _pad_roi_kernel(
        np.ascontiguousarray(levels), np.ascontiguousarray(mask).view(np.uint8), int(pad)
    )
    if n_roi == 0:
        raise EmptyMaskError(f"{family}: the ROI mask contains no voxel; texture features need at least one")
    if vmin < 1 or vmax > n_levels:
        raise FeatureError(
            f"{family}: grey levels inside the ROI span {vmin}..{vmax} but must lie in 1..{n_levels} "
            "(n_levels); discretise the image first or pass the right n_levels"
        )
    return np.asarray(out)


@numba.njit(cache=True, nogil=True)
def size_row_dense(mat: np.ndarray, n_voxels: float, out: np.ndarray) -> None:  # pragma: no cover
    """The 17 generic features of one dense ``(Ng, Nj)`` int64 count matrix into ``out``.

    Bit for bit the values of :func:`size_features_dense` (same cells, same summation order):
    the non-zero cells are gathered in row-major order without branches, and ``p`` and
    ``log2(p)`` are computed once per distinct small count instead of once per cell.
    """
    n_i, n_j = mat.shape
    n_all = n_i * n_j
    # unsigned indices: NumPy's negative-index wrap-around costs more than the work itself
    u1 = np.uint64(1)
    cell_i = np.empty(n_all, dtype=np.uint64)
    cell_j = np.empty(n_all, dtype=np.uint64)
    n_cells_u = np.uint64(0)
    ns_int = 0
    cmax = 0
    for i in range(n_i):
        for j in range(n_j):
            v = mat[i, j]
            cell_i[n_cells_u] = i
            cell_j[n_cells_u] = j
            n_cells_u += np.uint64(v != 0)
            ns_int += v
            cmax = max(cmax, v)
    n_cells = int(n_cells_u)
    ns = float(ns_int)
    n_memo = min(cmax, 4 * n_cells + 64) + 1
    memo_p = np.empty(n_memo)
    memo_lg = np.empty(n_memo)
    for c in range(1, n_memo):
        memo_p[c] = -1.0
    per_i = np.zeros(n_i)
    per_j = np.zeros(n_j)
    sje = lje = lge = hge = sjlge = sjhge = ljlge = ljhge = 0.0
    mu_i = mu_j = entr = energy = 0.0
    for t in range(n_cells):
        ii = cell_i[t]
        jj = cell_j[t]
        cnt = mat[ii, jj]
        cm = float(cnt)
        fi = float(ii + u1)
        fj = float(jj + u1)
        if cnt < n_memo:
            uc = np.uint64(cnt)
            if memo_p[uc] < 0.0:
                memo_p[uc] = cm / ns
                memo_lg[uc] = np.log2(memo_p[uc])
            p = memo_p[uc]
            lg = memo_lg[uc]
        else:
            p = cm / ns
            lg = np.log2(p)
        i2 = fi * fi
        j2 = fj * fj
        per_i[ii] += cm
        per_j[jj] += cm
        sje += p / j2
        lje += p * j2
        lge += p / i2
        hge += p * i2
        sjlge += p / (i2 * j2)
        sjhge += p * i2 / j2
        ljlge += p * j2 / i2
        ljhge += p * i2 * j2
        mu_i += fi * p
        mu_j += fj * p
        entr -= p * lg
        energy += p * p
    gl_var = 0.0
    j_var = 0.0
    for t in range(n_cells):
        ii = cell_i[t]
        jj = cell_j[t]
        cnt = mat[ii, jj]
        p = memo_p[np.uint64(cnt)] if cnt < n_memo else float(cnt) / ns
        gl_var += (np.int64(ii) + 1 - mu_i) ** 2 * p
        j_var += (np.int64(jj) + 1 - mu_j) ** 2 * p
    sum_i2 = 0.0
    for v in per_i:
        sum_i2 += v * v
    sum_j2 = 0.0
    for v in per_j:
        sum_j2 += v * v
    out[0] = sje
    out[1] = lje
    out[2] = lge
    out[3] = hge
    out[4] = sjlge
    out[5] = sjhge
    out[6] = ljlge
    out[7] = ljhge
    out[8] = sum_i2 / ns
    out[9] = sum_i2 / ns**2
    out[10] = sum_j2 / ns
    out[11] = sum_j2 / ns**2
    out[12] = ns / n_voxels
    out[13] = gl_var
    out[14] = j_var
    out[15] = entr
    out[16] = energy
