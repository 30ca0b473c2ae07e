"""``[inputs.files]``: the user's own station, climate, static and satellite files."""

from __future__ import annotations

from cropsm.io.check import check_inputs
from cropsm.run_layout import RunLayout
from cropsm.sources.grid import grid_evaluation_table, grid_station_table
from cropsm.sources.registry import InputSource, input_source


@input_source("files")
class FilesSource(InputSource):
    """A grid (with static fields), soil, cropping patterns; a satellite product when given."""

    evaluation_format = "csv"

    def provides(self, section) -> frozenset[str]:
        have = {"patterns"}
        if section.static is not None:
            have |= {"grid", "soil"}
        if section.satellite:
            have.add("satellite")
        return frozenset(have)

    def grid_paths(self, section, layout: RunLayout) -> dict:
        return {
            "stations": section.stations,
            "observations": section.observations,
            "climate": section.climate,
            "static": section.static,
            "satellite": section.satellite,
            "truth": None,
        }

    def observations_origin(self, section, layout: RunLayout):
        return section.observations

    def prepare(self, section, ctx) -> dict:
        return check_inputs(self.grid_paths(section, ctx.layout), ctx.config.features.groups_off)

    def station_table(self, section, ctx):
        return grid_station_table(ctx)

    def evaluation_table(self, section, ctx, request):
        return grid_evaluation_table(ctx, request)
