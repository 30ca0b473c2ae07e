"""Progress display for long steps: a rich progress bar fed by ``report(step, done, total)``;
in a log or CI (stderr not a terminal) one line per finished step instead."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def compact_report(console: Console) -> Callable[[str, int, int], None]:
    """For logs and CI (not a terminal): one line per step, when it finishes, with its count and
    seconds (``  control experiments: 50 in 68.5 s``); no counter lines in between."""
    started: dict[str, float] = {}
    finished: set[str] = set()

    def report(step: str, done: int, total: int) -> None:
        now = time.perf_counter()
        started.setdefault(step, now)
        if done >= total and step not in finished:
            finished.add(step)
            seconds = now - started[step]
            console.print(f"  {step}: {total} in {seconds:.1f} s", highlight=False, markup=False)

    return report


@contextmanager
def progress_callback(console: Console | None = None) -> Iterator[Callable[[str, int, int], None]]:
    """Yield a ``report(step, done, total)`` callback drawing one bar per step name."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield compact_report(console)
        return
    bars: dict[str, int] = {}
    with Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:

        def report(step: str, done: int, total: int) -> None:
            if step not in bars:
                bars[step] = progress.add_task(step, total=total)
            progress.update(bars[step], completed=done, total=total)

        yield report


class StepClock:
    """Prints the wall seconds of each finished step of a stage (``  <step>: 12.3 s``)."""

    def __init__(self, console: Console):
        self.console = console
        self.start = time.perf_counter()

    def done(self, step: str) -> None:
        now = time.perf_counter()
        self.console.print(f"  {step}: {now - self.start:.1f} s", highlight=False)
        self.start = now
