"""The stages of ``cropsm run``, in order. Each is a thin wrapper over importable functions."""

from __future__ import annotations

from pathlib import Path

from cropsm.pipeline import RunContext, stage
from cropsm.progress import progress_callback


def twin_dir(ctx: RunContext) -> Path:
    twin = ctx.config.inputs.twin
    return ctx.run_dir / "inputs" / f"twin-{twin.preset}-seed{twin.seed}"


def input_paths(ctx: RunContext) -> dict:
    """Paths of the run's input files, for the virtual China or the user's files."""
    if ctx.config.inputs.twin is not None:
        root = twin_dir(ctx)
        return {
            "stations": root / "stations" / "stations.csv",
            "observations": root / "stations" / "observations.csv",
            "climate": [str(root / "climate" / "era5_daily_*.nc")],
            "static": root / "static" / "static.nc",
            "satellite": [str(root / "satellite" / "*.nc")],
            "truth": root / "truth.zarr",
        }
    files = ctx.config.inputs.files
    return {
        "stations": files.stations,
        "observations": files.observations,
        "climate": files.climate,
        "static": files.static,
        "satellite": files.satellite,
        "truth": None,
    }


@stage("inputs", "generate the virtual China or check the user's input files", ("inputs",))
def inputs_stage(ctx: RunContext) -> dict:
    from cropsm.twin.generate import GENERATOR_VERSION, generate_twin, read_twin_summary

    twin = ctx.config.inputs.twin
    if twin is None:
        from cropsm.io.check import check_inputs

        return check_inputs(input_paths(ctx))
    root = twin_dir(ctx)
    existing = read_twin_summary(root)
    if (
        existing is not None
        and existing.get("preset") == twin.preset
        and existing.get("seed") == twin.seed
        and existing.get("generator_version") == GENERATOR_VERSION
    ):
        ctx.console.print(f"  reusing the virtual China in {root}")
        summary = existing
    else:
        with progress_callback(ctx.console) as report:
            summary = generate_twin(root, twin.preset, twin.seed, overwrite=True, progress=report)
    return {
        "twin_dir": str(root),
        "cropland_cells": summary["cropland_cells"],
        "stations": summary["stations"],
        "observations": summary["observations"],
    }
