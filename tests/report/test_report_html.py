"""Tests of smartimaging.report.html: a self-contained, escaped, complete HTML report."""

from __future__ import annotations

import base64
import functools
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smartimaging.report.html import ReportData, ReportError, cohort_table, render_report, write_report
from smartimaging.report.plots import (
    calibration_curves_png,
    decision_curves_png,
    kaplan_meier_png,
    roc_curves_png,
    shap_summary_png,
)

SECTIONS = [
    "summary",
    "cohort",
    "qc",
    "models",
    "roc",
    "comparison",
    "calibration",
    "decision",
    "survival",
    "explanation",
    "nomogram",
    "features",
    "segmentation",
    "failures",
    "checklist",
    "provenance",
]
EVIL = "<script>alert('x')</script>"


class Page(HTMLParser):
    """Collects what the tests look at: tags, attributes, section ids, text per section."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.sections: list[str] = []
        self.text: dict[str, list[str]] = {}
        self._section: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            self.attrs.append((tag, name, value or ""))
        if tag == "section":
            self._section = dict(attrs).get("id") or ""
            self.sections.append(self._section)
            self.text[self._section] = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._section = None

    def handle_data(self, data: str) -> None:
        if self._section is not None and data.strip():
            self.text[self._section].append(data.strip())

    def section_text(self, name: str) -> str:
        return " ".join(self.text[name])


def _png() -> bytes:
    return roc_curves_png(
        [{"name": "m", "auc": 0.8, "auc_ci": (0.7, 0.9), "roc": ([0, 0.2, 1], [0, 0.7, 1])}]
    )


def sample_data() -> ReportData:
    rng = np.random.default_rng(0)
    ids = pd.Index([f"P{i:03d}" for i in range(30)], name="patient_id")
    features = pd.DataFrame(rng.normal(size=(30, 40)), index=ids, columns=[f"stat_{k}" for k in range(40)])
    cohort = pd.DataFrame(
        {"age": rng.integers(40, 80, 30), "sex": ["M", "F"] * 15, "label": [0, 1] * 15}, index=ids
    )
    cohort.loc["P003", "sex"] = np.nan
    models = [
        {
            "name": "radiomics",
            "auc": 0.8123,
            "auc_ci": (0.71, 0.9),
            "n_patients": 30,
            "n_events": 15,
            "n_splits": 5,
            "n_repeats": 5,
            "seconds": 1.25,
            "roc": (np.array([0, 0.2, 1]), np.array([0, 0.7, 1])),
        },
        {"name": "clinical", "auc": 0.55, "auc_ci": (0.4, 0.7), "n_patients": 30, "n_events": 15},
    ]
    return ReportData(
        title="Lung PET study",
        created="2026-01-01T00:00:00+00:00",
        summary={
            "study": "lung",
            "n_patients": 32,
            "n_succeeded": 30,
            "n_failed": 2,
            "seed": 0,
            "run_seconds": 12.5,
        },
        cohort=cohort,
        models=models,
        roc_images={
            "ROC": _png(),
            "ROC again (as URI)": "data:image/png;base64," + base64.b64encode(_png()).decode(),
        },
        features=features,
        feature_stats=features.describe().T,
        feature_images={"Distributions": _png()},
        failures=[
            ("P030", "segment", "EmptyMaskError: threshold 41 % selected no voxel"),
            (EVIL, "io", f"bad {EVIL}"),
        ],
        provenance={"versions": {"numpy": "2.0", "smartimaging": "0.1.0"}, "config_hash": "abc123"},
        notes=["Synthetic data.", "Second note & more."],
        segmentations={"P000": _png(), "P001": _png()},
        checklist=[
            ("Harmonisation fitted in training folds only", "yes", "ComBat inside each fold"),
            {"item": "External validation", "status": "no", "detail": "single site"},
            ("Calibration", "n/a", f"no model {EVIL}"),
        ],
        **model_parts(),
    )


@functools.lru_cache(maxsize=1)
def _model_parts() -> dict:
    """The model-stage parts of a report, drawn once with the report's own figure functions."""
    rng = np.random.default_rng(1)
    cal = pd.DataFrame(
        {"mean_predicted": [0.2, 0.5, 0.8], "observed": [0.1, 0.6, 0.9], "observed_lo": [0.0, 0.4, 0.7],
         "observed_hi": [0.3, 0.8, 1.0]}
    )  # fmt: skip
    pt = np.round(np.arange(1, 100) / 100, 2)
    dca = pd.DataFrame(
        {
            "threshold": pt,
            "net_benefit_model": 0.5 - pt / 2,
            "net_benefit_all": 0.5 - pt,
            "net_benefit_none": 0.0,
        }
    )
    km = pd.DataFrame(
        {"group": ["low"] * 3 + ["high"] * 3, "time": [0, 5, 10] * 2, "survival": [1, 0.9, 0.8, 1, 0.5, 0.3],
         "ci_lo": [1, 0.8, 0.6, 1, 0.3, 0.1], "ci_hi": [1, 1, 0.95, 1, 0.7, 0.5]}
    )  # fmt: skip
    shap = pd.DataFrame(rng.normal(size=(30, 3)), columns=["stat_mean", "glcm_contrast", f"f{EVIL}"])
    comparison = pd.DataFrame(
        {"AUC": [0.81, 0.55], "p vs best": [np.nan, 0.0123], "p vs clinical": [0.0123, np.nan]},
        index=pd.Index(["radiomics", "clinical"], name="model"),
    )
    return {
        "comparison": comparison,
        "delong": pd.DataFrame(
            {"model_b": ["clinical"], "p_value": [0.0123]}, index=pd.Index(["radiomics"], name="model_a")
        ),
        "calibration_images": {
            "Calibration of 2 models": calibration_curves_png({"radiomics": cal, "clinical": cal})
        },
        "decision_images": {"Decision curves": decision_curves_png({"radiomics": dca})},
        "survival": pd.DataFrame({"Harrell C": [0.71]}, index=pd.Index(["radiomics [cox]"], name="model")),
        "survival_images": {"Kaplan-Meier": kaplan_meier_png(km, logrank_p=0.004, time_unit="months")},
        "shap_images": {"SHAP summary": shap_summary_png(shap)},
        "importance": pd.DataFrame(
            {"importance_mean": [0.1], "ibsi_name": ["Mean"], "meaning": ["average SUV"]},
            index=pd.Index(["stat_mean"], name="feature"),
        ),
        "nomogram_images": {"Nomogram": _png()},
        "model_notes": ["Validation: repeated CV.", f"note {EVIL}"],
    }


def model_parts() -> dict:
    return dict(_model_parts())


def test_sections_tables_and_figures() -> None:
    html = render_report(sample_data())
    page = Page(html)
    assert html.startswith("<!DOCTYPE html>")
    assert page.sections == [*SECTIONS, "notes"]
    models = page.section_text("models")
    assert "radiomics" in models and "0.812" in models and "0.71 – 0.90" in models and "5 × 5-fold" in models
    assert "clinical" in models and "0.550" in models
    summary = page.section_text("summary")
    assert "Patients processed" in summary and "lung" in summary and "12.5" in summary
    # feature preview is cut to 20 rows x 25 columns and says so
    features = page.section_text("features")
    preview = Page(html.split('<table class="features">')[1].split("</table>")[0]).tags
    assert preview.count("tr") == 1 + 20 and preview.count("th") == 1 + 25 + 20
    assert "Showing 20 of 30 rows and 25 of 40 columns" in features
    assert "stat_39" in features  # the descriptive statistics cover every feature
    assert "P003" in page.section_text("cohort") and "—" in page.section_text("cohort")
    assert "versions.numpy" in page.section_text("provenance") and "abc123" in page.section_text("provenance")
    assert "Second note & more." in page.section_text("notes")
    imgs = [v for tag, name, v in page.attrs if tag == "img" and name == "src"]
    assert len(imgs) == 10  # 2 ROC, 1 feature figure, 2 segmentation thumbnails, 5 model-stage figures
    assert "P000" in page.section_text("segmentation") and "P001" in page.section_text("segmentation")
    checklist = page.section_text("checklist")
    assert "ComBat inside each fold" in checklist and "External validation" in checklist
    assert EVIL in checklist  # escaped text, not markup
    for src in imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")


def test_self_contained_no_external_resources() -> None:
    html = render_report(sample_data())
    page = Page(html)
    assert "http://" not in html and "https://" not in html
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    for tag, name, value in page.attrs:
        if name == "src":
            assert value.startswith("data:image/png;base64,"), (tag, value[:40])
        if name == "href":
            assert value.startswith("#"), (tag, value)
        assert not value.lower().startswith(("http:", "https:", "//", "javascript:"))
    assert "url(" not in html  # no CSS-loaded resources (fonts, backgrounds)
    assert "@import" not in html


def test_failures_listed_and_escaped() -> None:
    html = render_report(sample_data())
    page = Page(html)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    failures = page.section_text("failures")
    assert "P030" in failures and "EmptyMaskError: threshold 41 % selected no voxel" in failures
    assert EVIL in failures and f"bad {EVIL}" in failures  # shown as text, not markup
    assert ">Failures (2)</a>" in html  # the navigation bar shows the count


def test_model_sections_show_the_comparison_curves_and_explanation() -> None:
    html = render_report(sample_data())
    page = Page(html)
    comparison = page.section_text("comparison")
    assert "p vs best" in comparison and "0.0123" in comparison and "Pairwise DeLong tests" in comparison
    assert "Validation: repeated CV." in comparison and EVIL in comparison and EVIL not in html
    assert "Calibration of 2 models" in page.section_text("calibration")
    assert "treat all" in page.section_text("decision")
    assert "Harrell C" in page.section_text("survival") and "Kaplan-Meier" in page.section_text("survival")
    explanation = page.section_text("explanation")
    assert (
        "SHAP summary" in explanation
        and "Permutation importance" in explanation
        and "average SUV" in explanation
    )
    assert "Nomogram" in page.section_text("nomogram")
    for section in ("calibration", "decision", "survival", "explanation", "nomogram"):
        part = html.split(f'<section id="{section}">')[1].split("</section>")[0]
        assert 'src="data:image/png;base64,' in part


def test_minimal_report_states_empty_parts() -> None:
    page = Page(render_report(ReportData(title="Empty <b>study</b>")))
    assert page.sections == SECTIONS
    assert "None" in page.section_text("failures")
    assert "No model" in page.section_text("models")
    assert "No ROC curve" in page.section_text("roc")
    assert "No segmentation" in page.section_text("segmentation")
    assert "No checklist" in page.section_text("checklist")
    assert "not available" in page.section_text("qc")
    assert "b" not in page.tags


def test_roc_images_drawn_from_models_when_not_given() -> None:
    data = sample_data()
    data.roc_images = None
    page = Page(render_report(data))
    roc_imgs = [v for tag, name, v in page.attrs if tag == "img" and name == "src"]
    # ROC curves + AUC bars (model with roc only) + feature figure + 2 thumbnails + 5 model-stage figures
    assert len(roc_imgs) == 10
    assert "ROC curves of the repeat-averaged" in page.section_text("roc")


def test_cvresult_objects_are_accepted() -> None:
    from smartimaging.learn.validate import cross_validate_binary

    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(40, 3)), index=[f"P{i}" for i in range(40)], columns=list("abc"))
    y = pd.Series((X["a"] + rng.normal(size=40) > 0).astype(int), index=X.index)
    res = cross_validate_binary(X, y, n_repeats=2, name="abc")
    page = Page(render_report(ReportData(title="t", models=[res])))
    text = page.section_text("models")
    assert (
        f"{res.auc:.3f}" in text
        and f"{res.auc_ci[0]:.2f} – {res.auc_ci[1]:.2f}" in text
        and "2 × 5-fold" in text
    )
    assert "bootstrap over patients" in text


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"roc_images": {"roc": "roc.png"}}, "PNG bytes or a 'data:image/png;base64,' URI"),
        ({"roc_images": {"roc": "https://example.org/roc.png"}}, "opens offline"),
        ({"feature_images": {"f": b"not a png"}}, "not PNG"),
        ({"failures": [("P1", "io")]}, r"\(patient_id, stage, reason\)"),
        ({"failures": [{"patient_id": "P1"}]}, "lacks the key"),
        ({"models": [{"name": "m"}]}, "has no 'auc'"),
    ],
)
def test_bad_inputs_raise(change: dict, match: str) -> None:
    data = ReportData(title="t", **change)
    with pytest.raises(ReportError, match=match):
        render_report(data)


def test_write_report_atomic_and_deterministic(tmp_path: Path) -> None:
    data = sample_data()
    out = write_report(data, tmp_path / "sub" / "report.html")
    assert out == tmp_path / "sub" / "report.html"
    assert out.read_text(encoding="utf-8") == render_report(data)
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary file left
    assert render_report(data) == render_report(sample_data())


def test_cohort_table_hand_computed() -> None:
    clinical = pd.DataFrame(
        {
            "age": [50.0, 60.0, 70.0, 80.0, np.nan],
            "sex": ["M", "F", "M", "M", "F"],
            "stage": [1, 2, 10, 2, 1],
            "label": [0, 0, 1, 1, 1],
        },
        index=[f"P{i}" for i in range(5)],
    )
    table = cohort_table(clinical)
    assert list(table.columns) == ["All (n=5)", "label = 0 (n=2)", "label = 1 (n=3)"]
    # median [IQR] with numpy's linear quantiles: all = 50, 60, 70, 80 -> 65 [57.5-72.5]
    assert table.loc["age, median [IQR]"].tolist() == ["65 [57.5–72.5]", "55 [52.5–57.5]", "75 [72.5–77.5]"]
    assert table.loc["age: missing, n"].tolist() == ["1", "0", "1"]
    assert table.loc["sex: M, n (%)"].tolist() == ["3 (60 %)", "1 (50 %)", "2 (67 %)"]
    # small-integer columns are categories, in numeric order (10 after 2)
    stage_rows = [r for r in table.index if r.startswith("stage")]
    assert stage_rows == ["stage: 1, n (%)", "stage: 2, n (%)", "stage: 10, n (%)"]
    assert "label" not in " ".join(table.index)
    overall = cohort_table(clinical, by=None, columns=["sex"])
    assert overall.shape == (2, 1)
    with pytest.raises(ReportError, match=r"\['weight'\]"):
        cohort_table(clinical, columns=["weight"])
    page = Page(render_report(ReportData(title="t", cohort=table)))
    assert "65 [57.5–72.5]" in page.section_text("cohort")


class QCPage(HTMLParser):
    """Rows of the QC tables: (table class, row class, [(cell class, text)])."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[tuple[str, str, list[tuple[str, str]]]] = []
        self._table = ""
        self._cell: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self._table = a.get("class", "")
        elif tag == "tr" and self._table in ("qc", "qc-summary"):
            self.rows.append((self._table, a.get("class", ""), []))
        elif tag == "td" and self._table in ("qc", "qc-summary"):
            self._cell = [a.get("class", ""), ""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1][2].append((self._cell[0], self._cell[1]))
            self._cell = None
        elif tag == "table":
            self._table = ""

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[1] += data


def _qc_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    from smartimaging.io.qc import qc_summary

    qc = pd.DataFrame(
        {
            "PatientID": ["P1", "P1", EVIL],
            "Modality": ["CT", "PT", "PT"],
            "SeriesDescription": ["CT", "PET AC", "PET <b>AC</b>"],
            "Manufacturer": ["SIEMENS", "SIEMENS", "GE MEDICAL SYSTEMS"],
            "ReconstructionMethod": [None, "OSEM3D 4i16s", "VPFXS"],
            "dose_per_kg_MBq": [None, 3.1, 5.48],
            "uptake_min": [None, 61.0, 92.5],
            "flag_uptake": [False, False, True],
            "flag_dose_per_kg": [False, False, True],
            "flag_glucose": [False, False, False],
            "flag_missing": [False, False, False],
            "flags": [
                "",
                "",
                "uptake 92.5 min outside 55-75 min (EANM); dose 5.48 MBq/kg outside 2-4 MBq/kg",
            ],
        }
    )
    return qc, qc_summary(qc)


def test_qc_section_highlights_flagged_series_and_escapes() -> None:
    qc, summary = _qc_tables()
    data = sample_data()
    data.qc, data.qc_summary = qc, summary
    html = render_report(data)
    page = Page(html)
    assert page.sections[:4] == ["summary", "cohort", "qc", "models"]
    assert '<a href="#qc">Acquisition QC</a>' in html
    text = page.section_text("qc")
    assert "1 of 3 series flagged (uptake time: 1, dose per kg: 1)." in text
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>AC</b>" not in html
    tables = QCPage(html)
    series = [r for r in tables.rows if r[0] == "qc" and r[2]]  # body rows
    assert [r[1] for r in series] == ["", "", "flagged"]
    flagged_cells = [t for c, t in series[2][2] if "flag" in c.split()]
    assert flagged_cells == ["5.48", "92.5"]  # dose per kg and uptake, in column order
    assert not [t for r in series[:2] for c, t in r[2] if "flag" in c.split()]
    assert series[2][2][0][1] == EVIL  # shown as text
    summary_rows = [(r[1], [t for _, t in r[2]]) for r in tables.rows if r[0] == "qc-summary" and r[2]]
    marks = {(cells[0], cells[1]): cls for cls, cells in summary_rows}  # (Modality, attribute) -> class
    assert marks["PT", "Manufacturer"] == "varies" and marks["PT", "ReconstructionMethod"] == "varies"
    assert marks["CT", "Manufacturer"] == ""  # one CT series: nothing varies


def test_qc_section_summary_only_and_unflagged() -> None:
    qc, summary = _qc_tables()
    html = render_report(ReportData(title="t", qc=qc.iloc[:2]))
    text = Page(html).section_text("qc")
    assert "0 of 2 series flagged." in text and "What varies" not in text
    assert 'class="flagged"' not in html
    unknown = qc.assign(flag_glucose=pd.array([pd.NA, False, True], dtype="boolean"))
    assert "1 of 3 series flagged (uptake time: 1, dose per kg: 1, blood glucose: 1)." in Page(
        render_report(ReportData(title="t", qc=unknown))
    ).section_text("qc")
    text = Page(render_report(ReportData(title="t", qc_summary=summary))).section_text("qc")
    assert "What varies" in text and "Per series" not in text and "not available" not in text


def test_checklist_status_is_validated() -> None:
    with pytest.raises(ReportError, match="status must be one of"):
        render_report(ReportData(title="t", checklist=[("Calibration", "maybe", "")]))
    with pytest.raises(ReportError, match=r"must be \(item, status, detail\)"):
        render_report(ReportData(title="t", checklist=[("Calibration", "yes")]))
