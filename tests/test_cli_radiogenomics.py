"""``smartimaging radiogenomics`` on small CSV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import typer
from typer.testing import CliRunner

from smartimaging.cli_radiogenomics import register


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command so that typer keeps the sub-command names
        """Unused."""

    return app


def _files(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    n = 50
    ids = [f"P{i:02d}" for i in range(n)]
    egfr = rng.integers(0, 2, n)
    feats = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"f{i}" for i in range(6)])
    feats["f0"] += 1.5 * egfr
    feats.insert(0, "PatientID", ids)
    gen = pd.DataFrame({"PatientID": ids, "EGFR": egfr, "expr": rng.normal(size=n)})
    fp, gp = tmp_path / "features.csv", tmp_path / "genomics.csv"
    feats.to_csv(fp, index=False)
    gen.to_csv(gp, index=False)
    return fp, gp


def test_writes_table_and_heatmap(tmp_path: Path) -> None:
    fp, gp = _files(tmp_path)
    out = tmp_path / "out"
    args = ["radiogenomics", "--features", str(fp), "--genomics", str(gp), "--id-column", "PatientID"]
    res = CliRunner().invoke(_app(), [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(out / "associations.csv")
    assert len(t) == 12 and set(t["genomic"]) == {"EGFR", "expr"}
    assert bool(t.iloc[0]["significant"]) and (t.iloc[0]["feature"], t.iloc[0]["genomic"]) == ("f0", "EGFR")
    assert (out / "association_heatmap.png").read_bytes()[:4] == b"\x89PNG"
    assert "12 tests" in res.output and "f0 ~ EGFR" in res.output
    assert not list(out.glob("*.tmp*"))


def test_same_file_with_genomic_columns(tmp_path: Path) -> None:
    fp, gp = _files(tmp_path)
    both = pd.read_csv(fp).merge(pd.read_csv(gp), on="PatientID")
    bp = tmp_path / "both.csv"
    both.to_csv(bp, index=False)
    out = tmp_path / "o2"
    args = ["radiogenomics", "--features", str(bp), "--genomics", str(bp), "--id-column", "PatientID"]
    res = CliRunner().invoke(_app(), [*args, "--genomic-columns", "EGFR", "--out", str(out)])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(out / "associations.csv")
    # the genomic column is not a feature of its own; 'expr' stays a (numeric) feature
    assert set(t["feature"]) == {f"f{i}" for i in range(6)} | {"expr"} and set(t["genomic"]) == {"EGFR"}


def test_errors_are_clear(tmp_path: Path) -> None:
    fp, gp = _files(tmp_path)
    out = tmp_path / "o3"
    base = ["radiogenomics", "--features", str(fp), "--genomics", str(gp), "--out", str(out)]
    res = CliRunner().invoke(_app(), base)  # default id column 'ID' is absent
    assert res.exit_code == 2 and "no id column 'ID'" in res.output
    res = CliRunner().invoke(_app(), [*base, "--id-column", "PatientID", "--method", "pearson"])
    assert res.exit_code == 2 and "valid values" in res.output
    res = CliRunner().invoke(_app(), [*base, "--id-column", "PatientID", "--genomic-columns", "KRAS"])
    assert res.exit_code == 2 and "KRAS" in res.output
    assert not out.exists()
