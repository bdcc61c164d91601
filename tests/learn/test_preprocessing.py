"""Tests of smartimaging.learn.preprocessing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from smartimaging.exceptions import LearningError
from smartimaging.learn.preprocessing import SignedLog1p, make_numeric_branch


def test_signed_log1p_by_hand_and_inverse() -> None:
    x = np.array([[-(np.e - 1.0), 0.0], [np.e**2 - 1.0, np.nan]])
    out = SignedLog1p().fit_transform(x)
    np.testing.assert_allclose(out[0], [-1.0, 0.0])
    assert out[1, 0] == pytest.approx(2.0) and np.isnan(out[1, 1])
    np.testing.assert_allclose(SignedLog1p().fit(x).inverse_transform(out[:1]), x[:1])
    frame = pd.DataFrame({"a": [-3.0, 5.0], "b": [1.0, 2.0]})
    res = SignedLog1p().set_output(transform="pandas").fit_transform(frame)
    assert list(res.columns) == ["a", "b"]


def test_numeric_branch_steps_and_values() -> None:
    rng = np.random.default_rng(0)
    x = rng.lognormal(size=(50, 3))
    x[3, 1] = np.nan
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    out = make_numeric_branch(transform="yeo-johnson").set_output(transform="pandas").fit_transform(frame)
    assert list(out.columns) == ["a", "b", "c"] and not out.isna().any().any()
    np.testing.assert_allclose(out.mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.std(ddof=0), 1.0)
    # Yeo-Johnson with the same lambda as scipy's maximum likelihood, then z-scored
    col = frame["a"].to_numpy()
    yj, _ = stats.yeojohnson(col)
    np.testing.assert_allclose(out["a"], (yj - yj.mean()) / yj.std(), atol=1e-4)
    assert abs(stats.skew(out["a"])) < abs(stats.skew(col))
    knn = make_numeric_branch(impute="knn", scale=False).fit_transform(frame)
    distance = ((x[:, [0, 2]] - x[3, [0, 2]]) ** 2).sum(axis=1)  # nan-euclidean on the observed columns
    nearest = [i for i in np.argsort(distance) if i != 3][:5]
    assert knn[3, 1] == pytest.approx(np.mean(x[nearest, 1]))
    med = make_numeric_branch(scale=False).fit_transform(frame)
    assert med[3, 1] == pytest.approx(np.nanmedian(x[:, 1]))
    log = make_numeric_branch(transform="log", scale=False).fit_transform(frame)
    np.testing.assert_allclose(log[:, 0], np.log1p(x[:, 0]))
    with pytest.raises(LearningError, match="valid values"):
        make_numeric_branch(transform="boxcox")  # type: ignore[arg-type]
