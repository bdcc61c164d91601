"""Inference: sliding window over the network grid, flip test-time augmentation, back to the PET grid."""

from __future__ import annotations

import itertools
import os

import numpy as np
import torch

from smartimaging.image import Image, Mask, resample_to
from smartimaging.segment.network.data import network_input
from smartimaging.segment.network.model import LoadedModel, cpu_threads, load_model, resolve_device

__all__ = ["predict_network", "predict_probability"]

#: The 8 flips of the three spatial axes (tensor dims 2, 3, 4), identity first.
_FLIPS: tuple[tuple[int, ...], ...] = tuple(
    dims for r in range(4) for dims in itertools.combinations((2, 3, 4), r)
)


def _as_model(model: LoadedModel | str | os.PathLike[str]) -> LoadedModel:
    return model if isinstance(model, LoadedModel) else load_model(model)


def predict_probability(
    model: LoadedModel | str | os.PathLike[str],
    pet: Image,
    ct: Image | None = None,
    *,
    tta: bool | None = None,
    device: str = "auto",
    num_threads: int | None = None,
) -> Image:
    """Lesion probability on the PET grid.

    The inputs are preprocessed as in training (network grid, SUV scaling, CT window), the network
    is run by :func:`monai.inferers.sliding_window_inference` (patch-sized windows, Gaussian
    blending) and its softmax is averaged over the 8 flips of the three axes when ``tta`` is on
    (each flip undone before averaging), then resampled linearly onto the PET grid.

    Parameters
    ----------
    model : LoadedModel or path
        A model from :func:`load_model`, or its file.
    pet : Image
        PET in SUV.
    ct : Image, optional
        CT in HU; needed exactly when the model was trained with a CT channel.
    tta : bool, optional
        Flip test-time augmentation; the model's setting by default.
    device : {'auto', 'cpu', 'cuda'}
        Where to run.
    num_threads : int, optional
        CPU threads for torch (restored after); ``None`` keeps torch's setting.

    Returns
    -------
    Image
        float32 probability in [0, 1] on the PET grid.

    Raises
    ------
    SegmentationError
        Unreadable model, PET not in SUV, CT missing or not expected, unknown device.
    """
    from monai.inferers import sliding_window_inference

    loaded = _as_model(model)
    cfg = loaded.config
    dev = resolve_device(device)
    item = network_input(pet, ct, config=cfg, where=str(pet.meta.get("source") or "pet"))
    network = loaded.network.to(dev).eval()
    x = torch.from_numpy(item.array[None]).to(dev)

    def predictor(batch: torch.Tensor) -> torch.Tensor:
        return torch.softmax(network(batch), dim=1)

    flips = _FLIPS if (cfg.tta if tta is None else tta) else _FLIPS[:1]
    total = torch.zeros((1, 2, *x.shape[2:]), device=dev)
    with torch.inference_mode(), cpu_threads(num_threads):
        for dims in flips:
            xi = torch.flip(x, dims) if dims else x
            out = sliding_window_inference(
                xi,
                roi_size=cfg.patch_zyx,
                sw_batch_size=cfg.batch_size,
                predictor=predictor,
                overlap=cfg.overlap,
                mode="gaussian",
            )
            assert isinstance(out, torch.Tensor)
            total += torch.flip(out, dims) if dims else out
    prob = (total[0, 1] / len(flips)).to("cpu").numpy().astype(np.float32)
    on_grid = item.grid.with_array(prob)
    back = resample_to(on_grid, pet, interpolator="linear", default_value=0.0)
    return back.with_array(np.clip(back.array, 0.0, 1.0).astype(np.float32), units="probability")


def predict_network(
    model: LoadedModel | str | os.PathLike[str],
    pet: Image,
    ct: Image | None = None,
    *,
    tta: bool | None = None,
    threshold: float | None = None,
    device: str = "auto",
    num_threads: int | None = None,
) -> Mask:
    """Lesion mask on the PET grid predicted by a trained network.

    Parameters
    ----------
    model : LoadedModel or path
        A model from :func:`load_model`, or its file.
    pet : Image
        PET in SUV.
    ct : Image, optional
        CT in HU; needed exactly when the model was trained with a CT channel.
    tta : bool, optional
        Flip test-time augmentation; the model's setting by default.
    threshold : float, optional
        Probability at and above which a voxel is lesion; the model's setting by default.
    device : {'auto', 'cpu', 'cuda'}
        Where to run.
    num_threads : int, optional
        CPU threads for torch (restored after); ``None`` keeps torch's setting.

    Returns
    -------
    Mask
        On the PET grid (may be empty when no lesion is found).

    Raises
    ------
    SegmentationError
        As :func:`predict_probability`, or a threshold outside (0, 1).
    """
    from smartimaging.exceptions import SegmentationError

    loaded = _as_model(model)
    level = loaded.config.threshold if threshold is None else threshold
    if not 0 < level < 1:
        raise SegmentationError(f"threshold must be a probability in (0, 1), got {level!r}")
    prob = predict_probability(loaded, pet, ct, tta=tta, device=device, num_threads=num_threads)
    return Mask(
        prob.array >= level,
        pet.spacing,
        pet.origin,
        pet.direction.copy(),
        {"method": "network", "model": str(loaded.path or "")},
    )
