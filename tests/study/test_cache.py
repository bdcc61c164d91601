"""The stage cache (issue 8): per-stage keys, what invalidates what, damaged entries, disk use.

* :class:`StageCache` round-trips arrays and metadata exactly; a truncated, bit-flipped or
  misnamed entry is reported as a miss and deleted, never trusted; old entries are pruned; older
  cache formats and stale temporary files are removed.
* On a 3-patient synthetic cohort: a second run recomputes nothing; changing a feature setting
  reads the SUV and masks from the cache and recomputes the features (equal to a fresh run with
  the new setting); changing the segmentation recomputes masks, features and overlay.
"""

from __future__ import annotations

import dataclasses
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from smartimaging.io.dicom import discover
from smartimaging.study.cache import CACHE_FORMAT, StageCache, stage_key, table_from_bytes, table_to_bytes
from smartimaging.study.config import load_study
from smartimaging.study.demo import demo_study
from smartimaging.study.patient import process_patient, tasks_from_series
from smartimaging.study.runner import RunSummary, run_study
from smartimaging.synthetic import generate_cohort

N = 3


def _entry(cache: StageCache, key: str = "k" * 32) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    arrays = {
        "suv": rng.random((4, 5, 6), dtype=np.float32),
        "bits": np.packbits(rng.random(120) > 0.5),
    }
    path = cache.store("masks", "P/1", key, arrays, {"names": ["GTV_1"], "x": 1.5})
    return path, arrays


def test_entries_round_trip_exactly(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    path, arrays = _entry(cache)
    assert path == tmp_path / f"v{CACHE_FORMAT}" / "masks" / "P_1" / f"{'k' * 32}.npz"
    got = cache.load("masks", "P/1", "k" * 32)
    assert got is not None
    assert got.meta == {"names": ["GTV_1"], "x": 1.5}
    for name, array in arrays.items():
        assert got.arrays[name].dtype == array.dtype
        np.testing.assert_array_equal(got.arrays[name], array)
    assert cache.load("masks", "P/1", "j" * 32) is None
    assert cache.load("features", "P/1", "k" * 32) is None
    table = pd.DataFrame({"case": ["a", "b"], "value": [0.1 + 0.2, np.pi]})
    pd.testing.assert_frame_equal(table_from_bytes(table_to_bytes(table)), table)


@pytest.mark.parametrize("damage", ["truncate", "flip", "rename", "empty"])
def test_a_damaged_entry_is_a_miss_and_is_deleted(tmp_path: Path, damage: str) -> None:
    cache = StageCache(tmp_path)
    path, _ = _entry(cache)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "flip":
        # rewrite the SUV member with one changed value but the original checksum in the header
        with zipfile.ZipFile(path) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        suv = bytearray(members["suv.npy"])
        suv[-1] ^= 0x01
        members["suv.npy"] = bytes(suv)
        with zipfile.ZipFile(path, "w") as zf:
            for name, blob in members.items():
                zf.writestr(name, blob)
    else:  # an entry stored under another key's name
        other = cache.path("masks", "P/1", "z" * 32)
        path.rename(other)
        path = other
    key = "z" * 32 if damage == "rename" else "k" * 32
    assert cache.load("masks", "P/1", key) is None
    assert not path.exists()


def test_pruning_keeps_the_most_recently_used_entries(tmp_path: Path) -> None:
    cache = StageCache(tmp_path, keep=2)
    paths = []
    for i, key in enumerate(("a" * 32, "b" * 32)):
        paths.append(cache.store("features", "P1", key, {"x": np.arange(3)}, {}))
        os.utime(paths[-1], (time.time() - 100 + i, time.time() - 100 + i))
    assert cache.load("features", "P1", "a" * 32) is not None  # a is now the most recently used
    cache.store("features", "P1", "c" * 32, {"x": np.arange(3)}, {})
    left = sorted(p.stem[0] for p in (tmp_path / f"v{CACHE_FORMAT}" / "features" / "P1").glob("*.npz"))
    assert left == ["a", "c"]


def test_legacy_entries_and_stale_temporaries_are_removed(tmp_path: Path) -> None:
    legacy = [tmp_path / f"SYN001.{'0123456789abcdef' * 2}.parquet", tmp_path / f"SYN001.{'f' * 32}.json"]
    for p in legacy:
        p.write_text("old", encoding="utf-8")
    keep = tmp_path / "notes.txt"
    keep.write_text("mine", encoding="utf-8")
    cache = StageCache(tmp_path)
    path, _ = _entry(cache)
    stale = path.parent / ".kkkk.abc123.npz"
    fresh = path.parent / ".kkkk.def456.npz"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert cache.remove_legacy() == 2 and not any(p.exists() for p in legacy) and keep.exists()
    assert cache.remove_stale_temporaries() == 1 and not stale.exists() and fresh.exists()
    assert cache.load("masks", "P/1", "k" * 32) is not None


def test_stage_keys_change_with_parent_settings_and_version() -> None:
    base = stage_key("features", {"n_bins": 32}, parent="m1", version="1.0")
    assert base == stage_key("features", {"n_bins": 32}, parent="m1", version="1.0")
    assert (
        len(
            {
                base,
                stage_key("features", {"n_bins": 16}, parent="m1", version="1.0"),
                stage_key("features", {"n_bins": 32}, parent="m2", version="1.0"),
                stage_key("features", {"n_bins": 32}, parent="m1", version="1.1"),
                stage_key("overlay", {"n_bins": 32}, parent="m1", version="1.0"),
            }
        )
        == 5
    )
    with pytest.raises(ValueError, match="masks"):
        stage_key("nope", {})


# --- the runner ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cache_cohort")
    generate_cohort(root, n_patients=N, seed=7, n_slices=48, progress=False)
    return root


def _run(cohort: Path, out: Path, **changes: Any) -> RunSummary:
    settings = demo_study(cohort, out, jobs=1) | {"model": None}
    for section, value in changes.items():
        settings[section] = value
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    summary = run_study(load_study(path), quiet=True)
    assert summary.n_ok == N, summary.failures
    return summary


def _features(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "features.parquet")


@pytest.mark.slow
def test_what_a_setting_change_recomputes(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _run(cohort, out)
    assert first.cache_computed == {"masks": N, "features": N, "overlay": N}
    assert first.n_cached == 0 and first.cache_bytes > 0
    features = (out / "features.csv").read_bytes()

    again = _run(cohort, out)
    assert again.n_cached == N
    assert again.cache_hits == {"masks": N, "features": N, "overlay": N}
    assert again.cache_computed == {"masks": 0, "features": 0, "overlay": 0}
    assert (out / "features.csv").read_bytes() == features

    # a feature setting: the SUV and masks come from the cache, the features are recomputed ...
    finer = _run(cohort, out, features={"n_bins": 16})
    assert finer.cache_computed == {"masks": 0, "features": N, "overlay": 0}
    assert finer.cache_hits == {"masks": N, "features": 0, "overlay": N}
    # ... and equal those of a fresh run with that setting
    fresh = _run(cohort, tmp_path / "fresh", features={"n_bins": 16})
    assert fresh.cache_computed["masks"] == N
    pd.testing.assert_frame_equal(_features(out), _features(tmp_path / "fresh"))
    assert (out / "features.csv").read_bytes() != features

    # the segmentation: every stage is recomputed
    seg = _run(cohort, out, segmentation={"source": ["seg"], "roi": "GTV_1"})
    assert seg.cache_computed == {"masks": N, "features": N, "overlay": N}

    # back to the first settings: everything is still cached (4 entries kept per stage)
    back = _run(cohort, out)
    assert back.n_cached == N
    assert (out / "features.csv").read_bytes() == features


@pytest.mark.slow
def test_a_damaged_masks_entry_is_recomputed_in_a_run(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(cohort, out)
    entries = sorted((out / "cache" / f"v{CACHE_FORMAT}" / "masks").glob("*/*.npz"))
    assert len(entries) == N
    entries[0].write_bytes(entries[0].read_bytes()[:1000])  # a torn write at the final name
    summary = _run(cohort, out, features={"n_bins": 16})
    assert summary.cache_computed == {"masks": 1, "features": N, "overlay": 0}
    fresh = _run(cohort, tmp_path / "fresh", features={"n_bins": 16})
    assert fresh.n_ok == N
    pd.testing.assert_frame_equal(_features(out), _features(tmp_path / "fresh"))


@pytest.mark.slow
def test_a_cache_that_cannot_be_written_only_costs_a_recomputation(cohort: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x", encoding="utf-8")
    settings = demo_study(cohort, tmp_path / "out") | {"model": None, "report_overlays": False}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    config = load_study(path)
    task = tasks_from_series(discover(cohort / "dicom").series, config, {})[0]
    result = process_patient(dataclasses.replace(task, cache_dir=blocker / "cache"))
    assert result.status == "ok", result.reason
    assert result.stages == {"masks": "computed", "features": "computed"}
    plain = process_patient(task)  # no cache at all: the same features
    assert plain.stages == result.stages and plain.features is not None
    pd.testing.assert_frame_equal(result.features, plain.features)
