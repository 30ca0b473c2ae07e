"""Run one pipeline stage in a child process of its own.

Some libraries keep memory for the life of the process: JAX holds its compiled programs and
device buffers after training, and numpy arrays freed into glibc's arenas are rarely returned
(:func:`cropsm.memory.release_memory` gets back only part of it). Measured on the paper preset
(`cropsm run examples/paper.toml`), the driver still held 4.4 GB from the train stage when the
national product started its dask workers beside it. A stage registered with
``own_process=True`` therefore runs in a fresh ``spawn``-ed process (same on Linux, macOS and
Windows; no fork of a process holding threads); the parent waits for it, gets the stage's result
back through a pipe and continues with what it held before the stage began.

Errors keep their type and one-line message (:class:`cropsm.errors.CropsmError` subclasses are
picklable); a child that dies without a result (killed for memory, a crash in a C library) is
reported as a :class:`StageProcessError` that names the stage and the exit code.

A child never outlives its parent: the parent terminates it when it is interrupted (Ctrl-C, or
SIGTERM, which the command line turns into an exit), and the child checks every
:data:`PARENT_CHECK_SECONDS` that the process that started it is still its parent and ends
itself (exit code :data:`ORPHAN_EXIT_CODE`) when it is not, e.g. after the parent was killed
with SIGKILL. Before this, a `cropsm run` killed during its train stage left the training
running on for half an hour, holding both cores.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from cropsm.config import RunConfig
from cropsm.errors import CropsmError
from cropsm.stage_registry import RunContext, Stage

PARENT_CHECK_SECONDS = 1.0
"""How often a stage's child process checks that its parent is alive, seconds."""

ORPHAN_EXIT_CODE = 70
"""Exit code of a child that ended itself because its parent was gone."""


class StageProcessError(CropsmError):
    """A stage's own process ended without returning a result."""


def run_stage_in_own_process(st: Stage, ctx: RunContext) -> dict:
    """Run the stage ``st`` in a spawned child process and return its result.

    The child imports the stage's module (its function travels by name), gets the validated
    config, the run directory and the results of the earlier stages, and prints on its own
    console (stderr; quiet when the parent's console is quiet).
    """
    name = st.name
    spawn = multiprocessing.get_context("spawn")
    receive, send = spawn.Pipe(duplex=False)
    child = spawn.Process(
        target=_child_main,
        args=(
            st.func,
            ctx.config,
            str(ctx.run_dir),
            dict(ctx.results),
            ctx.console.quiet,
            send,
            os.getpid(),
        ),
        name=f"cropsm-stage-{name}",
        daemon=False,
    )
    child.start()
    send.close()  # the parent keeps only the reading end, so EOF means the child is gone
    try:
        try:
            kind, payload = receive.recv()
        except EOFError:
            kind, payload = "died", None
    except BaseException:  # Ctrl-C or an error here: do not leave the child behind
        child.terminate()
        child.join()
        raise
    finally:
        receive.close()
    child.join()
    if kind == "result":
        return payload
    if kind == "error":
        raise payload
    if kind == "crash":
        raise StageProcessError(f"stage {name} failed in its own process:\n{payload}")
    code = child.exitcode
    why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    hint = " (killed for lack of memory?)" if code == -9 else ""
    raise StageProcessError(
        f"stage {name}: its process ended without a result ({why}){hint}; "
        "run it again, or with [run] isolate_stages = false to see the error in this process"
    )


def _child_main(
    func: Callable[[RunContext], dict],
    config: RunConfig,
    run_dir: str,
    results: dict,
    quiet: bool,
    send,
    parent_pid: int | None = None,
) -> None:
    """Entry point of the child: run the stage and send ``(kind, payload)`` back."""
    if parent_pid is not None:
        threading.Thread(
            target=_end_when_orphaned, args=(parent_pid,), name="cropsm-parent-watch", daemon=True
        ).start()
    ctx = RunContext(
        config=config,
        run_dir=Path(run_dir),
        console=Console(stderr=True, quiet=quiet),
        results=results,
    )
    try:
        message = ("result", func(ctx) or {})
    except CropsmError as err:
        message = ("error", err)
    except BaseException:  # a bug: its traceback travels as text (it may not pickle)
        message = ("crash", traceback.format_exc())
    send.send(message)
    send.close()


def _end_when_orphaned(parent_pid: int) -> None:
    """End this process as soon as ``parent_pid`` is no longer its parent (the parent died and
    the process was handed to init or a subreaper); runs in a daemon thread of the child."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(ORPHAN_EXIT_CODE)  # no cleanup: the parent that would use it is gone


__all__ = ["ORPHAN_EXIT_CODE", "StageProcessError", "run_stage_in_own_process"]
