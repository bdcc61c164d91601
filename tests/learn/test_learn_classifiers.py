"""Tests of the classifier kinds of smartimaging.learn.models.make_classifier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV

from smartimaging.exceptions import LearningError
from smartimaging.learn.metrics import roc_auc
from smartimaging.learn.models import CLASSIFIER_KINDS, default_param_grid, make_classifier


def _table(n: int = 60, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n // 2, dtype=int), np.ones(n - n // 2, dtype=int)]
    X = pd.DataFrame(
        {
            "PET_SUVmax": rng.gamma(3, 2, n) + 8.0 * y,
            "CT_mean": rng.normal(size=n) + 1.5 * y,
            "noise": rng.normal(size=n),
            "sex": np.where(rng.random(n) < 0.5, "M", "F"),
        },
        index=pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id"),
    )
    X.iloc[3, 1] = np.nan  # imputation inside the pipeline
    return X, y


@pytest.mark.parametrize("kind", CLASSIFIER_KINDS)
def test_every_kind_fits_and_predicts_probabilities(kind: str) -> None:
    X, y = _table()
    train, test = np.arange(0, 60, 2), np.arange(1, 60, 2)
    model = make_classifier(kind, random_state=1).fit(X.iloc[train], y[train])  # type: ignore[arg-type]
    proba = model.predict_proba(X.iloc[test])
    assert proba.shape == (30, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert roc_auc(y[test], proba[:, 1]) > 0.75  # a strong signal is found by every model
    again = make_classifier(kind, random_state=1).fit(X.iloc[train], y[train])  # type: ignore[arg-type]
    np.testing.assert_array_equal(again.predict_proba(X.iloc[test]), proba)  # deterministic


@pytest.mark.parametrize("kind", CLASSIFIER_KINDS)
def test_default_grid_names_valid_parameters(kind: str) -> None:
    grid = default_param_grid(kind)  # type: ignore[arg-type]
    params = make_classifier(kind).get_params()  # type: ignore[arg-type]
    assert grid and all(name in params for name in grid)


def test_grid_search_runs_on_a_cheap_kind() -> None:
    X, y = _table(40)
    search = GridSearchCV(
        make_classifier("logistic_l1"), default_param_grid("logistic_l1"), cv=3, scoring="roc_auc"
    )
    search.fit(X, y)
    assert search.best_params_["model__C"] in default_param_grid("logistic_l1")["model__C"]


def test_l1_gives_sparse_and_elastic_net_differs() -> None:
    X, y = _table(80)
    l1 = make_classifier("logistic_l1").set_params(model__C=0.05).fit(X, y)
    coef = l1.named_steps["model"].coef_.ravel()
    assert (coef == 0).sum() >= 1  # noise / sex dropped
    assert coef[0] != 0  # SUVmax kept


def test_unknown_kind_lists_valid_values() -> None:
    with pytest.raises(LearningError, match=r"valid values are \['logistic', 'logistic_l1'"):
        make_classifier("catboost")  # type: ignore[arg-type]
    with pytest.raises(LearningError, match="valid values"):
        default_param_grid("catboost")  # type: ignore[arg-type]
