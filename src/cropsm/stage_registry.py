"""The registry of pipeline stages and what every stage gets (:class:`RunContext`).

Stages register themselves with :func:`stage` (a decorator registry, no if/elif chain). This
module is low in the import graph: the stage modules import it, and the orchestrator
(:mod:`cropsm.pipeline`) imports the stage modules, so no module imports the orchestrator to
register or find anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from cropsm.config import RunConfig
from cropsm.run_layout import RunLayout


@dataclass
class RunContext:
    """What every stage gets: the validated config, the run directory and a console."""

    config: RunConfig
    run_dir: Path
    console: Console = field(default_factory=lambda: Console(stderr=True))
    results: dict = field(default_factory=dict)

    @property
    def layout(self) -> RunLayout:
        """The paths of the run directory."""
        return RunLayout(Path(self.run_dir))


@dataclass(frozen=True)
class Stage:
    name: str
    purpose: str
    func: Callable[[RunContext], dict]
    config_keys: tuple[str, ...]
    needs: tuple[str, ...] = ()
    own_process: bool | Callable[[RunContext], bool] = False

    def wants_own_process(self, ctx: RunContext) -> bool:
        """Whether this run of the stage goes to a process of its own (``[run]
        isolate_stages`` and the stage's ``own_process``, a flag or a question to the run)."""
        if not ctx.config.run.isolate_stages:
            return False
        return self.own_process(ctx) if callable(self.own_process) else bool(self.own_process)


class NamingDamagedStores:
    """A stage function whose failures while reading a zarr store name the damaged chunk
    files, when the run's stores have some (:func:`cropsm.io.zarr_damage.damaged_stores`),
    instead of ending in the codec's traceback (``Zstd decompression error``). A plain
    object holding the function, so that it travels to a stage's own process by name."""

    def __init__(self, func: Callable[[RunContext], dict]) -> None:
        self.func = func
        self.__name__ = getattr(func, "__name__", "stage")
        self.__doc__ = func.__doc__

    def __call__(self, ctx: RunContext) -> dict:
        from cropsm.io.zarr_damage import naming_damaged_stores

        with naming_damaged_stores(ctx.run_dir):
            return self.func(ctx)


STAGES: dict[str, Stage] = {}

PIPELINE_ORDER: tuple[str, ...] = (
    "inputs",
    "features",
    "train",
    "predict",
    "attribute",
    "analyze",
    "report",
)
"""The order stages run in, whatever order their modules were imported in."""


def ordered_stages() -> list[Stage]:
    """Registered stages in pipeline order (unknown names last, in registration order)."""
    known = [STAGES[n] for n in PIPELINE_ORDER if n in STAGES]
    extra = [st for n, st in STAGES.items() if n not in PIPELINE_ORDER]
    return known + extra


def stage(
    name: str,
    purpose: str,
    config_keys: tuple[str, ...] = (),
    needs: tuple[str, ...] = (),
    own_process: bool | Callable[[RunContext], bool] = False,
):
    """Register a pipeline stage; ``config_keys`` are the config sections it depends on and
    ``needs`` what the input source must provide (:data:`cropsm.sources.registry.PROVIDABLE`),
    else the stage is skipped with the reason. ``own_process`` (a flag, or a function of the
    run context that decides): the stage runs in a child process of its own
    (:mod:`cropsm.stage_process`, ``[run] isolate_stages``), so that what it held goes back to
    the system when it ends -- for stages whose libraries keep memory for the life of the
    process (JAX's buffers and compiled programs, glibc's arenas)."""

    def register(func: Callable[[RunContext], dict]) -> Callable[[RunContext], dict]:
        guarded = NamingDamagedStores(func)
        STAGES[name] = Stage(name, purpose, guarded, config_keys, tuple(needs), own_process)
        return func

    return register


__all__ = ["PIPELINE_ORDER", "STAGES", "RunContext", "Stage", "ordered_stages", "stage"]
