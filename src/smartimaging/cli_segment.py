"""``smartimaging segment``: delineate lesions with a semi-automatic method, or detect them whole-body.

Register it in cli.py with ``app.add_typer(segment_app, name="segment")``. Other modules add the
subcommands ``train``, ``predict`` and ``evaluate`` to :data:`segment_app` through their
``register(app)`` functions; the group's callback runs a method only when no subcommand is given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from smartimaging.exceptions import SegmentationError, SmartImagingError

__all__ = ["SegmentRequest", "parse_triplet", "run_segment", "segment_app"]

segment_app = typer.Typer(
    name="segment",
    help=(
        "Segment lesions on a PET: a semi-automatic method from a seed (point, box, contour), "
        "or whole-body detection (--whole-body); subcommands for the network and evaluation."
    ),
    add_completion=False,
    pretty_exceptions_enable=False,
)


def parse_triplet(text: str, *, option: str, n: int = 3, integer: bool = False) -> tuple[float, ...]:
    """Parse ``"a,b,c"`` into ``n`` numbers; errors name the option and the text."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise typer.BadParameter(f"{option} expects {n} comma-separated numbers, got {text!r}") from None
    if len(values) != n:
        raise typer.BadParameter(
            f"{option} expects {n} comma-separated numbers, got {len(values)} in {text!r}"
        )
    if integer and any(v != int(v) for v in values):
        raise typer.BadParameter(f"{option} expects integer voxel indices, got {text!r}")
    return values


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass
class SegmentRequest:
    """Everything the ``segment`` command needs (the CLI options, parsed)."""

    pet: Path
    out: Path
    method: str = "relative"
    params: dict[str, Any] = field(default_factory=dict)
    seed_mm: tuple[float, ...] | None = None
    seed_voxel: tuple[int, ...] | None = None
    box_mm: tuple[float, ...] | None = None
    contour: Path | None = None
    roi: str | None = None
    min_volume_ml: float = 0.0
    whole_body: bool = False
    threshold: str | None = None
    liver_mm: tuple[float, ...] | None = None
    ct: Path | None = None
    organ_masks: dict[str, Path] = field(default_factory=dict)
    fmt: str = "auto"
    table: Path | None = None


def _read_pet(path: Path) -> tuple[Any, list[Any] | None]:
    """SUV image and (for a DICOM folder) the PET datasets for referencing."""
    import pydicom

    from smartimaging.io.dicom import discover, read_series
    from smartimaging.io.nifti import read_image
    from smartimaging.io.suv import to_suv

    if path.is_dir():
        found = discover(path)
        pets = [s for s in found.series if s.modality.upper() == "PT"]
        if len(pets) != 1:
            raise SegmentationError(
                f"{path}: {len(pets)} PET (Modality PT) series found; point --pet at a folder with exactly one"
            )
        pet = read_series(pets[0])
        suv, _ = to_suv(pet)
        return suv, [pydicom.dcmread(f) for f in pets[0].files]
    img = read_image(path)
    return img.with_array(img.array.astype("float32", copy=False)), None


def _read_contour(path: Path, suv: Any, roi: str | None) -> Any:
    import pydicom

    from smartimaging.image import Mask, resample_to
    from smartimaging.io.nifti import read_mask

    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")):
        m = read_mask(path)
        return m if m.same_geometry(suv) else Mask.from_image(resample_to(m, suv))
    sop = str(pydicom.dcmread(path, stop_before_pixels=True).get("SOPClassUID", ""))
    if sop == "1.2.840.10008.5.1.4.1.1.66.4":
        from smartimaging.io.seg import read_seg

        segments = read_seg(path, reference=suv)
        if roi is None and len(segments) > 1:
            raise SegmentationError(f"{path} holds segments {sorted(segments)}: choose one with --roi")
        key = roi if roi is not None else next(iter(segments))
        if key not in segments:
            raise SegmentationError(f"{path}: no segment {key!r}; segments present: {sorted(segments)}")
        return segments[key]
    from smartimaging.io.rtstruct import list_rois, read_rtstruct

    if roi is None:
        names = list_rois(path)
        if len(names) != 1:
            raise SegmentationError(f"{path} holds ROIs {names}: choose one with --roi")
        roi = names[0]
    return next(iter(read_rtstruct(path, suv, roi=roi).values()))


def run_segment(req: SegmentRequest) -> list[str]:
    """Run one ``segment`` request; return the lines to print.

    Raises
    ------
    SmartImagingError
        Unreadable inputs, or a method that cannot produce a mask.
    ValueError
        Invalid options (the message lists the valid values).
    """
    from smartimaging.image import Mask, resample_to
    from smartimaging.segment.export import write_masks
    from smartimaging.segment.methods import METHODS, segment_lesion
    from smartimaging.segment.seeds import box_mask

    if req.method not in METHODS and not req.whole_body:
        raise ValueError(f"--method must be one of {sorted(METHODS)}, got {req.method!r}")
    suv, reference = _read_pet(req.pet)
    lines = [
        f"PET {req.pet}: {suv.shape[2]} x {suv.shape[1]} x {suv.shape[0]} voxels, SUVmax {float(suv.array.max()):.3g}"
    ]
    if req.whole_body:
        from smartimaging.io.nifti import read_image, read_mask
        from smartimaging.segment.wholebody import detect_lesions

        ct = None
        if req.ct is not None:
            ct_img = read_image(req.ct)
            ct = ct_img if ct_img.same_geometry(suv) else resample_to(ct_img, suv, default_value=-1000.0)
        organs = {}
        for organ, p in req.organ_masks.items():
            m = read_mask(p)
            organs[organ] = m if m.same_geometry(suv) else Mask.from_image(resample_to(m, suv))
        thr: Any = 2.5 if req.threshold is None else req.threshold
        if thr != "percist":
            try:
                thr = float(thr)
            except ValueError:
                raise ValueError(f"--threshold must be an SUV or 'percist', got {req.threshold!r}") from None
        found = detect_lesions(
            suv, threshold=thr, liver_point_mm=req.liver_mm, ct=ct, organ_masks=organs or None,
            min_volume_ml=max(req.min_volume_ml, 0.0) or 0.5,
        )  # fmt: skip
        lines.append(
            f"whole-body: threshold SUV {found.threshold_suv:.3g}, {len(found.table)} lesion(s), "
            f"{len(found.excluded)} physiological candidate(s) excluded ({', '.join(found.excluded['organ']) or 'none'})"
        )
        if found.table.empty:
            raise SegmentationError("no lesion detected: nothing to write (lower --threshold?)")
        masks = found.lesion_masks()
        table = req.table or req.out.with_name(req.out.name.split(".")[0] + "_lesions.csv")
        from smartimaging.atomic import atomic_path

        with atomic_path(table) as tmp:
            found.table.to_csv(tmp, index=False)
        lines.append(found.table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        lines.append(f"table: {table}")
        method = "whole_body"
    else:
        params = dict(req.params)
        box = None
        if req.box_mm is not None:
            box = box_mask(suv, corner_a_mm=req.box_mm[:3], corner_b_mm=req.box_mm[3:])
        contour = _read_contour(req.contour, suv, req.roi) if req.contour is not None else None
        if req.method == "percist" and req.liver_mm is not None:
            params.setdefault("liver_point_mm", req.liver_mm)
        mask = segment_lesion(
            suv, method=req.method, seed_mm=req.seed_mm, seed_voxel=req.seed_voxel, box=box, contour=contour,
            min_volume_ml=req.min_volume_ml, **params,
        )  # fmt: skip
        masks = {"lesion_1": mask}
        lines.append(f"{req.method}: {mask.volume_ml:.4g} ml, {mask.n_voxels} voxels")
        method = req.method
    written = write_masks(masks, req.out, fmt=req.fmt, reference=reference, method=method)  # type: ignore[arg-type]
    lines.append(f"written: {written}")
    return lines


@segment_app.callback(invoke_without_command=True)
def segment_command(
    ctx: typer.Context,
    pet: Annotated[
        Path | None, typer.Option("--pet", help="PET: a DICOM folder (converted to SUVbw) or a NIfTI in SUV.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output: mask.nii.gz, seg*.dcm (DICOM SEG) or rtstruct*.dcm."),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            "--method", "-m", help="fixed, relative, adaptive, percist, gradient or region_growing."
        ),
    ] = "relative",
    fraction: Annotated[
        float | None, typer.Option("--fraction", help="relative / region_growing: fraction of SUVmax.")
    ] = None,
    reference: Annotated[str | None, typer.Option("--reference", help="relative: max or peak.")] = None,
    threshold: Annotated[
        str | None, typer.Option("--threshold", help="fixed: SUV; --whole-body: SUV or 'percist'.")
    ] = None,
    beta: Annotated[float | None, typer.Option("--beta", help="adaptive: weight of the source mean.")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Any method parameter as KEY=VALUE (repeatable).")
    ] = None,
    seed_mm: Annotated[
        str | None, typer.Option("--seed-mm", help="Seed point x,y,z in mm (patient LPS).")
    ] = None,
    seed_voxel: Annotated[
        str | None, typer.Option("--seed-voxel", help="Seed voxel i,j,k (0-based).")
    ] = None,
    box: Annotated[str | None, typer.Option("--box", help="Box x1,y1,z1,x2,y2,z2 in mm.")] = None,
    contour: Annotated[
        Path | None, typer.Option("--contour", help="Rough contour: RTSTRUCT, SEG or a NIfTI mask.")
    ] = None,
    roi: Annotated[str | None, typer.Option("--roi", help="ROI / segment name in --contour.")] = None,
    liver_mm: Annotated[
        str | None, typer.Option("--liver-mm", help="percist: centre x,y,z (mm) of the 3 cm liver sphere.")
    ] = None,
    min_volume_ml: Annotated[
        float, typer.Option("--min-volume-ml", min=0.0, help="Drop smaller components.")
    ] = 0.0,
    whole_body: Annotated[
        bool, typer.Option("--whole-body", help="Detect every lesion (threshold + organ rules).")
    ] = False,
    ct: Annotated[
        Path | None, typer.Option("--ct", help="--whole-body: CT NIfTI for the body outline.")
    ] = None,
    organ_mask: Annotated[
        list[str] | None,
        typer.Option(
            "--organ-mask", help="--whole-body: ORGAN=mask.nii.gz (brain, heart, bladder, kidneys)."
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, nifti, seg or rtstruct.")] = "auto",
    table: Annotated[Path | None, typer.Option("--table", help="--whole-body: per-lesion CSV.")] = None,
) -> None:
    """Segment lesions on a PET with a semi-automatic method or whole-body detection."""
    if ctx.invoked_subcommand is not None:
        return
    if pet is None or out is None:
        typer.echo(ctx.get_help())
        typer.echo("error: give --pet and --out (or a subcommand)", err=True)
        raise typer.Exit(code=2)
    try:
        params: dict[str, Any] = {}
        for item in param or []:
            if "=" not in item:
                raise typer.BadParameter(f"--param expects KEY=VALUE, got {item!r}")
            key, value = item.split("=", 1)
            params[key.strip()] = _parse_value(value.strip())
        named: tuple[tuple[str, Any], ...] = (
            ("fraction", fraction),
            ("reference", reference),
            ("beta", beta),
        )
        for key, value in named:
            if value is not None:
                params[key] = value
        if threshold is not None and not whole_body:
            params["threshold"] = float(threshold)
        organs = {}
        for item in organ_mask or []:
            if "=" not in item:
                raise typer.BadParameter(f"--organ-mask expects ORGAN=PATH, got {item!r}")
            k, v = item.split("=", 1)
            organs[k.strip()] = Path(v.strip())
        req = SegmentRequest(
            pet=pet, out=out, method=method, params=params,
            seed_mm=parse_triplet(seed_mm, option="--seed-mm") if seed_mm else None,
            seed_voxel=tuple(int(v) for v in parse_triplet(seed_voxel, option="--seed-voxel", integer=True)) if seed_voxel else None,
            box_mm=parse_triplet(box, option="--box", n=6) if box else None,
            contour=contour, roi=roi, min_volume_ml=min_volume_ml, whole_body=whole_body,
            threshold=threshold, liver_mm=parse_triplet(liver_mm, option="--liver-mm") if liver_mm else None,
            ct=ct, organ_masks=organs, fmt=fmt, table=table,
        )  # fmt: skip
        lines = run_segment(req)
    except (SmartImagingError, ValueError) as exc:
        if isinstance(exc, typer.BadParameter):
            raise
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    for line in lines:
        typer.echo(line)
