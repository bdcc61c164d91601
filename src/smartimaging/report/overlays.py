"""Segmentation overlays for the report: a PET MIP and a fused PET/CT slice, with contours.

:func:`patient_thumbnail_png` draws, for one patient, a coronal maximum-intensity projection of the
SUV image (inverted grey scale, as nuclear-medicine readers view it) with the projected outline of
every ROI, and the axial slice through the primary lesion's SUVmax: CT in grey (window -160..240 HU)
fused with PET in a hot colour map when a CT on the PET grid is given, PET alone otherwise, with the
ROI contours. Both panels are drawn at their physical aspect ratio (mm), so anisotropic voxels do not
distort the anatomy. The figure is small (a thumbnail per patient) and deterministic: identical inputs
give identical PNG bytes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from smartimaging.image import Image, Mask, check_same_geometry
from smartimaging.report.plots import ReportError, _to_png

__all__ = ["patient_thumbnail_png"]

_CT_WINDOW = (-160.0, 240.0)
# contour colours that stand out on both the grey MIP and the hot PET colour map
_COLOURS = ("#00e5ff", "#39ff14", "#ff00ff", "#1e90ff", "#ffff00", "#ffffff")


def _suv_limit(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 1.0
    # the display ceiling: a high percentile, so that one hot lesion or the bladder does not wash out the rest
    return float(max(np.percentile(finite, 99.9), 1e-6))


def patient_thumbnail_png(
    suv: Image,
    masks: Mapping[str, Mask],
    *,
    primary: str | None = None,
    ct: Image | None = None,
    title: str = "",
    suv_max_display: float | None = None,
) -> bytes:
    """Thumbnail of one patient: coronal PET MIP and fused axial slice, both with ROI contours.

    Parameters
    ----------
    suv : Image
        PET image in SUV.
    masks : mapping of str to Mask
        ROI name -> mask on the grid of ``suv`` (may be empty: no contours).
    primary : str, optional
        The ROI whose SUVmax selects the axial slice; default: the first ROI, or the image maximum
        when there is no ROI.
    ct : Image, optional
        CT resampled to the PET grid (HU), fused under the PET in the axial panel.
    title : str
        Caption drawn above the panels (e.g. the patient ID).
    suv_max_display : float, optional
        Upper end of the SUV display window; default the 99.9th percentile of the image.

    Returns
    -------
    bytes
        PNG image.

    Raises
    ------
    GeometryMismatchError
        If a mask or the CT is not on the grid of ``suv``.
    ReportError
        If ``primary`` is not one of ``masks`` or the image holds no finite value.
    """
    for name, mask in masks.items():
        check_same_geometry(suv, mask, what=f"the SUV image and the mask {name!r}")
    if ct is not None:
        check_same_geometry(suv, ct, what="the SUV image and the CT (resample the CT to the PET grid first)")
    if primary is not None and primary not in masks:
        raise ReportError(f"primary ROI {primary!r} is not among the masks {sorted(masks)}")
    values = np.asarray(suv.array, dtype=np.float64)
    if not np.isfinite(values).any():
        raise ReportError("the SUV image holds no finite value; nothing to draw")
    shown = np.where(np.isfinite(values), values, 0.0)
    vmax = suv_max_display or _suv_limit(values)
    sx, sy, sz = (float(s) for s in suv.spacing)

    names = list(masks)
    key = primary if primary is not None else (names[0] if names else None)
    if key is not None and masks[key].array.any():
        inside = np.where(masks[key].array, shown, -np.inf)
        z_axial = int(np.unravel_index(np.argmax(inside), inside.shape)[0])
    else:
        z_axial = int(np.unravel_index(np.argmax(shown), shown.shape)[0])

    fig = Figure(figsize=(4.4, 2.6))
    if title:
        fig.suptitle(title, fontsize=8, y=0.99)
    ax_mip = fig.add_axes((0.01, 0.02, 0.48, 0.88))
    ax_ax = fig.add_axes((0.51, 0.02, 0.48, 0.88))

    # coronal MIP: project along y (anterior-posterior); rows = z (head up), columns = x
    mip = shown.max(axis=1)
    ax_mip.imshow(
        mip, cmap="Greys", vmin=0.0, vmax=vmax, origin="lower", aspect=sz / sx, interpolation="nearest"
    )
    ax_mip.axhline(z_axial, color="#888888", lw=0.4, ls=":")
    for i, name in enumerate(names):
        projected = masks[name].array.any(axis=1)
        if projected.any():
            ax_mip.contour(projected, levels=[0.5], colors=_COLOURS[i % len(_COLOURS)], linewidths=1.0)

    # axial slice: rows = y, columns = x (patient left on the image right, as radiologists view it)
    pet_slice = shown[z_axial]
    if ct is not None:
        ax_ax.imshow(
            np.asarray(ct.array[z_axial], dtype=np.float64),
            cmap="gray",
            vmin=_CT_WINDOW[0],
            vmax=_CT_WINDOW[1],
            aspect=sy / sx,
            interpolation="nearest",
        )
        ax_ax.imshow(
            np.ma.masked_less(pet_slice, 0.05 * vmax),
            cmap="hot",
            vmin=0.0,
            vmax=vmax,
            alpha=0.55,
            aspect=sy / sx,
            interpolation="nearest",
        )
    else:
        ax_ax.imshow(pet_slice, cmap="Greys", vmin=0.0, vmax=vmax, aspect=sy / sx, interpolation="nearest")
    for i, name in enumerate(names):
        region = masks[name].array[z_axial]
        if region.any():
            ax_ax.contour(region, levels=[0.5], colors=_COLOURS[i % len(_COLOURS)], linewidths=1.0)
    for ax, label in (
        (ax_mip, "PET MIP (coronal)"),
        (ax_ax, f"axial slice {z_axial}" + (" PET/CT" if ct is not None else " PET")),
    ):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(label, fontsize=6, pad=2)
    return _to_png(fig)
