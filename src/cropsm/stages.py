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


def load_run_inputs(ctx: RunContext, with_satellite: bool = False) -> dict:
    """The run's inputs in canonical form, read through the user-file readers."""
    from cropsm.io.check import load_inputs

    paths = dict(input_paths(ctx))
    if not with_satellite:
        paths["satellite"] = []
    return load_inputs(paths)


@stage("features", "join observations with their covariates (Table 1)", ("features",))
def features_stage(ctx: RunContext) -> dict:
    from cropsm.features.station_table import (
        build_station_table,
        station_table_path,
        write_station_table,
    )
    from cropsm.provenance import write_json

    data = load_run_inputs(ctx)
    if data["static"] is None:
        raise ValueError(
            "the station table needs static fields (soil, elevation): give [inputs.files] static "
            "or switch the soil and elevation groups off"
        )
    table, report = build_station_table(
        data["stations"], data["climate"], data["static"], groups_off=ctx.config.features.groups_off
    )
    path = write_station_table(table, station_table_path(ctx.run_dir))
    write_json(path.with_name("station_table_report.json"), report)
    kept = sum(report["observations_out_by_layer"].values())
    return {
        "rows": int(len(table)),
        "stations": int(table["station_id"].nunique()),
        "observations_kept": int(kept),
        "observations_dropped": int(report["observations_in"] - kept),
    }


@stage("train", "train the five chained layer networks with the grid search", ("train",))
def train_stage(ctx: RunContext) -> dict:
    from cropsm.features.station_table import read_station_table, station_table_path
    from cropsm.progress import progress_callback
    from cropsm.train import train_layers, write_scatter_plots, write_training_outputs

    table = read_station_table(station_table_path(ctx.run_dir))
    with progress_callback(ctx.console) as report:
        chain = train_layers(
            table,
            ctx.config.train,
            progress=report,
            groups_off=ctx.config.features.groups_off,
            log=lambda line: ctx.console.print(f"  {line}", highlight=False),
        )
    write_training_outputs(chain, table, ctx.run_dir)
    write_scatter_plots(chain, table, ctx.run_dir / "figures")
    result = {
        f"layer{k}_r2_test": round(float(chain.metrics[f"layer{k}"]["test"]["r2"]), 3)
        for k in range(1, 6)
        if f"layer{k}" in chain.metrics
    }
    if ctx.config.inputs.twin is not None:
        from cropsm.skill.truth import write_truth_skill

        skill = write_truth_skill(ctx, chain.models)
        result.update(
            {
                f"layer{k}_r2_truth": round(float(skill[f"layer{k}"]["reference"]["r2"]), 3)
                for k in range(1, 6)
                if f"layer{k}" in skill
            }
        )
    return result
