"""ICC(2,1) and ICC(3,1) with confidence intervals: equal to pingouin (reference only) and to
Shrout & Fleiss (1979)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smartimaging.robustness.icc import intraclass_correlation
from smartimaging.robustness.study import icc_table, stable_features

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float
)


@pytest.fixture
def pg(monkeypatch):
    """pingouin with its confidence intervals unrounded (it rounds them to 2 decimals by default)."""
    module = pytest.importorskip("pingouin")
    monkeypatch.setitem(module.options, "round.column.CI95", None)
    return module


def _pingouin(pg, values: np.ndarray) -> pd.DataFrame:
    n, k = values.shape
    long = pd.DataFrame(
        {"target": np.repeat(np.arange(n), k), "rater": np.tile(np.arange(k), n), "rating": values.ravel()}
    )
    res = pg.intraclass_corr(data=long, targets="target", raters="rater", ratings="rating", nan_policy="omit")
    return res.set_index("Type")


def test_shrout_fleiss_published():
    r = intraclass_correlation(SHROUT_FLEISS)
    # published: ICC(2,1) = 0.29, ICC(3,1) = 0.71
    assert r.icc2[0] == pytest.approx(0.2898, abs=5e-4)
    assert r.icc3[0] == pytest.approx(0.7148, abs=5e-4)
    assert r.f[0] == pytest.approx(11.027, abs=5e-3)  # MSR / MSE = 11.24 / 1.02


def test_equal_to_pingouin_vectorised(pg):
    rng = np.random.default_rng(3)
    n, k, m = 12, 5, 6
    subject = rng.normal(0, 1, (n, 1, m)) * rng.uniform(0.2, 3, m)
    rater = rng.normal(0, 0.5, (1, k, m))
    data = 10 + subject + rater + rng.normal(0, rng.uniform(0.1, 2, m), (n, k, m))
    r = intraclass_correlation(data)
    for j in range(m):
        ref = _pingouin(pg, data[:, :, j])
        assert r.icc2[j] == pytest.approx(ref.loc["ICC(A,1)", "ICC"], rel=1e-10)
        assert r.icc3[j] == pytest.approx(ref.loc["ICC(C,1)", "ICC"], rel=1e-10)
        np.testing.assert_allclose([r.icc2_low[j], r.icc2_high[j]], ref.loc["ICC(A,1)", "CI95"], rtol=1e-8)
        np.testing.assert_allclose([r.icc3_low[j], r.icc3_high[j]], ref.loc["ICC(C,1)", "CI95"], rtol=1e-8)
        assert r.f[j] == pytest.approx(ref.loc["ICC(C,1)", "F"], rel=1e-10)
    # the data span poor to excellent reliability, so the comparison covers a range
    assert r.icc2.min() < 0.5 < 0.9 < r.icc2.max()


def test_scale_invariance_and_shape():
    r1 = intraclass_correlation(SHROUT_FLEISS)
    r2 = intraclass_correlation(SHROUT_FLEISS * 1e6 - 3e7)
    assert r2.icc2[0] == pytest.approx(r1.icc2[0], rel=1e-9) and r2.icc3_low[0] == pytest.approx(
        r1.icc3_low[0]
    )
    assert r1.n_targets == 6 and r1.n_raters == 4


def test_degenerate_cases():
    base = np.arange(5.0)[:, None] * np.ones((1, 3))
    exact = intraclass_correlation(base)
    assert exact.icc2[0] == 1.0 and exact.icc3_low[0] == 1.0 and exact.icc2_low[0] == 1.0
    offset = intraclass_correlation(base + np.array([0.0, 1.0, 2.0]))
    assert offset.icc3[0] == 1.0 and offset.icc3_low[0] == 1.0 and 0 < offset.icc2[0] < 1
    assert offset.icc2_low[0] < offset.icc2[0] < offset.icc2_high[0]
    const = intraclass_correlation(np.ones((4, 3)))
    assert not const.defined[0] and np.isnan(const.icc2_low[0])
    with pytest.raises(ValueError, match="at least 2 targets"):
        intraclass_correlation(np.ones((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        intraclass_correlation(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="confidence"):
        intraclass_correlation(SHROUT_FLEISS, confidence=1.5)


def _long_table(data: np.ndarray, conds: list[str], names: list[str]) -> pd.DataFrame:
    n, k, _ = data.shape
    frame = pd.DataFrame(data.reshape(n * k, -1), columns=names)
    frame.insert(0, "condition", conds * n)
    frame.insert(0, "case", np.repeat([f"p{i}" for i in range(n)], k))
    return frame


def test_icc_table_groups_missing_values_and_stable_list(pg):
    rng = np.random.default_rng(5)
    n = 10
    truth = rng.normal(0, 1, (n, 1))
    conds = ["contour", "a1", "a2", "b1"]
    good = truth + rng.normal(0, 0.05, (n, 4))
    poor = truth + rng.normal(0, 2.0, (n, 4))
    holes = good.copy()
    holes[2, 1] = np.nan  # one patient with a missing value in one condition
    const = np.ones((n, 4))
    data = np.stack([good, poor, holes, const], axis=2)
    table = _long_table(data, conds, ["good", "poor", "holes", "const"])
    table = table.drop(index=table[(table["case"] == "p9") & (table["condition"] == "b1")].index)
    icc = icc_table(table, groups={"a": ["a1", "a2"], "b": ["b1"], "all": ["a1", "a2", "b1"]})
    a = icc[icc["group"] == "a"].set_index("feature")
    b = icc[icc["group"] == "b"].set_index("feature")
    assert a.loc["good", "n_cases"] == 10 and b.loc["good", "n_cases"] == 9  # p9 lacks b1
    ref = _pingouin(pg, good[:, :3])
    assert a.loc["good", "icc2"] == pytest.approx(ref.loc["ICC(A,1)", "ICC"], rel=1e-10)
    # listwise deletion as pingouin's nan_policy='omit'
    with_nan = holes[:, :3]
    ref = _pingouin(pg, with_nan)
    assert a.loc["holes", "icc2"] == pytest.approx(ref.loc["ICC(A,1)", "ICC"], rel=1e-10)
    np.testing.assert_allclose(
        [a.loc["holes", "icc3_low"], a.loc["holes", "icc3_high"]], ref.loc["ICC(C,1)", "CI95"]
    )
    assert a.loc["holes", "n_cases"] == 9 and "left out" in a.loc["holes", "note"]
    assert np.isnan(a.loc["const", "icc2"]) and "constant" in a.loc["const", "note"]
    stable = stable_features(icc, group="all")
    assert stable.columns.tolist() == ["feature", "group", "icc_type", "icc", "ci_low", "ci_high", "stable"]
    assert stable.set_index("feature")["stable"].to_dict() == {
        "good": True,
        "poor": False,
        "holes": True,
        "const": False,
    }
    point = stable_features(icc, group="all", icc_type="ICC(3,1)", criterion="point", threshold=-1.0)
    assert point["stable"].tolist() == [True, True, True, False]
    with pytest.raises(ValueError, match="groups"):
        stable_features(icc, group="nope")
    with pytest.raises(ValueError, match=r"ICC\(2,1\)"):
        stable_features(icc, icc_type="ICC(1,1)")  # type: ignore[arg-type]
