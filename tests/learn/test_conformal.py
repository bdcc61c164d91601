"""Conformal prediction sets: the stated coverage holds on a large held-out sample, the sets equal
MAPIE's, abstention grows as the coverage asked for grows, and everything is deterministic."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from mapie.classification import CrossConformalClassifier, SplitConformalClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

from smartimaging.exceptions import LearningError
from smartimaging.learn.conformal import ConformalClassifier, conformal_quantile
from smartimaging.learn.models import make_classifier


def _sample(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=["stat_mean", "morph_vol", "cm_contrast_3D", "age"])
    logit = 1.2 * X["stat_mean"] - 0.8 * X["morph_vol"] + 0.5 * X["cm_contrast_3D"]
    return X, (logit.to_numpy() + rng.logistic(size=n) > 0).astype(int)


@pytest.fixture(scope="module")
def train() -> tuple[pd.DataFrame, np.ndarray]:
    return _sample(2000, 0)


@pytest.fixture(scope="module")
def test() -> tuple[pd.DataFrame, np.ndarray]:
    return _sample(20_000, 1)


def _coverage(cp: ConformalClassifier, X: pd.DataFrame, y: np.ndarray) -> float:
    sets = cp.predict_set(X)
    return float(sets[np.arange(len(y)), y].mean())


def test_quantile_is_the_finite_sample_order_statistic() -> None:
    scores = np.array([0.5, 0.1, 0.4, 0.3, 0.2, 0.9, 0.8, 0.7, 0.6])  # n = 9
    assert conformal_quantile(scores, 0.2) == 0.8  # ceil(10 * 0.8) = 8th smallest
    assert conformal_quantile(scores, 0.5) == 0.5  # ceil(10 * 0.5) = 5th smallest
    assert conformal_quantile(scores, 0.05) == math.inf  # ceil(10 * 0.95) = 10 > 9: keep every label


@pytest.mark.parametrize("method", ["lac", "aps"])
@pytest.mark.parametrize("cv", ["split", 5])
@pytest.mark.parametrize("alpha", [0.1, 0.2])
def test_empirical_coverage_on_a_large_held_out_sample(train, test, method: str, cv, alpha: float) -> None:
    cp = ConformalClassifier(LogisticRegression(), alpha=alpha, method=method, cv=cv, calibration_size=0.5)  # type: ignore[arg-type]
    cp.fit(*train)
    covered = _coverage(cp, *test)
    print(f"\n{method} cv={cv} alpha={alpha}: coverage {covered:.4f} (n_cal {cp.n_calibration_})")
    # the calibration set (1,000 or 2,000 patients) makes the realised coverage vary with SD <= 0.01
    assert covered >= 1 - alpha - 0.03
    if method == "lac":
        assert covered <= 1 - alpha + 0.04  # and close to the stated coverage
    assert cp.coverage == pytest.approx(1 - alpha)


def test_aps_scores_by_hand_and_its_binary_conservativeness(train, test) -> None:
    from smartimaging.learn.conformal import _scores_all_labels

    proba = np.array([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]])
    np.testing.assert_allclose(_scores_all_labels(proba, "aps"), [[0.7, 1.0], [1.0, 0.8], [1.0, 1.0]])
    np.testing.assert_allclose(_scores_all_labels(proba, "lac"), 1 - proba)
    # with two outcomes, the less probable label scores 1: when more than alpha of the calibration
    # patients have the less probable outcome, q = 1 and every set holds both (valid but uninformative)
    cp = ConformalClassifier(LogisticRegression(), alpha=0.1, method="aps", cv=5).fit(*train)
    assert cp.quantile_ == pytest.approx(1.0)


def test_abstention_rises_as_alpha_falls(train, test) -> None:
    X, _ = test
    rates = []
    for alpha in (0.3, 0.2, 0.1, 0.05):
        decision = (
            ConformalClassifier(LogisticRegression(), alpha=alpha, cv=5).fit(*train).predict(X)["decision"]
        )
        rates.append(float((decision == "abstain").mean()))
    assert all(a < b for a, b in itertools.pairwise(rates)), rates
    assert rates[-1] > 0.3 and rates[0] < 0.2


def test_decisions_follow_the_sets(train, test) -> None:
    X, _ = test
    cp = ConformalClassifier(LogisticRegression(), alpha=0.1, cv=5).fit(*train)
    out = cp.predict(X.iloc[:2000])
    sets = cp.predict_set(X.iloc[:2000])
    assert list(out.index) == list(X.index[:2000])
    assert set(out["decision"]) <= {"positive", "negative", "abstain"}
    single = sets.sum(axis=1) == 1
    assert (out["decision"][~single] == "abstain").all()
    assert (out.loc[single & sets[:, 1], "decision"] == "positive").all()
    assert (out.loc[single & sets[:, 0], "decision"] == "negative").all()
    assert out["prediction_set"].map(len).tolist() == sets.sum(axis=1).tolist()
    # a confident positive patient gets {1}; the probability is the mean of the fold models
    np.testing.assert_allclose(
        out["probability"], np.mean([m.predict_proba(X.iloc[:2000])[:, 1] for m in cp.estimators_], axis=0)
    )


def test_split_sets_equal_mapie(train, test) -> None:
    X, y = train[0].to_numpy(), train[1]  # MAPIE's prefit check predicts on a bare array
    cp = ConformalClassifier(LogisticRegression(), alpha=0.1, cv="split", random_state=3).fit(X, y)
    split = StratifiedShuffleSplit(n_splits=1, test_size=0.25, random_state=3)
    _, calibration = next(split.split(np.zeros(len(y)), y))
    mapie = SplitConformalClassifier(cp.estimators_[0], confidence_level=0.9, prefit=True)
    mapie.conformalize(X[calibration], y[calibration])
    _, sets = mapie.predict_set(test[0].to_numpy())
    np.testing.assert_array_equal(cp.predict_set(test[0].to_numpy()), sets[:, :, 0])


def test_cross_conformal_sets_equal_mapie(train, test) -> None:
    X, y = train
    cp = ConformalClassifier(make_classifier("logistic"), alpha=0.2, cv=5, random_state=4).fit(X, y)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=4)
    mapie = CrossConformalClassifier(make_classifier("logistic"), confidence_level=0.8, cv=folds)
    mapie.fit_conformalize(X, y)
    _, sets = mapie.predict_set(test[0], agg_scores="mean")
    np.testing.assert_array_equal(cp.predict_set(test[0]), sets[:, :, 0])


def test_deterministic_given_the_seed(train, test) -> None:
    X = test[0].iloc[:500]
    a = ConformalClassifier(LogisticRegression(), cv=5, random_state=1).fit(*train).predict(X)
    b = ConformalClassifier(LogisticRegression(), cv=5, random_state=1).fit(*train).predict(X)
    pd.testing.assert_frame_equal(a, b)
    c = ConformalClassifier(LogisticRegression(), cv=5, random_state=2).fit(*train)
    assert (
        c.quantile_ != ConformalClassifier(LogisticRegression(), cv=5, random_state=1).fit(*train).quantile_
    )


def test_no_patient_data_is_kept(train) -> None:
    cp = ConformalClassifier(LogisticRegression(), cv=5).fit(*train)
    kept = {k for k in vars(cp) if k.endswith("_")}
    assert kept == {"classes_", "estimators_", "quantile_", "n_calibration_"}
    assert cp.n_calibration_ == 2000 and len(cp.estimators_) == 5


def test_errors_name_the_problem(train) -> None:
    X, y = train
    with pytest.raises(LearningError, match=r"valid values are \['lac', 'aps'\]"):
        ConformalClassifier(LogisticRegression(), method="raps").fit(X, y)  # type: ignore[arg-type]
    with pytest.raises(LearningError, match="alpha must be in"):
        ConformalClassifier(LogisticRegression(), alpha=1.5).fit(X, y)
    with pytest.raises(LearningError, match="cv must be"):
        ConformalClassifier(LogisticRegression(), cv=1).fit(X, y)
    with pytest.raises(LearningError, match="binary"):
        ConformalClassifier(LogisticRegression()).fit(X, np.arange(len(y)) % 3)
    with pytest.raises(LearningError, match="rarer outcome has 3"):
        ConformalClassifier(LogisticRegression(), cv=5).fit(X.iloc[:103], np.r_[np.zeros(100), np.ones(3)])
    with pytest.raises(LearningError, match="call fit"):
        ConformalClassifier(LogisticRegression()).predict(X)
