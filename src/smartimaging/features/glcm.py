"""Grey level co-occurrence matrix (GLCM) features, IBSI 1 section "Grey level co-occurrence based features" (LFYI).

The matrix counts, for each direction, the pairs of ROI voxels ``(v, v + d)`` at Chebyshev
distance ``distance`` along that direction, symmetrically (each pair adds to ``(i, j)`` and
``(j, i)``). Both voxels must lie inside the ROI. It is sized ``Ng x Ng`` with ``Ng = n_levels``.

Aggregations (IBSI): ``2D_avg`` per slice and direction, features averaged; ``2D_smrg`` per
slice with the 4 directions merged, averaged over slices; ``2.5D_dmrg`` per direction merged
over slices, averaged over directions; ``2.5D_vmrg`` one matrix; ``3D_avg`` 13 directions
averaged; ``3D_vmrg`` 13 directions merged.

Conventions for degenerate input (so every value is finite):

* Matrices without any pair (a slice with a lone voxel, a direction without neighbours) are left
  out of the averages and merges, as MIRP does.
* When an aggregation has no pair at all (for example a one-voxel ROI), the matrix used is the
  diagonal matrix of the ROI grey-level histogram: every voxel co-occurs only with itself. This
  describes texture-less input; for a one-voxel or flat ROI it is the single cell ``(g, g)``.
* Flat matrices (one grey level): correlation is 1, information correlation 1 is 1 and
  information correlation 2 is 0 (MIRP conventions); every other feature follows its formula.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from smartimaging.features.registry import FeatureDef
from smartimaging.features.texture_common import (
    check_distance,
    count_memo,
    directions,
    mean_rows_into,
    memo_p,
    memo_p_log2,
    prepare_roi,
    resolve_aggregations,
)

__all__ = [
    "AGGREGATIONS",
    "FEATURES",
    "compute",
    "cooccurrence_matrices",
    "features_from_matrix",
    "features_of_matrices",
]

AGGREGATIONS: tuple[str, ...] = ("2D_avg", "2D_smrg", "2.5D_dmrg", "2.5D_vmrg", "3D_avg", "3D_vmrg")

_SPEC = (
    ("cm.joint.max", "Joint maximum", "GYBY"),
    ("cm.joint.avg", "Joint average", "60VM"),
    ("cm.joint.var", "Joint variance", "UR99"),
    ("cm.joint.entr", "Joint entropy", "TU9B"),
    ("cm.diff.avg", "Difference average", "TF7R"),
    ("cm.diff.var", "Difference variance", "D3YU"),
    ("cm.diff.entr", "Difference entropy", "NTRS"),
    ("cm.sum.avg", "Sum average", "ZGXS"),
    ("cm.sum.var", "Sum variance", "OEEB"),
    ("cm.sum.entr", "Sum entropy", "P6QZ"),
    ("cm.energy", "Angular second moment", "8ZQL"),
    ("cm.contrast", "Contrast", "ACUI"),
    ("cm.dissimilarity", "Dissimilarity", "8S9J"),
    ("cm.inv.diff", "Inverse difference", "IB1Z"),
    ("cm.inv.diff.norm", "Normalised inverse difference", "NDRX"),
    ("cm.inv.diff.mom", "Inverse difference moment", "WF0Z"),
    ("cm.inv.diff.mom.norm", "Normalised inverse difference moment", "1QCO"),
    ("cm.inv.var", "Inverse variance", "E8JP"),
    ("cm.corr", "Correlation", "NI2N"),
    ("cm.auto.corr", "Autocorrelation", "QWB0"),
    ("cm.clust.tend", "Cluster tendency", "DG8W"),
    ("cm.clust.shade", "Cluster shade", "7NFM"),
    ("cm.clust.prom", "Cluster prominence", "AE86"),
    ("cm.info.corr.1", "Information correlation 1", "R8DG"),
    ("cm.info.corr.2", "Information correlation 2", "JN9H"),
)

#: The 25 GLCM features.
FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(k, n, "GLCM", i) for k, n, i in _SPEC)


@numba.njit(cache=True, nogil=True)
def _cooccurrence_kernel(levels: np.ndarray, offsets: np.ndarray, n_levels: int) -> np.ndarray:
    ny, nx = levels.shape[1], levels.shape[2]
    nd = offsets.shape[0]
    out = np.zeros((nd, n_levels, n_levels), dtype=np.int64)
    flat = levels.ravel()
    flat_off = np.empty(offsets.shape[0], dtype=np.int64)
    for k in range(offsets.shape[0]):
        flat_off[k] = (offsets[k, 0] * ny + offsets[k, 1]) * nx + offsets[k, 2]
    # flat indices: the background frame keeps every neighbour of a ROI voxel inside the array
    for p in range(flat.size):
        a = flat[p]
        if a == 0:
            continue
        for k in range(nd):
            b = flat[p + flat_off[k]]
            if b > 0:
                out[k, a - 1, b - 1] += 1
                out[k, b - 1, a - 1] += 1
    return out


def cooccurrence_matrices(
    padded: np.ndarray, *, n_levels: int, three_d: bool, distance: int = 1
) -> np.ndarray:
    """Symmetric co-occurrence counts per direction, ``(n_directions, Ng, Ng)`` int64.

    ``padded`` is the output of :func:`~smartimaging.features.texture_common.prepare_levels`
    with ``pad >= distance``. In 2D only in-plane directions are used (pass one slice, or a
    block: pairs never cross slices).
    """
    offs = directions(three_d=three_d, distance=distance)
    return _cooccurrence_kernel(np.ascontiguousarray(padded, dtype=np.int32), offs, int(n_levels))


_KEYS: tuple[str, ...] = tuple(k for k, _, _ in _SPEC)


@numba.njit(cache=True, nogil=True, inline="always")
def _store_row(
    row: np.ndarray,
    p_diff: np.ndarray,
    p_sum: np.ndarray,
    pmax: float,
    mu: float,
    joint_var: float,
    hxy: float,
    energy: float,
    contrast: float,
    dissim: float,
    inv_diff: float,
    inv_diff_norm: float,
    inv_diff_mom: float,
    inv_diff_mom_norm: float,
    auto: float,
    mu_i: float,
    mu_j: float,
    var_i: float,
    var_j: float,
    hx: float,
    hy: float,
    tend: float,
    shade: float,
    prom: float,
    n_cells: int,
) -> None:  # pragma: no cover - compiled
    """The 25 features (columns in :data:`_SPEC` order) into ``row``, from the sums over the cells.

    Shared by :func:`_features_kernel` and :func:`_glcm_row`: the diagonal (``p_diff``, length
    ``Ng``) and cross-diagonal (``p_sum``, length ``2 Ng + 1``) probabilities give their moments
    and entropies here; the correlation and the information correlations come from the
    marginal moments and entropies.
    """
    ng = p_diff.shape[0]
    diff_avg = 0.0
    diff_entr = 0.0
    inv_var = 0.0
    for d in range(ng):
        q = p_diff[d]
        diff_avg += d * q
        if q > 0:
            diff_entr -= q * np.log2(q)
            if d > 0:
                inv_var += q / float(d) ** 2
    diff_var = 0.0
    for d in range(ng):
        diff_var += (d - diff_avg) ** 2 * p_diff[d]
    sum_avg = 0.0
    sum_entr = 0.0
    for s in range(2 * ng + 1):
        q = p_sum[s]
        sum_avg += s * q
        if q > 0:
            sum_entr -= q * np.log2(q)
    sum_var = 0.0
    for s in range(2 * ng + 1):
        sum_var += (s - sum_avg) ** 2 * p_sum[s]
    mutual = max(hx + hy - hxy, 0.0)
    hmax = max(hx, hy)
    if var_i > 0 and var_j > 0:
        corr = (auto - mu_i * mu_j) / np.sqrt(var_i * var_j)
    else:
        corr = 1.0
    row[0] = pmax
    row[1] = mu
    row[2] = joint_var
    row[3] = hxy
    row[4] = diff_avg
    row[5] = diff_var
    row[6] = diff_entr
    row[7] = sum_avg
    row[8] = sum_var
    row[9] = sum_entr
    row[10] = energy
    row[11] = contrast
    row[12] = dissim
    row[13] = inv_diff
    row[14] = inv_diff_norm
    row[15] = inv_diff_mom
    row[16] = inv_diff_mom_norm
    row[17] = inv_var
    row[18] = corr
    row[19] = auto
    row[20] = tend
    row[21] = shade
    row[22] = prom
    row[23] = 1.0 if (hmax == 0.0 or n_cells == 1) else -mutual / hmax
    row[24] = np.sqrt(1.0 - np.exp(-2.0 * mutual))


@numba.njit(cache=True, nogil=True)
def _features_kernel(mats: np.ndarray, n_levels: int) -> np.ndarray:  # pragma: no cover - compiled
    """The 25 features (columns in :data:`_SPEC` order) of each non-empty matrix of a stack.

    One compiled pass per matrix over its non-zero cells accumulates every marginal and
    moment, a second pass the moments about the means; zero cells contribute nothing to any
    sum, so skipping them changes no value.
    """
    n_mats, ng = mats.shape[0], mats.shape[1]
    out = np.empty((n_mats, 25))
    pi = np.empty(ng)
    pj = np.empty(ng)
    p_diff = np.empty(ng)
    p_sum = np.empty(2 * ng + 1)
    fng = float(n_levels)
    for k in range(n_mats):
        m = mats[k]
        total = 0.0
        for i in range(ng):
            for j in range(ng):
                total += m[i, j]
        pi[:] = 0.0
        pj[:] = 0.0
        p_diff[:] = 0.0
        p_sum[:] = 0.0
        mu = 0.0
        auto = 0.0
        hxy = 0.0
        pmax = 0.0
        energy = 0.0
        contrast = 0.0
        dissim = 0.0
        inv_diff = 0.0
        inv_diff_norm = 0.0
        inv_diff_mom = 0.0
        inv_diff_mom_norm = 0.0
        nnz = 0
        for i in range(ng):
            fi = i + 1.0
            for j in range(ng):
                c = m[i, j]
                if c == 0:
                    continue
                p = c / total
                fj = j + 1.0
                nnz += 1
                pi[i] += p
                pj[j] += p
                d = abs(i - j)
                fd = float(d)
                p_diff[d] += p
                p_sum[i + j + 2] += p
                mu += fi * p
                auto += fi * fj * p
                hxy -= p * np.log2(p)
                if p > pmax:
                    pmax = p
                energy += p * p
                contrast += fd * fd * p
                dissim += fd * p
                inv_diff += p / (1.0 + fd)
                inv_diff_norm += p / (1.0 + fd / fng)
                inv_diff_mom += p / (1.0 + fd * fd)
                inv_diff_mom_norm += p / (1.0 + fd * fd / (fng * fng))
        mu_i = 0.0
        mu_j = 0.0
        hx = 0.0
        hy = 0.0
        for i in range(ng):
            mu_i += (i + 1.0) * pi[i]
            mu_j += (i + 1.0) * pj[i]
            if pi[i] > 0:
                hx -= pi[i] * np.log2(pi[i])
            if pj[i] > 0:
                hy -= pj[i] * np.log2(pj[i])
        var_i = 0.0
        var_j = 0.0
        for i in range(ng):
            var_i += (i + 1.0 - mu_i) ** 2 * pi[i]
            var_j += (i + 1.0 - mu_j) ** 2 * pj[i]
        joint_var = 0.0
        tend = 0.0
        shade = 0.0
        prom = 0.0
        for i in range(ng):
            fi = i + 1.0
            for j in range(ng):
                c = m[i, j]
                if c == 0:
                    continue
                p = c / total
                joint_var += (fi - mu) ** 2 * p
                cl = fi + (j + 1.0) - mu_i - mu_j
                cl2 = cl * cl
                tend += cl2 * p
                shade += cl2 * cl * p
                prom += cl2 * cl2 * p
        _store_row(
            out[k], p_diff, p_sum, pmax, mu, joint_var, hxy, energy, contrast, dissim,
            inv_diff, inv_diff_norm, inv_diff_mom, inv_diff_mom_norm, auto, mu_i, mu_j,
            var_i, var_j, hx, hy, tend, shade, prom, nnz,
        )  # fmt: skip
    return out


def features_of_matrices(counts: np.ndarray, *, n_levels: int) -> np.ndarray:
    """The 25 GLCM features of each matrix of a stack, in one compiled pass.

    Parameters
    ----------
    counts : numpy.ndarray
        Co-occurrence counts ``(n_matrices, Ng, Ng)``, each matrix non-empty; each is
        normalised to joint probabilities.
    n_levels : int
        ``Ng``, used by the normalised inverse difference (moment).

    Returns
    -------
    numpy.ndarray
        ``(n_matrices, 25)`` float64, columns in the order of :data:`FEATURES`.

    References
    ----------
    IBSI 1 ids in :data:`FEATURES`.
    """
    stack = np.ascontiguousarray(counts, dtype=np.int64)
    if stack.ndim != 3 or stack.shape[1] != stack.shape[2]:
        raise ValueError(f"counts must be a (n, Ng, Ng) stack, got shape {stack.shape}")
    if stack.shape[0] and not np.all(stack.sum(axis=(1, 2)) > 0):
        raise ValueError("every co-occurrence matrix of the stack must hold at least one pair")
    return np.asarray(_features_kernel(stack, int(n_levels)))


def features_from_matrix(counts: np.ndarray, *, n_levels: int) -> dict[str, float]:
    """All 25 GLCM features of one (non-empty) co-occurrence count matrix ``(Ng, Ng)``.

    Parameters
    ----------
    counts : numpy.ndarray
        Co-occurrence counts; normalised here to joint probabilities.
    n_levels : int
        ``Ng``, used by the normalised inverse difference (moment).

    Returns
    -------
    dict
        Feature key (``'cm.contrast'`` ...) to value.

    References
    ----------
    IBSI 1 ids in :data:`FEATURES`.
    """
    row = features_of_matrices(np.asarray(counts)[None], n_levels=n_levels)[0]
    return dict(zip(_KEYS, (float(v) for v in row), strict=True))


_DIRS_3D = directions(three_d=True)
_DIRS_2D = directions(three_d=False)


@numba.njit(cache=True, nogil=True)
def _glcm_row(
    acc: np.ndarray,
    base: int,
    present: np.ndarray,
    n_levels: int,
    cj: np.ndarray,
    cv: np.ndarray,
    work: np.ndarray,
    out: np.ndarray,
) -> bool:  # pragma: no cover - compiled
    """The 25 features of one symmetric co-occurrence matrix into ``out``; False if it is empty.

    The matrix is ``A + A.T`` of the one-sided counts ``A`` stored at ``acc[base:]`` as an
    ``(Ng + 1) x (Ng + 1)`` block (row and column 0: background). The arithmetic is that of
    :func:`_features_kernel` in the same order, so the values are the same bit for bit: the
    non-zero cells of the grey levels ``present`` in the ROI (any other cell is 0) are gathered
    row by row without branches, ``p`` and ``log2(p)`` are computed once per distinct small
    count, and the four inverse-difference denominators (rows 4 to 7 of ``work``, a
    ``(8, 2 Ng + 1)`` scratch array) once per kernel call.
    """
    ng = n_levels
    w = ng + 1
    n_p = present.shape[0]
    # unsigned indices: NumPy's negative-index wrap-around costs more than the work itself
    u0 = np.uint64(0)
    u1 = np.uint64(1)
    u2 = np.uint64(2)
    uw = np.uint64(w)
    n_cells_u = u0
    total_int = 0
    cmax = 0
    row_end = np.empty(n_p, dtype=np.uint64)
    for a in range(n_p):
        i = present[a]
        row = np.uint64(base) + (i + u1) * uw + u1
        col = np.uint64(base) + i + u1
        for b in range(n_p):
            j = present[b]
            v = acc[row + j] + acc[col + (j + u1) * uw]
            cj[n_cells_u] = j
            cv[n_cells_u] = v
            n_cells_u += np.uint64(v != 0)
            total_int += v
            cmax = max(cmax, v)
        row_end[a] = n_cells_u
    n_cells = int(n_cells_u)
    if n_cells == 0:
        return False
    total = float(total_int)
    memo, memo_lg = count_memo(cmax, n_cells)
    work[:4, :] = 0.0
    pi = work[0]
    p_diff = work[2]
    p_sum = work[3]
    den1 = work[4]
    den2 = work[5]
    den3 = work[6]
    den4 = work[7]
    mu = 0.0
    auto = 0.0
    hxy = 0.0
    pmax = 0.0
    energy = 0.0
    contrast = 0.0
    dissim = 0.0
    inv_diff = 0.0
    inv_diff_norm = 0.0
    inv_diff_mom = 0.0
    inv_diff_mom_norm = 0.0
    t = u0
    for a in range(n_p):
        i = present[a]
        fi = i + 1.0
        pi_row = 0.0
        t_end = row_end[a]
        while t < t_end:
            j = cj[t]
            c = cv[t]
            t += u1
            p, lg = memo_p_log2(c, total, memo, memo_lg)
            fj = j + 1.0
            pi_row += p
            d = i - j if i >= j else j - i
            fd = float(d)
            p_diff[d] += p
            p_sum[i + j + u2] += p
            mu += fi * p
            auto += fi * fj * p
            hxy -= p * lg
            if p > pmax:
                pmax = p
            energy += p * p
            contrast += fd * fd * p
            dissim += fd * p
            inv_diff += p / den1[d]
            inv_diff_norm += p / den2[d]
            inv_diff_mom += p / den3[d]
            inv_diff_mom_norm += p / den4[d]
        pi[i] = pi_row
    # the matrix is symmetric and its cells are visited in row-major order, so the column
    # marginal p_j accumulates the same values in the same order as the row marginal p_i: the
    # two are equal bit for bit, and so are their means, variances and entropies
    mu_i = 0.0
    hx = 0.0
    for i in range(ng):
        mu_i += (i + 1.0) * pi[i]
        if pi[i] > 0:
            hx -= pi[i] * np.log2(pi[i])
    var_i = 0.0
    for i in range(ng):
        var_i += (i + 1.0 - mu_i) ** 2 * pi[i]
    mu_j = mu_i
    hy = hx
    var_j = var_i
    joint_var = 0.0
    tend = 0.0
    shade = 0.0
    prom = 0.0
    t = u0
    for a in range(n_p):
        fi = present[a] + 1.0
        t_end = row_end[a]
        while t < t_end:
            c = cv[t]
            p = memo_p(c, total, memo)
            joint_var += (fi - mu) ** 2 * p
            cl = fi + (cj[t] + 1.0) - mu_i - mu_j
            cl2 = cl * cl
            tend += cl2 * p
            shade += cl2 * cl * p
            prom += cl2 * cl2 * p
            t += u1
    _store_row(
        out, p_diff[:ng], p_sum, pmax, mu, joint_var, hxy, energy, contrast, dissim,
        inv_diff, inv_diff_norm, inv_diff_mom, inv_diff_mom_norm, auto, mu_i, mu_j,
        var_i, var_j, hx, hy, tend, shade, prom, n_cells,
    )  # fmt: skip
    return True


@numba.njit(cache=True, nogil=True)
def _glcm_kernel(
    padded: np.ndarray, n_levels: int, distance: int, planar: bool, averaged: bool
) -> np.ndarray:  # pragma: no cover
    """Feature rows of every aggregation of one ROI, in one call.

    ``padded`` is C-contiguous int32 with a frame of ``distance`` background voxels. Returns
    ``(6, 25)`` rows: 2D_avg, 2D_smrg, 2.5D_dmrg, 2.5D_vmrg (filled when ``planar``), 3D_avg,
    3D_vmrg (filled otherwise). Matrices are kept one-sided (``A``, the symmetric matrix being
    ``A + A.T``) in ``(Ng + 1)^2`` blocks indexed directly by the two grey levels, so the
    accumulation has no branch; merging adds blocks. Without any pair the matrix of an
    aggregation is the diagonal ROI histogram (a one-sided ``diag(h)`` gives ``2 diag(h)``,
    the same probabilities). Without ``averaged`` (3D only), the per-direction feature rows of
    3D_avg are skipped: 3D_vmrg needs only the merged matrix.
    """
    nz, ny, nx = padded.shape
    ng = n_levels
    w = ng + 1
    w2 = w * w
    flat = padded.ravel()
    res = np.zeros((6, 25))
    dirs = _DIRS_2D if planar else _DIRS_3D
    nd = dirs.shape[0]
    offs = np.empty(nd, dtype=np.int64)
    for k in range(nd):
        offs[k] = ((dirs[k, 0] * ny + dirs[k, 1]) * nx + dirs[k, 2]) * distance
    # blocks: nd directions, merged, histogram; planar adds nd per-direction sums over slices
    n_blocks = nd + 2 + (nd if planar else 0)
    acc = np.zeros(n_blocks * w2, dtype=np.int32)
    merged = nd * w2
    hist = (nd + 1) * w2
    dsum = (nd + 2) * w2
    # the ROI voxels (flat index, level row offset) and the grey-level histogram, in one pass
    # (unsigned indices: no negative-index wrap-around in the hot loops)
    roi = np.empty(flat.size, dtype=np.uint64)
    roi_row = np.empty(flat.size, dtype=np.uint64)
    hist_counts = np.zeros(w, dtype=np.int64)
    uw = np.uint64(w)
    n_roi_u = np.uint64(0)
    for p in range(flat.size):
        if flat[p] > 0:  # (counting the background too would chain every increment of cell 0)
            a = np.uint64(flat[p])
            hist_counts[a] += 1
            roi[n_roi_u] = p
            roi_row[n_roi_u] = a * uw
            n_roi_u += np.uint64(1)
    n_roi = int(n_roi_u)
    n_present = 0
    for g in range(1, w):
        n_present += hist_counts[g] > 0
    present = np.empty(n_present, dtype=np.uint64)
    n_present = 0
    for g in range(1, w):
        if hist_counts[g] > 0:
            present[n_present] = g - 1
            n_present += 1
            acc[hist + g * w + g] = hist_counts[g]
    cj = np.empty(n_present * n_present, dtype=np.uint64)
    cv = np.empty(n_present * n_present, dtype=np.int64)
    work = np.zeros((8, 2 * ng + 1))
    fng = float(ng)
    for d in range(ng):
        fd = float(d)
        work[4, d] = 1.0 + fd
        work[5, d] = 1.0 + fd / fng
        work[6, d] = 1.0 + fd * fd
        work[7, d] = 1.0 + fd * fd / (fng * fng)
    if not planar:
        # direction by direction over the ROI voxels, so each block stays in the L1 cache
        for k in range(nd):
            blk = acc[k * w2 : (k + 1) * w2]
            off = np.uint64(offs[k])  # every offset is positive (one of each opposite pair)
            for t in range(n_roi):
                blk[roi_row[t] + np.uint64(flat[roi[t] + off])] += 1
        rows = np.empty((nd, 25))
        n_rows = 0
        for k in range(nd):
            if averaged:
                has_pairs = _glcm_row(acc, k * w2, present, ng, cj, cv, work, rows[n_rows])
            else:  # pairs of two ROI voxels (row and column 0 count pairs with the background)
                has_pairs = False
                for i in range(1, w):
                    for j in range(1, w):
                        if acc[k * w2 + i * w + j] != 0:
                            has_pairs = True
                            break
                    if has_pairs:
                        break
            if has_pairs:
                n_rows += 1
                for q in range(w2):
                    acc[merged + q] += acc[k * w2 + q]
        if n_rows == 0:
            _glcm_row(acc, hist, present, ng, cj, cv, work, rows[0])
            n_rows = 1
            res[5, :] = rows[0]
        else:
            _glcm_row(acc, merged, present, ng, cj, cv, work, res[5])
        if averaged:
            mean_rows_into(rows, n_rows, res[4])
        mean_rows_into(res[5:6], 1, res[5])
        return res
    n_slices = nz - 2 * distance
    rows_avg = np.empty((max(nd * n_slices, 1), 25))
    rows_smrg = np.empty((max(n_slices, 1), 25))
    n_avg = 0
    n_smrg = 0
    plane = ny * nx
    for z in range(distance, nz - distance):
        acc[: (nd + 1) * w2] = 0
        for p in range(z * plane, (z + 1) * plane):
            a = flat[p]
            if a == 0:
                continue
            row = a * w
            for k in range(nd):
                acc[k * w2 + row + flat[p + offs[k]]] += 1
        any_pair = False
        for k in range(nd):
            if _glcm_row(acc, k * w2, present, ng, cj, cv, work, rows_avg[n_avg]):
                n_avg += 1
                any_pair = True
                for q in range(w2):
                    acc[merged + q] += acc[k * w2 + q]
                    acc[dsum + k * w2 + q] += acc[k * w2 + q]
        if any_pair:
            _glcm_row(acc, merged, present, ng, cj, cv, work, rows_smrg[n_smrg])
            n_smrg += 1
    fallback = np.empty(25)
    if n_avg == 0:
        _glcm_row(acc, hist, present, ng, cj, cv, work, fallback)
        rows_avg[0, :] = fallback
        rows_smrg[0, :] = fallback
        n_avg = 1
        n_smrg = 1
    mean_rows_into(rows_avg, n_avg, res[0])
    mean_rows_into(rows_smrg, n_smrg, res[1])
    rows = np.empty((nd, 25))
    n_rows = 0
    acc[merged : merged + w2] = 0
    for k in range(nd):
        if _glcm_row(acc, dsum + k * w2, present, ng, cj, cv, work, rows[n_rows]):
            n_rows += 1
            for q in range(w2):
                acc[merged + q] += acc[dsum + k * w2 + q]
    if n_rows == 0:
        rows[0, :] = fallback
        n_rows = 1
        res[3, :] = fallback
    else:
        _glcm_row(acc, merged, present, ng, cj, cv, work, res[3])
    mean_rows_into(rows, n_rows, res[2])
    mean_rows_into(res[3:4], 1, res[3])
    return res


_ROW_OF = {"2D_avg": 0, "2D_smrg": 1, "2.5D_dmrg": 2, "2.5D_vmrg": 3, "3D_avg": 4, "3D_vmrg": 5}


def compute(
    levels: np.ndarray,
    mask: np.ndarray,
    *,
    n_levels: int,
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0),
    aggregations: Sequence[str] | None = None,
    distance: int = 1,
) -> dict[str, dict[str, float]]:
    """Compute the GLCM features for the requested aggregations.

    One compiled call per dimensionality (2D/2.5D, 3D) builds the matrices of every direction
    (and slice) and their feature rows; the values are those of :func:`features_of_matrices`
    on :func:`cooccurrence_matrices`, averaged or merged as the IBSI prescribes, bit for bit.

    Parameters
    ----------
    levels : numpy.ndarray
        Discretised grey levels ``(z, y, x)``, ``1..n_levels`` inside the ROI.
    mask : numpy.ndarray
        Boolean ROI of the same shape.
    n_levels : int
        Number of grey levels ``Ng`` (matrix size).
    spacing_zyx : tuple of float
        Voxel spacing; accepted for a uniform family interface, unused (IBSI GLCMs are defined
        on the voxel grid).
    aggregations : sequence of str, optional
        Subset of :data:`AGGREGATIONS`; all by default.
    distance : int
        Chebyshev distance between paired voxels (IBSI default 1).

    Returns
    -------
    dict
        ``{aggregation: {feature_key: value}}``.

    Raises
    ------
    ConfigError
        Unknown aggregation or invalid distance.
    EmptyMaskError, FeatureError, GeometryMismatchError
        See :func:`~smartimaging.features.texture_common.prepare_levels`.

    References
    ----------
    IBSI 1, GLCM features (LFYI) and texture aggregation methods.
    """
    aggs = resolve_aggregations(aggregations, AGGREGATIONS, "GLCM")
    d = check_distance(distance, "GLCM")
    padded = prepare_roi(levels, mask, n_levels=n_levels, pad=d, family="GLCM")
    ng = int(n_levels)
    out: dict[str, dict[str, float]] = {}
    if any(a[0] == "2" for a in aggs):
        rows = _glcm_kernel(padded, ng, d, True, True).tolist()
        out.update((a, dict(zip(_KEYS, rows[r], strict=True))) for a, r in _ROW_OF.items() if r < 4)
    if any(a[0] == "3" for a in aggs):
        rows = _glcm_kernel(padded, ng, d, False, "3D_avg" in aggs).tolist()
        out.update((a, dict(zip(_KEYS, rows[r], strict=True))) for a, r in _ROW_OF.items() if r >= 4)
    return {a: out[a] for a in aggs}
