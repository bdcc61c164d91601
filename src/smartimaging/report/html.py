"""The study report: one self-contained HTML file that opens offline.

Everything the page needs is inside it: the CSS is inlined, figures are ``data:image/png``
URIs, and there is no script, font, stylesheet or image fetched from anywhere. All text coming
from data (patient ids, failure reasons, column names, notes) is HTML-escaped by Jinja2's
autoescaping, so a patient named ``<script>`` is shown, never run.
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from smartimaging import __version__
from smartimaging.atomic import write_text
from smartimaging.report.plots import ReportError, auc_bar_png, png_to_data_uri, roc_curves_png

__all__ = ["ReportData", "ReportError", "cohort_table", "render_report", "write_report"]

#: Rows / columns shown of the wide feature table and the cohort table.
FEATURE_PREVIEW_ROWS = 20
FEATURE_PREVIEW_COLUMNS = 25
COHORT_MAX_ROWS = 500

_DEFAULT_CI_METHOD = "95 % confidence interval"


def _now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


@dataclass
class ReportData:
    """Everything shown in the report. Only ``title`` is required; empty parts say so.

    Attributes
    ----------
    title : str
        Heading of the page.
    created : str
        ISO 8601 time of the run (default: now, UTC).
    summary : mapping
        Study-level facts, e.g. ``study``, ``n_patients``, ``n_succeeded``, ``n_failed``,
        ``seed``, ``run_seconds``; shown in this order, keys prettified.
    cohort : DataFrame, optional
        Cohort table (one row per patient or a descriptive summary); index shown first.
    models : sequence
        :class:`~smartimaging.learn.validate.CVResult` objects or mappings with ``name``, ``auc``,
        ``auc_ci`` and optionally ``n_patients``, ``n_events``, ``n_splits``, ``n_repeats``,
        ``seconds``, ``ci_method``, ``roc``.
    roc_images : mapping of str to bytes or str, optional
        Caption -> PNG bytes or ``data:image/png;base64,`` URI. ``None`` (default): drawn from
        ``models`` (ROC curves and an AUC bar chart) when they carry ROC points.
    features : DataFrame, optional
        The wide feature table (a preview of its first rows and columns is shown).
    feature_stats : DataFrame, optional
        Descriptive statistics of the features (e.g. ``features.describe().T``).
    feature_images : mapping of str to bytes or str
        Caption -> PNG, e.g. :func:`~smartimaging.report.plots.feature_distributions_png`.
    failures : sequence
        ``(patient_id, stage, reason)`` tuples (or mappings with those keys).
    provenance : mapping
        Versions, configuration hash, ... (nested mappings are flattened with dots).
    notes : str or sequence of str
        Free-text remarks, one paragraph each.
    qc : DataFrame, optional
        Acquisition QC, one row per series (:func:`smartimaging.io.qc.cohort_qc`); values whose
        ``flag_*`` column is true are highlighted.
    qc_summary : DataFrame, optional
        What varies across the cohort (:func:`smartimaging.io.qc.qc_summary`).
    segmentations : mapping of str to bytes or str
        Patient -> thumbnail PNG (:func:`smartimaging.report.overlays.patient_thumbnail_png`): PET MIP
        and fused slice with the contours, shown as a grid.
    comparison : DataFrame, optional
        Model comparison table (index: model): AUC with CIs, DeLong p-values against the best and
        the clinical-only model, threshold metrics, Brier score, calibration.
    delong : DataFrame, optional
        Pairwise DeLong tests (one row per pair of models).
    external : DataFrame, optional
        Performance on the external validation cohort (index: model).
    calibration_images, decision_images : mapping of str to bytes or str
        Caption -> PNG of the calibration curves and of the decision curves.
    survival : DataFrame, optional
        Survival model comparison (index: model): C-indices with CIs, time-dependent AUC, IBS.
    survival_images : mapping of str to bytes or str
        Caption -> PNG, e.g. Kaplan-Meier curves of the risk groups.
    shap_images : mapping of str to bytes or str
        Caption -> PNG of the SHAP summary of the final model.
    importance : DataFrame, optional
        Permutation importance of the final model with IBSI names and meanings.
    nomogram_images : mapping of str to bytes or str
        Caption -> PNG of the nomogram.
    model_notes : sequence of str
        Remarks on the model stage (validation scheme, harmonisation, what was skipped).
    checklist : sequence
        Reporting-checklist items (TRIPOD+AI / CLEAR style) as ``(item, status, detail)`` tuples or
        mappings with those keys; ``status`` is ``"yes"``, ``"no"`` or ``"n/a"``, filled from what the
        run actually did (see :mod:`smartimaging.study.checklist`).
    """

    title: str
    created: str = field(default_factory=_now_iso)
    summary: Mapping[str, Any] = field(default_factory=dict)
    cohort: pd.DataFrame | None = None
    models: Sequence[Any] = ()
    roc_images: Mapping[str, bytes | str] | None = None
    features: pd.DataFrame | None = None
    feature_stats: pd.DataFrame | None = None
    feature_images: Mapping[str, bytes | str] = field(default_factory=dict)
    failures: Sequence[Any] = ()
    provenance: Mapping[str, Any] = field(default_factory=dict)
    notes: str | Sequence[str] = ()
    qc: pd.DataFrame | None = None
    qc_summary: pd.DataFrame | None = None
    segmentations: Mapping[str, bytes | str] = field(default_factory=dict)
    checklist: Sequence[Any] = ()
    comparison: pd.DataFrame | None = None
    delong: pd.DataFrame | None = None
    external: pd.DataFrame | None = None
    calibration_images: Mapping[str, bytes | str] = field(default_factory=dict)
    decision_images: Mapping[str, bytes | str] = field(default_factory=dict)
    survival: pd.DataFrame | None = None
    survival_images: Mapping[str, bytes | str] = field(default_factory=dict)
    shap_images: Mapping[str, bytes | str] = field(default_factory=dict)
    importance: pd.DataFrame | None = None
    nomogram_images: Mapping[str, bytes | str] = field(default_factory=dict)
    model_notes: Sequence[str] = ()


_CHECKLIST_STATUS = ("yes", "no", "n/a")


def _checklist(items: Sequence[Any]) -> list[dict[str, str]]:
    out = []
    for k, item in enumerate(items):
        if isinstance(item, Mapping):
            try:
                values = (item["item"], item["status"], item.get("detail", ""))
            except KeyError as exc:
                raise ReportError(
                    f"checklist item {k} lacks the key {exc}; give item, status, detail."
                ) from exc
        else:
            try:
                values = tuple(item)
            except TypeError:
                raise ReportError(f"checklist item {k} is neither a mapping nor a tuple: {item!r}") from None
            if len(values) != 3:
                raise ReportError(f"checklist item {k} must be (item, status, detail), got {item!r}")
        text, status, detail = (str(v) for v in values)
        if status not in _CHECKLIST_STATUS:
            raise ReportError(
                f"checklist item {text!r}: status must be one of {list(_CHECKLIST_STATUS)}, got {status!r}"
            )
        out.append({"item": text, "status": status, "detail": detail})
    return out


def cohort_table(
    clinical: pd.DataFrame,
    *,
    by: str | None = "label",
    columns: Sequence[str] | None = None,
    max_levels: int = 10,
) -> pd.DataFrame:
    """Descriptive cohort table ("Table 1"): overall and per outcome group.

    Continuous variables are given as median [interquartile range]; categorical ones (text,
    booleans, or integers with at most ``max_levels`` distinct values, such as a stage) as
    n (%) per level, with percentages of the non-missing values. Missing values are counted on a
    row of their own when present.

    Parameters
    ----------
    clinical : DataFrame
        One row per patient.
    by : str or None, default 'label'
        Column splitting the cohort (e.g. the outcome); ``None`` for the overall column only.
    columns : sequence of str, optional
        Variables to describe (default: every column except ``by``).
    max_levels : int, default 10
        Integer columns with at most this many distinct values are treated as categories.

    Returns
    -------
    DataFrame
        Index ``variable``; columns ``All (n=..)`` and one per group of ``by``; string cells.

    Raises
    ------
    ReportError
        If ``by`` or a requested column is not in ``clinical``.
    """
    wanted = [c for c in clinical.columns if c != by] if columns is None else list(columns)
    missing = [c for c in [*wanted, *([by] if by is not None else [])] if c not in clinical.columns]
    if missing:
        raise ReportError(
            f"cohort_table: column(s) {missing} not in the table; available: {list(clinical.columns)}."
        )
    groups: list[tuple[str, pd.DataFrame]] = [(f"All (n={len(clinical)})", clinical)]
    if by is not None:
        for level, part in clinical.groupby(by, sort=True, dropna=True):
            groups.append((f"{by} = {_fmt(level)} (n={len(part)})", part))
    rows: dict[str, list[str]] = {}
    for col in wanted:
        series = clinical[col]
        is_int = pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series)
        categorical = not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
        categorical = categorical or (is_int and series.nunique() <= max_levels)
        if categorical:
            levels = list(series.dropna().unique())
            try:
                levels.sort()
            except TypeError:  # mixed types: order by their text
                levels.sort(key=str)
            for level in levels:
                cells = []
                for _, part in groups:
                    values = part[col].dropna()
                    count = int((values == level).sum())
                    pct = 100.0 * count / len(values) if len(values) else 0.0
                    cells.append(f"{count} ({pct:.0f} %)")
                rows[f"{col}: {_fmt(level)}, n (%)"] = cells
        else:
            cells = []
            for _, part in groups:
                values = part[col].dropna().astype(float)
                if len(values) == 0:
                    cells.append("—")
                    continue
                q1, med, q3 = np.quantile(values, [0.25, 0.5, 0.75])
                cells.append(f"{_fmt(med)} [{_fmt(q1)}–{_fmt(q3)}]")
            rows[f"{col}, median [IQR]"] = cells
        if series.isna().any():
            rows[f"{col}: missing, n"] = [str(int(part[col].isna().sum())) for _, part in groups]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=[name for name, _ in groups])
    table.index.name = "variable"
    return table


# ----------------------------------------------------------------------------- formatting


def _fmt(value: Any) -> str:
    """Human-readable cell text: 4 significant digits for floats, blank-dash for missing."""
    if value is None:
        return "—"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isnan(v):
            return "—"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}"
    if isinstance(value, pd.Timestamp | _dt.datetime):
        return value.isoformat()
    try:
        if pd.isna(value):
            return "—"
    except (TypeError, ValueError):
        pass
    return str(value)


_SUMMARY_LABELS = {
    "study": "Study",
    "study_name": "Study",
    "n_patients": "Patients",
    "n_succeeded": "Patients processed",
    "n_failed": "Patients with a failure",
    "seed": "Random seed",
    "run_seconds": "Run time (s)",
}


def _label(key: Any) -> str:
    if key in _SUMMARY_LABELS:
        return _SUMMARY_LABELS[key]
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _table(df: pd.DataFrame, *, max_rows: int, max_columns: int | None = None) -> dict[str, Any]:
    """Plain strings for the template, plus what was cut."""
    n_rows, n_cols = df.shape
    shown = df.iloc[:max_rows, : (max_columns if max_columns is not None else n_cols)]
    index_name = ", ".join(str(n) for n in df.index.names if n is not None) or ""
    rows = []
    for idx, row in zip(shown.index, shown.itertuples(index=False, name=None), strict=True):
        idx_text = " / ".join(_fmt(i) for i in idx) if isinstance(idx, tuple) else _fmt(idx)
        numeric = [isinstance(v, numbers.Number) and not isinstance(v, bool) for v in row]
        rows.append(
            {"index": idx_text, "cells": [(_fmt(v), num) for v, num in zip(row, numeric, strict=True)]}
        )
    return {
        "index_name": index_name,
        "columns": [str(c) for c in shown.columns],
        "rows": rows,
        "n_rows": n_rows,
        "n_columns": n_cols,
        "rows_cut": n_rows > shown.shape[0],
        "columns_cut": n_cols > shown.shape[1],
        "shown_rows": shown.shape[0],
        "shown_columns": shown.shape[1],
    }


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(_flatten(value, prefix=name + "."))
        elif isinstance(value, list | tuple):
            out.append((name, ", ".join(_fmt(v) for v in value)))
        else:
            out.append((name, _fmt(value)))
    return out


def _get(result: Any, key: str, default: Any = None) -> Any:
    if isinstance(result, Mapping):
        return result.get(key, default)
    return getattr(result, key, default)


def _model_rows(models: Sequence[Any]) -> tuple[list[dict[str, str]], list[str]]:
    rows, methods = [], []
    for k, res in enumerate(models):
        auc = _get(res, "auc")
        if auc is None:
            raise ReportError(f"model result {k} ({_get(res, 'name', '?')!r}) has no 'auc'.")
        ci = _get(res, "auc_ci")
        ci_text = "—"
        if ci is not None:
            lo, hi = (float(v) for v in ci)
            ci_text = f"{lo:.2f} – {hi:.2f}"
        n_splits, n_repeats = _get(res, "n_splits"), _get(res, "n_repeats")
        scheme = f"{n_repeats} × {n_splits}-fold" if n_splits and n_repeats else "—"
        seconds = _get(res, "seconds")
        rows.append(
            {
                "name": str(_get(res, "name") or f"model {k + 1}"),
                "n_patients": _fmt(_get(res, "n_patients")),
                "n_events": _fmt(_get(res, "n_events")),
                "auc": f"{float(auc):.3f}",
                "ci": ci_text,
                "scheme": scheme,
                "seconds": "—" if seconds is None else f"{float(seconds):.1f}",
            }
        )
        method = _get(res, "ci_method")
        if method and method not in methods:
            methods.append(str(method))
    return rows, methods


def _image_uri(caption: str, image: bytes | str) -> str:
    if isinstance(image, bytes | bytearray):
        try:
            return png_to_data_uri(bytes(image))
        except ReportError as exc:
            raise ReportError(f"image {caption!r}: {exc}") from None
    if isinstance(image, str) and image.startswith("data:image/png;base64,"):
        return image
    raise ReportError(
        f"image {caption!r} must be PNG bytes or a 'data:image/png;base64,' URI, got "
        f"{type(image).__name__} {str(image)[:40]!r}; the report embeds every image so it opens offline."
    )


def _images(images: Mapping[str, bytes | str]) -> list[dict[str, str]]:
    return [{"caption": str(c), "uri": _image_uri(str(c), img)} for c, img in images.items()]


def _auto_roc_images(models: Sequence[Any]) -> dict[str, bytes]:
    with_roc = [m for m in models if _get(m, "roc") is not None and _get(m, "auc_ci") is not None]
    if not with_roc:
        return {}
    return {
        "ROC curves of the repeat-averaged out-of-fold scores; the diagonal is chance.": roc_curves_png(
            with_roc
        ),
        "Cross-validated AUC per model with its 95 % confidence interval; dashed line: chance (0.5).": auc_bar_png(
            with_roc
        ),
    }


def _failures(failures: Sequence[Any]) -> list[dict[str, str]]:
    out = []
    for k, item in enumerate(failures):
        if isinstance(item, Mapping):
            try:
                pid, stage, reason = item["patient_id"], item["stage"], item["reason"]
            except KeyError as exc:
                raise ReportError(
                    f"failure record {k} lacks the key {exc}; expected patient_id, stage, reason."
                ) from None
        else:
            try:
                pid, stage, reason = item
            except (TypeError, ValueError):
                raise ReportError(
                    f"failure record {k} must be a (patient_id, stage, reason) tuple, got {item!r}."
                ) from None
        out.append({"patient_id": _fmt(pid), "stage": _fmt(stage), "reason": _fmt(reason)})
    return out


#: Columns of the QC table shown in the report (those present), and the flag marking each value.
QC_REPORT_COLUMNS: tuple[str, ...] = (
    "PatientID", "Modality", "SeriesDescription", "Manufacturer", "ManufacturerModelName",
    "ReconstructionMethod", "matrix", "pixel_spacing_mm", "SliceThickness", "dose_per_kg_MBq",
    "uptake_min", "BloodGlucose", "flags", "qc_errors",
)  # fmt: skip
_QC_FLAGGED_VALUE = {
    "uptake_min": "flag_uptake",
    "dose_per_kg_MBq": "flag_dose_per_kg",
    "BloodGlucose": "flag_glucose",
    "missing": "flag_missing",
}
_QC_FLAG_LABELS = {
    "flag_uptake": "uptake time",
    "flag_dose_per_kg": "dose per kg",
    "flag_glucose": "blood glucose",
    "flag_missing": "missing attributes",
}


def _truthy(value: Any) -> bool:
    """True for a set flag; False for False, 0, empty text and missing values (None, NaN, pd.NA)."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value)


def _qc_summary_table(summary: pd.DataFrame) -> dict[str, Any]:
    """The "what varies" table as text cells; rows whose ``varies`` is true are marked."""
    rows = []
    for _, row in summary.iloc[:COHORT_MAX_ROWS].iterrows():
        rows.append(
            {
                "cells": [_fmt(v) for v in row.tolist()],
                "varies": "varies" in summary.columns and _truthy(row["varies"]),
            }
        )
    return {"columns": [str(c) for c in summary.columns], "rows": rows, "n_rows": len(summary)}


def _qc_table(qc: pd.DataFrame, *, max_rows: int) -> dict[str, Any]:
    """The per-series QC table with flagged values marked, and a count of flagged series."""
    columns = [c for c in QC_REPORT_COLUMNS if c in qc.columns]
    flag_columns = [c for c in _QC_FLAG_LABELS if c in qc.columns]
    flagged = qc[flag_columns].map(_truthy) if flag_columns else pd.DataFrame(index=qc.index)
    any_flag = flagged.any(axis=1) if flag_columns else pd.Series(False, index=qc.index)
    rows = []
    for k, (idx, row) in enumerate(qc.iterrows()):
        if k >= max_rows:
            break
        cells = []
        for column in columns:
            value = row[column]
            flag = _QC_FLAGGED_VALUE.get(column)
            bad = flag is not None and flag in flag_columns and bool(flagged.at[idx, flag])
            num = isinstance(value, numbers.Number) and not isinstance(value, bool | np.bool_)
            cells.append({"text": _fmt(value), "num": num, "flagged": bad})
        rows.append({"cells": cells, "flagged": bool(any_flag.at[idx])})
    counts = [(_QC_FLAG_LABELS[c], int(flagged[c].sum())) for c in flag_columns if flagged[c].any()]
    return {
        "columns": columns,
        "rows": rows,
        "n_rows": len(qc),
        "rows_cut": len(qc) > len(rows),
        "n_flagged": int(any_flag.sum()),
        "flag_counts": counts,
    }


def _optional_table(df: pd.DataFrame | None) -> dict[str, Any] | None:
    if df is None:
        return None
    if not isinstance(df, pd.DataFrame):
        raise ReportError(f"a model table must be a DataFrame, got {type(df).__name__}.")
    return _table(df, max_rows=COHORT_MAX_ROWS) if len(df) else None


_SUMMARY_CARDS = (
    ("n_patients", "Patients"),
    ("n_succeeded", "Processed"),
    ("n_failed", "Failed"),
)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("smartimaging.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_report(data: ReportData) -> str:
    """Render the report to a self-contained HTML string.

    Parameters
    ----------
    data : ReportData
        Content of the report.

    Returns
    -------
    str
        A complete HTML5 document with inline CSS and embedded PNG figures; no external resource.

    Raises
    ------
    ReportError
        If an image is neither PNG bytes nor a PNG data URI, a failure record is malformed or a
        model result has no AUC.
    """
    if not isinstance(data, ReportData):
        raise ReportError(f"render_report expects a ReportData, got {type(data).__name__}.")
    models, ci_methods = _model_rows(list(data.models))
    roc_images = _auto_roc_images(list(data.models)) if data.roc_images is None else data.roc_images
    notes = [data.notes] if isinstance(data.notes, str) else [str(n) for n in data.notes]
    summary = dict(data.summary)
    cards = [(label, _fmt(summary[key])) for key, label in _SUMMARY_CARDS if key in summary]
    context = {
        "title": str(data.title),
        "created": str(data.created),
        "version": __version__,
        "cards": cards,
        "summary": [(_label(k), _fmt(v)) for k, v in summary.items()],
        "cohort": None if data.cohort is None else _table(data.cohort, max_rows=COHORT_MAX_ROWS),
        "models": models,
        "ci_methods": ci_methods or ([_DEFAULT_CI_METHOD] if models else []),
        "roc_images": _images(roc_images),
        "features": None
        if data.features is None
        else _table(data.features, max_rows=FEATURE_PREVIEW_ROWS, max_columns=FEATURE_PREVIEW_COLUMNS),
        "feature_stats": None
        if data.feature_stats is None
        else _table(data.feature_stats, max_rows=COHORT_MAX_ROWS),
        "feature_images": _images(data.feature_images),
        "failures": _failures(list(data.failures)),
        "provenance": _flatten(dict(data.provenance)),
        "notes": notes,
        "qc": None if data.qc is None else _qc_table(data.qc, max_rows=COHORT_MAX_ROWS),
        "qc_summary": None if data.qc_summary is None else _qc_summary_table(data.qc_summary),
        "segmentations": _images(data.segmentations),
        "checklist": _checklist(list(data.checklist)),
        "comparison": _optional_table(data.comparison),
        "delong": _optional_table(data.delong),
        "external": _optional_table(data.external),
        "calibration_images": _images(data.calibration_images),
        "decision_images": _images(data.decision_images),
        "survival": _optional_table(data.survival),
        "survival_images": _images(data.survival_images),
        "shap_images": _images(data.shap_images),
        "importance": _optional_table(data.importance),
        "nomogram_images": _images(data.nomogram_images),
        "model_notes": [str(n) for n in data.model_notes],
    }
    return _environment().get_template("report.html").render(**context)


def write_report(data: ReportData, path: str | os.PathLike[str]) -> Path:
    """Render the report and write it atomically (UTF-8) to ``path``.

    Parameters
    ----------
    data : ReportData
        Content of the report.
    path : path-like
        Output file, conventionally ``report.html``; parent folders are created.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ReportError
        As :func:`render_report`.
    """
    return write_text(path, render_report(data))
