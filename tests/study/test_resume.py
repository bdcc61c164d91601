"""A run killed with SIGKILL resumes from the stage cache and ends with the uninterrupted run's results.

``smartimaging run`` (2 worker processes) is started on an 8-patient synthetic cohort in its own
process group and killed with SIGKILL as soon as two patients have finished (their last stage is in the cache).
Then:

* nothing half-written is left at a final name (every cache entry passes its checksums, every
  table parses; only dot-prefixed temporary files may remain);
* the rerun recomputes exactly the stages that were not stored before the kill (the finished
  patients come from the cache);
* features, the wide table, the models table and the out-of-fold predictions are byte-identical
  to those of an uninterrupted run in another folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import smartimaging
from smartimaging.features import extract
from smartimaging.features.registry import FAMILIES
from smartimaging.study.cache import CACHE_FORMAT, StageCache
from smartimaging.study.config import load_study
from smartimaging.study.demo import demo_study
from smartimaging.study.runner import RunSummary, run_study
from smartimaging.synthetic import generate_cohort

pytestmark = pytest.mark.slow

N = 8


@pytest.fixture(autouse=True)
def _canonical_family_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The feature families in their defined order in this test process, as in the killed run's.

    tests/features/test_extract.py deletes FAMILY_TABLE["GLCM"] with monkeypatch, whose undo re-inserts
    it at the end: for the rest of that test process the GLCM rows come after the NGLDM rows. The
    killed run is a fresh process; the runs here must order the rows the same way.
    """
    rank = {name: i for i, name in enumerate(FAMILIES)}
    table = sorted(extract.FAMILY_TABLE.items(), key=lambda item: rank.get(item[0], len(rank)))
    monkeypatch.setattr(extract, "FAMILY_TABLE", dict(table))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resume_cohort")
    generate_cohort(root, n_patients=N, seed=3, n_slices=48, progress=False)
    # balanced outcome (4 / 4): the model stage's 2-fold outer and inner splits need two of each class
    clinical = pd.read_csv(root / "clinical.csv", dtype={"patient_id": str})
    clinical["label"] = [i % 2 for i in range(len(clinical))]
    clinical.to_csv(root / "clinical.csv", index=False)
    return root


def _study(cohort: Path, out: Path) -> Path:
    settings = demo_study(cohort, out, jobs=2)
    settings["model"] = settings["model"] | {  # type: ignore[operator]
        "kinds": ["logistic"],
        "selection": [],
        "survival": None,
        "n_splits": 2,
        "n_repeats": 2,
        "n_permutations": 2,
    }
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def _done(out: Path, stage: str) -> set[str]:
    entries = (out / "cache" / f"v{CACHE_FORMAT}" / stage).glob("*/*.npz")
    return {p.parent.name for p in entries if not p.name.startswith(".")}  # not the temporary files


def _kill_after_two_patients(study: Path, out: Path) -> None:
    env = dict(os.environ)
    src = str(Path(smartimaging.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.Popen(
        [sys.executable, "-m", "smartimaging", "run", str(study), "--jobs", "2", "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the kill takes the workers too
    )
    try:
        deadline = time.monotonic() + 300
        while len(_done(out, "overlay")) < 2:  # the last stage: two patients finished
            if proc.poll() is not None:
                raise AssertionError(f"the run ended before it was killed:\n{proc.stderr.read().decode()}")  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no patient finished within 300 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the workers are gone too
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    assert proc.returncode == -signal.SIGKILL


def _nothing_half_written(out: Path) -> None:
    cache = StageCache(out / "cache")
    for path in (out / "cache").rglob("*"):
        if path.is_dir() or path.name.startswith("."):
            continue
        stage, patient = path.parent.parent.name, path.parent.name
        assert path.suffix == ".npz", path
        assert cache.load(stage, patient, path.stem) is not None, f"damaged entry at a final name: {path}"
    for path in out.glob("*.csv"):
        pd.read_csv(path)  # complete tables only (written by rename)
    assert not (out / "report.html").exists() and not (out / "models.csv").exists()


def _same_results(a: RunSummary, b: RunSummary) -> None:
    for name in ("features.csv", "features_wide.csv", "models.csv", "failures.csv"):
        assert (a.output_dir / name).read_bytes() == (b.output_dir / name).read_bytes(), name
    assert a.models is not None and b.models is not None
    for ra, rb in zip(a.models.results, b.models.results, strict=True):
        assert ra.name == rb.name
        pd.testing.assert_frame_equal(ra.oof, rb.oof, check_exact=True)


def test_a_killed_run_resumes_to_the_uninterrupted_results(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    study = _study(cohort, out)
    _kill_after_two_patients(study, out)
    stored = {stage: _done(out, stage) for stage in ("masks", "features", "overlay")}
    print(f"\nat the kill: {', '.join(f'{k} {len(v)}' for k, v in stored.items())} of {N} patients stored")
    assert 2 <= len(stored["features"]) < N
    assert stored["features"] <= stored["masks"]
    _nothing_half_written(out)

    resumed = run_study(load_study(study), quiet=True)
    assert resumed.n_ok == N and resumed.n_failed == 0
    finished = stored["features"] & stored["overlay"]
    assert resumed.n_cached == len(finished) >= 1
    assert resumed.cache_computed == {stage: N - len(done) for stage, done in stored.items()}
    assert resumed.cache_hits == {stage: len(done) for stage, done in stored.items()}

    uninterrupted = run_study(load_study(_study(cohort, tmp_path / "whole")), quiet=True)
    assert uninterrupted.cache_computed == {"masks": N, "features": N, "overlay": N}
    _same_results(resumed, uninterrupted)
