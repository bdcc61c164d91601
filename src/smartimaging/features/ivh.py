"""Intensity-volume histogram (IVH) features (IBSI 1 family ``P88C``).

The IVH relates each discretised intensity ``i`` of a total range ``G`` (step ``w_d``) to the
fraction ``nu_i`` of the ROI volume with an intensity of at least ``i``, and to the intensity
fraction ``gamma_i = (i - min G) / (max G - min G)``. How ``G`` and ``w_d`` arise depends on the
data (IBSI 1 manual, section "Intensity-volume histogram features"):

===========================  =====================================  ==========================
data                         call                                   ``G``, ``w_d``
===========================  =====================================  ==========================
discrete calibrated (CT HU,  ``discrete=True`` (``bin_width`` is    ``[lower or min X,
or already discretised       the step between levels, default 1)    upper or max X]``, step
grey levels)                                                        ``bin_width``
continuous calibrated        ``discrete=False, bin_width=w_b``,     bin centres
(PET SUV; CT config. C)      ``lower``/``upper`` = re-segmentation  ``[X_min + w_b/2,
                             range (default ROI min / max)          X_max - w_b/2]``, ``w_b``
arbitrary units (MRI;        ``discrete=False, n_bins=N_g``         ``[1, N_g]``, step 1
CT config. E)                (bins span the ROI min .. max)
===========================  =====================================  ==========================

The IBSI CT phantom configurations map as: A, B, D -> ``discrete=True`` with ``lower``/``upper``
the re-segmentation range (A, B: -500, 400; D: none); C -> ``discrete=False, bin_width=2.5,
lower=-1000, upper=400``; E -> ``discrete=False, n_bins=1000``.

Conventions for degenerate input (documented, never NaN):

* ``V_x`` is the largest ``nu`` among intensities with ``gamma >= x``; ``I_x`` is the smallest
  intensity ``i`` with ``nu_i <= x``. When no intensity of ``G`` has ``nu_i <= x`` (many voxels
  at the top level), ``I_x = max G + w_d``, the first level above ``G``, where ``nu = 0``.
* When ``G`` holds a single level (constant ROI), that level has ``gamma = 1``: ``V_x = 1``,
  ``I_x = max G + w_d`` and the area under the IVH is 0 (as the IBSI defines it).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from smartimaging.exceptions import EmptyMaskError, FeatureError
from smartimaging.features.registry import FeatureDef

__all__ = ["FEATURES", "compute", "ivh_curve"]

_FAMILY = "intensity-volume histogram"

#: Feature definitions. V_x and I_x share one IBSI id each; the fraction is in the key and name.
FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("ivh.V10", "volume fraction at 10% intensity", _FAMILY, "BC2M"),
    FeatureDef("ivh.V90", "volume fraction at 90% intensity", _FAMILY, "BC2M"),
    FeatureDef("ivh.I10", "intensity at 10% volume", _FAMILY, "GBPN"),
    FeatureDef("ivh.I90", "intensity at 90% volume", _FAMILY, "GBPN"),
    FeatureDef("ivh.V10minusV90", "Volume fraction difference between intensity fractions", _FAMILY, "DDTU"),
    FeatureDef("ivh.I10minusI90", "Intensity fraction difference between volume fractions", _FAMILY, "CNV2"),
    FeatureDef("ivh.auc", "Area under the IVH curve", _FAMILY, "9CMM"),
)


def _discretise(
    x: np.ndarray,
    *,
    bin_width: float | None,
    n_bins: int | None,
    lower: float | None,
    upper: float | None,
    discrete: bool,
) -> tuple[np.ndarray, float, float, float, np.ndarray | None]:
    """Return (discretised intensities X_d,gl, min G, max G, w_d, bin numbers or None).

    The bin numbers (whole numbers >= 1, as floats) are returned for continuous data, whose
    discretised intensities are an increasing function of them; ``None`` for discrete data.
    """
    if discrete:
        if n_bins is not None:
            raise FeatureError(
                "n_bins applies only to continuous data (discrete=False); for grey levels 1..N_g "
                "already discretised pass discrete=True, lower=1, upper=N_g"
            )
        w_d = 1.0 if bin_width is None else float(bin_width)
        if not w_d > 0:
            raise FeatureError(f"bin_width must be positive, got {bin_width!r}")
        g_min = float(x.min()) if lower is None else float(lower)
        g_max = float(x.max()) if upper is None else float(upper)
        if x.min() < g_min:
            raise FeatureError(
                f"ROI intensity {float(x.min()):g} lies below lower={g_min:g}; re-segment the ROI to "
                "the range first or lower the bound"
            )
        return x, g_min, g_max, w_d, None

    if (bin_width is None) == (n_bins is None):
        raise FeatureError(
            "continuous data (discrete=False) need exactly one of bin_width (calibrated "
            f"intensities, e.g. SUV or HU) or n_bins (arbitrary units); got bin_width={bin_width!r}, "
            f"n_bins={n_bins!r}"
        )
    if bin_width is not None:
        w_b = float(bin_width)
        if not w_b > 0:
            raise FeatureError(f"bin_width must be positive, got {bin_width!r}")
        x_min = float(x.min()) if lower is None else float(lower)
        x_max = float(x.max()) if upper is None else float(upper)
        if x.min() < x_min:
            raise FeatureError(
                f"ROI intensity {float(x.min()):g} lies below lower={x_min:g}; re-segment the ROI to "
                "the range first or lower the bound"
            )
        bins = np.floor((x - x_min) / w_b) + 1.0
        x_dgl = x_min + (bins - 0.5) * w_b
        return x_dgl, x_min + 0.5 * w_b, x_max - 0.5 * w_b, w_b, bins

    if lower is not None or upper is not None:
        raise FeatureError(
            "lower/upper do not apply with n_bins: for arbitrary units the bins span the ROI's own "
            "minimum to maximum (IBSI); leave lower and upper unset"
        )
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise FeatureError(f"n_bins must be a positive integer, got {n_bins!r}")
    x_min, x_max = float(x.min()), float(x.max())
    if x_max > x_min:
        bins = np.floor(n_bins * (x - x_min) / (x_max - x_min)) + 1.0
        bins = np.minimum(bins, float(n_bins))
    else:
        bins = np.ones_like(x)
    return bins, 1.0, float(n_bins), 1.0, bins


def ivh_curve(
    values: npt.ArrayLike,
    *,
    bin_width: float | None = None,
    n_bins: int | None = None,
    lower: float | None = None,
    upper: float | None = None,
    discrete: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The intensity-volume histogram: intensities ``i``, intensity fractions and volume fractions.

    Parameters are those of :func:`compute`.

    Returns
    -------
    intensities, gamma, nu : numpy.ndarray
        Discretised intensities of the total range ``G`` (step ``w_d``), their intensity
        fractions ``gamma`` and the fraction ``nu`` of voxels with intensity of at least ``i``.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise FeatureError(f"values must be a 1-D array of ROI intensities, got shape {x.shape}")
    if x.size == 0:
        raise EmptyMaskError("no voxel in the ROI intensity mask: the IVH needs at least one")
    if not np.all(np.isfinite(x)):
        raise FeatureError("values hold NaN or infinite intensities; mask them out before the IVH")
    x_dgl, g_min, g_max, w_d, bins = _discretise(
        x, bin_width=bin_width, n_bins=n_bins, lower=lower, upper=upper, discrete=discrete
    )
    if g_max < g_min:
        raise FeatureError(f"the IVH range is empty: lower end {g_min:g} above upper end {g_max:g}")
    n_steps = int(np.floor((g_max - g_min) / w_d + 1e-9))
    intensities = g_min + w_d * np.arange(n_steps + 1, dtype=float)
    # half a step of slack so that floating-point bin centres compare as the levels they are
    eps = 1e-6 * w_d
    if bins is None:
        sorted_x = np.sort(x_dgl)
        below = np.searchsorted(sorted_x, intensities - eps, side="left")
    else:
        # continuous data: x_dgl is an increasing function of the bin number, so its sorted
        # values are its distinct values (one per occupied bin, in bin order) repeated by the
        # bins' counts; count instead of sorting (same comparisons, same result)
        bin_of = bins.astype(np.int64)
        counts = np.bincount(bin_of)
        occupied = np.flatnonzero(counts)
        # any voxel of a bin holds the bin's value (same formula, same bin number)
        voxel_of_bin = np.empty(counts.size, dtype=np.int64)
        voxel_of_bin[bin_of] = np.arange(bin_of.size)
        distinct = x_dgl[voxel_of_bin[occupied]]
        before = np.concatenate(([0], np.cumsum(counts[occupied])))
        below = before[np.searchsorted(distinct, intensities - eps, side="left")]
    nu = 1.0 - below / x.size
    span = intensities[-1] - intensities[0]
    gamma = (intensities - g_min) / span if span > 0 else np.ones(1)
    return intensities, gamma, nu


def compute(
    values: npt.ArrayLike,
    *,
    bin_width: float | None = None,
    n_bins: int | None = None,
    lower: float | None = None,
    upper: float | None = None,
    discrete: bool = True,
) -> dict[str, float]:
    """Compute the intensity-volume histogram features.

    Parameters
    ----------
    values : array_like of float
        1-D intensities of the voxels in the ROI intensity mask: discrete intensities (CT HU,
        or grey levels already discretised) when ``discrete=True``, otherwise continuous ones.
    bin_width : float, optional
        ``discrete=True``: step between discrete levels (default 1). ``discrete=False``: the
        fixed bin size ``w_b`` for calibrated intensities (e.g. 0.1 SUV, 2.5 HU).
    n_bins : int, optional
        ``discrete=False`` only: fixed bin number for arbitrary intensity units (IBSI: 1000);
        the bins span the ROI minimum to maximum.
    lower, upper : float, optional
        Ends of the re-segmentation range, when one was applied (default: the ROI minimum and
        maximum). For a half-open range pass only ``lower``.
    discrete : bool
        Whether ``values`` are already discrete (see the module table).

    Returns
    -------
    dict of str to float
        One value per key of :data:`FEATURES`: V10, V90, I10, I90 (intensity units of the
        discretised data), V10 - V90, I10 - I90 and the area under the IVH.

    Raises
    ------
    EmptyMaskError
        If ``values`` is empty.
    FeatureError
        If the options conflict (see the module table), a width or count is not positive, or
        values are not finite.

    References
    ----------
    IBSI 1 reference manual, "Intensity-volume histogram features" (P88C): volume at
    intensity fraction (BC2M), intensity at volume fraction (GBPN), differences (DDTU, CNV2),
    area under the IVH curve (9CMM). arXiv:1612.07003.

    Examples
    --------
    >>> f = compute([1, 1, 2, 3], discrete=True)
    >>> f["ivh.V10"], f["ivh.I90"]
    (0.5, 2.0)
    """
    intensities, gamma, nu = ivh_curve(
        values, bin_width=bin_width, n_bins=n_bins, lower=lower, upper=upper, discrete=discrete
    )
    step = (
        intensities[1] - intensities[0] if intensities.size > 1 else (1.0 if bin_width is None else bin_width)
    )

    # gamma increases and nu never increases along the curve, so "the largest nu where gamma >=
    # x" is nu at the first such gamma, and "the first intensity where nu <= x" a binary search
    neg_nu = -nu

    def v_at(x: float) -> float:
        k = int(np.searchsorted(gamma, x - 1e-12, side="left"))
        return float(nu[k]) if k < nu.size else 0.0

    def i_at(x: float) -> float:
        k = int(np.searchsorted(neg_nu, -(x + 1e-12), side="left"))
        return float(intensities[k]) if k < nu.size else float(intensities[-1] + step)

    v10, v90 = v_at(0.10), v_at(0.90)
    i10, i90 = i_at(0.10), i_at(0.90)
    auc = float(np.trapezoid(nu, gamma)) if intensities.size > 1 else 0.0
    return {
        "ivh.V10": v10,
        "ivh.V90": v90,
        "ivh.I10": i10,
        "ivh.I90": i90,
        "ivh.V10minusV90": v10 - v90,
        "ivh.I10minusI90": i10 - i90,
        "ivh.auc": auc,
    }
