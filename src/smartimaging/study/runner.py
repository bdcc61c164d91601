"""Run a study: discover DICOM, process every patient (cached, parallel), model, report.

Outputs in ``config.output_dir``:

``features.csv`` / ``features.parquet``
    Tidy feature table (one row per patient, ROI, feature).
``features_wide.csv``
    One row per patient: the primary lesion's features and the patient-level PET metrics.
``failures.csv``
    Every patient or file that failed, with the stage and the reason.
``models.csv``
    Comparison of every validated model (AUC with CIs, DeLong p-values, threshold metrics,
    calibration); ``model_predictions.csv`` their out-of-sample predictions, ``model_delong.csv``
    the pairwise DeLong tests, ``survival_models.csv`` / ``survival_predictions.csv`` the survival
    models (see :func:`smartimaging.study.modelling.write_model_tables`).
``qc.csv`` / ``qc_summary.csv``
    Acquisition QC from the DICOM headers: one row per PET/CT series with flags, and what varies
    across the cohort (see :mod:`smartimaging.io.qc`).
``report.html``
    Self-contained report. ``run.log``: the log. ``provenance.json``: inputs, settings, versions.
``cache/``
    Per-patient stage results (SUV and masks, features, overlay), reused by the next run (see
    :mod:`smartimaging.study.cache` and docs/runner.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smartimaging import __version__
from smartimaging.atomic import atomic_path, write_text
from smartimaging.exceptions import ConfigError, LearningError
from smartimaging.features.extract import to_wide
from smartimaging.io.dicom import DiscoveryResult, discover
from smartimaging.io.qc import cohort_qc, qc_summary
from smartimaging.study.cache import STAGES, StageCache, files_digest
from smartimaging.study.config import StudyConfig, config_hash
from smartimaging.study.executor import run_tasks
from smartimaging.study.modelling import CohortModels, fit_cohort_models, write_model_tables
from smartimaging.study.pacs_input import fetch_from_pacs
from smartimaging.study.patient import (
    PatientResult,
    PatientTask,
    load_cached_result,
    stage_keys,
    tasks_from_nifti,
    tasks_from_series,
)
from smartimaging.study.provenance import now_iso, write_provenance
from smartimaging.study.reporting import build_report

__all__ = ["RunSummary", "clinical_overrides", "read_clinical", "read_table_by_id", "run_study", "wide_table"]

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run produced and where."""

    output_dir: Path
    n_patients: int
    n_ok: int
    n_failed: int
    n_cached: int
    seconds: float
    failures: pd.DataFrame
    models: CohortModels | None = None
    files: dict[str, Path] = field(default_factory=dict)
    cache_hits: dict[str, int] = field(default_factory=dict)
    """Per cached stage (masks, features, overlay): patients whose result was not recomputed (read
    from the cache, or not needed because everything computed from it was)."""
    cache_computed: dict[str, int] = field(default_factory=dict)
    """Per cached stage: patients for which it was computed in this run."""
    cache_bytes: int = 0
    """Disk use of the stage cache after the run."""


@contextlib.contextmanager
def _run_log(path: Path) -> Iterator[None]:
    """Send the package's log records to ``path`` for the duration of the run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("smartimaging")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        handler.close()


def read_table_by_id(path: Path, id_column: str, *, file_key: str, column_key: str) -> pd.DataFrame:
    """A CSV table indexed by its patient-ID column (as strings), with errors naming the setting.

    Parameters
    ----------
    path : Path
        The CSV file.
    id_column : str
        Its patient-ID column.
    file_key, column_key : str
        How the user gave the file and the column (``input.clinical`` / ``input.id_column`` in a
        study file, ``--clinical`` / ``--id-column`` on the command line), for the messages.

    Raises
    ------
    ConfigError
        If the file is missing or unreadable, lacks the ID column or repeats a patient ID.
    """
    if not path.is_file():
        raise ConfigError(f"{file_key}: file not found: {path}")
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{file_key}: cannot read {path}: {exc}") from exc
    if id_column not in table.columns:
        raise ConfigError(
            f"{column_key} {id_column!r} is not a column of {path}; columns are {list(table.columns)}"
        )
    table[id_column] = table[id_column].astype(str)
    if table[id_column].duplicated().any():
        dup = sorted(table.loc[table[id_column].duplicated(), id_column].unique())
        raise ConfigError(f"{path}: patient IDs appear more than once in column {id_column!r}: {dup[:10]}")
    return table.set_index(id_column)


def read_clinical(config: StudyConfig) -> pd.DataFrame | None:
    """The study's clinical table indexed by patient ID (string), or None when the study has none.

    Raises
    ------
    ConfigError
        If the file is missing or unreadable, lacks ``input.id_column`` or repeats a patient ID.
    """
    path = config.input.clinical
    if path is None:
        return None
    return read_table_by_id(
        path, config.input.id_column, file_key="input.clinical", column_key="input.id_column"
    )


def _override_value(key: str, value: Any, column: str, pid: str) -> Any:
    """One clinical-table cell as a :func:`smartimaging.io.suv.suv_factor` override (None if empty)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)) or str(value).strip() == "":
        return None
    try:
        if key == "sex":
            return str(value).strip().upper()
        if key == "injection_time":
            return datetime.fromisoformat(str(value).strip())
        number = float(value)
    except ValueError:
        raise ConfigError(
            f"clinical table, column {column!r}, patient {pid}: {value!r} is not a valid "
            + ("date-time (ISO, e.g. 2025-01-31T09:12:00)" if key == "injection_time" else "number")
        ) from None
    return number * {"dose_bq": 1e6, "uptake_s": 60.0}.get(key, 1.0)  # MBq -> Bq, min -> s


def clinical_overrides(config: StudyConfig, clinical: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    """Per-patient SUV values from the clinical table (suv.*_column: weight, height, sex, dose, times).

    Parameters
    ----------
    config : StudyConfig
        The study (its ``suv.*_column`` settings name the columns).
    clinical : DataFrame or None
        The clinical table from :func:`read_clinical`.

    Returns
    -------
    dict
        Patient ID -> ``{weight_kg, height_m, sex, dose_bq, injection_time, uptake_s}`` (only the
        non-empty cells; dose in Bq, uptake in s), the overrides of
        :func:`smartimaging.io.suv.suv_factor`.

    Raises
    ------
    ConfigError
        If a configured column is absent or a cell is not a valid number or date-time.
    """
    columns = config.suv.columns()
    if clinical is None or not columns:
        return {}
    for key, column in columns.items():
        if column not in clinical.columns:
            setting = {v: k for k, v in SUV_COLUMN_SETTINGS.items()}[key]
            raise ConfigError(
                f"suv.{setting} {column!r} is not a column of {config.input.clinical}; columns are "
                f"{list(clinical.columns)}"
            )
    out: dict[str, dict[str, Any]] = {}
    for pid, row in clinical.iterrows():
        values = {key: _override_value(key, row[column], column, str(pid)) for key, column in columns.items()}
        out[str(pid)] = {k: v for k, v in values.items() if v is not None}
    return out


SUV_COLUMN_SETTINGS = {
    "weight_column": "weight_kg",
    "height_column": "height_m",
    "sex_column": "sex",
    "dose_column": "dose_bq",
    "injection_time_column": "injection_time",
    "uptake_column": "uptake_s",
}


def wide_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: the primary lesion's features and the patient-level metrics.

    Patient-level columns are prefixed ``patient_``; the index is the patient ID.
    """
    lesion = tidy[tidy["roi"] != "patient"]
    whole = tidy[tidy["roi"] == "patient"]
    parts = []
    if not lesion.empty:
        parts.append(to_wide(lesion).set_index("case").drop(columns=["roi"], errors="ignore"))
    if not whole.empty:
        w = to_wide(whole).set_index("case").drop(columns=["roi"], errors="ignore")
        parts.append(w.add_prefix("patient_"))
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, axis=1)
    out.index.name = "patient_id"
    return out.sort_index()


def _write_table(table: pd.DataFrame, path: Path, *, index: bool = False) -> Path:
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            table.to_parquet(tmp, index=index)
        else:
            table.to_csv(tmp, index=index)
    return path


def run_study(config: StudyConfig, *, quiet: bool = False, jobs: int | None = None) -> RunSummary:
    """Run a whole study.

    Parameters
    ----------
    config : StudyConfig
        Validated study settings (see :func:`smartimaging.study.config.load_study`).
    quiet : bool
        Hide progress bars.
    jobs : int, optional
        Worker processes for the per-patient stage; overrides ``config.jobs``.

    Returns
    -------
    RunSummary
        Counts, failures, model results and the paths of the files written.
    """
    t0 = time.perf_counter()
    started = now_iso()
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    jobs = config.jobs if jobs is None else jobs
    with _run_log(out / "run.log"):
        log.info("smartimaging %s: study %r, config %s", __version__, config.name, config_hash(config)[:12])
        clinical = read_clinical(config)
        pacs_failures: list[dict[str, str]] = []
        if config.input.pacs is not None and config.input.dicom_dir is not None:
            pacs_failures = fetch_from_pacs(config.input.pacs, config.input.dicom_dir, out / "pacs").failures
        if config.input.nifti is not None:
            discovery = DiscoveryResult()
        elif config.input.dicom_dir is None or not config.input.dicom_dir.is_dir():
            raise ConfigError(f"input.dicom_dir: folder not found: {config.input.dicom_dir}")
        else:
            discovery = discover(config.input.dicom_dir, progress=not quiet)
        log.info("discovered %d series, %d unreadable files", len(discovery.series), len(discovery.problems))
        qc = cohort_qc(
            discovery
        )  # headers only, every file (uptake uses the earliest acquisition); never raises
        qc_table = qc_summary(qc)
        qc_files = {
            "qc": _write_table(qc, out / "qc.csv"),
            "qc_summary": _write_table(qc_table, out / "qc_summary.csv"),
        }
        log.info(
            "acquisition QC: %d series, %d flagged",
            len(qc),
            int(qc["flags"].astype(bool).sum()) if len(qc) else 0,
        )
        failures: list[dict[str, str]] = pacs_failures + [
            {"patient_id": "", "stage": "discovery", "reason": f"{p.path}: {p.reason}"}
            for p in discovery.problems
        ]
        if config.input.nifti is not None:
            tasks = tasks_from_nifti(
                config,
                None if clinical is None else list(clinical.index),
                clinical_overrides(config, clinical),
            )
        else:
            tasks = tasks_from_series(discovery.series, config, clinical_overrides(config, clinical))
        if clinical is not None:
            imaged = {t.patient_id for t in tasks}
            for pid in sorted(set(clinical.index) - imaged):
                failures.append(
                    {
                        "patient_id": pid,
                        "stage": "discovery",
                        "reason": "in the clinical table but no DICOM found",
                    }
                )

        cache = StageCache(out / "cache")
        if n_legacy := cache.remove_legacy():
            log.info("cache: removed %d entries of an older cache format", n_legacy)
        cache.remove_stale_temporaries()
        input_hashes: dict[str, str] = {}
        todo: list[PatientTask] = []
        results: dict[str, PatientResult] = {}
        for task in tasks:
            digest = files_digest(task.input_files())
            input_hashes[task.patient_id] = digest
            task = dataclasses.replace(task, cache_dir=cache.root, inputs_digest=digest)
            hit = load_cached_result(task, stage_keys(task))
            if hit is None:
                todo.append(task)
            else:
                results[task.patient_id] = hit
        log.info(
            "%d patients: %d cached, %d to process with %d job(s)", len(tasks), len(results), len(todo), jobs
        )

        def on_done(res: PatientResult) -> None:
            results[res.patient_id] = res
            if res.status == "ok" and res.features is not None:
                log.info(
                    "patient %s done in %.2f s (%s)",
                    res.patient_id,
                    res.seconds,
                    ", ".join(f"{k} {v}" for k, v in res.stages.items()),
                )
            else:
                log.warning("patient %s failed at %s: %s", res.patient_id, res.stage, res.reason)

        run_tasks(
            todo,
            on_done,
            executor=config.executor,
            jobs=jobs,
            dask_scheduler=config.dask_scheduler,
            quiet=quiet,
        )

        ok = [results[p] for p in sorted(results) if results[p].status == "ok"]
        failures += [
            {"patient_id": r.patient_id, "stage": r.stage, "reason": r.reason}
            for r in (results[p] for p in sorted(results))
            if r.status != "ok"
        ]
        failure_table = pd.DataFrame(failures, columns=["patient_id", "stage", "reason"])
        files: dict[str, Path] = dict(qc_files)

        tidy = (
            pd.concat([r.features for r in ok if r.features is not None], ignore_index=True) if ok else None
        )
        wide = pd.DataFrame()
        if tidy is not None:
            files["features_csv"] = _write_table(tidy, out / "features.csv")
            files["features_parquet"] = _write_table(tidy, out / "features.parquet")
            wide = wide_table(tidy)
            files["features_wide"] = _write_table(wide, out / "features_wide.csv", index=True)

        models: CohortModels | None = None
        if config.model is not None and clinical is not None and not wide.empty:
            try:
                models = fit_cohort_models(wide, clinical, config.model, seed=config.seed, qc=qc, jobs=jobs)
                files.update(write_model_tables(models, out))
            except LearningError as exc:
                log.error("modelling failed: %s", exc)
                failure_table = pd.concat(
                    [
                        failure_table,
                        pd.DataFrame([{"patient_id": "", "stage": "modelling", "reason": str(exc)}]),
                    ],
                    ignore_index=True,
                )
        files["failures"] = _write_table(failure_table, out / "failures.csv")

        seconds = time.perf_counter() - t0
        summary = RunSummary(
            output_dir=out,
            n_patients=len(tasks),
            n_ok=len(ok),
            n_failed=sum(1 for r in results.values() if r.status != "ok"),
            n_cached=sum(1 for r in results.values() if r.cached),
            seconds=seconds,
            failures=failure_table,
            models=models,
            files=files,
            cache_hits={
                st: sum(1 for r in results.values() if r.stages.get(st) in ("hit", "reused")) for st in STAGES
            },
            cache_computed={
                st: sum(1 for r in results.values() if r.stages.get(st) == "computed") for st in STAGES
            },
            cache_bytes=cache.size_bytes(),
        )
        log.info(
            "cache (%s, %.1f MB): %s",
            cache.base,
            summary.cache_bytes / 1e6,
            "; ".join(
                f"{st} {summary.cache_hits[st]} from cache, {summary.cache_computed[st]} computed"
                for st in STAGES
            ),
        )
        info = {pid: r.info for pid, r in results.items()}
        html = build_report(
            config,
            summary,
            wide=wide,
            clinical=clinical,
            patient_info=info,
            started=started,
            qc=qc,
            qc_summary=qc_table,
        )
        files["report"] = write_text(out / "report.html", html)
        files["provenance"] = write_provenance(
            out / "provenance.json",
            config,
            started=started,
            input_hashes=input_hashes,
            counts={
                "patients": summary.n_patients,
                "ok": summary.n_ok,
                "failed": summary.n_failed,
                "cached": summary.n_cached,
                "unreadable_files": len(discovery.problems),
            },
            extra={
                "seconds": round(seconds, 3),
                "outputs": {k: str(v) for k, v in files.items()},
                "cache": {"from_cache": summary.cache_hits, "computed": summary.cache_computed},
            },
        )
        log.info("run finished in %.1f s: %d ok, %d failed", seconds, summary.n_ok, summary.n_failed)
    return summary


def summary_lines(summary: RunSummary) -> list[str]:
    """Human-readable lines for the console."""
    lines = [
        f"patients: {summary.n_patients} ({summary.n_ok} ok, {summary.n_failed} failed, {summary.n_cached} from cache)",
        f"time: {summary.seconds:.1f} s",
    ]
    if summary.cache_hits:
        lines.append(
            "cache: "
            + ", ".join(
                f"{st} {summary.cache_hits.get(st, 0)} reused/{summary.cache_computed.get(st, 0)} computed"
                for st in STAGES
            )
        )
    if summary.models is not None:
        for row in summary.models.table.itertuples():
            lines.append(
                f"model {row.model}: AUC {row.auc:.3f} (95% CI {row.auc_ci_low:.3f}-{row.auc_ci_high:.3f})"
            )
    lines.append(f"report: {summary.files.get('report', '')}")
    return lines
