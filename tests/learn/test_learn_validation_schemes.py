"""Tests of nested cross-validation, held-out and external validation in smartimaging.learn.validate."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from smartimaging.exceptions import LearningError
from smartimaging.learn.clinical_metrics import choose_threshold
from smartimaging.learn.delong import delong_test
from smartimaging.learn.models import make_classifier
from smartimaging.learn.validate import (
    _seed,
    compare_validated,
    external_validate,
    holdout_validate,
    nested_cross_validate,
)


def _cohort(
    n: int = 60, seed: int = 0, signal: float = 1.5, prefix: str = "P"
) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    y = pd.Series(np.r_[np.zeros(n // 2, dtype=int), np.ones(n - n // 2, dtype=int)])
    X = pd.DataFrame(
        {
            "f1": rng.normal(size=n) + signal * y.to_numpy(),
            "f2": rng.normal(size=n) + 0.5 * signal * y.to_numpy(),
            "f3": rng.normal(size=n),
        }
    )
    ids = pd.Index([f"{prefix}{i:03d}" for i in range(n)], name="patient_id")
    X.index = ids
    y.index = ids
    return X, y


class _Spy(ClassifierMixin, BaseEstimator):
    """Logistic regression that records which patients every fit saw."""

    fitted_on: ClassVar[list[frozenset[str]]] = []

    def __init__(self, C: float = 1.0) -> None:
        self.C = C

    def fit(self, X: pd.DataFrame, y: Any) -> _Spy:
        _Spy.fitted_on.append(frozenset(X.index))
        self.model_ = LogisticRegression(C=self.C).fit(X.to_numpy(), y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model_.predict_proba(X.to_numpy()))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model_.predict(X.to_numpy()))


def test_nested_cv_never_fits_on_test_patients() -> None:
    X, y = _cohort(40)
    _Spy.fitted_on.clear()
    res = nested_cross_validate(
        X, y, estimator=_Spy(), param_grid={"C": [0.1, 1.0]}, n_splits=4, n_repeats=1, inner_splits=3
    )
    tests = [frozenset(g["patient_id"]) for _, g in res.predictions.groupby("fold")]
    assert len(tests) == 4 and frozenset().union(*tests) == frozenset(X.index)
    # per outer fold: 2 params x 3 inner fits + refit + 3 threshold fits = 10
    assert len(_Spy.fitted_on) == 4 * 10
    for seen in _Spy.fitted_on:
        assert any(not (seen & t) for t in tests)  # every fit lies inside one outer training set
    assert len(res.best_params) == 4 and all(p["C"] in (0.1, 1.0) for p in res.best_params)


def test_nested_cv_predictions_and_summary() -> None:
    X, y = _cohort(60)
    res = nested_cross_validate(X, y, kind="logistic", n_splits=3, n_repeats=2, random_state=1, name="lr")
    p = res.predictions
    assert len(p) == 120 and (p.groupby("repeat")["patient_id"].nunique() == 60).all()
    assert p.groupby(["repeat", "fold"])["threshold"].nunique().eq(1).all()  # one threshold per fit
    s = res.summary(n_boot=300)
    assert s["n_patients"] == 60 and s["n_events"] == 30 and s["n_repeats"] == 2
    assert s["auc"] > 0.75
    assert s["auc_ci_bootstrap"][0] < s["auc"] < s["auc_ci_bootstrap"][1]
    assert s["auc_ci_delong"][0] < s["auc"] < s["auc_ci_delong"][1]
    for key in ("sensitivity", "specificity", "ppv", "npv"):
        assert 0 <= s[key] <= 1 and s[f"{key}_ci"][0] <= s[key] <= s[f"{key}_ci"][1]
    assert 0 < s["brier"] < 0.25 and s["brier_ci"][0] <= s["brier"] <= s["brier_ci"][1]
    assert s["calibration_slope"] > 0 and s["hosmer_lemeshow_p"] is not None
    again = nested_cross_validate(X, y, kind="logistic", n_splits=3, n_repeats=2, random_state=1, name="lr")
    pd.testing.assert_frame_equal(again.predictions, p)


def test_nested_cv_has_no_optimism_on_noise() -> None:
    X, y = _cohort(60, seed=3, signal=0.0)
    res = nested_cross_validate(X, y, kind="logistic", n_splits=3, n_repeats=2, random_state=2)
    assert abs(res.summary(n_boot=100)["auc"] - 0.5) < 0.15


def test_external_validation_threshold_fixed_on_development_cohort() -> None:
    Xa, ya = _cohort(50, seed=4, prefix="A")
    Xb, yb = _cohort(40, seed=5, prefix="B")
    res = external_validate(Xa, ya, Xb, yb, kind="logistic", param_grid={}, inner_splits=5, name="ext")
    assert res.scheme == "external" and set(res.predictions["patient_id"]) == set(Xb.index)
    # the threshold equals Youden's on 5-fold inner out-of-fold scores of cohort A only
    inner = StratifiedKFold(5, shuffle=True, random_state=_seed(0, 0, 0))
    oof = cross_val_predict(make_classifier("logistic"), Xa, ya.to_numpy(), cv=inner, method="predict_proba")[
        :, 1
    ]
    assert res.predictions["threshold"].iloc[0] == pytest.approx(choose_threshold(ya.to_numpy(), oof))
    model = make_classifier("logistic").fit(Xa, ya.to_numpy())
    np.testing.assert_allclose(res.predictions["y_score"], model.predict_proba(Xb)[:, 1])
    assert res.summary(n_boot=100)["auc"] > 0.7
    with pytest.raises(LearningError, match="lacks column"):
        external_validate(Xa, ya, Xb.drop(columns="f2"), yb)
    with pytest.raises(LearningError, match="in both cohorts"):
        external_validate(Xa, ya, Xa, ya)


def test_holdout_split_is_stratified() -> None:
    X, y = _cohort(60)
    res = holdout_validate(X, y, test_size=0.3, kind="logistic", random_state=3)
    assert res.scheme == "holdout" and len(res.predictions) == 18
    assert res.predictions["y_true"].sum() == 9
    with pytest.raises(LearningError, match="test_size"):
        holdout_validate(X, y, test_size=1.5)


def test_compare_validated_uses_delong_on_the_same_patients() -> None:
    X, y = _cohort(60, seed=6)
    good = nested_cross_validate(X, y, kind="logistic", n_splits=3, n_repeats=1, param_grid={})
    noise = nested_cross_validate(X[["f3"]], y, kind="logistic", n_splits=3, n_repeats=1, param_grid={})
    table = compare_validated({"good": good, "noise": noise})
    assert list(table[["model_a", "model_b"]].iloc[0]) == ["good", "noise"]
    _, yy, sg, _ = good.matrices()
    _, _, sn, _ = noise.matrices()
    ref = delong_test(yy, sg[:, 0], sn[:, 0])
    assert table["p_value"].iloc[0] == pytest.approx(ref.p_value) and ref.p_value < 0.05
    Xo, yo = _cohort(30, seed=7, prefix="Q")
    other = nested_cross_validate(Xo, yo, kind="logistic", n_splits=3, n_repeats=1, param_grid={})
    with pytest.raises(LearningError, match="different patients"):
        compare_validated({"good": good, "other": other})


def test_inner_folds_too_small_is_explained() -> None:
    X, y = _cohort(12)
    with pytest.raises(LearningError, match="inner cross-validation"):
        nested_cross_validate(X, y, n_splits=3, n_repeats=1, inner_splits=5)


def test_compare_validated_models_ranking_patients_identically_are_not_different() -> None:
    """Two models whose scores rank every patient the same way (here: one feature, and the same feature
    scaled) have equal AUCs and a zero-variance difference: p = 1 with a note, not a failed comparison."""
    X, y = _cohort(40, seed=8)
    one = nested_cross_validate(X[["f1"]], y, kind="logistic", n_splits=2, n_repeats=1, param_grid={})
    scaled = nested_cross_validate(
        X[["f1"]] * 10.0, y, kind="logistic", n_splits=2, n_repeats=1, param_grid={}
    )
    noise = nested_cross_validate(X[["f3"]], y, kind="logistic", n_splits=2, n_repeats=1, param_grid={})
    table = compare_validated({"one": one, "scaled": scaled, "noise": noise}).set_index(
        ["model_a", "model_b"]
    )
    same = table.loc[("one", "scaled")]
    assert same["p_value"] == 1.0 and same["difference"] == 0.0 and same["auc_a"] == same["auc_b"]
    assert "identically" in same["note"]
    assert table.loc[("one", "noise"), "note"] == "" and table.loc[("one", "noise"), "p_value"] < 1.0
