"""Tests of smartimaging.report.plots: PNG figures without global matplotlib state."""

from __future__ import annotations

import base64
import struct

import matplotlib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from smartimaging.exceptions import SmartImagingError
from smartimaging.report.plots import (
    ReportError,
    _univariate_auc,
    auc_bar_png,
    feature_distributions_png,
    png_to_data_uri,
    roc_curves_png,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", png[16:24])  # IHDR is the first chunk
    return width, height


def _results() -> list[dict]:
    return [
        {
            "name": "radiomics",
            "auc": 0.81,
            "auc_ci": (0.70, 0.90),
            "roc": ([0, 0.1, 0.4, 1], [0, 0.6, 0.9, 1]),
        },
        {"name": "clinical", "auc": 0.62, "auc_ci": (0.50, 0.74), "roc": ([0, 0.3, 1], [0, 0.5, 1])},
    ]


def _table(n: int = 40) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    ids = [f"P{i:02d}" for i in range(n)]
    y = pd.Series(np.arange(n) % 2, index=ids)
    X = pd.DataFrame({"PET_SUVmax": rng.normal(size=n) + 2 * y, "noise": rng.normal(size=n)}, index=ids)
    X["sparse"] = np.where(np.arange(n) < 5, np.nan, rng.normal(size=n))
    return X, y


def test_roc_and_bar_png_are_valid_and_deterministic() -> None:
    before = dict(matplotlib.rcParams)
    roc = roc_curves_png(_results())
    bar = auc_bar_png(_results())
    w, h = png_size(roc)
    assert w == h and w > 300  # square axes figure
    assert png_size(bar)[0] > 300
    assert roc_curves_png(_results()) == roc  # byte-identical: no timestamp
    assert dict(matplotlib.rcParams) == before  # global settings untouched


def test_plots_reject_missing_fields_and_empty_input() -> None:
    with pytest.raises(ReportError, match="no model result"):
        roc_curves_png([])
    with pytest.raises(ReportError, match="no model result"):
        auc_bar_png([])
    with pytest.raises(ReportError, match="'roc'"):
        roc_curves_png([{"name": "x", "auc": 0.7, "auc_ci": (0.6, 0.8)}])
    assert issubclass(ReportError, SmartImagingError)


def test_feature_distributions() -> None:
    X, y = _table()
    png = feature_distributions_png(X, y, ncols=2)
    w, h = png_size(png)
    assert w > h  # 2 columns x 2 rows of panels (3 features), wider than tall
    assert feature_distributions_png(X, y, columns=["noise"]) != png
    with pytest.raises(ReportError, match=r"\['missing'\]"):
        feature_distributions_png(X, y, columns=["missing"])
    with pytest.raises(ReportError, match="no patient"):
        feature_distributions_png(X, y.rename(lambda i: "Q" + i))


def test_univariate_auc_matches_sklearn() -> None:
    X, y = _table()
    v = np.round(X["PET_SUVmax"].to_numpy(), 1)
    assert _univariate_auc(v, y.to_numpy()) == pytest.approx(roc_auc_score(y, v))
    assert _univariate_auc(v, np.zeros(v.size, dtype=int)) is None


def test_png_to_data_uri_round_trip() -> None:
    png = auc_bar_png(_results()[:1])
    uri = png_to_data_uri(png)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == png
    with pytest.raises(ReportError, match="not PNG"):
        png_to_data_uri(b"GIF89a")


def test_model_stage_figures_are_pngs_and_check_their_input() -> None:
    from smartimaging.learn.clinical_metrics import calibration_curve, decision_curve
    from smartimaging.learn.survival import kaplan_meier_groups
    from smartimaging.report.plots import (
        calibration_curves_png,
        decision_curves_png,
        kaplan_meier_png,
        shap_summary_png,
    )

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 80), 0.01, 0.99)
    cal = calibration_curve(y, p, n_bins=5)
    png = calibration_curves_png({"model": cal}, stats={"model": (0.9, 0.1)})
    assert png_size(png)[0] > 300
    assert png_size(decision_curves_png({"a": decision_curve(y, p), "b": decision_curve(y, 1 - p)}))[0] > 300
    km = kaplan_meier_groups(rng.exponential(10, 40), rng.integers(0, 2, 40), np.repeat(["low", "high"], 20))
    assert (
        png_size(kaplan_meier_png(km, logrank_p=0.01, time_unit="months", counts={"low": 20, "high": 20}))[1]
        > 200
    )
    shap = pd.DataFrame(rng.normal(size=(30, 20)), columns=[f"f{k}" for k in range(20)])
    values = pd.DataFrame(rng.normal(size=(30, 20)), columns=shap.columns)
    assert png_size(shap_summary_png(shap, values, max_features=8))[1] > 200
    with pytest.raises(ReportError, match="no calibration"):
        calibration_curves_png({})
    with pytest.raises(ReportError, match="lacks column"):
        decision_curves_png({"a": cal})
    with pytest.raises(ReportError, match="non-empty"):
        shap_summary_png(pd.DataFrame())
    with pytest.raises(ReportError, match="lacks column"):
        kaplan_meier_png(pd.DataFrame({"group": []}))
