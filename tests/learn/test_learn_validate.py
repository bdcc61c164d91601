"""Tests of smartimaging.learn.validate: repeated cross-validation, model comparison, chance level."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

from smartimaging.exceptions import LearningError
from smartimaging.learn.metrics import roc_auc
from smartimaging.learn.models import build_feature_sets, make_classifier
from smartimaging.learn.validate import compare_models, cross_validate_binary, permutation_check

N_PATIENTS = 80


def synthetic_cohort(seed: int = 42, n: int = N_PATIENTS) -> tuple[pd.DataFrame, pd.Series]:
    """3 informative + 10 noise features; the label follows the informative ones plus noise."""
    rng = np.random.default_rng(seed)
    ids = pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id")
    values = rng.normal(size=(n, 13))
    columns = ["PET_SUVmax", "PET_MTV", "stat_mean"] + [f"noise_{k}" for k in range(10)]
    X = pd.DataFrame(values, index=ids, columns=columns)
    logit = 1.5 * (X["PET_SUVmax"] + X["PET_MTV"] - X["stat_mean"])
    y = pd.Series((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int), index=ids, name="label")
    return X, y


@pytest.fixture(scope="module")
def cohort() -> tuple[pd.DataFrame, pd.Series]:
    return synthetic_cohort()


def test_informative_features_reach_high_auc(cohort: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = cohort
    informative = cross_validate_binary(X[["PET_SUVmax", "PET_MTV", "stat_mean"]], y, name="informative")
    everything = cross_validate_binary(X, y, name="all")
    noise = cross_validate_binary(X[[f"noise_{k}" for k in range(10)]], y, name="noise")
    print(
        f"\nCV AUC informative={informative.auc:.3f} {informative.auc_ci}, all={everything.auc:.3f} "
        f"{everything.auc_ci}, noise only={noise.auc:.3f} {noise.auc_ci}"
    )
    assert informative.auc > 0.75
    assert everything.auc > 0.75
    assert noise.auc < 0.65
    assert informative.auc > noise.auc + 0.2
    for res in (informative, everything, noise):
        lo, hi = res.auc_ci
        assert 0 <= lo < res.auc < hi <= 1


def test_result_contents(cohort: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = cohort
    res = cross_validate_binary(X, y, n_splits=4, n_repeats=3, name="x")
    assert res.name == "x"
    assert res.n_patients == N_PATIENTS and res.n_events == int(y.sum())
    assert res.fold_aucs.shape == (12,) and res.repeat_aucs.shape == (3,)
    assert res.auc == pytest.approx(res.repeat_aucs.mean())
    oof = res.oof
    assert list(oof.columns) == ["patient_id", "repeat", "fold", "y_true", "y_score"]
    assert len(oof) == 3 * N_PATIENTS
    # each patient scored exactly once per repeat, labels carried correctly
    assert (oof.groupby(["repeat", "patient_id"]).size() == 1).all()
    assert (oof.groupby("repeat")["patient_id"].nunique() == N_PATIENTS).all()
    for r in range(3):
        part = oof[oof["repeat"] == r].set_index("patient_id")
        np.testing.assert_array_equal(part.loc[X.index, "y_true"].to_numpy(), y.to_numpy())
        assert sorted(part["fold"].unique()) == [0, 1, 2, 3]
    for r, auc_r in enumerate(res.repeat_aucs):
        part = oof[oof["repeat"] == r]
        assert auc_r == pytest.approx(roc_auc(part["y_true"], part["y_score"]))
    fpr, tpr = res.roc
    mean_scores = oof.groupby("patient_id")["y_score"].mean().loc[X.index]
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, mean_scores))
    assert res.seconds > 0
    d = res.to_dict()
    assert d["auc"] == res.auc and d["n_repeats"] == 3 and "bootstrap" in d["ci_method"]


def test_deterministic(cohort: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = cohort
    a = cross_validate_binary(X, y, random_state=3)
    b = cross_validate_binary(X, y, random_state=3)
    c = cross_validate_binary(X, y, random_state=4)
    assert a.auc == b.auc and a.auc_ci == b.auc_ci
    np.testing.assert_array_equal(a.fold_aucs, b.fold_aucs)
    pd.testing.assert_frame_equal(a.oof, b.oof)
    assert not np.array_equal(a.fold_aucs, c.fold_aucs)


def test_shuffled_labels_give_chance_auc(cohort: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = cohort
    aucs = permutation_check(X, y, n_permutations=20, random_state=0)
    print(f"\npermutation AUCs: mean={np.mean(aucs):.3f} sd={np.std(aucs):.3f}")
    assert len(aucs) == 20
    assert abs(np.mean(aucs) - 0.5) < 0.1
    assert permutation_check(X, y, n_permutations=3, random_state=0) == aucs[:3]


class _SharedLog(list):
    """A list that survives sklearn.clone (which deep-copies parameters) so folds can report."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _SharedLog:
        return self


class RowRecorder(TransformerMixin, BaseEstimator):
    """Pass-through transformer that logs which patients it is fitted on and which it transforms."""

    def __init__(self, log: list | None = None) -> None:
        self.log = log

    def fit(self, X: pd.DataFrame, y: Any = None) -> RowRecorder:
        assert self.log is not None
        self.log.append(("fit", frozenset(X.index)))
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        assert self.log is not None
        self.log.append(("transform", frozenset(X.index)))
        return X


def test_no_leakage_preprocessing_is_fitted_on_training_rows_only(
    cohort: tuple[pd.DataFrame, pd.Series],
) -> None:
    X, y = cohort
    log = _SharedLog()
    est = Pipeline([("record", RowRecorder(log)), *make_classifier().steps])
    assert copy.deepcopy(log) is log
    cross_validate_binary(X, y, estimator=est, n_splits=5, n_repeats=2)
    fits = [i for i, (kind, _) in enumerate(log) if kind == "fit"]
    assert len(fits) == 10
    all_ids = frozenset(X.index)
    tested: list[frozenset] = []
    for i in fits:
        train = log[i][1]
        # after fitting, the pipeline transforms its training rows, then the held-out fold
        later = [rows for kind, rows in log[i + 1 :] if kind == "transform"]
        test = next(rows for rows in later if rows != train)
        assert train.isdisjoint(test), "a test patient was used to fit the preprocessing"
        assert train | test == all_ids
        tested.append(test)
    for r in range(2):
        fold_sets = tested[5 * r : 5 * r + 5]
        assert frozenset().union(*fold_sets) == all_ids and sum(len(s) for s in fold_sets) == N_PATIENTS


def test_per_fold_imputation_handles_sparse_and_constant_columns(
    cohort: tuple[pd.DataFrame, pd.Series],
) -> None:
    X, y = cohort
    X = X.copy()
    X["mostly_missing"] = np.nan
    X.iloc[:3, X.columns.get_loc("mostly_missing")] = [1.0, 2.0, 3.0]  # all-missing in some training folds
    X["almost_constant"] = 0.0
    X.iloc[0, X.columns.get_loc("almost_constant")] = 5.0  # constant in every training fold without P000
    res = cross_validate_binary(X, y, n_repeats=2)
    assert np.isfinite(res.oof["y_score"]).all()
    assert res.auc > 0.75


def test_tiny_class_error_message() -> None:
    X, y = synthetic_cohort(n=30)
    y = pd.Series(0, index=X.index)
    y.iloc[:3] = 1
    with pytest.raises(LearningError) as info:
        cross_validate_binary(X, y, n_splits=5)
    msg = str(info.value)
    assert "3 positive" in msg and "27 negative" in msg and "n_splits to at most 3" in msg
    res = cross_validate_binary(X, y, n_splits=3, n_repeats=1)
    assert res.n_events == 3


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda X, y: (X, y.map({0: "no", 1: "yes"})), "0/1 labels"),
        (lambda X, y: (X, y.where(y.index != "P001")), "missing label"),
        (lambda X, y: (X, y.iloc[1:]), "1 patient.s. of X have no entry in y"),
        (lambda X, y: (X.iloc[:, :0], y), "no feature columns"),
        (lambda X, y: (X.to_numpy(), y), "DataFrame"),
    ],
)
def test_input_errors(cohort: tuple[pd.DataFrame, pd.Series], mutate: Any, match: str) -> None:
    X, y = mutate(*cohort)
    with pytest.raises(LearningError, match=match):
        cross_validate_binary(X, y)


def test_y_in_other_order_is_aligned(cohort: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = cohort
    a = cross_validate_binary(X, y, n_repeats=1)
    b = cross_validate_binary(X, y.iloc[::-1], n_repeats=1)
    assert a.auc == b.auc
    # y covering more patients than X: the extra ones are ignored
    c = cross_validate_binary(X.iloc[10:], y, n_repeats=1)
    assert c.n_patients == N_PATIENTS - 10 and c.n_events == int(y.iloc[10:].sum())


def test_compare_models_on_feature_sets(cohort: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = cohort
    rng = np.random.default_rng(1)
    clinical = pd.DataFrame(
        {
            "age": rng.integers(40, 85, len(X)).astype(float),
            "sex": rng.choice(["M", "F"], len(X)),
            "site": rng.choice(["lung", "lymphoma", "head-neck"], len(X)),
            "label": y,
        },
        index=X.index,
    )
    sets = build_feature_sets(X, clinical, clinical_columns=["age", "sex", "site"], target="label")
    y_aligned = clinical.loc[sets["combined"].index, "label"]
    results = compare_models(sets, y_aligned, n_repeats=2)
    by_name = {r.name: r for r in results}
    print("\ncompare_models AUCs: " + ", ".join(f"{r.name}={r.auc:.3f}" for r in results))
    assert list(by_name) == ["clinical", "radiomics", "combined"]
    assert by_name["clinical"].auc < 0.7  # uninformative clinical variables
    assert by_name["radiomics"].auc > 0.75 and by_name["combined"].auc > 0.75
    # paired comparison: the same folds for every feature set
    folds = [r.oof.sort_values(["repeat", "patient_id"])["fold"].to_numpy() for r in results]
    np.testing.assert_array_equal(folds[0], folds[1])
    np.testing.assert_array_equal(folds[0], folds[2])
    with pytest.raises(LearningError, match="different patients"):
        compare_models({"a": X, "b": X.iloc[5:]}, y)


def test_random_forest_runs(cohort: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = cohort
    res = cross_validate_binary(X, y, estimator=make_classifier("random_forest"), n_repeats=1)
    print(f"\nrandom forest CV AUC={res.auc:.3f}")
    assert res.auc > 0.7
