"""The network itself, the device it runs on, and the model file (save / load).

The model file is a :func:`torch.save` dictionary of plain values and tensors only, so that it
loads with ``torch.load(weights_only=True)`` (no pickled code is ever executed):

``format``, ``format_version``, ``config`` (the :class:`NetworkConfig` as JSON text),
``preprocessing`` (the resolved intensity and grid rules, JSON text), ``training`` (summary, JSON
text), ``versions`` (smartimaging, torch, monai), ``state_dict`` (the weights).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from smartimaging.atomic import atomic_path
from smartimaging.exceptions import SegmentationError
from smartimaging.segment.network.config import DEVICES, NetworkConfig
from smartimaging.segment.network.data import CT_OUTSIDE_HU

__all__ = [
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "LoadedModel",
    "build_network",
    "cpu_threads",
    "load_model",
    "resolve_device",
    "save_model",
]

MODEL_FORMAT = "smartimaging-segnet"
MODEL_FORMAT_VERSION = 1


def resolve_device(device: str) -> torch.device:
    """The torch device for ``'auto'``, ``'cpu'`` or ``'cuda'``.

    Raises
    ------
    SegmentationError
        Unknown name (the message lists the valid ones), or ``'cuda'`` without a CUDA device.
    """
    if device not in DEVICES:
        raise SegmentationError(f"device must be one of {list(DEVICES)}, got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SegmentationError(
            "device 'cuda' was asked for but torch sees no CUDA device "
            f"(torch {torch.__version__}); use device 'auto' or 'cpu'"
        )
    return torch.device(device)


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` CPU threads in torch inside the block (``None``: leave torch's setting); restore after.

    On a loaded machine one thread can be many times faster than several that compete for cores.

    Raises
    ------
    SegmentationError
        ``n`` is not a positive integer.
    """
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SegmentationError(f"num_threads must be a positive integer or None, got {n!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def build_network(config: NetworkConfig) -> torch.nn.Module:
    """A freshly initialised MONAI network for ``config`` (2 output classes: background, lesion).

    Weights are drawn from torch's current random state: seed it first (training does, inside
    :func:`torch.random.fork_rng`).
    """
    from monai.networks.nets import DynUNet, UNet

    n = len(config.features)
    if config.architecture == "unet":
        return UNet(
            spatial_dims=3,
            in_channels=config.in_channels,
            out_channels=2,
            channels=config.features,
            strides=(2,) * (n - 1),
            num_res_units=config.num_res_units,
            norm="INSTANCE",
        )
    return DynUNet(
        spatial_dims=3,
        in_channels=config.in_channels,
        out_channels=2,
        kernel_size=[3] * n,
        strides=[1] + [2] * (n - 1),
        upsample_kernel_size=[2] * (n - 1),
        filters=list(config.features),
        res_block=True,
    )


def preprocessing_record(config: NetworkConfig) -> dict[str, Any]:
    """The intensity and grid rules a model applies to its inputs (stored in the model file)."""
    record: dict[str, Any] = {
        "grid": "IBSI align-grid-centres grid of the PET at `spacing` (x, y, z mm)",
        "spacing_mm": list(config.spacing),
        "pet": {
            "units": "SUVbw",
            "interpolation": "linear",
            "scaling": f"clip(SUV, 0, {config.suv_clip}) / {config.suv_clip}",
        },
        "mask": "linear fraction map on the network grid, kept at >= 0.5",
        "output": f"softmax lesion probability, resampled linearly to the PET grid, >= {config.threshold}",
    }
    if "ct" in config.channels:
        low, high = config.ct_window
        record["ct"] = {
            "units": "HU",
            "interpolation": "linear in physical space onto the network grid",
            "outside_fov_hu": CT_OUTSIDE_HU,
            "scaling": f"(clip(HU, {low}, {high}) - {low}) / {high - low}",
        }
    return record


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A network restored from a model file, with what the file says about it.

    Attributes
    ----------
    network : torch.nn.Module
        The network in evaluation mode, on the CPU.
    config : NetworkConfig
        Its settings (preprocessing included).
    training : dict
        Training summary stored with it.
    versions : dict
        smartimaging, torch and monai versions that trained it.
    path : Path or None
        Where it was read from.
    """

    network: torch.nn.Module
    config: NetworkConfig
    training: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    path: Path | None = None


def _versions() -> dict[str, str]:
    import monai

    from smartimaging import __version__

    return {
        "smartimaging": str(__version__),
        "torch": str(torch.__version__),
        "monai": str(monai.__version__),
    }


def save_model(
    network: torch.nn.Module,
    path: str | os.PathLike[str],
    *,
    config: NetworkConfig,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write a model file atomically (weights on the CPU, settings as JSON text).

    Parameters
    ----------
    network : torch.nn.Module
        The trained network.
    path : path
        Output file (conventionally ``.pt``).
    config : NetworkConfig
        The settings it was trained with.
    training : dict, optional
        JSON-serialisable training summary.

    Returns
    -------
    Path
    """
    state = {k: v.detach().to("cpu").clone() for k, v in network.state_dict().items()}
    payload = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "config": config.model_dump_json(),
        "preprocessing": json.dumps(preprocessing_record(config)),
        "training": json.dumps(training or {}),
        "versions": _versions(),
        "state_dict": state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Read a model file written by :func:`save_model` (``torch.load(weights_only=True)``).

    Parameters
    ----------
    path : path
        The model file.

    Returns
    -------
    LoadedModel

    Raises
    ------
    SegmentationError
        Missing or unreadable file, not a smartimaging segmentation model, a newer format version,
        invalid settings, or weights that do not fit the network its settings describe.
    """
    p = Path(path)
    if not p.is_file():
        raise SegmentationError(f"{p}: model file not found; train one with `smartimaging segment train`")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SegmentationError(
            f"{p}: cannot be read as a smartimaging model ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "only files written by `smartimaging segment train` are accepted"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise SegmentationError(
            f"{p}: not a smartimaging segmentation model (no format '{MODEL_FORMAT}'); "
            "train one with `smartimaging segment train`"
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or version > MODEL_FORMAT_VERSION:
        raise SegmentationError(
            f"{p}: model format version {version!r}, this smartimaging reads up to {MODEL_FORMAT_VERSION}; "
            "upgrade smartimaging"
        )
    try:
        config = NetworkConfig.model_validate_json(payload["config"])
    except (KeyError, TypeError, ValidationError) as exc:
        raise SegmentationError(f"{p}: the stored network settings are invalid ({exc})") from exc
    network = build_network(config)
    try:
        network.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, RuntimeError) as exc:
        raise SegmentationError(
            f"{p}: the weights do not fit the stored settings (architecture {config.architecture}, "
            f"channels {list(config.channels)}, features {list(config.features)}): "
            f"{str(exc).splitlines()[0]}; the file is damaged or was edited"
        ) from exc
    network.eval()
    training = json.loads(payload.get("training", "{}") or "{}")
    versions = {str(k): str(v) for k, v in dict(payload.get("versions", {})).items()}
    return LoadedModel(network, config, training, versions, p)
