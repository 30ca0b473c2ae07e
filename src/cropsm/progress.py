"""Progress display for long steps: a rich progress bar fed by ``report(step, done, total)``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def progress_callback(console: Console | None = None) -> Iterator[Callable[[str, int, int], None]]:
    """Yield a ``report(step, done, total)`` callback drawing one bar per step name."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        # Logs and CI: one plain line per update instead of a redrawn bar.
        def plain(step: str, done: int, total: int) -> None:
            console.print(f"  {step}: {done}/{total}", highlight=False)

        yield plain
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
