"""The trainable 3D lesion network: learning, determinism, model file, TTA, refusals, CLI.

Everything runs on the CPU with one torch thread on tiny synthetic patients (8 mm grid, 16-voxel
patches, 3 resolution levels).
"""

from __future__ import annotations

import json
import subprocess
import sys

# torch and monai come with the test dependencies (the 'deep' extra): a missing one fails, never skips
import monai  # noqa: F401
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from smartimaging.exceptions import GeometryMismatchError, SegmentationError
from smartimaging.image import Image, Mask
from smartimaging.segment.metrics import dice
from smartimaging.segment.network import (
    NetworkConfig,
    TrainingCase,
    build_network,
    case_from_synthetic,
    load_cohort,
    load_model,
    network_input,
    predict_network,
    predict_probability,
    resolve_device,
    sample_patches,
    save_model,
    train_network,
)
from smartimaging.synthetic import generate_cohort, make_patient

TINY = NetworkConfig(
    spacing=(8.0, 8.0, 8.0),
    patch_size=(16, 16, 16),
    features=(8, 16, 32),
    epochs=20,
    samples_per_case=8,
    batch_size=8,
    learning_rate=0.01,
    device="cpu",
)


class _Patients:
    """Tiny synthetic patients (40 CT slices), made on first use."""

    def __init__(self) -> None:
        self._made: dict[int, TrainingCase] = {}

    def __getitem__(self, index: int) -> TrainingCase:
        if index not in self._made:
            self._made[index] = case_from_synthetic(make_patient(index, seed=0, n_slices=40))
        return self._made[index]

    def take(self, start: int, stop: int) -> list[TrainingCase]:
        return [self[i] for i in range(start, stop)]


@pytest.fixture(scope="module")
def cases() -> _Patients:
    return _Patients()


@pytest.fixture(scope="module")
def small(cases, tmp_path_factory):
    """A quickly trained model (2 cases, 2 epochs): for the file, refusal and CLI tests."""
    out = tmp_path_factory.mktemp("segnet") / "small.pt"
    cfg = TINY.model_copy(update={"epochs": 2, "samples_per_case": 4})
    return train_network(cases.take(0, 2), config=cfg, out=out, num_threads=1)


def _untrained(path, config: NetworkConfig):
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        net = build_network(config)
    return save_model(net, path, config=config)


def _weights(path):
    return load_model(path).network.state_dict()


@pytest.mark.slow
def test_learns_lesions_on_held_out_patients(cases, tmp_path):
    # about 15 s on a loaded 2-core machine: 8 patients made, 6 x 20 epochs trained
    trained = train_network(cases.take(0, 6), config=TINY, out=tmp_path / "model.pt", num_threads=1)
    assert trained.losses[-1] < 0.5 * trained.losses[0]
    assert trained.n_cases == 6 and trained.n_patches == 20 * 6 * 8 and trained.device == "cpu"
    held_out = cases.take(6, 8)
    scores = [dice(predict_network(trained.model_path, c.pet, c.ct, num_threads=1), c.mask) for c in held_out]
    untrained = _untrained(tmp_path / "untrained.pt", TINY)
    baseline = [dice(predict_network(untrained, c.pet, c.ct, num_threads=1), c.mask) for c in held_out]
    # measured: 0.67 and 0.78 on these two patients; the untrained network 0.002 (it marks nearly everything)
    assert min(scores) > 0.4, scores
    assert max(baseline) < 0.1, baseline


def test_training_is_deterministic_and_leaves_global_state_alone(cases, tmp_path):
    cfg = TINY.model_copy(update={"epochs": 2, "samples_per_case": 2})
    rng_before = torch.get_rng_state()
    det_before = torch.are_deterministic_algorithms_enabled()
    a = train_network(cases.take(0, 2), config=cfg, out=tmp_path / "a.pt", num_threads=1)
    b = train_network(cases.take(0, 2), config=cfg, out=tmp_path / "b.pt", num_threads=1)
    c = train_network(
        cases.take(0, 2), config=cfg.model_copy(update={"seed": 1}), out=tmp_path / "c.pt", num_threads=1
    )
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert torch.are_deterministic_algorithms_enabled() == det_before
    assert a.losses == b.losses and a.losses != c.losses
    wa, wb, wc = _weights(a.model_path), _weights(b.model_path), _weights(c.model_path)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    pa = predict_probability(a.model_path, cases[2].pet, cases[2].ct, tta=False, num_threads=1)
    pb = predict_probability(b.model_path, cases[2].pet, cases[2].ct, tta=False, num_threads=1)
    assert np.array_equal(pa.array, pb.array)


def test_model_file_round_trip_and_contents(cases, small):
    path = small.model_path
    raw = torch.load(path, map_location="cpu", weights_only=True)  # plain values and tensors only
    assert raw["format"] == "smartimaging-segnet" and raw["format_version"] == 1
    assert NetworkConfig.model_validate_json(raw["config"]) == small.config
    prep = json.loads(raw["preprocessing"])
    assert prep["spacing_mm"] == [8.0, 8.0, 8.0] and "clip(SUV, 0, 20.0) / 20.0" in prep["pet"]["scaling"]
    assert prep["ct"]["outside_fov_hu"] == -1000.0
    assert set(raw["versions"]) == {"smartimaging", "torch", "monai"}
    training = json.loads(raw["training"])
    assert training["n_cases"] == 2 and training["losses"] == list(small.losses) and training["epochs"] == 2
    assert training["case_ids"] == ["SYN001", "SYN002"] and training["n_patches"] == 2 * 2 * 4
    loaded = load_model(path)
    assert loaded.config == small.config and loaded.training == training and not loaded.network.training
    state = loaded.network.state_dict()
    assert all(torch.equal(state[k], raw["state_dict"][k]) for k in state)
    case = cases[2]
    from_path = predict_probability(path, case.pet, case.ct, num_threads=1)
    from_loaded = predict_probability(loaded, case.pet, case.ct, num_threads=1)
    assert np.array_equal(from_path.array, from_loaded.array)
    assert from_path.same_geometry(case.pet) and 0 <= from_path.array.min() and from_path.array.max() <= 1
    mask = predict_network(loaded, case.pet, case.ct, threshold=0.5, num_threads=1)
    assert np.array_equal(mask.array, from_path.array >= 0.5) and mask.same_geometry(case.pet)


def test_dynunet_trains_and_reloads(cases, tmp_path):
    cfg = TINY.model_copy(update={"architecture": "dynunet", "epochs": 1, "samples_per_case": 2})
    result = train_network(cases.take(0, 1), config=cfg, out=tmp_path / "d.pt", num_threads=1)
    loaded = load_model(result.model_path)
    assert type(loaded.network).__name__ == "DynUNet" and loaded.config.architecture == "dynunet"


def _flip_test_volume(config: NetworkConfig) -> Image:
    # one patch exactly on the network grid: no resampling, a single sliding window
    rng = np.random.default_rng(3)
    z, y, x = config.patch_zyx
    suv = rng.gamma(2.0, 1.0, size=(z, y, x)).astype(np.float32)
    suv[5:9, 6:11, 4:8] += 8.0
    return Image(suv, spacing=config.spacing, origin=(-60.0, -60.0, -60.0), meta={"units": "SUVbw"})


def test_flip_tta_makes_the_prediction_flip_equivariant(tmp_path):
    cfg = TINY.model_copy(update={"channels": ("pet",), "seed": 5})
    model = load_model(_untrained(tmp_path / "u.pt", cfg))
    pet = _flip_test_volume(cfg)
    for axes in [(0,), (1, 2), (0, 1, 2)]:
        flipped = pet.with_array(np.ascontiguousarray(np.flip(pet.array, axes)))
        with_tta = predict_probability(model, pet, tta=True, num_threads=1).array
        with_tta_f = predict_probability(model, flipped, tta=True, num_threads=1).array
        np.testing.assert_allclose(with_tta_f, np.flip(with_tta, axes), atol=1e-5)
        plain = predict_probability(model, pet, tta=False, num_threads=1).array
        plain_f = predict_probability(model, flipped, tta=False, num_threads=1).array
        assert np.abs(plain_f - np.flip(plain, axes)).max() > 1e-3  # without TTA it is not
    # TTA is the mean over the 8 flips: it differs from the plain prediction
    assert np.abs(with_tta - plain).max() > 1e-4


def test_sample_patches_centres_on_lesions_and_flips():
    label = np.zeros((1, 20, 24, 28), np.uint8)
    label[0, 2:4, 20:23, 3:5] = 1  # near a corner: centres are shifted inwards
    image = np.stack(
        [label[0].astype(np.float32), np.arange(label.size, dtype=np.float32).reshape(20, 24, 28)]
    )
    pos = sample_patches(
        image, label, patch=(8, 8, 8), n=30, pos_fraction=1.0, flip_prob=0.0, rng=np.random.default_rng(0)
    )
    assert all(img.shape == (2, 8, 8, 8) and lab.shape == (1, 8, 8, 8) for img, lab in pos)
    assert all(lab.any() and np.array_equal(img[0], lab[0]) for img, lab in pos)
    neg = sample_patches(
        image, label, patch=(8, 8, 8), n=30, pos_fraction=0.0, flip_prob=0.0, rng=np.random.default_rng(0)
    )
    assert sum(lab.any() for _, lab in neg) < 10
    # without flips the patch is a contiguous block of the volume (index channel increases by 1 along x)
    assert all(np.all(np.diff(img[1], axis=2) == 1) for img, _ in neg)
    flipped = sample_patches(
        image, label, patch=(8, 8, 8), n=10, pos_fraction=0.5, flip_prob=1.0, rng=np.random.default_rng(0)
    )
    assert all(
        np.all(np.diff(img[1], axis=2) == -1) and np.all(np.diff(img[1], axis=0) < 0) for img, _ in flipped
    )
    again = sample_patches(
        image, label, patch=(8, 8, 8), n=10, pos_fraction=0.5, flip_prob=1.0, rng=np.random.default_rng(0)
    )
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(flipped, again, strict=True))


def test_sample_patches_hard_negatives_centre_on_hot_background():
    label = np.zeros((1, 24, 24, 24), np.uint8)
    label[0, 2:5, 2:5, 2:5] = 1
    suv = np.full((24, 24, 24), 0.05, np.float32)
    suv[2:5, 2:5, 2:5] = 0.6  # the lesion
    suv[18:21, 17:20, 16:19] = 0.8  # "bladder": hot, not lesion
    image = suv[None]
    kw = {"patch": (8, 8, 8), "n": 40, "pos_fraction": 0.0, "flip_prob": 0.0}
    hot = sample_patches(image, label, hot_fraction=1.0, hot_level=0.5, rng=np.random.default_rng(1), **kw)
    assert all((img[0] == np.float32(0.8)).any() and not lab.any() for img, lab in hot)
    anywhere = sample_patches(
        image, label, hot_fraction=0.0, hot_level=0.5, rng=np.random.default_rng(1), **kw
    )
    assert sum((img[0] == np.float32(0.8)).any() for img, _ in anywhere) < 20


def test_network_input_scales_and_resamples(cases):
    case = cases[0]
    item = network_input(case.pet, case.ct, case.mask, config=TINY)
    assert item.array.shape[0] == 2 and item.array.dtype == np.float32
    assert item.array.shape[1:] == item.grid.shape and item.grid.spacing == (8.0, 8.0, 8.0)
    assert 0 <= item.array.min() and item.array.max() <= 1
    # grid centred on the PET grid
    pet_centre = case.pet.index_to_physical((np.array(case.pet.shape[::-1]) - 1) / 2)
    grid_centre = item.grid.index_to_physical((np.array(item.grid.shape[::-1]) - 1) / 2)
    np.testing.assert_allclose(grid_centre, pet_centre, atol=1e-6)
    assert item.label is not None and item.label.sum() > 0
    # lesions are hot: mean scaled SUV inside the label well above outside
    inside = item.array[0][item.label[0] == 1].mean()
    assert inside > 3 * item.array[0][item.label[0] == 0].mean()


def test_refuses_mismatched_inputs(cases, small, tmp_path):
    case = cases[2]
    with pytest.raises(SegmentationError, match="no CT was given"):
        predict_network(small.model_path, case.pet, None)
    pet_only = _untrained(tmp_path / "p.pt", TINY.model_copy(update={"channels": ("pet",)}))
    with pytest.raises(SegmentationError, match="uses PET only"):
        predict_network(pet_only, case.pet, case.ct)
    far = Image(case.ct.array, case.ct.spacing, (5000.0, 0.0, 0.0), meta=dict(case.ct.meta))
    with pytest.raises(SegmentationError, match=r"covers only 0 % of the PET field of view"):
        predict_network(small.model_path, case.pet, far)
    half = Image(case.ct.array[:15], case.ct.spacing, case.ct.origin, meta=dict(case.ct.meta))
    with pytest.raises(SegmentationError, match=r"covers only \d+ %"):
        predict_network(small.model_path, case.pet, half)
    with pytest.raises(SegmentationError, match="got a PT image"):
        predict_network(small.model_path, case.pet, case.pet)
    bqml = case.pet.with_array(case.pet.array, units="BQML")
    with pytest.raises(SegmentationError, match="works on SUV"):
        predict_network(small.model_path, bqml, case.ct)
    off_grid = Mask(np.zeros((5, 5, 5), bool), spacing=(4.0, 4.0, 4.0))
    with pytest.raises(GeometryMismatchError, match="ground-truth mask"):
        train_network([TrainingCase(case.pet, case.ct, off_grid, "x")], config=TINY, out=tmp_path / "x.pt")
    empty = Mask.from_image(case.mask.with_array(np.zeros(case.mask.shape, bool)))
    with pytest.raises(SegmentationError, match="has a lesion voxel"):
        train_network([TrainingCase(case.pet, case.ct, empty, "e")], config=TINY, out=tmp_path / "e.pt")
    with pytest.raises(SegmentationError, match="no training cases"):
        train_network([], config=TINY, out=tmp_path / "n.pt")
    assert not any(tmp_path.glob("[xen].pt"))
    with pytest.raises(SegmentationError, match="device must be one of"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(SegmentationError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="multiples of 4"):
        NetworkConfig(patch_size=(16, 16, 18), features=(8, 16, 32))
    with pytest.raises(ValueError, match="extra"):
        NetworkConfig(unknown=1)


def test_refuses_bad_model_files(small, tmp_path):
    with pytest.raises(SegmentationError, match="not found"):
        load_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(SegmentationError, match="cannot be read"):
        load_model(junk)
    code = tmp_path / "code.pt"
    torch.save({"format": "smartimaging-segnet", "obj": Image(np.zeros((1, 1, 1)), (1.0, 1.0, 1.0))}, code)
    with pytest.raises(SegmentationError, match="cannot be read"):  # weights_only refuses pickled objects
        load_model(code)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(SegmentationError, match="not a smartimaging segmentation model"):
        load_model(other)
    raw = torch.load(small.model_path, weights_only=True)
    newer = tmp_path / "newer.pt"
    torch.save({**raw, "format_version": 99}, newer)
    with pytest.raises(SegmentationError, match="format version 99"):
        load_model(newer)
    edited = tmp_path / "edited.pt"
    cfg = json.loads(raw["config"])
    cfg["channels"] = ["pet"]  # weights trained with 2 input channels
    torch.save({**raw, "config": json.dumps(cfg)}, edited)
    with pytest.raises(SegmentationError, match="weights do not fit"):
        load_model(edited)


def test_importing_the_package_and_cli_module_does_not_import_torch():
    code = (
        "import sys, smartimaging, smartimaging.segment, smartimaging.cli_segnet, "
        "smartimaging.segment.network.config, smartimaging.segment.network.data; "
        "assert 'torch' not in sys.modules and 'monai' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_train_and_predict_on_a_synthetic_cohort(tmp_path):
    import typer

    from smartimaging.cli_segnet import register

    cohort = tmp_path / "cohort"
    generate_cohort(cohort, n_patients=2, seed=0, n_slices=40, progress=False)
    cases = load_cohort(cohort)
    assert [c.case_id for c in cases] == ["SYN001", "SYN002"]
    synthetic = case_from_synthetic(make_patient(0, seed=0, n_slices=40))  # SYN001
    # the DICOM route gives the SUV of the in-memory patient (int16 storage: tiny quantisation)
    np.testing.assert_allclose(cases[0].pet.array, synthetic.pet.array, rtol=1e-4, atol=1e-3)
    assert np.array_equal(cases[0].mask.array, synthetic.mask.array)

    app = typer.Typer()
    group = typer.Typer()
    register(group)
    app.add_typer(group, name="segment")
    runner = CliRunner()
    model = tmp_path / "model.pt"
    args = ["segment", "train", str(cohort), "--out", str(model), "--epochs", "2", "--patch", "16,16,16"]
    args += ["--spacing", "8,8,8", "--features", "8,16,32", "--threads", "1", "--quiet", "--device", "cpu"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "trained on 2 cases, 2 epochs" in res.output and model.is_file()
    out = tmp_path / "mask.nii.gz"
    pet_dir, ct_dir = cohort / "dicom" / "SYN002" / "PET", cohort / "dicom" / "SYN002" / "CT"
    res = runner.invoke(
        app,
        [
            "segment",
            "predict",
            str(model),
            str(pet_dir),
            "--ct",
            str(ct_dir),
            "--out",
            str(out),
            "--threads",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    from smartimaging.io.nifti import read_mask

    written = read_mask(out)
    assert written.same_geometry(cases[1].pet)
    direct = predict_network(model, cases[1].pet, cases[1].ct, num_threads=1)
    assert np.array_equal(written.array, direct.array)
    # refusals exit 2 with the reason
    res = runner.invoke(
        app, ["segment", "predict", str(model), str(pet_dir), "--out", str(tmp_path / "m2.nii.gz")]
    )
    assert res.exit_code == 2 and "no CT was given" in res.output and not (tmp_path / "m2.nii.gz").exists()
    res = runner.invoke(
        app, ["segment", "train", str(cohort), "--out", str(tmp_path / "b.pt"), "--patch", "16,16"]
    )
    assert res.exit_code == 2 and "--patch takes 3" in res.output
    res = runner.invoke(
        app, ["segment", "train", str(tmp_path), "--out", str(tmp_path / "b.pt"), "--patch", "16,16,20"]
    )
    assert res.exit_code == 2 and "multiples of" in res.output
    res = runner.invoke(
        app, ["segment", "train", str(tmp_path), "--out", str(tmp_path / "b.pt"), "--epochs", "1"]
    )
    assert res.exit_code == 2 and "no 'dicom' folder" in res.output
