"""Tests of smartimaging.learn.models: pipelines and feature-set alignment."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from smartimaging.exceptions import LearningError
from smartimaging.learn.models import FEATURE_SETS, build_feature_sets, make_classifier, make_preprocessor


def _tables(n: int = 12) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    ids = pd.Index([f"P{i:02d}" for i in range(n)], name="patient_id")
    features = pd.DataFrame({"PET_SUVmax": rng.gamma(3, 2, n), "stat_mean": rng.normal(size=n)}, index=ids)
    clinical = pd.DataFrame(
        {
            "age": rng.integers(40, 80, n),
            "sex": np.where(np.arange(n) % 2 == 0, "M", "F"),
            "stage": rng.integers(1, 5, n),
            "site": np.array(["lung", "head-neck", "lymphoma"])[np.arange(n) % 3],
            "label": np.arange(n) % 2,
        },
        index=ids,
    )
    return features, clinical


def test_build_feature_sets_aligns_and_reports_dropped(caplog: pytest.LogCaptureFixture) -> None:
    features, clinical = _tables()
    features = features.drop(index="P00")  # no radiomics row
    clinical = clinical.drop(index="P01")  # no clinical row
    clinical.loc["P02", "label"] = np.nan  # unknown outcome
    with caplog.at_level(logging.WARNING, logger="smartimaging.learn.models"):
        sets = build_feature_sets(
            features, clinical, clinical_columns=["age", "sex", "stage"], target="label"
        )
    assert tuple(sets) == FEATURE_SETS
    expected = [f"P{i:02d}" for i in range(3, 12)]
    for table in sets.values():
        assert list(table.index) == expected
        assert "label" not in table.columns
        assert table.attrs["dropped_patients"]["missing label"] == ["P02"]
    assert list(sets["clinical"].columns) == ["age", "sex", "stage"]
    assert list(sets["radiomics"].columns) == ["PET_SUVmax", "stat_mean"]
    assert list(sets["combined"].columns) == ["age", "sex", "stage", "PET_SUVmax", "stat_mean"]
    assert "P02" in caplog.text and "P00" in caplog.text and "P01" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"clinical_columns": ["age", "weight"], "target": "label"},
            r"\['weight'\] not in the clinical table",
        ),
        ({"clinical_columns": ["age", "label"], "target": "label"}, "also listed in clinical_columns"),
        ({"clinical_columns": ["age"], "target": "outcome"}, r"\['outcome'\]"),
    ],
)
def test_build_feature_sets_errors(kwargs: dict, match: str) -> None:
    features, clinical = _tables()
    with pytest.raises(LearningError, match=match):
        build_feature_sets(features, clinical, **kwargs)


def test_build_feature_sets_rejects_non_numeric_clash_and_no_overlap() -> None:
    features, clinical = _tables()
    with pytest.raises(LearningError, match="not numeric"):
        build_feature_sets(features.assign(roi="GTV"), clinical, clinical_columns=["age"], target="label")
    with pytest.raises(LearningError, match="both the radiomics and the clinical"):
        build_feature_sets(features.assign(age=1.0), clinical, clinical_columns=["age"], target="label")
    with pytest.raises(LearningError, match="no patient is in both"):
        build_feature_sets(
            features.reset_index(drop=True), clinical, clinical_columns=["age"], target="label"
        )
    with pytest.raises(LearningError, match="duplicated patient ids"):
        build_feature_sets(
            pd.concat([features, features.iloc[:1]]), clinical, clinical_columns=["age"], target="label"
        )


def test_preprocessor_one_hot_encodes_categories_and_imputes() -> None:
    _, clinical = _tables()
    X = clinical[["age", "sex", "site"]].copy()
    X["age"] = X["age"].astype(float)
    X.loc["P00", "age"] = np.nan
    X.loc["P01", "sex"] = np.nan
    pre = make_preprocessor(X)
    out = pre.fit_transform(X)
    # 1 numeric + 2 sexes + 3 sites
    assert out.shape == (12, 6)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 0].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(out[:, 0].std(), 1, atol=1e-12)
    np.testing.assert_array_equal(out[:, 1:3].sum(axis=1), 1)
    # selector-based version (as in make_classifier) picks the same columns
    np.testing.assert_allclose(make_preprocessor().fit_transform(X), out)


def test_make_classifier_kinds() -> None:
    features, clinical = _tables(30)
    X = pd.concat([features, clinical[["sex", "site"]]], axis=1)
    y = clinical["label"]
    for kind in ("logistic", "random_forest"):
        model = make_classifier(kind, random_state=0).fit(X, y)
        proba = model.predict_proba(X)[:, 1]
        assert proba.shape == (30,) and ((proba >= 0) & (proba <= 1)).all()
    with pytest.raises(LearningError, match=r"valid values are \['logistic', .*'random_forest'"):
        make_classifier("svm-linear")  # type: ignore[arg-type]


def test_unseen_category_in_test_rows_is_ignored() -> None:
    X = pd.DataFrame({"x": np.arange(8.0), "site": ["a", "b"] * 4})
    y = np.array([0, 1] * 4)
    model = make_classifier().fit(X, y)
    proba = model.predict_proba(pd.DataFrame({"x": [1.0], "site": ["never-seen"]}))
    assert np.isfinite(proba).all()


def test_pipeline_accepts_pandas_extension_dtypes() -> None:
    """category (with missing), bool and nullable Int64 columns go through imputation and encoding."""
    rng = np.random.default_rng(0)
    n = 40
    X = pd.DataFrame(
        {
            "suv": rng.normal(size=n),
            "site": pd.Categorical(rng.choice(["lung", "lymphoma", None], n)),
            "smoker": rng.choice([True, False], n),
            "stage": pd.array(rng.integers(1, 5, n), dtype="Int64"),
        }
    )
    X.loc[1, "stage"] = pd.NA
    y = np.arange(n) % 2
    for kind in ("logistic", "random_forest"):
        model = make_classifier(kind).fit(X, y)
        assert np.isfinite(model.predict_proba(X)).all()
    out = make_preprocessor(X).fit_transform(X)
    # suv + stage numeric, 2 site levels (missing imputed by the most frequent), 2 smoker levels
    assert out.shape == (n, 6)
    assert np.isfinite(out).all()
