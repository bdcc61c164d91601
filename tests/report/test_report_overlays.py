"""Segmentation overlays and the correlation heat map of the report."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image as PILImage

from smartimaging.exceptions import GeometryMismatchError
from smartimaging.image import Image, Mask
from smartimaging.report.overlays import patient_thumbnail_png
from smartimaging.report.plots import ReportError, correlation_heatmap_png


def _pixels(png: bytes) -> np.ndarray:
    with PILImage.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def _patient() -> tuple[Image, Mask, Image]:
    z, y, x = np.mgrid[0:40, 0:48, 0:48]
    suv = 0.5 + 8.0 * np.exp(-(((z - 25) ** 2) + (y - 20) ** 2 + (x - 30) ** 2) / 18.0)
    pet = Image(suv.astype(np.float32), spacing=(4.0, 4.0, 3.0), origin=(0.0, 0.0, 0.0))
    lesion = Mask(suv > 4.0, spacing=pet.spacing, origin=pet.origin)
    ct = pet.with_array(np.where(((y - 24) ** 2 + (x - 24) ** 2) < 400, 40.0, -1000.0).astype(np.float32))
    return pet, lesion, ct


def test_thumbnail_draws_contours_in_colour_and_is_deterministic() -> None:
    pet, lesion, ct = _patient()
    png = patient_thumbnail_png(pet, {"GTV_1": lesion}, ct=ct, title="P001")
    assert png.startswith(b"\x89PNG") and png == patient_thumbnail_png(
        pet, {"GTV_1": lesion}, ct=ct, title="P001"
    )
    rgb = _pixels(png)
    cyan = (rgb[..., 0] < 90) & (rgb[..., 1] > 170) & (rgb[..., 2] > 200)  # the first ROI's contour colour
    bare = _pixels(patient_thumbnail_png(pet, {}, ct=ct, title="P001"))
    bare_cyan = (bare[..., 0] < 90) & (bare[..., 1] > 170) & (bare[..., 2] > 200)
    assert cyan.sum() > 40 and bare_cyan.sum() == 0
    # both panels carry a contour: cyan pixels left and right of the middle
    half = rgb.shape[1] // 2
    assert cyan[:, :half].sum() > 10 and cyan[:, half:].sum() > 10


def test_thumbnail_rejects_masks_and_ct_on_another_grid() -> None:
    pet, lesion, ct = _patient()
    other = Mask(lesion.array, spacing=(2.0, 2.0, 2.0), origin=pet.origin)
    with pytest.raises(GeometryMismatchError):
        patient_thumbnail_png(pet, {"GTV_1": other})
    with pytest.raises(GeometryMismatchError, match="resample the CT"):
        patient_thumbnail_png(
            pet, {"GTV_1": lesion}, ct=Image(ct.array[:-1], spacing=ct.spacing, origin=ct.origin)
        )
    with pytest.raises(ReportError, match="primary ROI 'GTV_2'"):
        patient_thumbnail_png(pet, {"GTV_1": lesion}, primary="GTV_2")


def test_correlation_heatmap_clusters_and_validates() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 2))
    table = pd.DataFrame(
        {
            "a1": base[:, 0],
            "b1": base[:, 1],
            "a2": base[:, 0] * 2 + rng.normal(scale=0.01, size=40),
            "b2": np.exp(base[:, 1]),
            "flat": 1.0,
        }
    )
    png = correlation_heatmap_png(table)
    assert png.startswith(b"\x89PNG")
    with pytest.raises(ReportError, match="at least two non-constant"):
        correlation_heatmap_png(table[["a1", "flat"]])
    with pytest.raises(ReportError, match="method must be"):
        correlation_heatmap_png(table, method="kendall")  # type: ignore[arg-type]
