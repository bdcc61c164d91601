"""Tests of smartimaging.learn.nomogram: summed points reproduce the model's prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from smartimaging.exceptions import LearningError
from smartimaging.learn.models import make_classifier
from smartimaging.learn.nomogram import build_nomogram
from smartimaging.learn.survival import make_survival_model, make_survival_target


def _table(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "PET_SUVmax": rng.gamma(3.0, 3.0, n),
            "age": rng.integers(40, 85, n),
            "stage": np.array(["I", "II", "III"])[rng.integers(0, 3, n)],
        }
    )


def test_logistic_points_reproduce_probability() -> None:
    X = _table()
    rng = np.random.default_rng(1)
    lp = -3 + 0.25 * X["PET_SUVmax"] + 0.02 * X["age"] + (X["stage"] == "III") * 1.0
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-lp))).astype(int)
    model = make_classifier("logistic").fit(X, y)
    nomo = build_nomogram(model, X, kind="logistic")
    pts = nomo.points(X)
    np.testing.assert_allclose(
        nomo.predict_from_points(pts["total"]), model.predict_proba(X)[:, 1], atol=1e-10
    )
    # over the training patients every variable's points start at 0, the widest one spans 0-100
    per_var = pts.drop(columns="total")
    np.testing.assert_allclose(per_var.min().to_numpy(), 0.0, atol=1e-9)
    assert per_var.max().max() == pytest.approx(100.0) and (per_var.max() <= 100 + 1e-9).all()
    assert all(((df["points"] >= -1e-9) & (df["points"] <= 100 + 1e-9)).all() for df in nomo.scales.values())
    assert set(nomo.scales["stage"]["value"]) == {"I", "II", "III"}
    assert list(nomo.table().columns) == ["variable", "value", "points"]
    risk = nomo.risk_table(n=5)
    assert risk["probability"].is_monotonic_increasing
    fig = nomo.plot(title="test")
    assert fig.axes and any("Probability" == t.get_text() for t in fig.axes[0].texts)


def test_cox_points_reproduce_survival_at_time() -> None:
    X = _table(150, seed=2)
    rng = np.random.default_rng(3)
    lp = 0.12 * X["PET_SUVmax"] + 0.02 * X["age"] + (X["stage"] == "III") * 0.7
    t_event = rng.exponential(1000.0 / np.exp(lp - lp.mean()))
    t_cens = rng.uniform(200, 1500, len(X))
    y = make_survival_target(np.minimum(t_event, t_cens), t_event <= t_cens)
    model = make_survival_model("cox", penalizer=0.01).fit(X, y)
    nomo = build_nomogram(model, X, kind="cox", time=365.0)
    pts = nomo.points(X.iloc[:30])
    expected = np.array([fn(365.0) for fn in model.predict_survival_function(X.iloc[:30])])
    np.testing.assert_allclose(nomo.predict_from_points(pts["total"]), expected, atol=1e-10)
    assert "survival_at_365" in nomo.risk_table().columns
    nomo.plot()


def test_non_additive_model_and_bad_inputs_refused() -> None:
    X = _table(60)
    y = (X["PET_SUVmax"] > 8).astype(int).to_numpy()
    forest = make_classifier("random_forest").set_params(model__n_estimators=20).fit(X, y)
    with pytest.raises(LearningError, match="decision_function"):
        build_nomogram(forest, X)
    Xn = X[["PET_SUVmax", "age"]]
    interaction = make_pipeline(
        StandardScaler(), PolynomialFeatures(2, interaction_only=True), LogisticRegression(max_iter=1000)
    ).fit(Xn, y)
    with pytest.raises(LearningError, match="not additive"):
        build_nomogram(interaction, Xn)
    model = make_classifier("logistic").fit(X, y)
    with pytest.raises(LearningError, match="positive time"):
        build_nomogram(model, X, kind="cox")
    with pytest.raises(LearningError, match="valid values"):
        build_nomogram(model, X, kind="poisson")  # type: ignore[arg-type]
