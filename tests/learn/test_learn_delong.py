"""Tests of smartimaging.learn.delong: DeLong AUC variance, interval and paired test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from smartimaging.exceptions import LearningError
from smartimaging.learn.delong import delong_auc, delong_covariance, delong_test
from smartimaging.learn.metrics import roc_auc


def _brute_force(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """O(n1 * n0) DeLong et al. (1988) structural components, written from the paper."""
    scores = np.atleast_2d(scores)
    n1, n0 = int((y == 1).sum()), int((y == 0).sum())
    v10 = np.empty((scores.shape[0], n1))
    v01 = np.empty((scores.shape[0], n0))
    for r, s in enumerate(scores):
        pos, neg = s[y == 1], s[y == 0]
        for i in range(n1):
            v10[r, i] = np.mean([1.0 if pos[i] > q else 0.5 if pos[i] == q else 0.0 for q in neg])
        for j in range(n0):
            v01[r, j] = np.mean([1.0 if p > neg[j] else 0.5 if p == neg[j] else 0.0 for p in pos])
    aucs = v10.mean(axis=1)
    k = scores.shape[0]
    s10 = np.array(
        [[np.sum((v10[a] - aucs[a]) * (v10[b] - aucs[b])) / (n1 - 1) for b in range(k)] for a in range(k)]
    )
    s01 = np.array(
        [[np.sum((v01[a] - aucs[a]) * (v01[b] - aucs[b])) / (n0 - 1) for b in range(k)] for a in range(k)]
    )
    return aucs, s10 / n1 + s01 / n0


def test_published_hanley_mcneil_ct_ratings_match_stata_roctab() -> None:
    """Hanley & McNeil (1982, Radiology 143:29-36, Table 1): 109 CT images rated 1-5.

    Published output of Stata's ``roctab disease rating`` (DeLong standard error, the default)
    on these data, Stata manual [R] roctab, example 1: area 0.8932, Std. Err. 0.0307,
    asymptotic normal 95 % CI 0.83295 to 0.95339.
    """
    normal = [33, 6, 6, 11, 2]  # counts of ratings 1..5 among 58 normal patients
    abnormal = [3, 2, 2, 11, 33]  # and among 51 abnormal patients
    ratings = np.r_[np.repeat(np.arange(1, 6), normal), np.repeat(np.arange(1, 6), abnormal)].astype(float)
    y = np.r_[np.zeros(58, dtype=int), np.ones(51, dtype=int)]
    r = delong_auc(y, ratings)
    assert r.auc == pytest.approx(0.8932, abs=5e-5)
    assert r.se == pytest.approx(0.0307, abs=5e-5)
    assert r.ci == pytest.approx((0.83295, 0.95339), abs=5e-6)
    assert (r.n_positive, r.n_negative) == (51, 58)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_midrank_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 37
    y = (rng.random(n) < 0.4).astype(int)
    y[:2] = [0, 1]
    s = np.round(np.vstack([rng.normal(size=n) + y, rng.normal(size=n) + 0.5 * y, rng.normal(size=n)]), 1)
    aucs, cov = delong_covariance(y, s)
    ref_aucs, ref_cov = _brute_force(y, s)
    np.testing.assert_allclose(aucs, ref_aucs, atol=1e-14)
    np.testing.assert_allclose(cov, ref_cov, atol=1e-14)
    for k in range(3):
        assert aucs[k] == pytest.approx(roc_auc(y, s[k]), abs=1e-14)


def test_delong_test_against_brute_force_formula() -> None:
    rng = np.random.default_rng(5)
    n = 60
    y = np.r_[np.zeros(30, dtype=int), np.ones(30, dtype=int)]
    common = rng.normal(size=n)
    a = common + 1.2 * y + 0.5 * rng.normal(size=n)
    b = common + 0.4 * y + 0.5 * rng.normal(size=n)
    t = delong_test(y, a, b)
    aucs, cov = _brute_force(y, np.vstack([a, b]))
    se = np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    z = (aucs[0] - aucs[1]) / se
    assert t.difference == pytest.approx(aucs[0] - aucs[1], abs=1e-14)
    assert t.se_difference == pytest.approx(se, rel=1e-12)
    assert t.z == pytest.approx(z, rel=1e-12)
    assert t.p_value == pytest.approx(2 * norm.sf(abs(z)), rel=1e-10)
    assert t.correlation > 0.3  # shared component -> positively correlated AUCs
    assert t.ci_difference[0] < t.difference < t.ci_difference[1]
    # swapping the models flips the sign and keeps the p-value
    s = delong_test(y, b, a)
    assert s.z == pytest.approx(-t.z) and s.p_value == pytest.approx(t.p_value)


def test_delong_test_detects_difference_and_not_noise() -> None:
    rng = np.random.default_rng(11)
    n = 400
    y = (rng.random(n) < 0.5).astype(int)
    strong = 2.0 * y + rng.normal(size=n)
    weak = 0.3 * y + rng.normal(size=n)
    assert delong_test(y, strong, weak).p_value < 1e-6
    # calibrated under H0: two exchangeable noisy copies of the same marker
    ps = []
    for k in range(200):
        r = np.random.default_rng([k, 1])
        base = 0.8 * y + r.normal(size=n)
        ps.append(delong_test(y, base + r.normal(size=n), base + r.normal(size=n)).p_value)
    assert 0.02 < np.mean(np.array(ps) < 0.05) < 0.09


def test_independent_scores_covariance_near_zero_and_se_scales() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    y = (rng.random(n) < 0.5).astype(int)
    _, cov = delong_covariance(y, np.vstack([y + rng.normal(size=n), y + rng.normal(size=n)]))
    assert abs(cov[0, 1]) < 0.15 * np.sqrt(cov[0, 0] * cov[1, 1])
    se_small = delong_auc(y[:200], (y + rng.normal(size=n))[:200]).se
    se_big = delong_auc(y, y + rng.normal(size=n)).se
    assert se_big / se_small == pytest.approx(np.sqrt(200 / 2000), rel=0.25)


def test_delong_validation_errors() -> None:
    with pytest.raises(LearningError, match="at least 2 patients per class"):
        delong_auc([0, 0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(LearningError, match="both classes"):
        delong_auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(LearningError, match="non-finite"):
        delong_auc([0, 0, 1, 1], [0.1, np.nan, 0.3, 0.4])
    with pytest.raises(LearningError, match="level"):
        delong_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], level=95)
    with pytest.raises(LearningError, match="equal length"):
        delong_test([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3])
    with pytest.raises(LearningError, match="zero variance"):
        delong_test([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 3.0, 4.0])
