"""``smartimaging train``: the model stage on any feature table plus a clinical table.

Users of other extractors (or of an earlier ``smartimaging extract``) can compare, validate and
explain models without images: ``smartimaging train --features F.csv --clinical C.csv --target COL
--out DIR``. The model settings are those of a study's ``model:`` section (``--config model.yaml``),
with command-line options overriding them. Registered in cli.py with :func:`register`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from smartimaging.exceptions import ConfigError, SmartImagingError

__all__ = ["register", "train_command"]

_err = Console(stderr=True)


def _fail(exc: SmartImagingError) -> NoReturn:
    _err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _read_clinical(path: Path, id_column: str) -> Any:
    from smartimaging.study.runner import read_table_by_id

    return read_table_by_id(path, id_column, file_key="--clinical", column_key="--id-column")


def _model_config(
    config: Path | None,
    *,
    target: str | None,
    time: str | None,
    event: str | None,
    kinds: list[str],
    clinical_columns: list[str],
    validation: str | None,
) -> Any:
    from pydantic import ValidationError

    from smartimaging.study.config import ModelConfig, _format_errors, load_model_config

    base: dict[str, Any] = {}
    if config is not None:
        base = load_model_config(config).model_dump(mode="json", exclude_defaults=True)
    if (time is None) != (event is None):
        raise ConfigError("--time and --event go together: give both (follow-up time and event indicator)")
    if target is not None:
        base["target"] = target
    elif time is not None and config is None:
        base["target"] = None  # survival only
    if time is not None:
        base["survival"] = {**base.get("survival", {}), "time": time, "event": event}
    if kinds:
        base["kinds"] = kinds
        base.pop("kind", None)
    if clinical_columns:
        base["clinical_columns"] = clinical_columns
    if validation is not None:
        base["validation"] = validation
    if "target" not in base and "survival" not in base:
        raise ConfigError(
            "give --target COL (binary outcome), or --time COL --event COL (survival), or --config"
        )
    try:
        cfg = ModelConfig.model_validate(base)
    except ValidationError as exc:
        raise ConfigError(
            _format_errors(exc, "(command line and --config)").replace(
                "invalid study file", "invalid model settings"
            )
        ) from None
    if config is not None:
        cfg = cfg.resolve_paths(config.resolve().parent)
    return cfg


def train_command(
    features: Annotated[
        Path,
        typer.Option(
            "--features",
            "-f",
            help="Feature table (.csv or .parquet): one row per patient, or the tidy table of smartimaging extract.",
        ),
    ],
    clinical: Annotated[
        Path, typer.Option("--clinical", "-c", help="Clinical table (.csv), one row per patient.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (tables and report.html).")],
    id_column: Annotated[
        str,
        typer.Option(
            "--id-column", help="Column with the patient ID (clinical table, and a wide feature table)."
        ),
    ] = "patient_id",
    target: Annotated[str | None, typer.Option("--target", help="Binary (0/1) outcome column.")] = None,
    time: Annotated[str | None, typer.Option("--time", help="Survival: follow-up time column.")] = None,
    event: Annotated[
        str | None, typer.Option("--event", help="Survival: event column (1 event, 0 censored).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Model settings YAML (the model: section of a study).")
    ] = None,
    kind: Annotated[
        list[str],
        typer.Option(
            "--kind",
            help="Classifier to compare (repeat): logistic, logistic_l1, elastic_net, svm, random_forest, "
            "lightgbm, xgboost.",
        ),
    ] = [],  # noqa: B006 - typer needs a literal default
    clinical_column: Annotated[
        list[str], typer.Option("--clinical-column", help="Clinical predictor (repeat).")
    ] = [],  # noqa: B006 - typer needs a literal default
    validation: Annotated[
        str | None, typer.Option("--validation", help="cv, nested_cv or holdout (overrides the config).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of folds, models and bootstrap.")] = 0,
) -> None:
    """Compare, validate and explain models of an outcome from a feature table and a clinical table."""
    import pandas as pd
    import yaml

    from smartimaging import versions
    from smartimaging.atomic import write_text
    from smartimaging.report.html import ReportData, cohort_table, write_report
    from smartimaging.study.modelling import fit_cohort_models, read_feature_table, write_model_tables
    from smartimaging.study.provenance import now_iso
    from smartimaging.study.reporting import model_sections

    try:
        cfg = _model_config(
            config,
            target=target,
            time=time,
            event=event,
            kinds=kind,
            clinical_columns=clinical_column,
            validation=validation,
        )
        started = now_iso()
        clin = _read_clinical(clinical, id_column)
        raw_columns: list[str] = (
            [str(c) for c in pd.read_csv(features, nrows=0).columns]
            if features.suffix.lower() == ".csv"
            else []
        )
        wide = read_feature_table(features, id_column=id_column if id_column in raw_columns else None)
        shared = wide.index.intersection(clin.index)
        if len(shared) == 0:
            raise ConfigError(
                f"no patient ID is in both tables: feature IDs e.g. {list(wide.index[:3])}, clinical IDs "
                f"(column {id_column!r}) e.g. {list(clin.index[:3])}; check --id-column and the ID spelling"
            )
        clash = [c for c in wide.columns if c in clin.columns]
        if clash:
            raise ConfigError(
                f"column(s) {clash[:10]} are in both the feature and the clinical table; rename them in one table"
            )
        out.mkdir(parents=True, exist_ok=True)
        models = fit_cohort_models(wide, clin, cfg, seed=seed)
        files = write_model_tables(models, out)
        files["config"] = write_text(
            out / "model_config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
        )
        by = cfg.target if cfg.target and cfg.target in clin.columns else None
        modelled = clin.loc[clin.index.intersection(wide.index)]
        data = ReportData(
            title=f"smartimaging model report: {features.name}",
            created=started,
            summary={
                "features": str(features),
                "clinical": str(clinical),
                "n_patients": models.n_patients,
                "target": cfg.target or "(survival only)",
                "seed": seed,
            },
            cohort=cohort_table(modelled, by=by) if len(modelled) else None,
            provenance={"versions": versions(), "model_settings": cfg.model_dump(mode="json")},
            notes=[
                "Built by smartimaging train from a feature table: the image sections (acquisition QC, "
                "segmentations) are not part of this report."
            ],
            **model_sections(models),
        )
        files["report"] = write_report(data, out / "report.html")
    except SmartImagingError as exc:
        _fail(exc)
    if not models.table.empty:
        for row in models.table.sort_values("auc", ascending=False).itertuples():
            print(f"{row.model}: AUC {row.auc:.3f} (95% CI {row.auc_ci_low:.3f}-{row.auc_ci_high:.3f})")
    if models.survival_table is not None:
        for srow in models.survival_table.itertuples():
            print(f"{srow.model}: Harrell C {srow.harrell_c:.3f}")
    print(f"wrote {len(files)} files to {out}; report: {files['report']}")


def register(app: typer.Typer) -> None:
    """Add ``train`` to the ``smartimaging`` command group."""
    app.command("train")(train_command)
