"""Conventional PET metrics on an SUV image (family "PET"; not IBSI features).

Lesion level (:func:`lesion_metrics`, one mask):

* ``SUVmax``, ``SUVmean``, ``SUVmin``, ``SUVsd`` (population standard deviation, ``1/N``) of
  the voxels in the mask;
* ``SUVpeak``: the IBSI local intensity peak (VJGA) on the SUV image, i.e. the mean SUV in a
  1 cm³ sphere (radius 6.2 mm) centred on the hottest voxel of the lesion; the sphere takes
  every image voxel whose centre lies within the radius, inside the lesion or not;
* ``MTV``: metabolic tumour volume in ml, by voxel counting;
* ``TLG``: total lesion glycolysis, ``SUVmean × MTV`` (SUV·ml).

Patient level (:func:`patient_metrics`, several lesions):

* ``TMTV`` and ``TTLG``: sums of the lesions' MTV and TLG (lesions must not overlap);
* ``n_lesions``: number of lesions;
* ``SUVmax_patient``: the highest lesion SUVmax;
* ``Dmax``: the largest distance (mm) between two lesion centroids (0 for one lesion);
* ``Dmax_bulk``: the distance (mm) from the centroid of the largest lesion (by volume; the
  first one listed on ties) to the farthest other lesion centroid (0 for one lesion).

Centroids are the unweighted means of the voxel centres, in patient coordinates (mm).

References
----------
Boellaard R. et al., "FDG PET/CT: EANM procedure guidelines for tumour imaging: version 2.0",
Eur J Nucl Med Mol Imaging 2015;42:328-354. Cottereau A.-S. et al., "18F-FDG PET dissemination
features in diffuse large B-cell lymphoma are predictive of outcome", J Nucl Med
2020;61:40-45 (Dmax, Dmax_bulk).
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
from scipy.spatial.distance import cdist, pdist

from smartimaging.exceptions import EmptyMaskError, FeatureError
from smartimaging.features.registry import FeatureDef
from smartimaging.image import Image, Mask, check_same_geometry
from smartimaging.preprocess.sphere import RADIUS_MM, _sphere_peaks

__all__ = ["FAMILY", "FEATURES", "LESION_FEATURES", "PATIENT_FEATURES", "lesion_metrics", "patient_metrics"]

FAMILY = "PET"

#: Features of one lesion (what :func:`smartimaging.features.extract.extract` reports).
LESION_FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("PET.SUVmax", "SUVmax", FAMILY, "", "SUV"),
    FeatureDef("PET.SUVmean", "SUVmean", FAMILY, "", "SUV"),
    FeatureDef("PET.SUVpeak", "SUVpeak", FAMILY, "", "SUV"),
    FeatureDef("PET.SUVmin", "SUVmin", FAMILY, "", "SUV"),
    FeatureDef("PET.SUVsd", "SUV standard deviation", FAMILY, "", "SUV"),
    FeatureDef("PET.MTV", "Metabolic tumour volume", FAMILY, "", "ml"),
    FeatureDef("PET.TLG", "Total lesion glycolysis", FAMILY, "", "SUV*ml"),
)

#: Features of a patient's set of lesions.
PATIENT_FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("PET.TMTV", "Total metabolic tumour volume", FAMILY, "", "ml"),
    FeatureDef("PET.TTLG", "Total (patient) lesion glycolysis", FAMILY, "", "SUV*ml"),
    FeatureDef("PET.n_lesions", "Number of lesions", FAMILY, ""),
    FeatureDef("PET.SUVmax_patient", "Highest lesion SUVmax", FAMILY, "", "SUV"),
    FeatureDef("PET.Dmax", "Largest distance between lesion centroids", FAMILY, "", "mm"),
    FeatureDef("PET.Dmax_bulk", "Distance from the largest lesion to the farthest lesion", FAMILY, "", "mm"),
)

FEATURES: tuple[FeatureDef, ...] = LESION_FEATURES + PATIENT_FEATURES


@numba.njit(cache=True, nogil=True)
def _masked_values(values: np.ndarray, mask: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """``values[mask]`` (C order), without branches: every value is written, the index only
    advances inside the mask."""
    v = values.ravel()
    m = mask.ravel()
    buf = np.empty(m.size + 1, dtype=np.float64)
    n = 0
    for i in range(m.size):
        buf[n] = v[i]
        n += m[i]
    return buf[:n]


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz", "arcp"})
def _value_stats(x: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """``[n, n_non_finite, max, min, mean, population sd]`` of ``x`` (NaN statistics if a value is
    not finite; a constant ``x`` gets its value as mean and an sd of exactly 0).

    Sums may be reassociated (SIMD lanes: partial sums, as accurate as NumPy's pairwise sums);
    non-finite values are still detected (no ``nnan``/``ninf`` assumption).
    """
    n = x.size
    out = np.full(6, np.nan)
    out[0] = n
    n_bad = 0
    for i in range(n):
        n_bad += not np.isfinite(x[i])
    out[1] = n_bad
    if n == 0 or n_bad > 0:
        return out
    vmax = x[0]
    vmin = x[0]
    total = 0.0
    for i in range(n):
        xi = x[i]
        vmax = max(vmax, xi)
        vmin = min(vmin, xi)
        total += xi
    out[2] = vmax
    out[3] = vmin
    if vmax == vmin:
        out[4] = vmax
        out[5] = 0.0
        return out
    mean = total / n
    sq = 0.0
    for i in range(n):
        d = x[i] - mean
        sq += d * d
    out[4] = mean
    out[5] = np.sqrt(sq / n)
    return out


def lesion_metrics(
    suv: Image, mask: Mask, *, local_peak: float | None = None, _checked: bool = False
) -> dict[str, float]:
    """SUV and volume metrics of one lesion.

    Compiled passes gather the lesion's values, then give the voxel count, maximum, minimum
    and sum, then the squared deviations from the mean (SIMD partial sums, as exact as
    NumPy's pairwise sums; a constant lesion gets an sd of exactly 0); when
    ``local_peak`` is not given, SUVpeak comes from the sphere means around the lesion's
    hottest voxel(s) only (:mod:`smartimaging.preprocess.sphere`).

    Parameters
    ----------
    suv : Image
        PET image in SUV units.
    mask : Mask
        The lesion, on the same grid.
    local_peak : float, optional
        The IBSI local intensity peak of ``suv`` in ``mask`` when the caller has already
        computed it (:func:`smartimaging.features.local_intensity.compute_image`); computed
        here otherwise.
    _checked : bool
        Private: the caller has already checked that the SUV image and the mask share a
        voxel grid (:func:`smartimaging.features.extract.extract` does), so the check is skipped.

    Returns
    -------
    dict of str to float
        One value per key of :data:`LESION_FEATURES`.

    Raises
    ------
    GeometryMismatchError
        If the SUV image and the mask grids differ.
    EmptyMaskError
        If the mask is empty.
    FeatureError
        If the SUV image holds non-finite values inside the lesion.

    References
    ----------
    SUVpeak is the IBSI local intensity peak (VJGA) computed on the SUV image.

    Examples
    --------
    >>> import numpy as np
    >>> from smartimaging.image import Image, Mask
    >>> suv = Image(np.full((3, 3, 3), 4.0), spacing=(2.0, 2.0, 2.0))
    >>> out = lesion_metrics(suv, Mask(np.ones((3, 3, 3), bool), spacing=(2.0, 2.0, 2.0)))
    >>> out["PET.SUVpeak"], out["PET.MTV"], out["PET.TLG"]
    (4.0, 0.216, 0.864)
    """
    if not _checked:
        check_same_geometry(suv, mask, what="SUV image and lesion mask")
    values = np.ascontiguousarray(suv.array, dtype=np.float64)
    roi = np.ascontiguousarray(mask.array, dtype=np.bool_)
    n_f, n_bad_f, vmax, vmin, mean, sd = _value_stats(_masked_values(values, roi))
    n, n_bad = int(n_f), int(n_bad_f)
    if n == 0:
        mask.require_nonempty("PET lesion")
    if n_bad:
        raise FeatureError(
            f"PET metrics: the SUV image holds {n_bad} non-finite value(s) inside the lesion; "
            "remove those voxels from the mask or fill them before extraction"
        )
    if local_peak is None:
        local_peak = _sphere_peaks(values, roi, suv.spacing_zyx, RADIUS_MM, want_global=False)[2]
    sx, sy, sz = mask.spacing
    mtv = n * (sx * sy * sz) / 1000.0
    return {
        "PET.SUVmax": float(vmax),
        "PET.SUVmean": float(mean),
        "PET.SUVpeak": float(local_peak),
        "PET.SUVmin": float(vmin),
        "PET.SUVsd": float(sd),
        "PET.MTV": mtv,
        "PET.TLG": float(mean) * mtv,
    }


def _lesion_masks(suv: Image, labels: Image | Sequence[Mask]) -> list[Mask]:
    """Split ``labels`` into one mask per lesion, checking grids and overlaps."""
    if isinstance(labels, Image):
        check_same_geometry(suv, labels, what="SUV image and lesion label image")
        arr = np.asarray(labels.array)
        if arr.dtype == bool:
            arr = arr.astype(np.int64)
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise FeatureError(
                "the lesion label image must hold whole numbers (0 = background, one value per lesion); "
                "convert a binary mask with smartimaging.segment.threshold.connected_components()"
            )
        values = [v for v in np.unique(arr) if v != 0]
        return [
            Mask(arr == v, labels.spacing, labels.origin, labels.direction.copy(), {"label": float(v)})
            for v in values
        ]
    masks = list(labels)
    covered = np.zeros(suv.shape, dtype=np.int64)
    for i, m in enumerate(masks):
        if not isinstance(m, Mask):
            raise TypeError(f"labels[{i}] is a {type(m).__name__}, expected a Mask")
        check_same_geometry(suv, m, what=f"SUV image and lesion mask {i}")
        m.require_nonempty(f"lesion {i}")
        overlap = covered[m.array]
        if np.any(overlap):
            j = int(overlap[overlap > 0][0]) - 1
            raise FeatureError(
                f"lesion masks {j} and {i} overlap ({int(np.count_nonzero(overlap))} voxels); "
                "patient totals would count those voxels twice: make the lesions disjoint"
            )
        covered[m.array] = i + 1
    return masks


def _centroid_mm(mask: Mask) -> np.ndarray:
    zyx = np.argwhere(mask.array).mean(axis=0)
    return np.asarray(mask.index_to_physical(zyx[::-1]))


def patient_metrics(suv: Image, labels: Image | Sequence[Mask]) -> dict[str, float]:
    """Patient-level PET metrics from several lesions.

    Parameters
    ----------
    suv : Image
        PET image in SUV units.
    labels : Image or sequence of Mask
        Either a label image on the SUV grid (0 = background, each other whole value one
        lesion) or disjoint lesion masks on the SUV grid. A binary :class:`Mask` given as
        label image is *one* lesion; split it first with
        :func:`smartimaging.segment.threshold.connected_components` to count its parts.

    Returns
    -------
    dict of str to float
        One value per key of :data:`PATIENT_FEATURES`.

    Raises
    ------
    GeometryMismatchError
        If a label image or mask is not on the SUV grid.
    EmptyMaskError
        If there is no lesion, or a lesion mask is empty.
    FeatureError
        If lesion masks overlap, labels are not whole numbers, or the SUV image holds
        non-finite values inside a lesion.
    """
    masks = _lesion_masks(suv, labels)
    if not masks:
        raise EmptyMaskError(
            "patient PET metrics need at least one lesion; the label image or mask list holds none"
        )
    per_lesion = [lesion_metrics(suv, m) for m in masks]
    volumes = np.array([m["PET.MTV"] for m in per_lesion])
    centroids = np.stack([_centroid_mm(m) for m in masks])
    if len(masks) > 1:
        dmax = float(pdist(centroids).max())
        bulk = int(np.argmax(volumes))
        dmax_bulk = float(cdist(centroids[bulk : bulk + 1], centroids).max())
    else:
        dmax = dmax_bulk = 0.0
    return {
        "PET.TMTV": float(volumes.sum()),
        "PET.TTLG": float(sum(m["PET.TLG"] for m in per_lesion)),
        "PET.n_lesions": float(len(masks)),
        "PET.SUVmax_patient": float(max(m["PET.SUVmax"] for m in per_lesion)),
        "PET.Dmax": dmax,
        "PET.Dmax_bulk": dmax_bulk,
    }
