"""DeLong's test reproduces the published pROC results on the aSAH data set.

Source of the reference values: the R package pROC (Robin X et al., BMC Bioinformatics
2011;12:77, doi:10.1186/1471-2105-12-77), its ``roc.test`` documentation example
``roc.test(roc(aSAH$outcome, aSAH$s100b), roc(aSAH$outcome, aSAH$wfns))`` and its own test suite
(github.com/xrobin/pROC, ``tests/testthat/test-roc.test.R``, the "statistic and p are as
expected with defaults" block, and ``helper-deLongPlacementsCpp-expected.R`` for the AUCs):

* wfns vs s100b:  Z =  2.20898359144091, p = 0.0271757822291882, 95 % CI of the AUC difference
  (0.0104061769564846, 0.174214419249478);
* wfns vs ndka:   Z =  2.79777591868904, p = 0.00514557970691098, CI (0.0634011709339876,
  0.3600405634833566);
* ndka vs s100b:  Z = -1.39077002573558, p = 0.164295175223054, CI (-0.2876917446341914,
  0.0488706064228094);
* AUCs (direction '<', positive = outcome 'Poor'): s100b 0.731368563685637, wfns
  0.823678861788618, ndka 0.611957994579946.

Data: ``aSAH`` (113 patients with aneurysmal subarachnoid haemorrhage, 41 with a poor outcome),
Turck N et al., A multiparameter panel method for outcome prediction following aneurysmal
subarachnoid hemorrhage, Intensive Care Med 2010;36:107-115, doi:10.1007/s00134-009-1641-y, as
shipped with pROC (GPL-3). Only the outcome and the three predictors are reproduced, in the
package's row order; the values are measurements reported by that study. wfns is a 5-level
ordinal score, so the example also exercises heavy ties.
"""

from __future__ import annotations

import numpy as np
import pytest

from smartimaging.learn.delong import delong_auc, delong_covariance, delong_test

# outcome == "Poor"
Y = [
    0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0,
    0, 0, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0,
    0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0,
    0,
]  # fmt: skip
S100B = [
    0.13, 0.14, 0.1, 0.04, 0.13, 0.1, 0.47, 0.16, 0.18, 0.1, 0.12, 0.1, 0.44, 0.71,
    0.04, 0.08, 0.49, 0.04, 0.07, 0.33, 0.09, 0.09, 0.07, 0.11, 0.07, 0.17, 0.07, 0.11,
    0.13, 0.19, 0.05, 0.16, 0.41, 0.14, 0.34, 0.35, 0.48, 0.09, 0.96, 0.25, 0.5, 0.46,
    0.16, 0.07, 0.43, 0.45, 0.11, 0.08, 0.09, 0.86, 0.52, 0.08, 0.06, 0.13, 2.07, 0.1,
    0.14, 0.15, 0.07, 0.06, 0.77, 0.05, 0.09, 0.3, 0.03, 0.09, 0.04, 0.23, 0.7, 0.09,
    0.27, 0.71, 0.08, 0.26, 0.08, 0.16, 0.09, 0.13, 0.1, 0.08, 0.11, 0.33, 0.11, 0.28,
    0.07, 0.1, 0.32, 0.22, 0.07, 0.05, 0.24, 0.38, 0.1, 0.15, 0.08, 0.14, 0.1, 0.07,
    0.04, 0.19, 0.56, 0.14, 0.58, 0.32, 0.82, 0.74, 0.15, 0.47, 0.17, 0.44, 0.15, 0.5,
    0.48,
]  # fmt: skip
WFNS = [
    1, 1, 1, 1, 3, 2, 5, 4, 1, 2, 5, 2, 5, 5, 1, 2, 5, 2, 2, 5, 2, 1, 1, 1, 1, 2, 1, 2,
    1, 1, 3, 4, 2, 1, 4, 5, 4, 1, 4, 2, 5, 5, 1, 1, 2, 4, 1, 1, 2, 5, 5, 2, 1, 2, 5, 1,
    2, 2, 2, 1, 5, 1, 1, 2, 5, 2, 1, 4, 5, 2, 4, 4, 1, 4, 1, 2, 1, 4, 2, 1, 2, 3, 2, 4,
    2, 1, 4, 5, 1, 1, 5, 4, 2, 2, 1, 1, 1, 3, 1, 2, 5, 2, 2, 5, 5, 5, 2, 4, 4, 5, 1, 1,
    1,
]  # fmt: skip
NDKA = [
    3.01, 8.54, 8.09, 10.42, 17.4, 12.75, 6.0, 13.2, 15.54, 6.01, 15.96, 17.86, 5.18,
    8.9, 13.41, 20.75, 11.6, 16.11, 32.37, 54.82, 32.41, 49.94, 40.34, 9.47, 6.29,
    12.53, 6.54, 6.3, 80.3, 12.8, 9.8, 9.81, 9.85, 18.21, 5.03, 14.04, 21.93, 8.02,
    7.42, 8.38, 6.59, 9.63, 13.12, 7.96, 14.34, 41.43, 7.63, 7.06, 12.59, 13.56, 3.87,
    9.44, 7.66, 12.98, 419.19, 27.19, 22.27, 9.95, 21.22, 11.73, 10.4, 58.83, 6.39,
    11.09, 12.22, 13.67, 17.21, 22.63, 12.9, 9.7, 21.57, 8.23, 72.57, 15.54, 10.51,
    10.6, 14.57, 5.19, 9.63, 4.61, 21.48, 17.3, 12.71, 9.44, 11.07, 19.46, 10.83, 5.37,
    11.97, 7.75, 9.83, 10.55, 28.49, 8.53, 12.57, 12.9, 46.83, 11.68, 12.67, 9.01, 9.57,
    34.06, 11.72, 14.26, 47.61, 11.67, 24.58, 10.33, 13.87, 15.89, 22.43, 6.79, 13.45,
]  # fmt: skip

# pROC helper-deLongPlacementsCpp-expected.R, "forward" theta
PROC_AUC = {"s100b": 0.731368563685637, "wfns": 0.823678861788618, "ndka": 0.611957994579946}
# pROC test-roc.test.R: roc.test(a, b) -> Z, p, conf.int of AUC_a - AUC_b
PROC_TESTS = [
    ("wfns", "s100b", 2.20898359144091, 0.0271757822291882, (0.0104061769564846, 0.174214419249478)),
    ("wfns", "ndka", 2.79777591868904, 0.00514557970691098, (0.0634011709339876, 0.3600405634833566)),
    ("ndka", "s100b", -1.39077002573558, 0.164295175223054, (-0.2876917446341914, 0.0488706064228094)),
]
SCORES = {"s100b": S100B, "wfns": WFNS, "ndka": NDKA}


def test_data_shape() -> None:
    assert len(Y) == len(S100B) == len(WFNS) == len(NDKA) == 113
    assert sum(Y) == 41


@pytest.mark.parametrize("marker", sorted(PROC_AUC))
def test_aucs_match_proc(marker: str) -> None:
    r = delong_auc(Y, SCORES[marker])
    assert r.auc == pytest.approx(PROC_AUC[marker], abs=1e-13)
    assert (r.n_positive, r.n_negative) == (41, 72)


@pytest.mark.parametrize(("a", "b", "z", "p", "ci"), PROC_TESTS)
def test_delong_test_matches_proc_roc_test(
    a: str, b: str, z: float, p: float, ci: tuple[float, float]
) -> None:
    t = delong_test(Y, SCORES[a], SCORES[b])
    assert t.auc_a == pytest.approx(PROC_AUC[a], abs=1e-13)
    assert t.auc_b == pytest.approx(PROC_AUC[b], abs=1e-13)
    assert t.z == pytest.approx(z, rel=1e-10)
    assert t.p_value == pytest.approx(p, rel=1e-9)
    assert t.ci_difference[0] == pytest.approx(ci[0], rel=1e-9)
    assert t.ci_difference[1] == pytest.approx(ci[1], rel=1e-9)
    # reversing the pair flips z and keeps p (pROC's "identical p values when reversed" check)
    r = delong_test(Y, SCORES[b], SCORES[a])
    assert r.z == pytest.approx(-z, rel=1e-10) and r.p_value == pytest.approx(p, rel=1e-9)


def test_documented_example_rounded() -> None:
    """pROC's roc.test help page: s100b vs wfns, 'Z = -2.209, p-value = 0.02718'."""
    t = delong_test(Y, S100B, WFNS)
    assert round(t.z, 3) == -2.209
    assert round(t.p_value, 5) == 0.02718
    assert (round(t.auc_a, 4), round(t.auc_b, 4)) == (0.7314, 0.8237)


def test_covariance_is_symmetric_and_consistent() -> None:
    aucs, cov = delong_covariance(Y, np.vstack([S100B, WFNS, NDKA]))
    np.testing.assert_allclose(cov, cov.T, atol=0)
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    for i, m in enumerate(("s100b", "wfns", "ndka")):
        assert delong_auc(Y, SCORES[m]).se == pytest.approx(np.sqrt(cov[i, i]), rel=1e-12)
        assert aucs[i] == pytest.approx(PROC_AUC[m], abs=1e-13)
