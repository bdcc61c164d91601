"""The study runner on Dask: a LocalCluster, and separately started `dask scheduler` / `dask worker`
processes on loopback, give exactly the features of the local run; a bad scheduler address or a
scheduler without workers is a clear error."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pytest
import yaml

from smartimaging.exceptions import ConfigError
from smartimaging.study.config import load_study
from smartimaging.study.demo import demo_study
from smartimaging.study.runner import run_study
from smartimaging.synthetic import generate_cohort

pytestmark = pytest.mark.slow

SCHEDULER = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
WORKER = [sys.executable, "-m", "distributed.cli.dask_worker"]
WORKER_OPTIONS = ["--nworkers", "2", "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dask_cohort")
    generate_cohort(root, n_patients=4, seed=5, n_slices=48, progress=False)
    return root


def _study(cohort: Path, out: Path, **extra: object) -> Path:
    settings = demo_study(cohort, out / "results", jobs=2)
    settings["model"] = None  # features only: the executor only changes the per-patient stage
    settings.update(extra)
    path = out / "study.yaml"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def _features(path: Path) -> pd.DataFrame:
    summary = run_study(load_study(path), quiet=True)
    assert summary.n_ok == 4 and summary.n_failed == 0
    table = pd.read_parquet(load_study(path).output_dir / "features.parquet")
    return table.sort_values(["case", "key"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def local_features(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return _features(_study(cohort, tmp_path_factory.mktemp("local"), jobs=1))


def test_local_cluster_gives_the_local_results(
    cohort: Path, tmp_path: Path, local_features: pd.DataFrame
) -> None:
    got = _features(_study(cohort, tmp_path, executor="dask"))
    pd.testing.assert_frame_equal(got, local_features)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"dask scheduler did not listen on port {port} within {timeout} s")


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[str]:
    """A `dask scheduler` process on loopback (no workers yet)."""
    port = _free_port()
    log = (tmp_path / "scheduler.log").open("wb")
    proc = subprocess.Popen(
        [*SCHEDULER, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, proc)
        yield f"tcp://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _start_workers(address: str, log: BinaryIO, tmp_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*WORKER, address, *WORKER_OPTIONS, "--local-directory", str(tmp_path / "worker-space")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def test_separate_scheduler_and_workers_give_the_local_results(
    cohort: Path, tmp_path: Path, scheduler: str, local_features: pd.DataFrame
) -> None:
    study = _study(cohort, tmp_path / "run", executor="dask", dask_scheduler=scheduler)
    with pytest.raises(ConfigError, match=r"has no workers.*dask worker"):
        run_study(load_study(study), quiet=True)
    log = (tmp_path / "worker.log").open("wb")
    workers = _start_workers(scheduler, log, tmp_path)
    try:
        from dask.distributed import Client

        with Client(scheduler, timeout=30) as client:
            client.wait_for_workers(2, timeout=120)
        got = _features(study)
    finally:
        workers.terminate()
        workers.wait(timeout=60)
        log.close()
    pd.testing.assert_frame_equal(got, local_features)
    assert "dask: 2 worker(s) at " + scheduler in (load_study(study).output_dir / "run.log").read_text()


def test_unreachable_scheduler_and_bad_settings_are_named(cohort: Path, tmp_path: Path) -> None:
    port = _free_port()
    study = _study(cohort, tmp_path, executor="dask", dask_scheduler=f"tcp://127.0.0.1:{port}")
    with pytest.raises(ConfigError, match=rf"cannot connect to the Dask scheduler at tcp://127.0.0.1:{port}"):
        run_study(load_study(study), quiet=True)
    with pytest.raises(ConfigError, match="dask_scheduler is set but executor is 'processes'"):
        load_study(_study(cohort, tmp_path / "b", dask_scheduler="tcp://127.0.0.1:8786"))
    with pytest.raises(ConfigError, match="tcp://host:port"):
        load_study(_study(cohort, tmp_path / "c", executor="dask", dask_scheduler="127.0.0.1"))
