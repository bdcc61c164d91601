"""Tests of smartimaging.learn.selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from smartimaging.exceptions import LearningError
from smartimaging.learn.selection import (
    BorutaSelector,
    CorrelationClusterSelector,
    L1Selector,
    MRMRSelector,
    NearZeroVariance,
    StableFeatureFilter,
    UnivariateFDRSelector,
    benjamini_hochberg,
)


def _data(n: int = 80, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Two informative features (one with a near-copy), noise, a constant and a near-constant."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    signal = y * 1.5 + rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "signal": signal,
            "signal_copy": signal * 2.0 + 0.05 * rng.normal(size=n),
            "weak": y * 0.8 + rng.normal(size=n),
            "noise1": rng.normal(size=n),
            "noise2": rng.normal(size=n),
            "constant": np.full(n, 3.0),
            "rare": np.r_[np.zeros(n - 1), 1.0],
        }
    )
    return frame, pd.Series(y)


def test_benjamini_hochberg_matches_statsmodels() -> None:
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    rng = np.random.default_rng(3)
    p = np.r_[rng.uniform(size=40), rng.uniform(0, 0.01, 10), [0.0, 1.0, 0.5, 0.5]]
    np.testing.assert_allclose(benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12)
    np.testing.assert_allclose(benjamini_hochberg([0.01, 0.04, 0.03]), [0.03, 0.04, 0.04])  # by hand
    with pytest.raises(LearningError, match=r"\[0, 1\]"):
        benjamini_hochberg([0.1, 1.2])


def test_univariate_fdr() -> None:
    X, y = _data()
    sel = UnivariateFDRSelector(alpha=0.05).fit(X, y)
    kept = set(sel.get_feature_names_out())
    assert {"signal", "signal_copy"} <= kept and not kept & {"noise1", "noise2", "constant"}
    assert sel.n_significant_ == len(kept)
    tt = UnivariateFDRSelector(test="ttest").fit(X, y)
    from scipy import stats

    assert tt.pvalues_[0] == pytest.approx(
        stats.ttest_ind(X.signal[y == 1], X.signal[y == 0], equal_var=False).pvalue
    )
    none = UnivariateFDRSelector(min_features=2).fit(X[["noise1", "noise2", "constant"]], y)
    assert none.n_significant_ == 0 and none.get_support().sum() == 2  # never empty
    with pytest.raises(LearningError, match="valid values"):
        UnivariateFDRSelector(test="anova").fit(X, y)  # type: ignore[arg-type]


def test_near_zero_variance() -> None:
    X, _ = _data()
    sel = NearZeroVariance().fit(X)
    assert list(sel.get_feature_names_out()) == ["signal", "signal_copy", "weak", "noise1", "noise2"]
    assert sel.freq_ratio_[6] == 79.0


def test_correlation_clusters_keep_most_relevant() -> None:
    X, y = _data()
    X = X.drop(columns=["constant", "rare"])
    X["signal_copy"] = X["signal"] * 3.0 + 0.01 * np.random.default_rng(1).normal(size=len(X))
    sel = CorrelationClusterSelector(threshold=0.9).fit(X, y)
    assert sel.clusters_[0] == sel.clusters_[1] and len(set(sel.clusters_)) == 4
    kept = list(sel.get_feature_names_out())
    assert len(kept) == 4 and sum(k in ("signal", "signal_copy") for k in kept) == 1
    # without a target: the larger variance wins (signal_copy is 3x)
    assert "signal_copy" in CorrelationClusterSelector().fit(X).get_feature_names_out()
    out = CorrelationClusterSelector().set_output(transform="pandas").fit(X, y).transform(X)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == kept


def test_mrmr_deterministic_and_non_redundant() -> None:
    X, y = _data()
    X = X.drop(columns=["constant", "rare"])
    a = MRMRSelector(n_features=2, random_state=1).fit(X, y)
    b = MRMRSelector(n_features=2, random_state=1).fit(X, y)
    assert a.order_ == b.order_
    kept = set(a.get_feature_names_out())
    assert len(kept) == 2 and len(kept & {"signal", "signal_copy"}) == 1  # the copy is redundant
    assert len(MRMRSelector(n_features=3, scheme="MIQ").fit(X, y).get_feature_names_out()) == 3


def test_l1_selects_signal() -> None:
    X, y = _data(n=120)
    X = X[["signal", "noise1", "noise2", "weak"]]
    pipe = make_pipeline(StandardScaler(), L1Selector(Cs=8, cv=3)).set_output(transform="pandas")
    pipe.fit(X, y)
    sel = pipe[-1]
    assert "signal" in sel.get_feature_names_out() and sel.C_ > 0
    assert np.count_nonzero(sel.coef_) == sel.get_support().sum()


def test_stable_filter_from_list_and_csv(tmp_path: Path) -> None:
    X, _ = _data()
    assert list(StableFeatureFilter(["signal", "weak"]).fit(X).get_feature_names_out()) == ["signal", "weak"]
    table = pd.DataFrame(
        {"feature": ["signal", "weak", "noise1"], "icc": [0.95, 0.6, 0.8], "stable": [True, False, True]}
    )
    path = tmp_path / "robustness.csv"
    table.to_csv(path, index=False)
    assert list(StableFeatureFilter(str(path)).fit(X).get_feature_names_out()) == ["signal", "noise1"]
    assert list(StableFeatureFilter(path, min_icc=0.9).fit(X).get_feature_names_out()) == ["signal"]
    keep = StableFeatureFilter(path, keep_unlisted=True).fit(X).get_feature_names_out()
    assert "weak" not in keep and "constant" in keep
    with pytest.raises(LearningError, match="none of the 7 input features is stable"):
        StableFeatureFilter(["other"]).fit(X)
    with pytest.raises(LearningError, match="lacks column"):
        StableFeatureFilter(table.drop(columns="stable")).fit(X)


def test_make_classifier_with_harmonisation_and_selection() -> None:
    from smartimaging.learn.combat import ComBat
    from smartimaging.learn.models import build_feature_sets, make_classifier
    from smartimaging.learn.validate import cross_validate_binary

    X, y = _data(n=60)
    ids = pd.Index([f"P{i:02d}" for i in range(60)], name="patient_id")
    X.index = ids
    rng = np.random.default_rng(2)
    clinical = pd.DataFrame(
        {"age": rng.integers(40, 80, 60), "sex": rng.choice(["F", "M"], 60), "site": np.tile(["A", "B", "C"], 20),
         "label": y.to_numpy()},
        index=ids,
    )  # fmt: skip
    sets = build_feature_sets(
        X.drop(columns=["constant", "rare"]),
        clinical,
        clinical_columns=["age", "sex"],
        target="label",
        batch_column="site",
    )
    assert all(s.columns[-1] == "site" for s in sets.values())
    pipe = make_classifier(
        selection=("nzv", "correlation", "fdr"),
        keep=["age"],
        harmonise=ComBat(batch_col="site", passthrough=["age", "sex"]),
    )
    labels = clinical["label"]
    pipe.fit(sets["combined"], labels)
    out = list(pipe.named_steps["preprocess"].get_feature_names_out())
    assert "numeric__age" in out and any(o.startswith("categorical__sex") for o in out)  # never selected away
    selected = [o for o in out if o.startswith("selected__")]
    assert "selected__noise1" not in selected and (
        "selected__signal" in selected or "selected__signal_copy" in selected
    )
    res = cross_validate_binary(sets["combined"], labels, estimator=pipe, n_splits=3, n_repeats=1)
    assert res.auc > 0.7
    with pytest.raises(LearningError, match="valid values"):
        make_classifier(selection=("lasso",))


def test_boruta_confirms_signal_rejects_noise() -> None:
    X, y = _data(n=80)
    X = X[["signal", "weak", "noise1", "noise2"]]
    a = BorutaSelector(n_estimators=50, max_iter=12, random_state=3).fit(X, y)
    b = BorutaSelector(n_estimators=50, max_iter=12, random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.hits_, b.hits_)
    assert a.decision_[0] == "confirmed" and "signal" in a.get_feature_names_out()
    assert "noise1" not in a.get_feature_names_out() and "noise2" not in a.get_feature_names_out()
    assert a.hits_[0] == a.n_iter_
