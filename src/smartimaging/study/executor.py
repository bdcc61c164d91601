"""Where the per-patient work runs: in this process, in local worker processes, or on a Dask cluster.

The study runner hands every patient task to :func:`run_tasks`, which calls ``on_done`` with each
result as it arrives (in completion order; the runner sorts by patient afterwards, so the outputs do
not depend on the executor). A task that cannot be run at all (a worker process killed, a cluster that
loses the task) becomes a failed result for that patient; the others go on.

* ``processes`` (default): ``jobs`` local processes (:class:`concurrent.futures.ProcessPoolExecutor`);
  one job runs in this process.
* ``dask``: a Dask distributed cluster. With ``dask_scheduler`` (``tcp://host:port``) the tasks go to
  that running scheduler and its workers, which must have the same smartimaging version installed and
  see the input and output paths; without it a :class:`dask.distributed.LocalCluster` of ``jobs``
  single-threaded worker processes is started for the run and shut down after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from smartimaging import __version__
from smartimaging.exceptions import ConfigError
from smartimaging.study.patient import PatientResult, PatientTask, process_patient

__all__ = ["ExecutorKind", "run_tasks"]

log = logging.getLogger(__name__)

ExecutorKind = Literal["processes", "dask"]


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=quiet,
        transient=False,
    )


def _lost(task: PatientTask, where: str, exc: BaseException) -> PatientResult:
    return PatientResult(
        task.patient_id,
        "failed",
        stage="worker",
        reason=f"the {where} running this patient failed ({type(exc).__name__}: {exc}); "
        "run the study again to retry it (finished patients are cached)",
    )


def _run_processes(
    tasks: Sequence[PatientTask],
    jobs: int,
    on_done: Callable[[PatientResult], None],
    advance: Callable[[], None],
) -> None:
    if jobs <= 1 or len(tasks) == 1:
        for task in tasks:
            on_done(process_patient(task))
            advance()
        return
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
        futures = {pool.submit(process_patient, t): t for t in tasks}
        for fut in as_completed(futures):
            try:
                result = fut.result()
            except BrokenProcessPool as exc:
                result = _lost(futures[fut], "worker process", exc)
            on_done(result)
            advance()


def _dask_client(scheduler: str | None, jobs: int) -> Any:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - dask is a dependency
        raise ConfigError(
            "executor: dask needs the packages dask and distributed (pip install 'dask[distributed]')"
        ) from exc
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
        )
        return Client(cluster)
    try:
        return Client(scheduler, timeout=30)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(
            f"dask_scheduler: cannot connect to the Dask scheduler at {scheduler} ({exc}); start it with "
            f"`dask scheduler` and at least one `dask worker {scheduler}`, or remove dask_scheduler to run "
            "a local cluster"
        ) from exc


def _check_workers(client: Any, scheduler: str | None) -> None:
    versions = client.run(lambda: __import__("smartimaging").__version__)
    if not versions:
        raise ConfigError(
            f"the Dask scheduler at {scheduler} has no workers; start one with `dask worker {scheduler}`"
        )
    wrong = {w: v for w, v in versions.items() if v != __version__}
    if wrong:
        raise ConfigError(
            f"Dask workers run another smartimaging version than this client ({__version__}): {wrong}; "
            "install the same version on every worker"
        )


def _run_dask(
    tasks: Sequence[PatientTask],
    jobs: int,
    scheduler: str | None,
    on_done: Callable[[PatientResult], None],
    advance: Callable[[], None],
) -> None:
    from dask.distributed import as_completed as dask_completed

    client = _dask_client(scheduler, jobs)
    try:
        _check_workers(client, scheduler)
        log.info(
            "dask: %d worker(s) at %s", len(client.scheduler_info()["workers"]), client.scheduler.address
        )
        futures = client.map(
            process_patient, list(tasks), key=[f"patient-{t.patient_id}" for t in tasks], pure=False
        )
        by_key = {f.key: t for f, t in zip(futures, tasks, strict=True)}
        for fut in dask_completed(futures):
            try:
                result = fut.result()
            except Exception as exc:  # a lost or killed worker; data problems come back as results
                result = _lost(by_key[fut.key], "Dask worker", exc)
            on_done(result)
            advance()
    finally:
        cluster = getattr(client, "cluster", None)
        client.close()
        if scheduler is None and cluster is not None:
            cluster.close()


def run_tasks(
    tasks: Sequence[PatientTask],
    on_done: Callable[[PatientResult], None],
    *,
    executor: ExecutorKind = "processes",
    jobs: int = 1,
    dask_scheduler: str | None = None,
    quiet: bool = False,
) -> None:
    """Process every patient task and hand each result to ``on_done`` as it completes.

    Parameters
    ----------
    tasks : sequence of PatientTask
        The patients to process.
    on_done : callable
        Called in this process with each :class:`PatientResult` (completion order).
    executor : {"processes", "dask"}
        Where the work runs (see the module docstring).
    jobs : int
        Local worker processes (``processes``), or workers of the local Dask cluster (``dask``
        without a scheduler).
    dask_scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:port``); only with ``executor="dask"``.
    quiet : bool
        Hide the progress bar.

    Raises
    ------
    ConfigError
        If the executor is unknown, the Dask scheduler cannot be reached, has no workers, or its
        workers run another smartimaging version.
    """
    if executor not in ("processes", "dask"):
        raise ConfigError(f"executor must be one of ['processes', 'dask'], got {executor!r}")
    if dask_scheduler is not None and executor != "dask":
        raise ConfigError("dask_scheduler is set but executor is not 'dask'; set executor: dask")
    if not tasks:
        return
    with _progress(quiet) as progress:
        bar = progress.add_task("patients", total=len(tasks))

        def advance() -> None:
            progress.advance(bar)

        if executor == "dask":
            _run_dask(tasks, jobs, dask_scheduler, on_done, advance)
        else:
            _run_processes(tasks, jobs, on_done, advance)
