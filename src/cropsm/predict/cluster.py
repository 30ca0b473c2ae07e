"""Where the blocks run: this process, a local dask cluster sized to the machine, or an
existing dask scheduler.

Workers are processes with one thread each; the forward passes use one BLAS thread per worker
(``OMP_NUM_THREADS=1`` etc. in the workers' environment, :data:`WORKER_ENVIRONMENT`, and
``threadpoolctl.threadpool_limits(1)`` inside every block task), so ``n`` workers use ``n``
cores without oversubscription. (The environment is set through dask's
``distributed.nanny.pre-spawn-environ``, which also sets it in this process.)

Losing workers: what every task needs travels as a recomputable task result
(:func:`recomputable`), never as scattered data, so the scheduler can rebuild it on another
worker; :func:`gather_as_completed` collects results while tasks of a dead worker run again
elsewhere, and stops with a one-line error when no worker is left for
:data:`NO_WORKER_TIMEOUT_S` seconds.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

WORKER_MEMORY_BYTES = 2_000_000_000
"""Memory budgeted per local worker: a one-year whole-grid block of the paper-preset virtual
China (2.9 M cell-days) peaked at 1.43 GB per worker over a whole 33-block run."""

WORKER_ENVIRONMENT = {
    "OMP_NUM_THREADS": 1,
    "OPENBLAS_NUM_THREADS": 1,
    "MKL_NUM_THREADS": 1,
    # glibc malloc: serve the block's large arrays from the heap and keep freed memory for the
    # next block instead of mapping and unmapping it each time (dask's default trim threshold
    # of 64 KiB cost ~0.8 M page faults and ~30 % extra CPU time per paper-size block).
    "MALLOC_MMAP_THRESHOLD_": 1 << 30,
    "MALLOC_TRIM_THRESHOLD_": 1 << 30,
}
"""Environment of local worker processes, set before they start."""


def available_cores() -> int:
    """CPU cores this process may use (affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def local_worker_count(requested: int | None = None) -> int:
    """Workers of a local cluster: ``requested``, else one per core, at most as many as
    the available memory holds at :data:`WORKER_MEMORY_BYTES` each (at least one)."""
    if requested:
        return int(requested)
    cores = available_cores()
    try:
        import psutil

        by_memory = int(psutil.virtual_memory().available // WORKER_MEMORY_BYTES)
    except Exception:  # pragma: no cover - psutil missing or failing
        by_memory = cores
    return max(1, min(cores, by_memory))


@contextmanager
def _workers_ignore_interrupts() -> Iterator[None]:
    """Ctrl-C goes to the whole foreground process group: worker processes started inside
    this block inherit an ignored SIGINT (Python then installs no KeyboardInterrupt handler
    in them), so an interrupt reaches only this process, which closes the cluster -- instead
    of every worker printing its own KeyboardInterrupt traceback. Only from the main thread
    (elsewhere signals cannot be set; nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator:
    """A ``distributed.Client`` for the product, closed (with its cluster) on exit.

    Parameters
    ----------
    scheduler
        Address of an existing scheduler; its workers must see the same paths.
    workers
        Local worker processes; ``None`` sizes the cluster to the machine, ``0`` yields
        ``None`` (run in this process, no cluster).
    """
    if scheduler:
        from distributed import Client

        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    if workers == 0:
        yield None
        return
    import dask
    from distributed import Client, LocalCluster

    n = local_worker_count(workers)
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENVIRONMENT}),
        _workers_ignore_interrupts(),
    ):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


NO_WORKER_TIMEOUT_S = 60.0
"""Seconds the work waits for a worker when the cluster has none left (then a one-line error)."""
POLL_S = 0.5
"""Seconds between checks of the cluster while waiting for results."""


def _value(value):
    return value


def recomputable(client, value, name: str):
    """A future of ``value`` that the scheduler can compute again when its holder is lost.

    Data sent with ``client.scatter`` exist only on the workers: losing the last copy fails
    every task that needs them ("lost scattered data"). Here the value is the argument of a task
    that returns it, so it is kept in the task's definition on the scheduler: workers fetch the
    result as a dependency, and when a worker holding it dies the scheduler computes it again
    elsewhere. (dask serializes the argument itself; cropsm writes no pickle.)
    """
    import warnings

    with warnings.catch_warnings():  # sent once (tens of MB at most): not the slowdown meant
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        return client.submit(_value, value, pure=False, key=f"{name}-{uuid.uuid4().hex}")


def gather_as_completed(
    client,
    futures: Sequence,
    on_result: Callable[[object], None] | None = None,
    what: str = "tasks",
) -> list:
    """Results of ``futures`` in the order they finish, surviving the loss of workers.

    A task whose worker dies is run again by the scheduler on another worker. When the
    cluster has no worker at all for :data:`NO_WORKER_TIMEOUT_S` seconds, or a task killed
    the workers that ran it (``KilledWorker``), the remaining futures are cancelled and a
    one-line :class:`cropsm.errors.ClusterError` is raised; any other task error cancels the
    rest and is re-raised as it is.

    Parameters
    ----------
    on_result
        Called with each result as it arrives (progress).
    what
        What the tasks compute, for the error (``"product blocks"``).
    """
    from concurrent.futures import CancelledError

    from distributed import wait
    from distributed.scheduler import KilledWorker

    from cropsm.errors import ClusterError

    pending = set(futures)
    results = []
    no_workers_since: float | None = None
    try:
        while pending:
            try:
                done, pending = wait(pending, timeout=POLL_S, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            except CancelledError as err:  # the scheduler forgot them (restarted, lost, closed)
                raise ClusterError(
                    f"dask: the scheduler cancelled the {what} ({' '.join(str(err).split())}); "
                    "finished work is kept, run again to resume"
                ) from None
            for future in done:
                try:
                    result = future.result()
                except KilledWorker as err:
                    raise ClusterError(
                        f"dask: the workers running one of the {what} died "
                        f"{_allowed_failures() + 1} times in a row ({err.args[0]!s}); "
                        "check their memory limit; finished work is kept, run again to resume"
                    ) from None
                results.append(result)
                if on_result is not None:
                    on_result(result)
            if not pending or done:
                no_workers_since = None
                continue
            if _worker_count(client) > 0:
                no_workers_since = None
            elif no_workers_since is None:
                no_workers_since = time.monotonic()
            elif time.monotonic() - no_workers_since > NO_WORKER_TIMEOUT_S:
                raise ClusterError(
                    f"dask: no worker left for {NO_WORKER_TIMEOUT_S:.0f} s with "
                    f"{len(pending)} of the {what} unfinished; finished work is kept: start "
                    "workers (or use --workers 0) and run again to resume"
                )
    except BaseException:
        client.cancel(list(pending))
        raise
    return results


def _worker_count(client) -> int:
    try:
        return len(client.nthreads())
    except Exception:  # noqa: BLE001 - the scheduler itself is unreachable: no worker either
        return 0


def _allowed_failures() -> int:
    import dask

    return int(dask.config.get("distributed.scheduler.allowed-failures", 3))
