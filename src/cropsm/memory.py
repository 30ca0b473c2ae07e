"""Give memory back between the stages of a run.

A stage leaves the driver process holding memory it no longer uses: JAX's compiled functions and
their buffers after training, numpy arrays freed into glibc's arenas that are never returned to
the system. The national product then starts its workers beside a driver that still looks
several GB large. :func:`release_memory` drops JAX's caches, collects garbage and asks glibc to
return free pages (``malloc_trim``); :func:`resident_mb` reads what the process holds now.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys


def resident_mb() -> float:
    """Resident set size of this process now, MB (``/proc/self/statm``; NaN where absent)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def release_memory(*, jax_caches: bool = True) -> None:
    """Drop JAX's caches (when JAX is loaded and ``jax_caches``), collect garbage and trim
    glibc's heap."""
    jax = sys.modules.get("jax")
    if jax is not None and jax_caches:
        jax.clear_caches()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def return_large_arrays_to_os(threshold_bytes: int = 16 * 2**20) -> bool:
    """Have glibc map every allocation of at least ``threshold_bytes`` on its own (``mmap``).

    glibc raises its mmap threshold each time a mapped block is freed (up to 32 MB), after which
    arrays of a few to 32 MB come from its heap and, freed, stay in the process: a loop that
    makes and drops such arrays (a year of weather per land cell, a day's columns) then grows
    year by year. A fixed threshold (``mallopt(M_MMAP_THRESHOLD)``, which also turns the
    adjustment off) returns every large array to the system when it is freed. Process-wide;
    meant for a stage that runs in a process of its own (:mod:`cropsm.stage_process`): the
    twin's generation calls it there.

    Measured on a 7-year paper-preset twin (``generate_twin``, 1980-1987): peak 3.27 -> 2.56 GB
    with 16 MB (2.54 GB with 4 MB, 2.46 GB with 1 MB), CPU time +10 % (page faults of freshly
    mapped arrays). Not for training: the demo's train stage took 181 instead of 172 s with
    it (twice the system time) and peaked the same (1.78 vs 1.80 GB).

    Returns
    -------
    bool
        False where the C library is not glibc (nothing changed).
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold_bytes)))


__all__ = ["release_memory", "resident_mb", "return_large_arrays_to_os"]
