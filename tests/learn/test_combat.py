"""Tests of smartimaging.learn.combat: values against neuroCombat, CV use, unseen batches, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from smartimaging.exceptions import LearningError
from smartimaging.learn.combat import ComBat, batches_from_qc

neuroCombat = pytest.importorskip("neuroCombat").neuroCombat

SIZES = {"SITE_A": 14, "SITE_B": 18, "SITE_C": 12}


def _cohort(seed: int = 0, p: int = 12, sizes: dict[str, int] | None = None) -> pd.DataFrame:
    """Features with site shifts and scales, an age and a sex effect (all float32-exact covariates)."""
    rng = np.random.default_rng(seed)
    sizes = sizes or SIZES
    site = np.repeat(list(sizes), list(sizes.values()))
    n = site.size
    age = rng.integers(40, 80, n).astype(float)  # integers: exact in neuroCombat's float32 design
    sex = rng.choice(["F", "M"], n)
    base = rng.normal(size=(n, p)) * rng.uniform(0.5, 3.0, p) + rng.uniform(-5, 20, p)
    base += 0.05 * (age[:, None] - 60.0) * rng.normal(size=p) + (sex == "M")[:, None] * rng.normal(size=p)
    for k, s in enumerate(sizes):
        rows = site == s
        base[rows] = base[rows] * (1.0 + 0.4 * k) + 2.0 * k * rng.normal(size=p)
    frame = pd.DataFrame(base, columns=[f"f{j:02d}" for j in range(p)], index=[f"P{i:03d}" for i in range(n)])
    frame.insert(0, "site", site)
    frame["age"] = age
    frame["sex"] = sex
    return frame


def _reference(frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> dict[str, Any]:
    monkeypatch.setattr(np, "int", int, raising=False)  # neuroCombat 0.2.12 still calls np.int
    features = [c for c in frame.columns if c.startswith("f")]
    covars = frame[["site", "age", "sex"]].copy()
    return neuroCombat(frame[features].to_numpy(dtype=float).T, covars, "site", **kwargs)


CASES = [
    pytest.param({}, {}, id="parametric"),
    pytest.param({"parametric": False}, {"parametric": False}, id="nonparametric"),
    pytest.param({"mean_only": True}, {"mean_only": True}, id="mean_only"),
    pytest.param({"mean_only": True, "parametric": False}, {"mean_only": True, "parametric": False}, id="mean_only_np"),
    pytest.param({"eb": False}, {"eb": False}, id="no_eb"),
    pytest.param(
        {"categorical_cols": ["sex"], "continuous_cols": ["age"]},
        {"categorical_covariates": ["sex"], "continuous_covariates": ["age"]},
        id="covariates",
    ),
    pytest.param({"ref_batch": "SITE_B"}, {"ref_batch": "SITE_B"}, id="reference"),
    pytest.param(
        {"ref_batch": "SITE_A", "categorical_cols": ["sex"], "continuous_cols": ["age"], "parametric": False},
        {"ref_batch": "SITE_A", "categorical_covariates": ["sex"], "continuous_covariates": ["age"],
         "parametric": False},
        id="reference_covariates_np",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("ref_kwargs", "our_kwargs"), CASES)
def test_equals_neurocombat(
    ref_kwargs: dict[str, Any],
    our_kwargs: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    frame = _cohort()
    ref = _reference(frame, monkeypatch, **ref_kwargs)
    capsys.readouterr()
    combat = ComBat(batch_col="site", **our_kwargs)
    if "categorical_covariates" not in our_kwargs:
        combat.set_params(passthrough=["age", "sex"])
    out = combat.fit_transform(frame)
    features = [c for c in frame.columns if c.startswith("f")]
    np.testing.assert_allclose(out[features].to_numpy(), ref["data"].T, rtol=1e-6, atol=1e-6)
    est = ref["estimates"]
    np.testing.assert_allclose(combat.gamma_star_, est["gamma.star"], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(combat.delta_star_, est["delta.star"], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(combat.var_pooled_, est["var.pooled"].ravel(), rtol=1e-9)
    if "ref_batch" in our_kwargs:  # the reference batch is returned unchanged
        rows = frame["site"] == our_kwargs["ref_batch"]
        np.testing.assert_array_equal(
            out.loc[rows, features].to_numpy(), frame.loc[rows, features].to_numpy()
        )
    # batches really were different before and are aligned after (not a no-op)
    before = frame.groupby("site")[features].mean().std().mean()
    after = out[features].assign(site=frame["site"]).groupby("site").mean().std().mean()
    assert after < 0.5 * before


def test_output_columns_and_pandas_output() -> None:
    frame = _cohort()
    combat = ComBat(batch_col="site", continuous_covariates=["age"], passthrough=["sex"])
    out = combat.fit_transform(frame)
    assert list(out.columns) == [*[f"f{j:02d}" for j in range(12)], "sex"]  # site and age dropped
    assert list(combat.get_feature_names_out()) == list(out.columns)
    assert out.index.equals(frame.index)
    assert out["sex"].equals(frame["sex"])
    combat.set_output(transform="pandas")
    assert isinstance(combat.transform(frame), pd.DataFrame)
    params = combat.get_params()
    assert params["batch_col"] == "site" and params["passthrough"] == ["sex"]


def test_array_input_with_explicit_batch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = _cohort()
    features = [c for c in frame.columns if c.startswith("f")]
    ref = _reference(frame, monkeypatch)
    capsys.readouterr()
    combat = ComBat(batch_col=None)
    out = combat.fit_transform(frame[features].to_numpy(), batch=frame["site"].to_numpy())
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, ref["data"].T, rtol=1e-6, atol=1e-6)


def _apply_by_hand(est: dict[str, Any], x: np.ndarray, batch: np.ndarray, mod: np.ndarray) -> np.ndarray:
    """neuroCombat's stored estimates applied to new patients (features, patients)."""
    levels = list(np.asarray(est["batches"]).astype(str))
    idx = [levels.index(b) for b in batch]
    vp = np.sqrt(est["var.pooled"])
    stand = est["stand.mean"][:, :1]
    s = (x - stand - mod) / vp
    s = (s - est["gamma.star"][idx].T) / np.sqrt(est["delta.star"][idx].T)
    return s * vp + stand + mod


@pytest.mark.parametrize("covariates", [False, True])
def test_cv_fold_no_leakage_and_equals_neurocombat_estimates(
    covariates: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = _cohort(seed=3, sizes={"SITE_A": 20, "SITE_B": 22, "SITE_C": 18})
    features = [c for c in frame.columns if c.startswith("f")]
    rng = np.random.default_rng(1)
    test = rng.permutation(frame.index)[:15]
    train = frame.drop(index=test)
    kw: dict[str, Any] = (
        {"categorical_covariates": ["sex"], "continuous_covariates": ["age"]} if covariates
        else {"passthrough": ["age", "sex"]}
    )  # fmt: skip
    combat = ComBat(batch_col="site", **kw).fit(train)
    out_test = combat.transform(frame.loc[test])[features].to_numpy()
    # leakage check: fitting on all patients gives different test values
    all_fit = ComBat(batch_col="site", **kw).fit_transform(frame).loc[test, features].to_numpy()
    assert np.abs(all_fit - out_test).max() > 1e-3
    # the training fit equals neuroCombat on the training patients ...
    rkw = {"categorical_cols": ["sex"], "continuous_cols": ["age"]} if covariates else {}
    ref = _reference(train, monkeypatch, **rkw)
    capsys.readouterr()
    np.testing.assert_allclose(
        combat.transform(train)[features].to_numpy(), ref["data"].T, rtol=1e-6, atol=1e-6
    )
    # ... and applying neuroCombat's estimates by hand to the test patients gives our transform
    est = ref["estimates"]
    if covariates:  # covariate effects: recover beta from neuroCombat's training mod.mean
        design = np.column_stack([(train["sex"] == "M").to_numpy(float), train["age"].to_numpy(float)])
        beta = np.linalg.lstsq(design, est["mod.mean"].T, rcond=None)[0]
        test_design = np.column_stack(
            [(frame.loc[test, "sex"] == "M").to_numpy(float), frame.loc[test, "age"].to_numpy(float)]
        )
        mod = (test_design @ beta).T
    else:
        mod = np.zeros((len(features), len(test)))
    by_hand = _apply_by_hand(
        est, frame.loc[test, features].to_numpy().T, frame.loc[test, "site"].to_numpy(), mod
    )
    np.testing.assert_allclose(out_test, by_hand.T, rtol=1e-6, atol=1e-6)


def test_inside_pipeline_cross_validation() -> None:
    from smartimaging.learn.validate import cross_validate_binary

    frame = _cohort(seed=5, sizes={"SITE_A": 30, "SITE_B": 30})
    rng = np.random.default_rng(0)
    y = pd.Series(
        (frame["f00"] + rng.normal(size=len(frame)) > frame["f00"].median()).astype(int), index=frame.index
    )
    pipe = make_pipeline(
        ComBat(batch_col="site", passthrough=[]).set_output(transform="pandas"),
        StandardScaler(),
        LogisticRegression(max_iter=1000),
    )
    res = cross_validate_binary(
        frame.drop(columns=["age", "sex"]), y, estimator=pipe, n_splits=3, n_repeats=1
    )
    assert 0.5 < res.auc <= 1.0


@pytest.mark.parametrize("kw", [{}, {"parametric": False}, {"mean_only": True}, {"ref_batch": "SITE_A"}])
def test_unseen_batch_equals_training_batch_estimates(kw: dict[str, Any]) -> None:
    """A training batch relabelled as new gets the same adjustment from its own data (frame held fixed)."""
    frame = _cohort(seed=2)
    combat = ComBat(batch_col="site", passthrough=["age", "sex"], unseen="estimate", **kw).fit(frame)
    state = {k: np.copy(v) for k, v in vars(combat).items() if k.endswith("_") and isinstance(v, np.ndarray)}
    site_c = frame[frame["site"] == "SITE_C"]
    known = combat.transform(site_c)
    unseen = combat.transform(site_c.assign(site="NEW_SITE"))
    np.testing.assert_allclose(
        unseen.iloc[:, :12].to_numpy(float), known.iloc[:, :12].to_numpy(float), rtol=1e-9, atol=1e-9
    )
    for k, v in state.items():  # the training estimates were not touched
        np.testing.assert_array_equal(getattr(combat, k), v)


def test_unseen_batch_is_harmonised() -> None:
    train = _cohort(seed=4, sizes={"SITE_A": 25, "SITE_B": 25})
    new = _cohort(seed=4, sizes={"SITE_A": 25, "SITE_B": 25}).iloc[:25].copy()  # same patients as SITE_A
    features = [c for c in train.columns if c.startswith("f")]
    new[features] = new[features] * 2.0 + 7.0  # a scanner that doubles and shifts every feature
    new["site"] = "SITE_X"
    combat = ComBat(batch_col="site", passthrough=["age", "sex"], unseen="estimate").fit(train)
    ref_a = combat.transform(train.iloc[:25])[features]
    out = combat.transform(new)[features]
    # the new site lands where the same patients from SITE_A land (location and scale recovered)
    np.testing.assert_allclose(out.to_numpy(), ref_a.to_numpy(), atol=0.35 * ref_a.std().min())
    assert np.abs(new[features].mean() - ref_a.mean()).min() > 5
    with pytest.raises(LearningError, match="min_unseen_size=5"):
        combat.transform(new.iloc[:3])


def test_errors() -> None:
    frame = _cohort()
    with pytest.raises(LearningError, match="fewer than 2 patients"):
        ComBat(batch_col="site", passthrough=["age", "sex"]).fit(
            pd.concat([frame, frame.iloc[:1].assign(site="LONE")])
        )
    combat = ComBat(batch_col="site", passthrough=["age", "sex"]).fit(frame)
    with pytest.raises(LearningError, match=r"\['SITE_Z'\] were not in the training data.*unseen='estimate'"):
        combat.transform(frame.assign(site="SITE_Z"))
    with pytest.raises(LearningError, match=r"constant.*\['f03'\]|\['f03'\].*constant"):
        ComBat(batch_col="site", passthrough=["age", "sex"]).fit(frame.assign(f03=1.5))
    passed = ComBat(batch_col="site", passthrough=["age", "sex"], constant="passthrough").fit(
        frame.assign(f03=1.5)
    )
    assert (
        passed.constant_features_ == ["f03"] and (passed.transform(frame.assign(f03=1.5))["f03"] == 1.5).all()
    )
    np.testing.assert_allclose(
        passed.transform(frame.assign(f03=1.5))["f00"],
        ComBat(batch_col="site", passthrough=["age", "sex", "f03"]).fit_transform(frame)["f00"],
    )
    with pytest.raises(LearningError, match=r"not numeric.*passthrough"):
        ComBat(batch_col="site", passthrough=["age"]).fit(frame)
    with pytest.raises(LearningError, match="batch column 'scanner' not in X"):
        ComBat(batch_col="scanner").fit(frame)
    with pytest.raises(LearningError, match="ref_batch 'SITE_Q' is not a training batch"):
        ComBat(batch_col="site", passthrough=["age", "sex"], ref_batch="SITE_Q").fit(frame)
    with pytest.raises(LearningError, match="valid values are"):
        ComBat(batch_col="site", unseen="guess").fit(frame)  # type: ignore[arg-type]
    missing = frame.copy()
    missing.iloc[2, 3] = np.nan
    with pytest.raises(LearningError, match="impute them before ComBat"):
        ComBat(batch_col="site", passthrough=["age", "sex"]).fit(missing)
    cov = ComBat(batch_col="site", categorical_covariates=["sex"], passthrough=["age"]).fit(frame)
    with pytest.raises(LearningError, match=r"level\(s\) \['X'\] not seen in training"):
        cov.transform(frame.assign(sex="X"))


def test_batches_from_qc() -> None:
    qc = pd.DataFrame(
        {
            "PatientID": ["P1", "P1", "P2", "P2", "P3", "P4"],
            "Modality": ["PT", "CT", "PT", "CT", "PT", "PT"],
            "ManufacturerModelName": ["Biograph", "Biograph", "Discovery", "Discovery", "Biograph", None],
            "ReconstructionMethod": ["OSEM 3i21s", "", "VPFX", "", "OSEM 3i21s", "VPFX"],
        }
    )
    labels = batches_from_qc(qc)
    assert labels.to_dict() == {
        "P1": "Biograph | OSEM 3i21s", "P2": "Discovery | VPFX", "P3": "Biograph | OSEM 3i21s", "P4": "unknown | VPFX",
    }  # fmt: skip
    merged = batches_from_qc(qc, min_size=2)
    assert merged.to_dict()["P2"] == "other" and merged.to_dict()["P1"] == "Biograph | OSEM 3i21s"
    with pytest.raises(LearningError, match="several PT series in different batches"):
        batches_from_qc(pd.concat([qc, qc.iloc[[2]].assign(PatientID="P1")]))
    with pytest.raises(LearningError, match="not in the QC table"):
        batches_from_qc(qc, keys=["KVP"])
