"""SHAP values through whole pipelines (exact additivity, agreement with shap), permutation importance
(equal to scikit-learn's) and the parsing of wide-table column names into IBSI descriptions."""

from __future__ import annotations

import warnings
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression

from smartimaging.exceptions import LearningError
from smartimaging.features.extract import feature_definitions, wide_name
from smartimaging.learn.explain import (
    describe_feature,
    explain_patient,
    kmeans_background,
    permutation_importance_table,
    shap_summary,
    shap_values,
)
from smartimaging.learn.models import make_classifier


def _shap() -> ModuleType:
    """shap, imported here: its plotting module triggers a matplotlib PendingDeprecationWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap

    return shap


COLUMNS = ["stat_mean", "cm_joint_entr_3D_avg", "morph_vol", "PET_SUVmax", "ngt_busyness_3D", "age"]


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    n = 120
    X = pd.DataFrame(
        rng.normal(size=(n, len(COLUMNS))), columns=COLUMNS, index=[f"P{i:03d}" for i in range(n)]
    )
    X["sex"] = rng.choice(["F", "M"], n)
    X.loc[X.index[::17], "morph_vol"] = np.nan
    logit = 1.5 * X["stat_mean"] + X["morph_vol"].fillna(0) + (X["sex"] == "M") - 0.5
    y = pd.Series((logit + rng.logistic(size=n) > 0).astype(int), index=X.index)
    return X, y


def _output(model, X: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(X)[:, 1]


@pytest.mark.parametrize(
    ("kind", "selection"), [("logistic", ()), ("logistic", ("fdr",)), ("random_forest", ()), ("svm", ())]
)
def test_shap_values_add_up_to_the_pipeline_output(data, kind: str, selection: tuple[str, ...]) -> None:
    X, y = data
    pipe = make_classifier(kind, selection=selection, keep=["age"]).fit(X, y)  # type: ignore[arg-type]
    rows = X.iloc[:6]
    values = shap_values(pipe, rows, background=X.iloc[::6])
    assert list(values.columns) == list(X.columns) and list(values.index) == list(rows.index)
    assert values.attrs["method"] == "exact" and values.attrs["n_background"] == 20
    total = values.sum(axis=1).to_numpy() + values.attrs["base_value"]
    np.testing.assert_allclose(total, _output(pipe, rows), atol=1e-9)
    assert values.attrs["base_value"] == pytest.approx(_output(pipe, X.iloc[::6]).mean(), abs=1e-12)
    assert np.abs(values.to_numpy()).max() > 0.01


def test_columns_the_selection_drops_get_exactly_zero(data) -> None:
    X, y = data
    pipe = make_classifier("logistic", selection=("fdr",), keep=["age"]).fit(X, y)
    kept = {str(n).rsplit("__", 1)[-1] for n in pipe[:-1].get_feature_names_out()}
    values = shap_values(pipe, X.iloc[:5], background=X.iloc[::10])
    dropped = [c for c in COLUMNS if c not in kept]
    assert dropped, "the test needs a selection that drops columns"
    assert (values[dropped] == 0.0).all().all()
    assert (values["stat_mean"] != 0).all()


def test_log_odds_of_a_plain_logistic_model_equal_shap_linear_explainer(data) -> None:
    X, y = data
    Xn = X[COLUMNS].fillna(0.0)
    model = LogisticRegression().fit(Xn, y)
    background = Xn.iloc[::4]
    shap = _shap()
    reference = shap.LinearExplainer(model, background.to_numpy()).shap_values(Xn.iloc[:8].to_numpy())
    exact = shap_values(model, Xn.iloc[:8], background=background, output="log_odds")
    np.testing.assert_allclose(exact.to_numpy(), reference, atol=1e-10)
    # permutation sampling is exact for an additive output, whatever the orderings
    sampled = shap_values(model, Xn.iloc[:8], background=background, output="log_odds", max_exact=2)
    assert sampled.attrs["method"] == "permutation"
    np.testing.assert_allclose(sampled.to_numpy(), reference, atol=1e-10)


def test_probabilities_of_a_plain_logistic_model_equal_shap_kernel_explainer(data) -> None:
    X, y = data
    Xn = X[COLUMNS[:4]].fillna(0.0)
    model = LogisticRegression().fit(Xn, y)
    background = Xn.iloc[::8]
    shap = _shap()
    # Kernel SHAP enumerating all 2**4 coalitions is exact (it equals shap.explainers.Exact, ~100x slower)
    explainer = shap.KernelExplainer(
        lambda z: model.predict_proba(pd.DataFrame(z, columns=Xn.columns))[:, 1], background.to_numpy()
    )
    reference = explainer.shap_values(Xn.iloc[:5].to_numpy(), nsamples=1000, silent=True)
    ours = shap_values(model, Xn.iloc[:5], background=background)
    np.testing.assert_allclose(ours.to_numpy(), reference, atol=1e-10)
    assert ours.attrs["base_value"] == pytest.approx(float(explainer.expected_value), abs=1e-12)


def test_permutation_sampling_is_additive_and_deterministic(data) -> None:
    X, y = data
    pipe = make_classifier("svm").fit(X, y)  # probabilities of an RBF SVM: far from additive
    rows = X.iloc[:3]
    a = shap_values(pipe, rows, background=X.iloc[::12], max_exact=3, random_state=5)
    b = shap_values(pipe, rows, background=X.iloc[::12], max_exact=3, random_state=5)
    c = shap_values(pipe, rows, background=X.iloc[::12], max_exact=3, random_state=6)
    assert a.attrs["method"] == "permutation"
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.to_numpy(), c.to_numpy())  # another seed, other orderings
    for v in (a, c):
        np.testing.assert_allclose(v.sum(axis=1) + v.attrs["base_value"], _output(pipe, rows), atol=1e-9)
    # close to the exact values
    exact = shap_values(pipe, rows, background=X.iloc[::12])
    assert np.abs(a.to_numpy() - exact.to_numpy()).max() < 0.05


def test_weighted_background_equals_repeated_rows(data) -> None:
    X, y = data
    pipe = make_classifier("logistic").fit(X, y)
    bg = X.iloc[:3]
    weighted = shap_values(pipe, X.iloc[5:7], background=bg, background_weights=[1, 2, 3])
    repeated = shap_values(pipe, X.iloc[5:7], background=bg.iloc[[0, 1, 1, 2, 2, 2]])
    np.testing.assert_allclose(weighted.to_numpy(), repeated.to_numpy(), atol=1e-12)


def test_kmeans_background_summarises_groups_of_patients(data) -> None:
    X, y = data
    frame, weights = kmeans_background(X, max_clusters=6, min_cluster_size=10, random_state=0)
    assert list(frame.columns) == list(X.columns) and 2 <= len(frame) <= 6
    assert weights.sum() == len(X) and weights.min() >= 10
    assert frame["morph_vol"].notna().all() and set(frame["sex"]) <= {"F", "M"}
    # the weighted centres keep the cohort mean of every numeric column
    np.testing.assert_allclose(
        (frame["stat_mean"] * weights).sum() / weights.sum(), X["stat_mean"].mean(), atol=1e-12
    )
    pipe = make_classifier("logistic").fit(X, y)
    values = shap_values(pipe, X.iloc[:4], background=frame, background_weights=weights)
    np.testing.assert_allclose(
        values.sum(axis=1) + values.attrs["base_value"], _output(pipe, X.iloc[:4]), atol=1e-9
    )
    single, w = kmeans_background(X.iloc[:8], min_cluster_size=5)
    assert len(single) == 1 and w.tolist() == [8.0]
    assert single["age"].iloc[0] == pytest.approx(X["age"].iloc[:8].mean())


def test_explain_patient_orders_by_magnitude_and_summary(data) -> None:
    X, y = data
    pipe = make_classifier("logistic").fit(X, y)
    top = explain_patient(pipe, X.iloc[[4]], background=X.iloc[::5], top=3)
    full = shap_values(pipe, X.iloc[[4]], background=X.iloc[::5]).iloc[0]
    assert [n for n, _ in top] == list(full.abs().sort_values(ascending=False).index[:3])
    assert top[0][1] == pytest.approx(full[top[0][0]])
    summary = shap_summary(shap_values(pipe, X.iloc[:10], background=X.iloc[::5]))
    assert summary["mean_abs_shap"].is_monotonic_decreasing
    row = summary.set_index("feature").loc["cm_joint_entr_3D_avg"]
    assert (row["ibsi_name"], row["ibsi_id"], row["family"]) == ("Joint entropy", "TU9B", "GLCM")


def test_permutation_importance_table_equals_scikit_learn(data) -> None:
    X, y = data
    pipe = make_classifier("logistic").fit(X, y)
    table = permutation_importance_table(pipe, X, y, n_repeats=5, random_state=3)
    ref = permutation_importance(pipe, X, y, scoring="roc_auc", n_repeats=5, random_state=3)
    by = table.set_index("feature")
    np.testing.assert_allclose(
        by.loc[list(X.columns), "importance_mean"], ref["importances_mean"], rtol=0, atol=0
    )
    np.testing.assert_allclose(
        by.loc[list(X.columns), "importance_sd"], ref["importances_std"], rtol=0, atol=0
    )
    assert list(table.columns) == [
        "feature",
        "importance_mean",
        "importance_sd",
        "family",
        "ibsi_name",
        "ibsi_id",
        "meaning",
    ]
    assert table["importance_mean"].is_monotonic_decreasing
    assert table.iloc[0]["feature"] == "stat_mean"  # the strongest true predictor
    assert by.loc["age", "family"] == "clinical" and by.loc["age", "meaning"] == ""


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        ("cm_joint_entr_3D_avg", ("GLCM", "Joint entropy", "TU9B", "3D_avg", "original")),
        ("cm_inv_diff_norm_3D", ("GLCM", "Normalised inverse difference", "NDRX", "3D", "original")),
        ("log_1.5mm_stat_mean", ("intensity statistics", "Mean intensity", "Q4LE", "", "log_1.5mm")),
        ("PET_SUVmax", ("PET", "SUVmax", "", "", "original")),
        ("patient_PET_TMTV", ("PET", "Total metabolic tumour volume", "", "", "patient")),
        ("patient_PET_SUVmax_patient", ("PET", "Highest lesion SUVmax", "", "", "patient")),
        ("age", ("clinical", "", "", "", "")),
    ],
)
def test_describe_feature(column: str, expected: tuple[str, ...]) -> None:
    d = describe_feature(column)
    assert (d.family, d.ibsi_name, d.ibsi_id, d.aggregation, d.image_type) == expected
    assert bool(d.meaning) == (d.family != "clinical")


def test_describe_feature_round_trips_every_wide_name() -> None:
    for key, d in feature_definitions().items():
        for aggregation in ("", "3D_avg", "2.5D_dmrg") if d.family[:2] in {"GL", "NG"} else ("",):
            for image_type in ("original", "wavelet_LLH"):
                got = describe_feature(wide_name(key, aggregation, image_type))
                assert (got.ibsi_name, got.ibsi_id, got.aggregation, got.image_type) == (
                    d.name,
                    d.ibsi_id,
                    aggregation,
                    image_type,
                ), key


def test_errors_are_clear(data) -> None:
    X, y = data
    pipe = make_classifier("logistic").fit(X, y)
    with pytest.raises(LearningError, match="valid values"):
        shap_values(pipe, X.iloc[:2], output="margin")  # type: ignore[arg-type]
    with pytest.raises(LearningError, match="missing"):
        shap_values(pipe, X.iloc[:2], background=X[COLUMNS[:2]])
    with pytest.raises(LearningError, match="one patient"):
        explain_patient(pipe, X.iloc[:2], background=None)
    three = LogisticRegression().fit(X[COLUMNS[:2]].to_numpy(), np.arange(len(X)) % 3)
    with pytest.raises(LearningError, match="binary"):
        shap_values(three, X[COLUMNS[:2]].iloc[:2])
