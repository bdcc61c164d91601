"""Training of the segmentation network: patches around lesions, flips, Dice + cross-entropy, AdamW."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smartimaging.exceptions import SegmentationError
from smartimaging.segment.network.config import NetworkConfig
from smartimaging.segment.network.data import TrainingCase, load_cohort, network_input
from smartimaging.segment.network.model import build_network, cpu_threads, resolve_device, save_model

__all__ = ["TrainResult", "sample_patches", "train_network"]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_network` did.

    Attributes
    ----------
    model_path : Path
        The model file written.
    config : NetworkConfig
        Settings used.
    device : str
        ``'cpu'`` or ``'cuda'``.
    seconds : float
        Wall-clock training time (preprocessing included).
    losses : tuple of float
        Mean Dice + cross-entropy loss of each epoch.
    n_cases : int
        Training cases.
    n_patches : int
        Patches seen in all epochs.
    """

    model_path: Path
    config: NetworkConfig
    device: str
    seconds: float
    losses: tuple[float, ...]
    n_cases: int
    n_patches: int


def _pad_to_patch(
    image: np.ndarray, label: np.ndarray, patch: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad (0 = SUV 0 and CT at the window's low end) so every axis holds at least one patch."""
    shape = image.shape[1:]
    pads = [(0, 0)] + [
        ((p - s) // 2, p - s - (p - s) // 2) if s < p else (0, 0) for s, p in zip(shape, patch, strict=True)
    ]
    return np.pad(image, pads), np.pad(label, pads)


def sample_patches(
    image: np.ndarray,
    label: np.ndarray,
    *,
    patch: tuple[int, int, int],
    n: int,
    pos_fraction: float,
    flip_prob: float,
    rng: np.random.Generator,
    hot_fraction: float = 0.0,
    hot_level: float = np.inf,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Draw ``n`` training patches centred on lesion or background voxels, randomly flipped.

    The rule of :class:`monai.transforms.RandCropByPosNegLabeld`: each patch is centred on a lesion
    voxel with probability ``pos_fraction`` (on a background voxel otherwise; always background when
    the case has no lesion voxel), the centre being shifted inwards when the patch would leave the
    volume. A background centre is taken among the *hot* background voxels (channel 0 at least
    ``hot_level``) with probability ``hot_fraction`` when there are any (hard negatives: physiological
    uptake). Each patch is then flipped along each axis with probability ``flip_prob``
    (:class:`monai.transforms.RandFlipd`). Randomness comes from ``rng`` only.

    Parameters
    ----------
    image : numpy.ndarray
        ``(channel, z, y, x)``, each spatial axis at least ``patch``.
    label : numpy.ndarray
        ``(1, z, y, x)`` 0/1 labels.
    patch : tuple of 3 int
        Patch size ``(z, y, x)``.
    n : int
        Number of patches.
    pos_fraction : float
        Probability of a lesion-centred patch.
    flip_prob : float
        Flip probability per axis.
    rng : numpy.random.Generator
        Random source.
    hot_fraction : float
        Probability that a background centre is a hot background voxel.
    hot_level : float
        Channel-0 value (scaled SUV) from which a background voxel is hot.

    Returns
    -------
    list of (image patch, label patch)
    """
    spatial = np.asarray(label.shape[1:])
    size = np.asarray(patch)
    if np.any(spatial < size):
        raise SegmentationError(f"volume {tuple(spatial)} is smaller than the patch {patch}; pad it first")
    flat = label[0].ravel()
    fg = np.flatnonzero(flat)
    bg = np.flatnonzero(flat == 0)
    hot = np.flatnonzero((flat == 0) & (image[0].ravel() >= hot_level))
    out = []
    for _ in range(n):
        if fg.size and rng.uniform() < pos_fraction:
            pool = fg
        else:
            pool = hot if hot.size and rng.uniform() < hot_fraction else bg
        centre = np.asarray(np.unravel_index(pool[rng.integers(pool.size)], label.shape[1:]))
        start = np.clip(centre - size // 2, 0, spatial - size)
        sl = tuple(slice(int(a), int(a + b)) for a, b in zip(start, size, strict=True))
        img = image[(slice(None), *sl)]
        lab = label[(slice(None), *sl)]
        axes = tuple(1 + a for a in range(3) if rng.uniform() < flip_prob)
        if axes:
            img, lab = np.flip(img, axes), np.flip(lab, axes)
        out.append((np.ascontiguousarray(img), np.ascontiguousarray(lab)))
    return out


@contextlib.contextmanager
def _deterministic(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch and ask for deterministic kernels inside the block; restore the global state after."""
    devices = [device.index or 0] if device.type == "cuda" else []
    previous = torch.are_deterministic_algorithms_enabled()
    previous_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        # CUDA needs CUBLAS_WORKSPACE_CONFIG for strict determinism; there we settle for cuDNN's
        # deterministic kernels (see docs/segmentation_network.md)
        strict = device.type == "cpu" or bool(os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
        torch.use_deterministic_algorithms(strict)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous_cudnn


def _prepare(cases: Sequence[TrainingCase], config: NetworkConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    prepared = []
    for i, case in enumerate(cases):
        if not isinstance(case, TrainingCase):
            raise SegmentationError(
                f"training case {i} is a {type(case).__name__}; pass TrainingCase(pet, ct, mask) objects "
                "or a cohort folder"
            )
        where = case.case_id or f"training case {i}"
        item = network_input(case.pet, case.ct, case.mask, config=config, where=where)
        label = item.label if item.label is not None else np.zeros((1, *item.grid.shape), np.uint8)
        prepared.append(_pad_to_patch(item.array, label, config.patch_zyx))
    if not any(label.any() for _, label in prepared):
        raise SegmentationError(
            f"none of the {len(cases)} training cases has a lesion voxel on the network grid "
            f"(spacing {config.spacing} mm); check the masks or use a finer spacing"
        )
    return prepared


def train_network(
    cases: Sequence[TrainingCase] | str | os.PathLike[str],
    *,
    config: NetworkConfig | None = None,
    out: str | os.PathLike[str],
    progress: bool = False,
    num_threads: int | None = None,
) -> TrainResult:
    """Train the 3D lesion segmentation network and write the model file.

    Each epoch draws ``samples_per_case`` patches from every case (lesion-centred with probability
    ``pos_fraction``, else on background, half of those by default on hot physiological uptake),
    flips them at random, shuffles them and takes AdamW steps on
    :class:`monai.losses.DiceCELoss` (softmax, Dice over the whole batch). Given the same cases,
    settings and seed, the weights are identical on the CPU (torch's global random state and
    determinism flags are restored afterwards).

    Parameters
    ----------
    cases : sequence of TrainingCase, or path
        Training cases (PET in SUV, CT in HU, ground truth on the PET grid), or a cohort folder
        read with :func:`smartimaging.segment.network.load_cohort`.
    config : NetworkConfig, optional
        Settings; defaults to ``NetworkConfig()``.
    out : path
        Model file to write (atomically).
    progress : bool
        Show a progress bar with the epoch loss.
    num_threads : int, optional
        CPU threads for torch during training (restored after); ``None`` keeps torch's setting.
        Bitwise reproducibility on the CPU holds for the same number of threads.

    Returns
    -------
    TrainResult

    Raises
    ------
    SegmentationError
        No cases, a case of the wrong type or with inputs that do not fit ``config.channels``, no
        lesion voxel in any case, a CUDA device asked for but absent.
    GeometryMismatchError
        A ground-truth mask not on its PET grid.
    """
    cfg = config or NetworkConfig()
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    if isinstance(cases, str | os.PathLike):
        cases = load_cohort(cases, with_ct="ct" in cfg.channels)
    if len(cases) == 0:
        raise SegmentationError("train_network got no training cases")
    data = _prepare(cases, cfg)
    rng = np.random.default_rng(cfg.seed)
    losses: list[float] = []
    n_patches = 0
    with (
        cpu_threads(num_threads),
        _deterministic(cfg.seed, device),
        _progress(progress, cfg.epochs) as advance,
    ):
        from monai.losses import DiceCELoss

        network = build_network(cfg).to(device)
        loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
        optimiser = torch.optim.AdamW(
            network.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        network.train()
        for _epoch in range(cfg.epochs):
            patches = [
                p
                for image, label in data
                for p in sample_patches(
                    image,
                    label,
                    patch=cfg.patch_zyx,
                    n=cfg.samples_per_case,
                    pos_fraction=cfg.pos_fraction,
                    flip_prob=cfg.flip_prob,
                    rng=rng,
                    hot_fraction=cfg.hot_negative_fraction,
                    hot_level=min(cfg.hot_negative_suv, cfg.suv_clip) / cfg.suv_clip,
                )
            ]
            order = rng.permutation(len(patches))
            total = 0.0
            for b in range(0, len(order), cfg.batch_size):
                batch = [patches[i] for i in order[b : b + cfg.batch_size]]
                x = torch.from_numpy(np.stack([p[0] for p in batch])).to(device)
                y = torch.from_numpy(np.stack([p[1] for p in batch]).astype(np.int64)).to(device)
                optimiser.zero_grad(set_to_none=True)
                loss = loss_fn(network(x), y)
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
            n_patches += len(patches)
            losses.append(total / len(patches))
            advance(losses[-1])
    seconds = time.perf_counter() - started
    summary: dict[str, Any] = {
        "n_cases": len(cases),
        "case_ids": [c.case_id for c in cases],
        "epochs": cfg.epochs,
        "n_patches": n_patches,
        "losses": losses,
        "device": device.type,
        "seconds": round(seconds, 3),
    }
    path = save_model(network, out, config=cfg, training=summary)
    return TrainResult(path, cfg, device.type, seconds, tuple(losses), len(cases), n_patches)


@contextlib.contextmanager
def _progress(show: bool, epochs: int) -> Iterator[Any]:
    if not show:
        yield lambda loss: None
        return
    from rich.progress import Progress

    with Progress(transient=False) as bar:
        task = bar.add_task("training", total=epochs)

        def advance(loss: float) -> None:
            bar.update(task, advance=1, description=f"training (loss {loss:.3f})")

        yield advance
