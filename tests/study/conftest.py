"""Fixtures shared by the study tests."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from smartimaging.synthetic import generate_cohort


@pytest.fixture(scope="session")
def cohort60(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The default demo cohort: 60 patients, seed 0, generated once per test run.

    Under pytest-xdist every worker has its own session, so the cohort goes into the run's
    shared temporary folder and the first worker to arrive generates it under a file lock.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent
    root = shared / "cohort60"
    with open(shared / "cohort60.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "cohort.json").is_file():
            generate_cohort(root, n_patients=60, seed=0, n_jobs=2, progress=False)
    return root
