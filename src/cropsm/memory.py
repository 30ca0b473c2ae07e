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


def release_memory() -> None:
    """Drop JAX's caches (when JAX is loaded), collect garbage and trim glibc's heap."""
    jax = sys.modules.get("jax")
    if jax is not None:
        jax.clear_caches()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass


__all__ = ["release_memory", "resident_mb"]
