"""Check the outputs of ``make demo`` (run by ``make test`` in a venv of its own, with the run-time
dependencies only, so the demo is exercised with the newest releases its pins allow, e.g. pandas 3,
while the test suite runs with the test extras' pins).

Usage: python scripts/check_demo.py DEMO_OUT
Exits non-zero, naming what is missing or wrong.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def main(out: Path) -> list[str]:
    results = out / "results"
    problems: list[str] = []
    for name in (
        "report.html",
        "features.csv",
        "models.csv",
        "survival_models.csv",
        "failures.csv",
        "provenance.json",
    ):
        if not (results / name).is_file():
            problems.append(f"{results / name} was not written")
    if problems:
        return problems
    html = (results / "report.html").read_text(encoding="utf-8")
    if "<html" not in html.lower() or len(html) < 100_000:
        problems.append(f"{results / 'report.html'} is not a full report ({len(html)} characters)")
    failures = pd.read_csv(results / "failures.csv")
    if len(failures):
        problems.append(
            f"{len(failures)} failure(s) in {results / 'failures.csv'}: {failures.head().to_dict('records')}"
        )
    models = pd.read_csv(results / "models.csv")
    if "auc" not in models.columns or not models["auc"].between(0.5, 1.0).all():
        problems.append(
            f"{results / 'models.csv'}: expected cross-validated AUCs above chance, got\n{models}"
        )
    return problems


if __name__ == "__main__":
    found = main(Path(sys.argv[1]))
    for line in found:
        print(f"check_demo: {line}", file=sys.stderr)
    print(f"pandas {pd.__version__}: " + ("demo outputs incomplete" if found else "demo outputs complete"))
    sys.exit(1 if found else 0)
