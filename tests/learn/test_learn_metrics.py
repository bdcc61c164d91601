"""Tests of smartimaging.learn.metrics: AUC, its bootstrap interval and ROC points."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from smartimaging.exceptions import LearningError
from smartimaging.learn.metrics import bootstrap_auc_ci, roc_auc, roc_curve_points


def _scored(n: int, seed: int, shift: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n // 2, dtype=int), np.ones(n - n // 2, dtype=int)]
    s = rng.normal(size=n) + shift * y
    return y, s


def test_roc_auc_hand_computed() -> None:
    # pairs (pos, neg): (0.35>0.1) (0.35<0.4) (0.8>0.1) (0.8>0.4) -> 3/4
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # a tie counts one half: pos 0.5 vs neg 0.5 -> 0.5
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    assert roc_auc([True, False], [1.0, 0.0]) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_equals_sklearn(seed: int) -> None:
    y, s = _scored(57, seed)
    s = np.round(s, 1)  # force ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-15)


def test_roc_curve_points_match_sklearn() -> None:
    y, s = _scored(40, 3)
    fpr, tpr = roc_curve_points(y, s)
    ref_fpr, ref_tpr, _ = roc_curve(y, s)
    np.testing.assert_array_equal(fpr, ref_fpr)
    np.testing.assert_array_equal(tpr, ref_tpr)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, s))


@pytest.mark.parametrize(
    ("y", "match"),
    [
        ([1, 1, 1], "both classes"),
        ([0, 2, 1], "0/1 labels"),
        (["a", "b", "a"], "0/1 labels"),
        ([0, np.nan, 1], "missing"),
    ],
)
def test_roc_auc_rejects_bad_labels(y: list, match: str) -> None:
    with pytest.raises(LearningError, match=match):
        roc_auc(y, [0.1, 0.2, 0.3])


def test_roc_auc_rejects_nonfinite_and_length() -> None:
    with pytest.raises(LearningError, match="non-finite"):
        roc_auc([0, 1, 1], [0.1, np.nan, 0.3])
    with pytest.raises(LearningError, match="rows"):
        roc_auc([0, 1, 1], [0.1, 0.3])


def test_bootstrap_ci_contains_auc_and_narrows_with_n() -> None:
    widths = []
    for n in (40, 160, 640):
        y, s = _scored(n, 7)
        auc = roc_auc(y, s)
        lo, hi = bootstrap_auc_ci(y, s, n_boot=1000, random_state=1)
        assert lo < auc < hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    # width scales roughly as 1/sqrt(n): 16x the patients -> about 1/4 of the width
    assert widths[2] / widths[0] == pytest.approx(0.25, rel=0.35)


def test_bootstrap_matches_loop_reference() -> None:
    """The pairwise-matrix shortcut equals explicitly resampling and calling sklearn."""
    y, s = _scored(30, 11)
    s = np.round(s, 1)
    n_boot = 300
    lo, hi = bootstrap_auc_ci(y, s, n_boot=n_boot, alpha=0.1, random_state=5)
    rng = np.random.default_rng(5)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    c_pos = rng.multinomial(pos.size, np.full(pos.size, 1 / pos.size), size=n_boot)
    c_neg = rng.multinomial(neg.size, np.full(neg.size, 1 / neg.size), size=n_boot)
    ref = []
    for b in range(n_boot):
        idx = np.r_[np.repeat(pos, c_pos[b]), np.repeat(neg, c_neg[b])]
        ref.append(roc_auc_score(y[idx], s[idx]))
    ref_lo, ref_hi = np.quantile(ref, [0.05, 0.95])
    assert (lo, hi) == pytest.approx((ref_lo, ref_hi), abs=1e-12)


def test_bootstrap_two_dimensional_scores_average_columns() -> None:
    y, s1 = _scored(50, 2)
    _, s2 = _scored(50, 3)
    both = np.c_[s1, s2]
    lo, hi = bootstrap_auc_ci(y, both, n_boot=500)
    mean_auc = (roc_auc(y, s1) + roc_auc(y, s2)) / 2
    assert lo < mean_auc < hi
    # identical columns give the same interval as one column
    assert bootstrap_auc_ci(y, np.c_[s1, s1], n_boot=500) == pytest.approx(
        bootstrap_auc_ci(y, s1, n_boot=500)
    )


def test_bootstrap_deterministic_and_validates() -> None:
    y, s = _scored(30, 4)
    assert bootstrap_auc_ci(y, s, random_state=3) == bootstrap_auc_ci(y, s, random_state=3)
    assert bootstrap_auc_ci(y, s, random_state=3) != bootstrap_auc_ci(y, s, random_state=4)
    with pytest.raises(LearningError, match="n_boot"):
        bootstrap_auc_ci(y, s, n_boot=0)
    with pytest.raises(LearningError, match="alpha"):
        bootstrap_auc_ci(y, s, alpha=1.5)
