"""``smartimaging radiogenomics``: imaging-feature x genomic-variable associations with FDR.

Registered in cli.py with::

    from smartimaging.cli_radiogenomics import register as register_radiogenomics
    register_radiogenomics(app)

Usage::

    smartimaging radiogenomics --features F.csv --genomics G.csv --id-column ID --out DIR
        [--genomic-columns EGFR,KRAS] [--method auto|spearman|mannwhitney|kruskal] [--fdr 0.05]
        [--value effect|neg_log10_q|neg_log10_p] [--max-features 60] [--no-cluster]

Writes ``DIR/associations.csv`` (one row per pair, see
:func:`smartimaging.learn.radiogenomics.associations`) and ``DIR/association_heatmap.png``,
both atomically. Columns of the features file that are also genomic columns (the same file may be
given twice) are not used as features.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from smartimaging.exceptions import SmartImagingError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["radiogenomics_command", "register"]

_err = Console(stderr=True)


def _fail(message: str) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code=2)


def _read(path: Path, id_column: str, what: str) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise SmartImagingError(f"{what} file {path} does not exist.")
    try:
        table = pd.read_csv(path)
    except (ValueError, OSError) as exc:  # pandas parser errors are ValueErrors
        raise SmartImagingError(f"could not read the {what} file {path} as CSV: {exc}") from exc
    if id_column not in table.columns:
        raise SmartImagingError(
            f"the {what} file {path} has no id column {id_column!r}; its columns are {list(table.columns)[:12]} "
            "(give the right one with --id-column)."
        )
    table[id_column] = table[id_column].astype(str)
    return table.set_index(id_column)


def radiogenomics_command(
    features: Annotated[
        Path, typer.Option("--features", help="CSV of imaging features, one row per patient.")
    ],
    genomics: Annotated[
        Path, typer.Option("--genomics", help="CSV of genomic variables, one row per patient.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    id_column: Annotated[str, typer.Option("--id-column", help="Patient id column of both files.")] = "ID",
    genomic_columns: Annotated[
        str | None,
        typer.Option("--genomic-columns", help="Comma-separated genomic columns to test (default: all)."),
    ] = None,
    method: Annotated[
        str, typer.Option(help="Test: auto, spearman, mannwhitney or kruskal (auto picks per variable).")
    ] = "auto",
    fdr: Annotated[float, typer.Option(help="Benjamini-Hochberg false discovery rate.")] = 0.05,
    value: Annotated[str, typer.Option(help="Heatmap cells: effect, neg_log10_q or neg_log10_p.")] = "effect",
    max_features: Annotated[int, typer.Option(help="Features shown in the heatmap (smallest p).")] = 60,
    cluster: Annotated[bool, typer.Option("--cluster/--no-cluster", help="Cluster rows and columns.")] = True,
) -> None:
    """Test every imaging feature against every genomic variable (Mann-Whitney / Kruskal-Wallis /
    Spearman) with Benjamini-Hochberg q-values; write the table and a clustered heatmap."""
    from smartimaging.atomic import write_bytes, write_text
    from smartimaging.learn.radiogenomics import association_heatmap_png, associations

    try:
        feats = _read(features, id_column, "features")
        gen = _read(genomics, id_column, "genomics")
        if genomic_columns:
            wanted = [c.strip() for c in genomic_columns.split(",") if c.strip()]
            missing = [c for c in wanted if c not in gen.columns]
            if missing:
                raise SmartImagingError(
                    f"--genomic-columns {missing} not in {genomics}; its columns are {list(gen.columns)[:12]}."
                )
            gen = gen[wanted]
        feats = feats.drop(columns=[c for c in gen.columns if c in feats.columns])
        table = associations(feats, gen, method=method, fdr=fdr)  # type: ignore[arg-type]
        png = association_heatmap_png(table, value=value, cluster=cluster, max_features=max_features)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "associations.csv", table.to_csv(index=False))
        write_bytes(out / "association_heatmap.png", png)
    except SmartImagingError as exc:
        _fail(str(exc))
    n_tests = table.attrs["n_tests"]
    n_sig = table.attrs["n_significant"]
    print(
        f"{len(feats.columns)} features x {len(gen.columns)} genomic variable(s) on {table['n'].max()} patients: "
        f"{n_tests} tests, {n_sig} significant at FDR {fdr:g}"
    )
    for _, row in table[table["significant"]].head(10).iterrows():
        print(
            f"  {row['feature']} ~ {row['genomic']}: {row['test']} effect {row['effect']:+.3f}, q = {row['q_value']:.2g}"
        )
    print(f"wrote {out / 'associations.csv'} and {out / 'association_heatmap.png'}")


def register(app: typer.Typer) -> None:
    """Add the ``radiogenomics`` command to ``app``."""
    app.command("radiogenomics")(radiogenomics_command)
