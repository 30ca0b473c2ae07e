"""``[inputs.uscrn]``: NOAA USCRN daily01 files; each station's own weather is its climate.

No grid (nothing to map), no soil (USCRN publishes none with the daily files), no cropping
pattern: the stages that need them are skipped with the reason.
"""

from __future__ import annotations

import pandas as pd

from cropsm.features.station_table import build_station_table_from_station_features
from cropsm.io.atomic import atomic_output
from cropsm.io.station_climate import station_climate_features, station_climate_from_uscrn
from cropsm.io.uscrn import UscrnInput, UscrnStations, read_uscrn
from cropsm.provenance import write_json
from cropsm.run_layout import RunLayout
from cropsm.sources.registry import EvaluationRequest, InputSource, input_source


def read_uscrn_section(section: UscrnInput) -> UscrnStations:
    """The USCRN files an ``[inputs.uscrn]`` section names."""
    return read_uscrn(
        section.root,
        stations=section.stations,
        first_year=section.first_year,
        last_year=section.last_year,
        days_of_month=section.days_of_month,
        frozen=section.frozen,
        elevation_grid=section.elevation_grid,
    )


def uscrn_station_table(section: UscrnInput, groups_off) -> tuple[pd.DataFrame, dict]:
    """The station table of USCRN stations (station-level climate features)."""
    stations = read_uscrn_section(section)
    climate = station_climate_from_uscrn(stations.daily.frame, section.net_solar_fraction)
    features = station_climate_features(
        climate, min_valid_fraction=section.min_precip_valid_fraction
    )
    return build_station_table_from_station_features(stations, features, groups_off=groups_off)


@input_source("uscrn")
class UscrnSource(InputSource):
    """Stations with their own weather: no grid, soil, patterns, satellite or truth."""

    evaluation_format = "uscrn"

    def provides(self, section) -> frozenset[str]:
        return frozenset()

    def observations_origin(self, section, layout: RunLayout):
        return section.root

    def prepare(self, section, ctx) -> dict:
        stations = read_uscrn_section(section)
        write_json(ctx.layout.input_report(self.name), stations.report)
        with atomic_output(ctx.layout.input_stations) as tmp:
            stations.meta.to_csv(tmp)
        return {
            "files": stations.report["files"],
            "stations": stations.report["stations_with_observations"],
            "observations": stations.report["observations"],
        }

    def station_table(self, section, ctx):
        return uscrn_station_table(section, ctx.config.features.groups_off)

    def evaluation_table(self, section, ctx, request: EvaluationRequest):
        """The run's USCRN options on other stations or years (``request.path``: a daily01
        folder)."""
        other = request.applied_to(section)
        return uscrn_station_table(other, ctx.config.features.groups_off)
