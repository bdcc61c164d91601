"""``smartimaging export | predict | validate``: the portable model bundle on the command line.

Registered in cli.py with :func:`register`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from smartimaging.exceptions import SmartImagingError

if TYPE_CHECKING:
    from smartimaging.io.pacs import DicomNode
    from smartimaging.study.bundle import Prediction

__all__ = ["print_prediction", "register"]

_err = Console(stderr=True)


def _fail(exc: SmartImagingError) -> NoReturn:
    _err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code=2)


def _clinical(pairs: list[str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--clinical takes KEY=VALUE, got {pair!r}")
        try:
            values[key] = float(raw)
        except ValueError:
            values[key] = raw
    return values


def _push_node(address: str, out: Path | None) -> DicomNode:
    """The DICOM node of ``--push-to AET@HOST:PORT``."""
    from pydantic import ValidationError

    from smartimaging.io.pacs import DicomNode

    if out is None:
        raise typer.BadParameter("--push-to sends the files written with --out; give --out DIR too")
    aet, at, rest = address.partition("@")
    host, colon, port = rest.rpartition(":")
    if not (at and aet and colon and host and port.isdigit()):
        raise typer.BadParameter(
            f"--push-to takes AET@HOST:PORT (e.g. ORTHANC@127.0.0.1:4242), got {address!r}"
        )
    try:
        return DicomNode(host=host.strip("[]"), port=int(port), ae_title=aet)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise typer.BadParameter(f"--push-to {address!r}: {problems}") from None


def export(
    study: Annotated[Path, typer.Argument(help="Study YAML file (with a model section).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle file to write (e.g. model.zip).")],
    model: Annotated[
        str | None,
        typer.Option(help="Feature set of the model: clinical, radiomics or combined (default: combined)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Run (or reuse the cache of) a study, fit the final model on all its patients and write the bundle."""
    from smartimaging.study.bundle import fit_bundle, save_bundle
    from smartimaging.study.config import load_study
    from smartimaging.study.runner import read_clinical, run_study

    try:
        config = load_study(study)
        summary = run_study(config, quiet=quiet)
        clinical = read_clinical(config)
        import pandas as pd

        wide = pd.read_csv(config.output_dir / "features_wide.csv", index_col=0)
        wide.index = wide.index.astype(str)
        if clinical is None:
            raise SmartImagingError("the study has no clinical table (input.clinical): nothing to train on")
        bundle = fit_bundle(
            config,
            wide,
            clinical,
            model=model,
            cv=summary.models.results if summary.models is not None else (),
            qc=pd.read_csv(config.output_dir / "qc.csv", dtype={"PatientID": str})
            if (config.output_dir / "qc.csv").is_file()
            else None,
        )
        save_bundle(bundle, out)
    except SmartImagingError as exc:
        _fail(exc)
    m = bundle.manifest
    print(f"wrote {out}: model {m['model']['name']} ({m['model']['kind']}) for {m['model']['target']!r}")
    print(
        f"trained on {m['training']['n_patients']} patients, {len(m['columns'])} inputs, threshold {bundle.threshold:.3f}"
    )
    if bundle.conformal is not None:
        print(
            f"conformal prediction sets at {bundle.conformal.coverage:.0%} coverage "
            f"({m['conformal']['cv']}-fold cross-conformal, LAC)"
        )


def predict(
    bundle_path: Annotated[
        Path, typer.Argument(metavar="BUNDLE", help="Model bundle (smartimaging export).")
    ],
    patient_dir: Annotated[Path, typer.Argument(help="One patient's DICOM folder.")],
    clinical: Annotated[
        list[str],
        typer.Option("--clinical", "-c", help="Clinical variable the model needs, KEY=VALUE (repeat)."),
    ] = [],  # noqa: B006 - typer needs a literal default
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the prediction as JSON.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder for the results for the clinic: DICOM SEG of the lesions, TID 1500 SR of their "
            "SUVmax/SUVpeak/MTV/TLG and the model output, prediction.json.",
        ),
    ] = None,
    push_to: Annotated[
        str | None,
        typer.Option(
            "--push-to", help="Send the SEG and SR to this DICOM node (C-STORE), AET@HOST:PORT; needs --out."
        ),
    ] = None,
) -> None:
    """Predict one new patient from DICOM with the bundle's own settings (with abstention and explanation)."""
    from smartimaging.atomic import write_text
    from smartimaging.study.bundle import load_bundle, predict_patient

    node = _push_node(push_to, out) if push_to is not None else None
    try:
        bundle = load_bundle(bundle_path)
        result = predict_patient(bundle, patient_dir, clinical=_clinical(clinical), results_dir=out)
    except SmartImagingError as exc:
        _fail(exc)
    print_prediction(result, target=bundle.manifest["model"]["target"])
    if json_out is not None:
        write_text(json_out, json.dumps(result.to_dict(), indent=1))
    if out is not None:
        from smartimaging.study.results_dicom import result_paths

        files = result_paths(out, result.patient_id)
        write_text(out / "prediction.json", json.dumps(result.to_dict(), indent=1))
        for path in files:
            print(f"wrote {path}")
        if node is not None:
            from smartimaging.io.pacs import push

            try:
                pushed = push(node, files)
            except SmartImagingError as exc:
                _fail(exc)
            print(f"sent {len(pushed.files)} file(s) to {push_to} in {pushed.seconds:.1f} s")


def _set_text(values: list[object]) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


def print_prediction(result: Prediction, *, target: str) -> None:
    """Print one prediction for a physician: probability, decision, uncertainty, reasons and explanation."""
    print(
        f"patient {result.patient_id}: P({target}) = {result.probability:.3f} (threshold {result.threshold:.3f})"
    )
    if result.coverage is not None:
        print(
            f"prediction set at {result.coverage:.0%} coverage: {_set_text(result.prediction_set)} "
            f"(the outcomes that remain plausible; {target} = 1 is positive)"
        )
    if result.out_of_distribution:
        print("ABSTAIN: the patient lies outside the training distribution; do not use this prediction")
        for reason in result.ood_reasons:
            print(f"  - {reason}")
    elif result.decision == "abstain":
        what = "both outcomes remain plausible" if result.prediction_set else "neither outcome is typical"
        print(
            f"ABSTAIN: {what} at {result.coverage:.0%} coverage; the model cannot decide for this patient "
            f"(at the training threshold it would say {target} = {result.label})"
        )
    else:
        print(f"decision: {result.decision} ({target} = {1 if result.decision == 'positive' else 0})")
    if result.explanation:
        print("largest contributions (SHAP: change in the probability against the average training patient):")
        for e in result.explanation:
            ident = f" [IBSI {e['ibsi_id']}]" if e["ibsi_id"] else ""
            print(f"  {e['contribution']:+.3f}  {e['label']}{ident}  ({e['feature']})")
            if e["meaning"]:
                print(f"          {e['meaning']}")


def validate(
    bundle_path: Annotated[
        Path, typer.Argument(metavar="BUNDLE", help="Model bundle (smartimaging export).")
    ],
    study: Annotated[
        Path, typer.Argument(help="This site's study YAML (same feature settings, with the target).")
    ],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """External validation of a bundle at another site: predictions, AUC with CI, report."""
    from smartimaging.study.bundle import load_bundle, validate_bundle
    from smartimaging.study.config import load_study

    try:
        result = validate_bundle(load_bundle(bundle_path), load_study(study), quiet=quiet)
    except SmartImagingError as exc:
        _fail(exc)
    print(
        f"external AUC {result.auc:.3f} (95% CI {result.auc_ci[0]:.3f}-{result.auc_ci[1]:.3f}) on "
        f"{result.n_patients} patients ({result.n_events} events); sensitivity {result.sensitivity:.3f}, "
        f"specificity {result.specificity:.3f}, Brier {result.brier:.3f}; "
        f"{result.n_out_of_distribution} out of distribution"
    )
    if result.set_coverage is not None:
        print(
            f"conformal sets hold the true outcome for {result.set_coverage:.1%}; {result.n_abstain} abstentions"
        )
    for name, path in result.files.items():
        print(f"{name}: {path}")


def register(app: typer.Typer) -> None:
    """Add ``export``, ``predict`` and ``validate`` to the top-level CLI."""
    app.command("export")(export)
    app.command("predict")(predict)
    app.command("validate")(validate)
