"""Tests of smartimaging.learn.survival."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines.statistics import logrank_test
from lifelines.utils import concordance_index

from smartimaging.exceptions import LearningError
from smartimaging.learn.survival import (
    SURVIVAL_KINDS,
    LassoCox,
    cross_validate_survival,
    harrell_c,
    kaplan_meier_groups,
    logrank,
    make_survival_model,
    make_survival_target,
    plot_risk_groups,
)


def _cohort(n: int = 80, seed: int = 0) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Exponential survival with log-hazard 0.9 * x1 + 0.5 * x2; uniform censoring."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "noise": rng.normal(size=n)})
    X.index = pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id")
    lp = 0.9 * X["x1"] + 0.5 * X["x2"]
    t_event = rng.exponential(365.0 / np.exp(lp))
    t_cens = rng.uniform(100, 900, n)
    time = pd.Series(np.round(np.minimum(t_event, t_cens), 1), index=X.index)
    event = pd.Series((t_event <= t_cens).astype(int), index=X.index)
    return X, time, event


def test_target_validation_messages() -> None:
    y = make_survival_target([1.0, 2.0, 3.0], [1, 0, True])
    assert y["event"].tolist() == [True, False, True] and y["time"].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(LearningError, match="negative follow-up"):
        make_survival_target([1.0, -2.0], [1, 0])
    with pytest.raises(LearningError, match="no event"):
        make_survival_target([1.0, 2.0], [0, 0])
    with pytest.raises(LearningError, match="missing"):
        make_survival_target([1.0, np.nan], [1, 0])
    with pytest.raises(LearningError, match=r"1 \(event observed\) or 0"):
        make_survival_target([1.0, 2.0], [1, 2])
    with pytest.raises(LearningError, match="3 values"):
        make_survival_target([1.0, 2.0, 3.0], [1, 0])


def test_harrell_c_matches_lifelines() -> None:
    X, time, event = _cohort(120, seed=1)
    risk = 0.9 * X["x1"] + 0.2 * np.round(X["x2"], 0)  # some ties in risk
    ours = harrell_c(time, event, risk)
    ref = concordance_index(time, -risk, event)  # lifelines wants higher = longer survival
    assert ours == pytest.approx(ref, abs=1e-12)
    assert ours > 0.65


def test_logrank_matches_lifelines_and_km_is_right() -> None:
    X, time, event = _cohort(100, seed=2)
    group = np.where(X["x1"] > 0, "high", "low")
    chi2, p = logrank(time, event, group)
    ref = logrank_test(
        time[group == "high"], time[group == "low"], event[group == "high"], event[group == "low"]
    )
    assert chi2 == pytest.approx(ref.test_statistic, rel=1e-8)
    assert p == pytest.approx(ref.p_value, rel=1e-6)
    # Kaplan-Meier by hand on a tiny case: times 1,2,2,3 with events 1,1,0,1
    km = kaplan_meier_groups([1, 2, 2, 3], [1, 1, 0, 1], ["a"] * 4)
    np.testing.assert_allclose(km["survival"], [1.0, 0.75, 0.5, 0.0])
    with pytest.raises(LearningError, match="one group"):
        logrank(time, event, np.zeros(len(time)))


@pytest.mark.parametrize("kind", SURVIVAL_KINDS)
def test_every_survival_kind_fits_and_ranks(kind: str) -> None:
    X, time, event = _cohort(90, seed=3)
    y = make_survival_target(time, event)
    model = make_survival_model(kind, random_state=0).fit(X.iloc[:60], y[:60])  # type: ignore[arg-type]
    risk = model.predict(X.iloc[60:])
    assert harrell_c(time.iloc[60:], event.iloc[60:], risk) > 0.6
    surv = model.predict_survival_function(X.iloc[60:])
    vals = np.array([fn(200.0) for fn in surv])
    assert ((vals >= 0) & (vals <= 1)).all()
    # higher risk -> lower survival at 200 days
    assert np.corrcoef(risk, vals)[0, 1] < -0.5


def test_lasso_cox_drops_noise() -> None:
    X, time, event = _cohort(150, seed=4)
    X = X.assign(noise2=np.random.default_rng(9).normal(size=150))
    m = LassoCox(random_state=0).fit(X.to_numpy(), make_survival_target(time, event))
    assert m.coef_[0] > 0 and m.coef_[1] > 0
    assert abs(m.coef_[0]) > abs(m.coef_[2]) and abs(m.coef_[0]) > abs(m.coef_[3])
    assert m.alpha_ in m.alphas_ and m.cv_scores_.max() > 0.6
    risk = m.predict(X.to_numpy())
    assert np.corrcoef(risk, X.to_numpy() @ m.coef_)[0, 1] > 0.999


def test_cross_validate_survival_metrics_and_risk_groups() -> None:
    X, time, event = _cohort(100, seed=5)
    res = cross_validate_survival(X, time, event, kind="cox", n_splits=4, random_state=0, name="cox")
    p = res.predictions
    assert len(p) == 100 and set(p["patient_id"]) == set(X.index)
    # each fold's cut-off is the median risk of its training patients (about half of them above it)
    assert p.groupby("fold")["cutoff"].nunique().eq(1).all()
    s = res.summary()
    assert s["harrell_c"] > 0.65 and s["uno_c"] > 0.6 and s["mean_td_auc"] > 0.65
    assert 0 < s["ibs"] < 0.25
    assert s["logrank_p"] < 0.01
    assert set(res.td_auc.columns) == {"repeat", "fold", "time", "auc"} and len(res.td_auc) > 0
    fig = plot_risk_groups(res)
    assert len(fig.axes[0].lines) == 2


def test_cross_validate_survival_input_errors() -> None:
    X, time, event = _cohort(20, seed=6)
    with pytest.raises(LearningError, match="lacks"):
        cross_validate_survival(X, time.iloc[:10], event)
    with pytest.raises(LearningError, match="too few"):
        cross_validate_survival(
            X, time, event.where(event.index != "x", 0) * 0 + (np.arange(20) < 3), n_splits=5
        )
    with pytest.raises(LearningError, match="valid values"):
        make_survival_model("aft")  # type: ignore[arg-type]
