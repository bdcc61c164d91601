"""Time smartimaging's LoG and wavelet filtering (+ first-order features) against PyRadiomics.

Usage::

    SMARTIMAGING_SHARED=/work/shared PYTHONPATH=src python benchmarks/filters_vs_pyradiomics.py \\
        [--peer-python /work/peervenv/bin/python] [--repeats 3]

Image and ROI: the IBSI 1 CT phantom (NIfTI, 204 x 201 x 60 voxels, 0.98 x 0.98 x 3 mm, GTV
of 125k voxels), HU rounded, no resampling. Both tools compute, for each response map, the
first-order / intensity-statistics features in the ROI:

* LoG, sigma 1.5 mm (PyRadiomics ``LoG`` image type, ``sigma: [1.5]``; smartimaging
  ``{filter: log, sigma: 1.5}``, cut-off 4 sigma, mirror padding);
* the 8 undecimated level-1 ``coif1`` sub-bands (PyRadiomics ``Wavelet`` image type, its
  default ``coif1``, level 1; smartimaging 8 ``{filter: wavelet, wavelet: coif1, sub_band: ...}``).

PyRadiomics (PyPI ``pyradiomics-bhklab``) runs in a subprocess of ``--peer-python`` (a
separate virtual environment), on the same NIfTI files. Note the different work done:
PyRadiomics crops the image to the ROI's bounding box (plus padding) before filtering, while
smartimaging filters the whole image as IBSI 2 prescribes. Timings are the median of
``--repeats`` runs after one warm-up, with ``time.perf_counter``; file reading is excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from smartimaging.features.pipeline import extract_with_processing
from smartimaging.features.settings import ExtractionSettings
from smartimaging.filters import laplacian_of_gaussian, separable_wavelet
from smartimaging.io.nifti import read_image, read_mask, write_image

SUB_BANDS = ("LLL", "LLH", "LHL", "LHH", "HLL", "HLH", "HHL", "HHH")

_PEER = r"""
import json, logging, sys, time, statistics
import SimpleITK as sitk
import radiomics
from radiomics.featureextractor import RadiomicsFeatureExtractor
logging.getLogger("radiomics").setLevel(logging.ERROR)
image = sitk.ReadImage(sys.argv[1]); mask = sitk.ReadImage(sys.argv[2]); repeats = int(sys.argv[3])
out = {"version": radiomics.__version__}
for name, types in (("log", {"LoG": {"sigma": [1.5]}}), ("wavelet", {"Wavelet": {}})):
    ex = RadiomicsFeatureExtractor(binWidth=25)
    ex.disableAllImageTypes(); ex.disableAllFeatures(); ex.enableFeatureClassByName("firstorder")
    ex.enableImageTypes(**types)
    ex.execute(image, mask)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); res = ex.execute(image, mask); times.append(time.perf_counter() - t)
    out[name] = {"seconds": statistics.median(times), "n_features": sum(not k.startswith("diagnostics") for k in res)}
print(json.dumps(out))
"""


def _median_time(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", default="/work/peervenv/bin/python")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    shared = Path(
        os.environ.get("SMARTIMAGING_SHARED", Path(__file__).resolve().parents[1].parent / "shared")
    )
    nifti = shared / "ibsi" / "ibsi1" / "ct_phantom" / "nifti"
    image = read_image(nifti / "image.nii.gz")
    image = image.with_array(np.rint(np.asarray(image.array, dtype=np.float64)))
    mask = read_mask(nifti / "mask.nii.gz")
    print(f"CT phantom {image.shape} (z, y, x), spacing {image.spacing} mm, ROI {mask.n_voxels} voxels")

    stats = {"families": ["intensity statistics"]}
    log_settings = ExtractionSettings.model_validate({**stats, "filters": [{"filter": "log", "sigma": 1.5}]})
    wav_settings = ExtractionSettings.model_validate(
        {**stats, "filters": [{"filter": "wavelet", "wavelet": "coif1", "sub_band": b} for b in SUB_BANDS]}
    )
    ours = {
        "log filter only": _median_time(lambda: laplacian_of_gaussian(image, sigma=1.5), args.repeats),
        "log + features": _median_time(
            lambda: extract_with_processing(image, mask, processing=None, settings=log_settings), args.repeats
        ),
        "wavelet 8 bands filter only": _median_time(
            lambda: [separable_wavelet(image, wavelet="coif1", sub_band=b) for b in SUB_BANDS], args.repeats
        ),
        "wavelet 8 bands + features": _median_time(
            lambda: extract_with_processing(image, mask, processing=None, settings=wav_settings), args.repeats
        ),
    }
    peer: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        img_path, mask_path = Path(tmp) / "image.nii.gz", Path(tmp) / "mask.nii.gz"
        write_image(image, img_path)
        write_image(image.with_array(mask.array.astype(np.uint8)), mask_path)
        try:
            done = subprocess.run(
                [args.peer_python, "-c", _PEER, str(img_path), str(mask_path), str(args.repeats)],
                capture_output=True,
                text=True,
                check=True,
                timeout=3600,
            )
            peer = json.loads(done.stdout.strip().splitlines()[-1])
        except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as exc:
            print(f"PyRadiomics not run: {exc}", file=sys.stderr)
    print(f"{'task':<34}{'smartimaging (s)':>18}{'pyradiomics (s)':>18}")
    rows = [
        ("LoG sigma 1.5 mm, filter only", ours["log filter only"], None),
        ("LoG sigma 1.5 mm + first order", ours["log + features"], peer.get("log")),
        ("coif1 8 sub-bands, filter only", ours["wavelet 8 bands filter only"], None),
        ("coif1 8 sub-bands + first order", ours["wavelet 8 bands + features"], peer.get("wavelet")),
    ]
    for name, mine, theirs in rows:
        t = f"{theirs['seconds']:.3f}" if isinstance(theirs, dict) else "-"  # type: ignore[index]
        print(f"{name:<34}{mine:>18.3f}{t:>18}")
    if peer:
        print(f"PyRadiomics {peer.get('version')}")


if __name__ == "__main__":
    main()
