"""Trainable 3D PET/CT lesion segmentation with MONAI (U-Net or DynUNet).

The settings (:class:`NetworkConfig`) and the input handling (:class:`TrainingCase`,
:func:`load_cohort`, ...) import without torch; the names that need torch and MONAI
(:func:`train_network`, :func:`predict_network`, :func:`load_model`, ...) import them on first use,
so that ``import smartimaging`` and the CLI stay fast.

>>> from smartimaging.segment.network import NetworkConfig, train_network, predict_network  # doctest: +SKIP
>>> result = train_network("cohort", config=NetworkConfig(epochs=20), out="model.pt")     # doctest: +SKIP
>>> mask = predict_network("model.pt", pet_suv, ct)                                          # doctest: +SKIP

See ``docs/segmentation_network.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from smartimaging.segment.network.config import ARCHITECTURES, CHANNELS, DEVICES, NetworkConfig
from smartimaging.segment.network.data import (
    NetworkInput,
    TrainingCase,
    case_from_synthetic,
    load_cohort,
    network_input,
    read_ct_dir,
    read_pet_dir,
)

if TYPE_CHECKING:
    from smartimaging.segment.network.infer import predict_network, predict_probability
    from smartimaging.segment.network.model import (
        LoadedModel,
        build_network,
        cpu_threads,
        load_model,
        resolve_device,
        save_model,
    )
    from smartimaging.segment.network.train import TrainResult, sample_patches, train_network

__all__ = [
    "ARCHITECTURES",
    "CHANNELS",
    "DEVICES",
    "LoadedModel",
    "NetworkConfig",
    "NetworkInput",
    "TrainResult",
    "TrainingCase",
    "build_network",
    "case_from_synthetic",
    "cpu_threads",
    "load_cohort",
    "load_model",
    "network_input",
    "predict_network",
    "predict_probability",
    "read_ct_dir",
    "read_pet_dir",
    "resolve_device",
    "sample_patches",
    "save_model",
    "train_network",
]

#: Names that need torch, and the submodule that defines each.
_LAZY = {
    "predict_network": "infer",
    "predict_probability": "infer",
    "LoadedModel": "model",
    "build_network": "model",
    "cpu_threads": "model",
    "load_model": "model",
    "resolve_device": "model",
    "save_model": "model",
    "TrainResult": "train",
    "sample_patches": "train",
    "train_network": "train",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
