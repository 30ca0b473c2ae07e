"""The main job: stages run in order over one run directory, each skippable when current.

Stages register themselves with :func:`stage` (a decorator registry, no if/elif chain). Each
stage reads what earlier stages wrote in the run directory and writes its own outputs; when it
finishes, a marker ``RUN_DIR/stages/<name>.json`` records the fingerprint of the config it ran
with, so ``cropsm run`` skips stages whose outputs are complete and current.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from cropsm.config import RunConfig, config_to_dict
from cropsm.errors import UsageError
from cropsm.provenance import write_json, write_provenance


@dataclass
class RunContext:
    """What every stage gets: the validated config, the run directory and a console."""

    config: RunConfig
    run_dir: Path
    console: Console = field(default_factory=lambda: Console(stderr=True))
    results: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    name: str
    purpose: str
    func: Callable[[RunContext], dict]
    config_keys: tuple[str, ...]
    needs: tuple[str, ...] = ()


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


def stage(name: str, purpose: str, config_keys: tuple[str, ...] = (), needs: tuple[str, ...] = ()):
    """Register a pipeline stage; ``config_keys`` are the config sections it depends on and
    ``needs`` what the input must provide (:func:`input_provides`), else the stage is skipped
    with the reason."""

    def register(func: Callable[[RunContext], dict]) -> Callable[[RunContext], dict]:
        STAGES[name] = Stage(name, purpose, func, config_keys, tuple(needs))
        return func

    return register


def input_source(config: RunConfig) -> str:
    """The name of the run's input section: ``twin``, ``files`` or ``uscrn``."""
    return next(n for n in ("twin", "files", "uscrn") if getattr(config.inputs, n) is not None)


def input_provides(config: RunConfig) -> dict[str, bool]:
    """What the run's input provides: a ``grid`` (gridded climate and static fields, so a
    national product can be made) and a known ``truth`` (the virtual China)."""
    source = input_source(config)
    return {"grid": source in ("twin", "files"), "truth": source == "twin"}


def fingerprint(config: RunConfig, keys: tuple[str, ...]) -> str:
    """Hash of the config sections a stage depends on (and of all earlier stages' sections)."""
    data = config_to_dict(config)
    part = {k: data.get(k) for k in keys}
    text = json.dumps(part, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _marker(run_dir: Path, name: str) -> Path:
    return run_dir / "stages" / f"{name}.json"


def stage_is_current(ctx: RunContext, st: Stage, keys: tuple[str, ...]) -> bool:
    path = _marker(ctx.run_dir, st.name)
    if not path.exists():
        return False
    record = json.loads(path.read_text(encoding="utf-8"))
    return record.get("fingerprint") == fingerprint(ctx.config, keys)


def run_pipeline(
    config: RunConfig,
    run_dir: Path,
    stages: list[str] | None = None,
    force: bool = False,
    console: Console | None = None,
) -> dict:
    """Run the selected stages (default: all, in registry order) and return their results."""
    from cropsm import stages as _stages  # noqa: F401  (registers the stages)
    from cropsm.io.atomic import check_writable, make_folder
    from cropsm.memory import release_memory, resident_mb

    check_writable(run_dir, "--out")  # before any input is read
    ctx = RunContext(config=config, run_dir=run_dir, console=console or Console(stderr=True))
    make_folder(run_dir)
    seeds = {"run": config.run.seed}
    if config.inputs.twin is not None:
        seeds["twin"] = config.inputs.twin.seed
    write_provenance(run_dir, config_to_dict(config), seeds)
    pipeline = ordered_stages()
    names = [st.name for st in pipeline]
    wanted = names if not stages else stages
    unknown = [s for s in wanted if s not in names]
    if unknown:
        raise UsageError(f"unknown stage(s) {unknown}; expected some of {names}")
    keys: tuple[str, ...] = ()
    summary = {}
    for st in pipeline:
        name = st.name
        keys = tuple(dict.fromkeys(keys + st.config_keys))
        if name not in wanted:
            continue
        lacking = [need for need in st.needs if not input_provides(config).get(need, False)]
        if lacking:
            reason = f"the {input_source(config)} input has no {' and no '.join(lacking)}"
            ctx.console.print(f"stage {name}: skipped, {reason}", highlight=False, markup=False)
            ctx.results[name] = {}
            summary[name] = {"status": "not applicable", "reason": reason}
            continue
        if not force and stage_is_current(ctx, st, keys):
            ctx.console.print(f"[dim]stage {name}: up to date, skipped[/dim]")
            record = json.loads(_marker(run_dir, name).read_text(encoding="utf-8"))
            ctx.results[name] = record.get("result", {})
            summary[name] = {"status": "skipped", **record.get("result", {})}
            continue
        ctx.console.print(f"[bold]stage {name}[/bold]: {st.purpose}")
        t0 = time.perf_counter()
        result = st.func(ctx) or {}
        seconds = round(time.perf_counter() - t0, 1)
        release_memory()  # what the stage no longer holds, before the next one starts
        result = {**result, "driver_rss_mb": round(resident_mb())}
        ctx.results[name] = result
        write_json(
            _marker(run_dir, name),
            {"fingerprint": fingerprint(config, keys), "seconds": seconds, "result": result},
        )
        summary[name] = {"status": "ran", "seconds": seconds, **result}
    write_json(run_dir / "run_summary.json", summary)
    return summary
