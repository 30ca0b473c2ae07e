"""The main job: stages run in order over one run directory, each skippable when current.

Stages register themselves with :func:`cropsm.stage_registry.stage` (a decorator registry, no
if/elif chain); importing :mod:`cropsm.stages` registers all of them. Each stage reads what
earlier stages wrote in the run directory (:class:`cropsm.run_layout.RunLayout`) and writes its
own outputs; when it finishes, a marker ``RUN_DIR/stages/<name>.json`` records the fingerprint
of the config it ran with, so ``cropsm run`` skips stages whose outputs are complete and
current. A stage that needs what the input source lacks (``needs``, :mod:`cropsm.sources`) is
skipped with the reason.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from rich.console import Console

import cropsm.stages  # noqa: F401  (registers every stage)
from cropsm.config import RunConfig, config_to_dict
from cropsm.errors import InputError, UsageError
from cropsm.io.atomic import check_writable, make_folder
from cropsm.memory import release_memory, resident_mb
from cropsm.predict import store as product_store
from cropsm.provenance import read_json_object, write_json, write_provenance
from cropsm.run_layout import RunLayout
from cropsm.sources import lacking
from cropsm.stage_process import run_stage_in_own_process
from cropsm.stage_registry import (
    PIPELINE_ORDER,
    STAGES,
    RunContext,
    Stage,
    ordered_stages,
    stage,
)


def fingerprint(config: RunConfig, keys: tuple[str, ...]) -> str:
    """Hash of the config sections a stage depends on (and of all earlier stages' sections)."""
    data = config_to_dict(config)
    part = {k: data.get(k) for k in keys}
    text = json.dumps(part, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


STAGE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "inputs": ("inputs/source.json",),
    "features": ("features/station_table.parquet",),
    "train": ("models/layer1/model.json", "models/layer1/weights.npz"),
    "predict": ("product.zarr/zarr.json",),
    "analyze": ("analysis",),
    "report": ("report/index.html",),
}
"""What each stage leaves in the run directory (relative paths); a stage whose outputs are
gone is not current, whatever its marker says. Train's every layer folder is checked too."""


def read_marker(path: Path) -> dict | None:
    """A stage marker's record; None when it is missing or damaged (the stage then runs)."""
    try:
        return read_json_object(path)
    except InputError:
        return None


def marker_digest(path: Path) -> str | None:
    """Hash of a stage marker's text (None when missing): a stage that ran again has another."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def _outputs_present(run_dir: Path, name: str) -> bool:
    if not all((run_dir / rel).exists() for rel in STAGE_OUTPUTS.get(name, ())):
        return False
    if name == "predict":  # a product missing chunk files is repaired by running it again
        return product_store.store_damage(run_dir / "product.zarr") is None
    if name == "train":  # every layer folder holds both files
        layers = [p for p in (run_dir / "models").glob("layer*") if p.is_dir()]
        return all((p / "model.json").is_file() and (p / "weights.npz").is_file() for p in layers)
    return True


def relocated(value, old: str, new: str):
    """``value`` (a stage's result: JSON values) with every string that is the run directory
    ``old`` or a path under it rewritten to lie under ``new`` -- the paths a stage recorded,
    for a run that was copied or moved since."""
    if isinstance(value, str):
        if value == old or value.startswith(old.rstrip("/") + "/"):
            return new + value[len(old.rstrip("/")) :]
        return value
    if isinstance(value, dict):
        return {k: relocated(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [relocated(v, old, new) for v in value]
    return value


def stage_is_current(ctx: RunContext, st: Stage, keys: tuple[str, ...]) -> bool:
    """The stage ran with these config sections, the stages before it have not run since, and
    its outputs are still there."""
    record = read_marker(ctx.layout.stage_marker(st.name))
    if record is None or record.get("fingerprint") != fingerprint(ctx.config, keys):
        return False
    upstream = record.get("upstream")
    if isinstance(upstream, dict):  # markers of older versions have none: trusted
        for name, digest in upstream.items():
            if marker_digest(ctx.layout.stage_marker(name)) != digest:
                return False
    return _outputs_present(Path(ctx.run_dir), st.name)


def stage_keys(pipeline: list[Stage]) -> dict[str, tuple[str, ...]]:
    """Per stage, the config sections its fingerprint covers: its own and every earlier
    stage's, in order."""
    out: dict[str, tuple[str, ...]] = {}
    keys: tuple[str, ...] = ()
    for st in pipeline:
        keys = tuple(dict.fromkeys(keys + st.config_keys))
        out[st.name] = keys
    return out


def _refuse_stale_upstream(
    ctx: RunContext, pipeline, wanted, position: int, keys_of: dict[str, tuple[str, ...]]
) -> None:
    """A stage must not build on an earlier stage that ran with other config sections than
    the run's now (e.g. ``--stages predict`` after a change of ``[features]``)."""
    for earlier in pipeline[:position]:
        if earlier.name in wanted:
            continue
        record = read_marker(ctx.layout.stage_marker(earlier.name))
        expected = fingerprint(ctx.config, keys_of[earlier.name])
        if record is not None and record.get("fingerprint") != expected:
            later = pipeline[position].name
            raise UsageError(
                f"stage {earlier.name} ran with other settings than the config has now (its "
                f"sections or earlier ones changed), so stage {later} would build on stale "
                f"results; run it too: --stages {earlier.name},...,{later} (or all stages)"
            )


def run_pipeline(
    config: RunConfig,
    run_dir: Path,
    stages: list[str] | None = None,
    force: bool = False,
    console: Console | None = None,
) -> dict:
    """Run the selected stages (default: all, in registry order) and return their results."""
    pipeline = ordered_stages()
    names = [st.name for st in pipeline]
    wanted = names if stages is None else list(stages)
    unknown = [s for s in wanted if s not in names]
    if unknown or not wanted:
        problem = f"unknown stage(s) {unknown}" if unknown else "no stage given"
        raise UsageError(f"{problem}; expected some of {names}")
    check_writable(run_dir, "--out")  # before any input is read
    ctx = RunContext(config=config, run_dir=run_dir, console=console or Console(stderr=True))
    layout = RunLayout(Path(run_dir))
    was_empty = not Path(run_dir).exists() or not any(Path(run_dir).iterdir())
    make_folder(run_dir)
    seeds = {"run": config.run.seed}
    input_seed = getattr(config.inputs.section, "seed", None)  # a generated input (the twin)
    if input_seed is not None:
        seeds[config.inputs.source] = input_seed
    summary: dict = {}
    try:
        write_provenance(run_dir, config_to_dict(config), seeds)
        return _run_stages(ctx, layout, pipeline, wanted, force, summary)
    except BaseException:
        if was_empty and not summary:  # nothing finished: leave the folder as it was, empty
            for child in Path(run_dir).iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise


def _run_stages(ctx, layout, pipeline, wanted, force, summary: dict) -> dict:
    """The stage loop of :func:`run_pipeline`; ``summary`` fills as stages finish."""
    config = ctx.config
    keys_of = stage_keys(pipeline)
    for position, st in enumerate(pipeline):
        name = st.name
        keys = keys_of[name]
        if name not in wanted:
            continue
        reason = lacking(config, st.needs)
        if reason:
            ctx.console.print(f"stage {name}: skipped, {reason}", highlight=False, markup=False)
            ctx.results[name] = {}
            summary[name] = {"status": "not applicable", "reason": reason}
            continue
        if not force and stage_is_current(ctx, st, keys):
            ctx.console.print(f"[dim]stage {name}: up to date, skipped[/dim]")
            record = read_marker(layout.stage_marker(name)) or {}
            result = record.get("result", {})
            if isinstance(record.get("run_dir"), str):  # a copied or moved run: its own paths
                result = relocated(result, record["run_dir"], str(ctx.run_dir))
            ctx.results[name] = result
            summary[name] = {**result, "status": "skipped"}  # the stage's, not a result's
            continue
        _refuse_stale_upstream(ctx, pipeline, wanted, position, keys_of)
        ctx.console.print(f"[bold]stage {name}[/bold]: {st.purpose}")
        t0 = time.perf_counter()
        if st.wants_own_process(ctx):
            result = run_stage_in_own_process(st, ctx)
        else:
            result = st.func(ctx) or {}
        seconds = round(time.perf_counter() - t0, 1)
        release_memory()  # what the stage no longer holds, before the next one starts
        driver_mb = round(resident_mb())
        ctx.results[name] = result
        upstream = {
            earlier.name: marker_digest(layout.stage_marker(earlier.name))
            for earlier in pipeline[:position]
            if layout.stage_marker(earlier.name).exists()
        }
        write_json(
            layout.stage_marker(name),
            {
                "fingerprint": fingerprint(config, keys),
                "seconds": seconds,
                "result": result,
                "run_dir": str(ctx.run_dir),
                "upstream": upstream,
                "finished_at": time.time(),
            },
        )
        summary[name] = {**result, "status": "ran", "seconds": seconds, "driver_rss_mb": driver_mb}
    write_json(layout.run_summary, summary)
    return summary


__all__ = [
    "PIPELINE_ORDER",
    "STAGES",
    "RunContext",
    "Stage",
    "fingerprint",
    "ordered_stages",
    "run_pipeline",
    "stage",
    "stage_is_current",
]
