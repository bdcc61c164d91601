"""Train the 3D lesion network on synthetic patients and report time and held-out Dice.

Usage (CPU, one torch thread on a shared machine)::

    PYTHONPATH=src python benchmarks/segnet_train.py --train 20 --test 10 --epochs 150 --threads 1

On a machine with CUDA the device is chosen automatically (``--device auto``); ``--device cpu``
forces the CPU. Patients come from :func:`smartimaging.synthetic.make_patient` (seed 0): the
first ``--train`` for training, the next ``--test`` held out. Prints the settings, the time to
make the patients, the training time, the inference time per patient and the Dice of each held-out
patient (all lesions as one mask) with the median and inter-quartile range.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from smartimaging.segment.metrics import dice
from smartimaging.segment.network import (
    NetworkConfig,
    case_from_synthetic,
    load_model,
    predict_network,
    train_network,
)
from smartimaging.synthetic import make_patient


def _triplet(text: str, kind: type) -> tuple:
    values = tuple(kind(v) for v in text.split(","))
    return values * 3 if len(values) == 1 else values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=20, help="training patients")
    ap.add_argument("--test", type=int, default=10, help="held-out patients")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--slices", type=int, default=80, help="CT slices per patient (axial coverage / 3 mm)")
    ap.add_argument("--spacing", default="4", help="network grid spacing in mm: one value or x,y,z")
    ap.add_argument("--patch", default="32", help="patch size in voxels: one value or x,y,z")
    ap.add_argument("--features", default="16,32,64,128")
    ap.add_argument("--architecture", default="unet", choices=["unet", "dynunet"])
    ap.add_argument("--channels", default="pet,ct")
    ap.add_argument("--samples-per-case", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--no-tta", action="store_true", help="predict without flip test-time augmentation")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="segnet_benchmark.pt", help="model file")
    args = ap.parse_args()

    config = NetworkConfig.model_validate(
        {
            "channels": tuple(args.channels.split(",")),
            "spacing": _triplet(args.spacing, float),
            "patch_size": _triplet(args.patch, int),
            "features": tuple(int(v) for v in args.features.split(",")),
            "architecture": args.architecture,
            "epochs": args.epochs,
            "samples_per_case": args.samples_per_case,
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
            "seed": args.seed,
            "device": args.device,
        }
    )
    print(f"settings: {config.model_dump_json()}")
    started = time.perf_counter()
    n = args.train + args.test
    cases = [case_from_synthetic(make_patient(i, seed=0, n_slices=args.slices)) for i in range(n)]
    print(f"made {n} synthetic patients ({args.slices} CT slices) in {time.perf_counter() - started:.1f} s")
    train, test = cases[: args.train], cases[args.train :]

    result = train_network(train, config=config, out=args.out, progress=False, num_threads=args.threads)
    print(
        f"training: {result.n_cases} patients, {config.epochs} epochs, {result.n_patches} patches, "
        f"device {result.device}, {result.seconds:.1f} s "
        f"(loss {result.losses[0]:.3f} -> {result.losses[-1]:.3f})"
    )

    model = load_model(result.model_path)
    scores, seconds = [], []
    for case in test:
        t0 = time.perf_counter()
        mask = predict_network(
            model,
            case.pet,
            case.ct if "ct" in config.channels else None,
            tta=not args.no_tta,
            device=args.device,
            num_threads=args.threads,
        )
        seconds.append(time.perf_counter() - t0)
        scores.append(dice(mask, case.mask))
        print(
            f"  {case.case_id}: Dice {scores[-1]:.3f} (truth {case.mask.volume_ml:.1f} ml, "
            f"predicted {mask.volume_ml:.1f} ml, {seconds[-1]:.1f} s)"
        )
    q25, med, q75 = np.percentile(scores, [25, 50, 75])
    print(
        f"held-out Dice ({len(test)} patients, TTA {'off' if args.no_tta else 'on'}): median {med:.3f}, "
        f"IQR {q25:.3f}-{q75:.3f}, min {min(scores):.3f}, max {max(scores):.3f}; "
        f"inference {np.median(seconds):.1f} s per patient (median)"
    )


if __name__ == "__main__":
    main()
