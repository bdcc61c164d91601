"""Tests of smartimaging.learn.clinical_metrics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import chi2
from sklearn.linear_model import LogisticRegression

from smartimaging.exceptions import LearningError
from smartimaging.learn.clinical_metrics import (
    brier_score,
    calibration_curve,
    calibration_slope_intercept,
    choose_threshold,
    decision_curve,
    hosmer_lemeshow,
    plot_calibration,
    plot_decision_curve,
    threshold_metrics,
    wilson_interval,
)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _simulated(n: int, seed: int, distortion: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes drawn from true risks; predictions = true risks with logit scaled by 1/distortion."""
    rng = np.random.default_rng(seed)
    lp = rng.normal(-0.5, 1.3, size=n)
    y = (rng.random(n) < _sigmoid(lp)).astype(int)
    return y, _sigmoid(lp / distortion)


def test_choose_threshold_hand_computed() -> None:
    y = [0, 0, 1, 0, 1, 1]
    s = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    # J: t=0.6 -> 1/3, 0.5 -> 2/3, 0.4 -> 1/3, 0.3 -> 2/3 (tie: keep the higher threshold)
    assert choose_threshold(y, s) == 0.5
    assert choose_threshold(y, s, method="sensitivity", target_sensitivity=0.9) == 0.3
    assert choose_threshold(y, s, method="sensitivity", target_sensitivity=0.6) == 0.5
    with pytest.raises(LearningError, match=r"valid values are \['youden', 'sensitivity'\]"):
        choose_threshold(y, s, method="f1")  # type: ignore[arg-type]


def test_threshold_metrics_hand_computed_and_per_patient_thresholds() -> None:
    y = [1, 1, 1, 0, 0, 0, 0]
    s = [0.9, 0.7, 0.2, 0.8, 0.3, 0.1, 0.5]
    m = threshold_metrics(y, s, threshold=0.5)
    assert (m.tp, m.fp, m.tn, m.fn) == (2, 2, 2, 1)
    assert m.sensitivity == pytest.approx(2 / 3) and m.specificity == pytest.approx(0.5)
    assert m.ppv == pytest.approx(0.5) and m.npv == pytest.approx(2 / 3)
    assert m.sensitivity_ci is not None and m.sensitivity_ci[0] < 2 / 3 < m.sensitivity_ci[1]
    # nobody called positive: PPV undefined -> None, not NaN
    none = threshold_metrics(y, s, threshold=0.95)
    assert none.ppv is None and none.ppv_ci is None and none.sensitivity == 0.0
    # one threshold per patient (e.g. per cross-validation fold)
    per = threshold_metrics(y, s, threshold=[0.5, 0.5, 0.1, 0.9, 0.5, 0.5, 0.5])
    assert (per.tp, per.fp, per.tn, per.fn) == (3, 1, 3, 0)


def test_wilson_interval_reference_values() -> None:
    # Newcombe (1998, Stat Med 17:857), Table I: 81/263 -> 0.2553 to 0.3662; 15/148 -> 0.0624 to 0.1605
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=5e-5)
    assert wilson_interval(0, 0) is None


def test_brier_score() -> None:
    assert brier_score([1, 0, 1, 0], [1.0, 0.0, 0.5, 0.25]) == pytest.approx((0 + 0 + 0.25 + 0.0625) / 4)
    with pytest.raises(LearningError, match="probabilities"):
        brier_score([1, 0], [1.5, 0.2])


def test_calibration_slope_matches_unpenalised_logistic_fit() -> None:
    y, p = _simulated(500, 1, distortion=0.7)  # over-confident predictions -> slope < 1
    cal = calibration_slope_intercept(y, p)
    lp = np.log(p / (1 - p))
    ref = LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000).fit(lp[:, None], y)
    assert cal.slope == pytest.approx(ref.coef_[0, 0], abs=1e-5)
    assert cal.intercept == pytest.approx(ref.intercept_[0], abs=1e-5)

    def nll(a: float) -> float:
        q = _sigmoid(a + lp)
        return -float(np.sum(y * np.log(q) + (1 - y) * np.log(1 - q)))

    assert cal.citl == pytest.approx(
        minimize_scalar(nll, bounds=(-5, 5), method="bounded", options={"xatol": 1e-10}).x, abs=1e-6
    )
    assert cal.slope == pytest.approx(0.7, abs=0.15)


def test_calibration_of_true_risks_is_ideal() -> None:
    y, p = _simulated(20_000, 2)
    cal = calibration_slope_intercept(y, p)
    assert cal.slope == pytest.approx(1.0, abs=0.05)
    assert cal.citl == pytest.approx(0.0, abs=0.05)
    curve = calibration_curve(y, p, n_bins=10)
    assert len(curve) == 10 and curve["n"].sum() == y.size
    np.testing.assert_allclose(curve["observed"], curve["mean_predicted"], atol=0.04)
    assert (curve["observed_lo"] <= curve["observed"]).all() and (
        curve["observed"] <= curve["observed_hi"]
    ).all()
    uni = calibration_curve(y, p, n_bins=5, strategy="uniform")
    assert uni["mean_predicted"].is_monotonic_increasing and uni["n"].sum() == y.size


def _hl_pearson_reference(y: np.ndarray, p: np.ndarray, g: int) -> float:
    """Pearson chi-square over the 2 x g table of observed vs expected events and non-events."""
    order = np.argsort(p, kind="stable")
    total = 0.0
    for idx in np.array_split(order, g):
        o1, e1 = y[idx].sum(), p[idx].sum()
        o0, e0 = len(idx) - o1, len(idx) - e1
        total += (o1 - e1) ** 2 / e1 + (o0 - e0) ** 2 / e0
    return float(total)


@pytest.mark.parametrize("distortion", [1.0, 0.5])
def test_hosmer_lemeshow_matches_reference(distortion: float) -> None:
    y, p = _simulated(300, 3, distortion)
    hl = hosmer_lemeshow(y, p, n_groups=10)
    ref = _hl_pearson_reference(y, p, 10)
    assert hl.statistic == pytest.approx(ref, rel=1e-12)
    assert hl.dof == 8 and hl.p_value == pytest.approx(chi2.sf(ref, 8))
    assert hl.table["n"].sum() == 300
    if distortion == 0.5:  # badly over-confident: rejected
        assert hl.p_value < 0.001


def test_decision_curve_hand_computed() -> None:
    y = [1, 1, 0, 0, 1]
    p = [0.9, 0.6, 0.7, 0.2, 0.1]
    dc = decision_curve(y, p, thresholds=[0.25, 0.5])
    # pt=0.5: treated = first three -> TP 2, FP 1: 2/5 - 1/5 * 1 = 0.2; treat all 0.6 - 0.4 = 0.2
    # pt=0.25: odds 1/3 -> 0.4 - 0.2/3; treat all 0.6 - 0.4/3
    np.testing.assert_allclose(dc["net_benefit_model"], [0.4 - 0.2 / 3, 0.2])
    np.testing.assert_allclose(dc["net_benefit_all"], [0.6 - 0.4 / 3, 0.2])
    assert (dc["net_benefit_none"] == 0).all()
    full = decision_curve(y, p)
    assert len(full) == 99 and full["threshold"].iloc[0] == 0.01
    with pytest.raises(LearningError, match=r"\[0, 1\)"):
        decision_curve(y, p, thresholds=[1.0])


def test_input_validation() -> None:
    with pytest.raises(LearningError, match="0/1"):
        hosmer_lemeshow([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(LearningError, match="n_groups"):
        hosmer_lemeshow([0, 1, 1], [0.1, 0.2, 0.3], n_groups=2)
    with pytest.raises(LearningError, match="strategy"):
        calibration_curve([0, 1], [0.1, 0.2], strategy="kmeans")  # type: ignore[arg-type]
    with pytest.raises(LearningError, match=r"separation|singular|converge"):
        calibration_slope_intercept([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])


def test_plots_draw_the_tables() -> None:
    y, p = _simulated(300, 4)
    fig = plot_calibration(calibration_curve(y, p, n_bins=5), title="cal")
    assert len(fig.axes[0].lines) >= 2
    dc = decision_curve(y, p)
    fig2 = plot_decision_curve(dc)
    np.testing.assert_allclose(fig2.axes[0].lines[0].get_ydata(), dc["net_benefit_model"])
