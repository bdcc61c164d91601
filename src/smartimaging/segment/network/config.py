"""Settings of the trainable 3D segmentation network (one typed object, stored in every model file)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ARCHITECTURES", "CHANNELS", "DEVICES", "NetworkConfig"]

#: Valid values of ``NetworkConfig.architecture``.
ARCHITECTURES = ("unet", "dynunet")
#: Valid input channels; ``'pet'`` always comes first.
CHANNELS = ("pet", "ct")
#: Valid device requests: ``'auto'`` takes CUDA when present, else the CPU.
DEVICES = ("auto", "cpu", "cuda")


class NetworkConfig(BaseModel):
    """Preprocessing, architecture, training and inference settings of the segmentation network.

    Geometry follows :mod:`smartimaging.image`: ``spacing`` and ``patch_size`` are given in
    ``(x, y, z)`` order.

    Parameters
    ----------
    channels : tuple of {'pet', 'ct'}
        Input channels: ``('pet',)`` or ``('pet', 'ct')`` (CT resampled onto the PET-derived grid).
    spacing : tuple of 3 float
        Voxel size (mm) of the grid the network works on; PET (SUV), CT and masks are resampled to it
        (grid centred on the PET field of view, IBSI "align grid centres").
    patch_size : tuple of 3 int
        Training patch and sliding-window size in voxels, ``(x, y, z)``; each a multiple of
        ``2 ** (len(features) - 1)``.
    suv_clip : float
        SUV is clipped to ``[0, suv_clip]`` and divided by ``suv_clip`` (input range 0-1).
    ct_window : tuple of 2 float
        CT window (HU): clipped to ``[low, high]`` and scaled linearly to 0-1.
    architecture : {'unet', 'dynunet'}
        :class:`monai.networks.nets.UNet` (residual units) or :class:`monai.networks.nets.DynUNet`
        (nnU-Net style).
    features : tuple of int
        Feature maps per resolution level (the number of levels is its length, at least 2).
    num_res_units : int
        Residual units per block of the U-Net (ignored by DynUNet).
    epochs : int
        Passes over the training cases.
    samples_per_case : int
        Patches drawn from each case per epoch.
    pos_fraction : float
        Fraction of patches centred on a lesion voxel (the rest on background), as
        :class:`monai.transforms.RandCropByPosNegLabeld`'s ``pos / (pos + neg)``.
    hot_negative_fraction : float
        Fraction of the background-centred patches centred on a *hot* background voxel (SUV at
        least ``hot_negative_suv``: myocardium, kidneys, bladder), so that the network learns to
        reject physiological uptake; the others are centred anywhere in the background.
    hot_negative_suv : float
        SUV from which a background voxel counts as hot.
    batch_size : int
        Patches per optimiser step.
    learning_rate, weight_decay : float
        AdamW settings.
    flip_prob : float
        Probability of flipping a training patch along each axis.
    seed : int
        Seed of weight initialisation, patch sampling, augmentation and batch order.
    tta : bool
        Flip test-time augmentation at inference (mean softmax over the 8 flips of the 3 axes).
    overlap : float
        Sliding-window overlap in [0, 1).
    threshold : float
        Lesion probability at and above which a voxel is in the predicted mask.
    device : {'auto', 'cpu', 'cuda'}
        Where to train; ``'auto'`` takes CUDA when available.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: tuple[Literal["pet", "ct"], ...] = ("pet", "ct")
    spacing: tuple[float, float, float] = (4.0, 4.0, 4.0)
    patch_size: tuple[int, int, int] = (32, 32, 32)
    suv_clip: float = Field(default=20.0, gt=0)
    ct_window: tuple[float, float] = (-1000.0, 1000.0)
    architecture: Literal["unet", "dynunet"] = "unet"
    features: tuple[int, ...] = (16, 32, 64, 128)
    num_res_units: int = Field(default=1, ge=0)
    epochs: int = Field(default=50, ge=1)
    samples_per_case: int = Field(default=4, ge=1)
    pos_fraction: float = Field(default=0.5, ge=0, le=1)
    hot_negative_fraction: float = Field(default=0.5, ge=0, le=1)
    hot_negative_suv: float = Field(default=3.0, gt=0)
    batch_size: int = Field(default=4, ge=1)
    learning_rate: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=1e-5, ge=0)
    flip_prob: float = Field(default=0.5, ge=0, le=1)
    seed: int = Field(default=0, ge=0)
    tta: bool = True
    overlap: float = Field(default=0.25, ge=0, lt=1)
    threshold: float = Field(default=0.5, gt=0, lt=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @field_validator("channels")
    @classmethod
    def _check_channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if value not in (("pet",), ("pet", "ct")):
            raise ValueError(f"channels must be ('pet',) or ('pet', 'ct') (PET first), got {value!r}")
        return value

    @field_validator("spacing")
    @classmethod
    def _check_spacing(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if not all(math.isfinite(v) and v > 0 for v in value):
            raise ValueError(f"spacing must be 3 positive numbers of mm (x, y, z), got {value!r}")
        return value

    @field_validator("ct_window")
    @classmethod
    def _check_window(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not value[0] < value[1]:
            raise ValueError(f"ct_window must be (low, high) HU with low < high, got {value!r}")
        return value

    @field_validator("features")
    @classmethod
    def _check_features(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(value) < 2 or any(v < 1 for v in value):
            raise ValueError(f"features must be at least 2 positive channel counts, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_patch(self) -> NetworkConfig:
        factor = 2 ** (len(self.features) - 1)
        if any(p < factor or p % factor for p in self.patch_size):
            raise ValueError(
                f"patch_size {self.patch_size} must be multiples of {factor} "
                f"(2 ** (len(features) - 1) for {len(self.features)} levels)"
            )
        return self

    @property
    def in_channels(self) -> int:
        """Number of input channels."""
        return len(self.channels)

    @property
    def patch_zyx(self) -> tuple[int, int, int]:
        """``patch_size`` in array order ``(z, y, x)``."""
        x, y, z = self.patch_size
        return (z, y, x)
