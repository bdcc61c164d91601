"""Trainable 3D PET/CT lesion segmentation with MONAI (U-Net or DynUNet).

Importing this package imports torch and MONAI; the rest of smartimaging does not.

>>> from smartimaging.segment.network import NetworkConfig, train_network, predict_network  # doctest: +SKIP
>>> result = train_network("cohort", config=NetworkConfig(epochs=20), out="model.pt")     # doctest: +SKIP
>>> mask = predict_network("model.pt", pet_suv, ct)                                          # doctest: +SKIP

See ``docs/segmentation_network.md``.
"""

from __future__ import annotations

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
