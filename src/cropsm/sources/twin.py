"""``[inputs.twin]``: the virtual China, generated into the run directory (or reused)."""

from __future__ import annotations

import multiprocessing

from cropsm.memory import return_large_arrays_to_os
from cropsm.progress import progress_callback
from cropsm.run_layout import RunLayout
from cropsm.sources.grid import grid_evaluation_table, grid_station_table
from cropsm.sources.registry import PROVIDABLE, InputSource, input_source
from cropsm.twin.generate import GENERATOR_VERSION, generate_twin, read_twin_summary


@input_source("twin")
class TwinSource(InputSource):
    """Everything: a grid, soil, cropping patterns, a satellite product and the truth."""

    evaluation_format = "csv"
    prepares_in_own_process = True  # generating the paper preset peaks near 4 GB

    def provides(self, section) -> frozenset[str]:
        return frozenset(PROVIDABLE)

    def grid_paths(self, section, layout: RunLayout) -> dict:
        root = layout.twin_dir(section.preset, section.seed)
        return {
            "stations": root / "stations" / "stations.csv",
            "observations": root / "stations" / "observations.csv",
            "climate": [str(root / "climate" / "era5_daily_*.nc")],
            "static": root / "static" / "static.nc",
            "satellite": [str(root / "satellite" / "*.nc")],
            "truth": root / "truth.zarr",
        }

    def observations_origin(self, section, layout: RunLayout):
        return self.grid_paths(section, layout)["observations"]

    def prepare(self, section, ctx) -> dict:
        root = ctx.layout.twin_dir(section.preset, section.seed)
        existing = read_twin_summary(root)
        if (
            existing is not None
            and existing.get("preset") == section.preset
            and existing.get("seed") == section.seed
            and existing.get("generator_version") == GENERATOR_VERSION
        ):
            ctx.console.print(f"  reusing the virtual China in {root}")
            summary = existing
        else:
            if multiprocessing.parent_process() is not None:
                # in the stage's own process (the default): a year loop that makes and drops
                # arrays of 4-32 MB otherwise piles them up in glibc's heap (2.56 instead of
                # 3.24 GB on 7 paper years). Not in the driver, whose later stages it would slow.
                return_large_arrays_to_os()
            with progress_callback(ctx.console) as report:
                summary = generate_twin(
                    root, section.preset, section.seed, overwrite=True, progress=report
                )
        return {
            "twin_dir": str(root),
            "cropland_cells": summary["cropland_cells"],
            "stations": summary["stations"],
            "observations": summary["observations"],
        }

    def station_table(self, section, ctx):
        return grid_station_table(ctx)

    def evaluation_table(self, section, ctx, request):
        return grid_evaluation_table(ctx, request)
