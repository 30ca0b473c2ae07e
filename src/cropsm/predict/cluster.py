"""Where the blocks run: this process, a local dask cluster sized to the machine, or an
existing dask scheduler.

Workers are processes with one thread each; the forward passes use one BLAS thread per worker
(``OMP_NUM_THREADS=1`` etc. in the workers' environment, :data:`WORKER_ENVIRONMENT`, and
``threadpoolctl.threadpool_limits(1)`` inside every block task), so ``n`` workers use ``n``
cores without oversubscription. (The environment is set through dask's
``distributed.nanny.pre-spawn-environ``, which also sets it in this process.)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
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
    with dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENVIRONMENT}):
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
