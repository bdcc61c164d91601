"""Radiogenomic associations: p-values against scipy, q-values against statsmodels, FDR control."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from smartimaging.exceptions import LearningError
from smartimaging.learn.radiogenomics import ASSOCIATION_COLUMNS, association_heatmap_png, associations


def _tables(seed: int = 0, n: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    feats = pd.DataFrame(rng.normal(size=(n, 8)), index=ids, columns=[f"f{i}" for i in range(8)])
    gen = pd.DataFrame(
        {
            "EGFR": rng.integers(0, 2, n),
            "KRAS": np.where(rng.random(n) < 0.35, "mutant", "wildtype"),
            "subtype": rng.choice(["adeno", "squamous", "other"], n),
            "PDL1_expr": rng.normal(size=n),
        },
        index=ids,
    )
    # planted associations and pairwise-missing values
    feats["f0"] += 1.2 * gen["EGFR"]
    feats["f1"] += 0.8 * gen["PDL1_expr"]
    feats.iloc[[2, 7], 3] = np.nan
    gen["PDL1_expr"] = gen["PDL1_expr"].astype(float)
    gen.iloc[[4, 5], gen.columns.get_loc("PDL1_expr")] = np.nan
    return feats, gen


def test_pvalues_match_scipy_with_pairwise_deletion() -> None:
    feats, gen = _tables()
    t = associations(feats, gen).set_index(["feature", "genomic"])
    assert list(t.reset_index().columns) == list(ASSOCIATION_COLUMNS)
    assert len(t) == feats.shape[1] * gen.shape[1]
    for f in feats.columns:
        x = feats[f]
        # Mann-Whitney, 0/1 coding: second level (1) against the first
        ok = x.notna()
        pos, neg = x[ok & (gen["EGFR"] == 1)], x[ok & (gen["EGFR"] == 0)]
        ref = stats.mannwhitneyu(pos, neg, alternative="two-sided")
        row = t.loc[(f, "EGFR")]
        assert row["test"] == "mannwhitney"
        assert row["n"] == ok.sum()
        assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-12, abs=1e-300)
        assert row["auc"] == pytest.approx(ref.statistic / (len(pos) * len(neg)), rel=1e-12)
        assert row["effect"] == pytest.approx(2 * row["auc"] - 1, abs=1e-12)
        # text levels sorted: 'wildtype' (second) against 'mutant'
        wt, mut = x[ok & (gen["KRAS"] == "wildtype")], x[ok & (gen["KRAS"] == "mutant")]
        assert t.loc[(f, "KRAS"), "p_value"] == pytest.approx(
            stats.mannwhitneyu(wt, mut, alternative="two-sided").pvalue, rel=1e-12
        )
        # Kruskal-Wallis over three subtypes
        groups = [x[ok & (gen["subtype"] == s)] for s in ("adeno", "other", "squamous")]
        kw = stats.kruskal(*groups)
        assert t.loc[(f, "subtype"), "test"] == "kruskal"
        assert t.loc[(f, "subtype"), "statistic"] == pytest.approx(kw.statistic, rel=1e-12)
        assert t.loc[(f, "subtype"), "p_value"] == pytest.approx(kw.pvalue, rel=1e-12)
        # Spearman with missing values on both sides
        both = ok & gen["PDL1_expr"].notna()
        sp = stats.spearmanr(x[both], gen.loc[both, "PDL1_expr"])
        assert t.loc[(f, "PDL1_expr"), "n"] == both.sum()
        assert t.loc[(f, "PDL1_expr"), "effect"] == pytest.approx(sp.statistic, rel=1e-12)
        assert t.loc[(f, "PDL1_expr"), "p_value"] == pytest.approx(sp.pvalue, rel=1e-12)
    assert t.loc[("f3", "PDL1_expr"), "n"] == 56


def test_qvalues_match_statsmodels_and_planted_signal_is_found() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    feats, gen = _tables()
    t = associations(feats, gen, fdr=0.05)
    reject, q_ref, _, _ = multitest.multipletests(t["p_value"].to_numpy(), alpha=0.05, method="fdr_bh")
    np.testing.assert_allclose(t["q_value"].to_numpy(), q_ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(t["significant"].to_numpy(), reject)
    hits = set(zip(t.loc[t["significant"], "feature"], t.loc[t["significant"], "genomic"], strict=True))
    assert {("f0", "EGFR"), ("f1", "PDL1_expr")} <= hits
    assert t.attrs["n_tests"] == 32 and t.attrs["n_significant"] == len(hits)
    assert t["p_value"].is_monotonic_increasing


def test_fdr_is_controlled_on_simulations() -> None:
    """Mean false-discovery proportion over 100 simulations with 6 true and 54 null pairs."""
    rng = np.random.default_rng(7)
    n, fdps, powers = 40, [], []
    for _ in range(100):
        expr = pd.DataFrame({"g1": rng.normal(size=n), "g2": rng.normal(size=n)})
        f = rng.normal(size=(n, 30))
        f[:, :3] += 1.5 * expr[["g1"]].to_numpy()  # 3 true associations with g1, 3 with g2
        f[:, 3:6] -= 1.5 * expr[["g2"]].to_numpy()
        feats = pd.DataFrame(f, columns=[f"f{i:02d}" for i in range(30)])
        t = associations(feats, expr, fdr=0.05)
        true = (t["genomic"].eq("g1") & t["feature"].isin(["f00", "f01", "f02"])) | (
            t["genomic"].eq("g2") & t["feature"].isin(["f03", "f04", "f05"])
        )
        sig = t["significant"]
        fdps.append((sig & ~true).sum() / max(int(sig.sum()), 1))
        powers.append((sig & true).sum() / 6)
    assert np.mean(fdps) <= 0.05 + 0.03
    assert np.mean(powers) > 0.9


def test_null_tables_give_few_discoveries() -> None:
    rng = np.random.default_rng(3)
    feats = pd.DataFrame(rng.normal(size=(50, 40)), columns=[f"f{i}" for i in range(40)])
    gen = pd.DataFrame({"EGFR": rng.integers(0, 2, 50), "expr": rng.normal(size=50)})
    t = associations(feats, gen)
    assert t.attrs["n_significant"] == 0
    assert (t["q_value"] >= t["p_value"] - 1e-15).all()


def test_untestable_pairs_are_reported_not_tested() -> None:
    feats, gen = _tables()
    feats["const"] = 1.0
    gen["rare"] = 0
    gen.iloc[0, gen.columns.get_loc("rare")] = 1  # a group of one patient
    t = associations(feats, gen)
    const = t[t["feature"] == "const"]
    assert const["p_value"].isna().all() and (~const["significant"]).all()
    assert const["note"].str.contains("constant").all()
    rare = t[(t["genomic"] == "rare") & (t["feature"] != "const")]
    assert rare["p_value"].isna().all() and rare["note"].str.contains("at least 2").all()
    assert t.attrs["n_tests"] == 8 * 4  # only the testable pairs form the family


def test_forced_methods_and_errors() -> None:
    feats, gen = _tables()
    sp = associations(feats, gen[["EGFR"]], method="spearman")
    assert (sp["test"] == "spearman").all()
    kw = associations(feats, gen[["EGFR"]], method="kruskal")
    mw = associations(feats, gen[["EGFR"]], method="mannwhitney")
    # with two groups the Kruskal-Wallis and the (continuity-corrected asymptotic) U test agree closely
    assert np.allclose(kw.set_index("feature")["p_value"], mw.set_index("feature")["p_value"], rtol=0.1)
    with pytest.raises(LearningError, match="valid values"):
        associations(feats, gen, method="pearson")  # type: ignore[arg-type]
    with pytest.raises(LearningError, match="numeric genomic"):
        associations(feats, gen[["KRAS"]], method="spearman")
    with pytest.raises(LearningError, match="3 levels"):
        associations(feats, gen[["subtype"]], method="mannwhitney")
    with pytest.raises(LearningError, match="no patient id"):
        associations(feats, gen.set_index(gen.index + "x"))
    with pytest.raises(LearningError, match="not numeric"):
        associations(feats.assign(site="A"), gen)
    with pytest.raises(LearningError, match="fdr"):
        associations(feats, gen, fdr=1.5)
    with pytest.raises(LearningError, match="duplicated"):
        associations(pd.concat([feats, feats.iloc[:1]]), gen)


def test_heatmap_png_is_an_image_and_validates() -> None:
    feats, gen = _tables()
    t = associations(feats, gen)
    png = association_heatmap_png(t)
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.size[0] > 200 and img.size[1] > 200
    assert association_heatmap_png(t, value="neg_log10_q", cluster=False, max_features=3)[:4] == b"\x89PNG"
    with pytest.raises(LearningError, match="valid values"):
        association_heatmap_png(t, value="rho")
    with pytest.raises(LearningError, match="lacks column"):
        association_heatmap_png(t.drop(columns="q_value"))
