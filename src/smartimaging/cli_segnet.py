"""``smartimaging segment train`` and ``smartimaging segment predict``: the trainable lesion network.

The ``segment`` group belongs to ``cli.py``; register these commands into it with::

    from smartimaging.cli_segnet import register as register_segnet
    register_segnet(segment_app)

Nothing here imports torch or MONAI until a command runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from smartimaging.exceptions import SmartImagingError

__all__ = ["predict_command", "register", "train_command"]

_err = Console(stderr=True)
T = TypeVar("T", int, float)


def _fail(message: str) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _numbers(text: str, option: str, kind: Callable[[str], T], count: int | None) -> tuple[T, ...]:
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        _fail(f"{option} takes comma-separated numbers, e.g. 32,32,32; got {text!r}")
    if count is not None and len(values) != count:
        _fail(f"{option} takes {count} comma-separated values (x, y, z), got {text!r}")
    return values


Device = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda.")]
Threads = Annotated[
    int | None, typer.Option("--threads", min=1, help="CPU threads for torch (default: torch's choice).")
]


def train_command(
    cohort_dir: Annotated[
        Path, typer.Argument(help="Cohort folder: dicom/<ID>/{PET,CT} and nifti/<ID>/lesions.nii.gz.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write (.pt).")],
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.")] = 50,
    patch: Annotated[str, typer.Option("--patch", help="Patch size in voxels, x,y,z.")] = "32,32,32",
    spacing: Annotated[str, typer.Option("--spacing", help="Network grid spacing in mm, x,y,z.")] = "4,4,4",
    features: Annotated[
        str, typer.Option("--features", help="Feature maps per resolution level.")
    ] = "16,32,64,128",
    channels: Annotated[str, typer.Option("--channels", help="pet,ct or pet.")] = "pet,ct",
    architecture: Annotated[str, typer.Option("--architecture", help="unet or dynunet.")] = "unet",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Patches per step.")] = 4,
    samples_per_case: Annotated[
        int, typer.Option("--samples-per-case", min=1, help="Patches per case and epoch.")
    ] = 4,
    lr: Annotated[float, typer.Option("--lr", help="AdamW learning rate.")] = 3e-3,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed (same seed, same weights).")] = 0,
    device: Device = "auto",
    threads: Threads = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train the 3D PET/CT lesion segmentation network on a cohort with ground-truth masks."""
    try:
        from smartimaging.segment.network import NetworkConfig

        config = NetworkConfig.model_validate(
            {
                "channels": tuple(c.strip() for c in channels.split(",") if c.strip()),
                "spacing": _numbers(spacing, "--spacing", float, 3),
                "patch_size": _numbers(patch, "--patch", int, 3),
                "features": _numbers(features, "--features", int, None),
                "architecture": architecture,
                "epochs": epochs,
                "batch_size": batch_size,
                "samples_per_case": samples_per_case,
                "learning_rate": lr,
                "seed": seed,
                "device": device,
            }
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        _fail(f"invalid network settings: {problems}")
    from smartimaging.segment.network import train_network

    try:
        result = train_network(cohort_dir, config=config, out=out, progress=not quiet, num_threads=threads)
    except SmartImagingError as exc:
        _fail(str(exc))
    print(
        f"trained on {result.n_cases} cases, {config.epochs} epochs, {result.n_patches} patches, "
        f"on {result.device} in {result.seconds:.1f} s; final loss {result.losses[-1]:.4f}"
    )
    print(f"written: {result.model_path}")


def predict_command(
    model: Annotated[Path, typer.Argument(help="Model file from `segment train`.")],
    pet_dir: Annotated[Path, typer.Argument(help="Folder with one PET DICOM series (converted to SUVbw).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output mask (.nii.gz).")],
    ct: Annotated[
        Path | None, typer.Option("--ct", help="Folder with the CT series (needed by PET+CT models).")
    ] = None,
    tta: Annotated[bool, typer.Option("--tta/--no-tta", help="Flip test-time augmentation.")] = True,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Lesion probability cut-off (default: the model's).")
    ] = None,
    device: Device = "auto",
    threads: Threads = None,
) -> None:
    """Segment lesions on a PET (and CT) with a trained network; write the mask on the PET grid."""
    from smartimaging.io.nifti import write_image
    from smartimaging.segment.network import load_model, predict_network, read_ct_dir, read_pet_dir

    try:
        loaded = load_model(model)
        pet = read_pet_dir(pet_dir)
        ct_image = read_ct_dir(ct) if ct is not None else None
        mask = predict_network(
            loaded, pet, ct_image, tta=tta, threshold=threshold, device=device, num_threads=threads
        )
        write_image(mask, out)
    except SmartImagingError as exc:
        _fail(str(exc))
    print(f"lesion mask: {mask.n_voxels} voxels, {mask.volume_ml:.2f} ml on the PET grid {mask.shape}")
    print(f"written: {out}")


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``predict`` to the ``segment`` command group ``app``."""
    app.command("train")(train_command)
    app.command("predict")(predict_command)
