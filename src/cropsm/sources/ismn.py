"""``[inputs.ismn]``: an ISMN "Header + values" download, soil from the static variables.

ISMN stations measure soil moisture but not the weather the features need, so each station
takes the climate of its nearest cell of the ERA-style ``climate`` files (as a station-level
climate, the same features as USCRN's own weather). Its soil comes from the station folder's
``*_static_variables.csv`` (:func:`cropsm.io.ismn.station_soil_columns`): with the soil group on,
a station without that file is an error naming the folder and how to switch soil off. No
grid of static fields (no national product), no cropping pattern (switch the ``pattern`` group
off), no satellite, no truth.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import xarray as xr

from cropsm.features.groups import SOIL_PROPERTIES, soil_column
from cropsm.features.station_table import (
    build_station_table_from_station_features,
    nearest_cell_index,
)
from cropsm.io.atomic import atomic_output
from cropsm.io.check import optional_climate_variables
from cropsm.io.climate import read_climate
from cropsm.io.ismn import IsmnInput, IsmnStations, read_ismn, station_soil_columns
from cropsm.io.station_climate import station_climate_features
from cropsm.io.stations import check_stations_in_grid
from cropsm.provenance import write_json
from cropsm.run_layout import RunLayout
from cropsm.sources.registry import EvaluationRequest, InputSource, input_source

SOIL_TABLE_COLUMNS = tuple(soil_column(n, k) for k in range(1, 6) for n in SOIL_PROPERTIES)


def read_ismn_section(
    section: IsmnInput, groups_off=(), validate_climate: bool = False
) -> tuple[IsmnStations, xr.Dataset, dict]:
    """The stations (with their soil when the soil group is on) and the climate grid.

    Returns
    -------
    (stations, climate, report)
        ``stations.meta`` carries the soil columns ``<name>_l<k>``, ``land_cover`` and
        ``climate_class``; ``climate`` is the lazily read grid; ``report`` JSON-ready counts.
    """
    stations = read_ismn(
        section.root,
        networks=section.networks,
        stations=section.stations,
        first_year=section.first_year,
        last_year=section.last_year,
        engine=section.engine,
        days_of_month=section.days_of_month,
    )
    report = dict(stations.report)
    meta = stations.meta
    if "soil" in groups_off:
        report["soil"] = "off ([features] groups_off)"
    else:
        soil, soil_report = station_soil_columns(section.root, meta.index)
        meta = meta.join(soil)
        report["soil"] = soil_report
    climate = read_climate(
        section.climate,
        validate=validate_climate,
        optional=optional_climate_variables(groups_off),
    )
    check_stations_in_grid(meta, climate["lat"].values, climate["lon"].values, section.root)
    report["climate_days"] = int(climate.sizes["time"])
    return dataclasses.replace(stations, meta=meta), climate, report


def climate_at_stations(climate: xr.Dataset, meta: pd.DataFrame) -> xr.Dataset:
    """The gridded climate at each station's nearest cell, dims ``(time, station)``."""
    iy, _ = nearest_cell_index(climate["lat"].values, meta["lat"].to_numpy(float), name="lat")
    ix, _ = nearest_cell_index(climate["lon"].values, meta["lon"].to_numpy(float), name="lon")
    at = climate.isel(
        lat=xr.DataArray(iy, dims="station"), lon=xr.DataArray(ix, dims="station")
    ).drop_vars(["lat", "lon"])
    at = at.assign_coords(station=meta.index.astype(str).to_numpy())
    return at.transpose("time", "station").astype("float64").load()


def ismn_station_table(section: IsmnInput, groups_off) -> tuple[pd.DataFrame, dict]:
    """The station table of ISMN stations: climate at the nearest cell, soil from the static
    variables, elevation from the file headers."""
    stations, climate, report = read_ismn_section(section, groups_off)
    features = station_climate_features(climate_at_stations(climate, stations.meta))
    table, table_report = build_station_table_from_station_features(
        stations, features, groups_off=groups_off
    )
    table_report["ismn"] = {"soil": report.get("soil")}
    return table, table_report


@input_source("ismn")
class IsmnSource(InputSource):
    """Stations with soil (static variables) and gridded weather: no static grid, patterns,
    satellite or truth."""

    evaluation_format = "ismn"

    def provides(self, section) -> frozenset[str]:
        return frozenset({"soil"})

    def observations_origin(self, section, layout: RunLayout):
        return section.root

    def prepare(self, section, ctx) -> dict:
        groups_off = ctx.config.features.groups_off
        stations, _, report = read_ismn_section(section, groups_off, validate_climate=True)
        write_json(ctx.layout.input_report(self.name), report)
        with atomic_output(ctx.layout.input_stations) as tmp:
            stations.meta.to_csv(tmp)
        return {
            "files": report["files"],
            "stations": int(stations.obs["station_id"].nunique()),
            "observations": report["observations"],
            "soil": "soil" not in groups_off,
        }

    def station_table(self, section, ctx):
        return ismn_station_table(section, ctx.config.features.groups_off)

    def evaluation_table(self, section, ctx, request: EvaluationRequest):
        """The run's ISMN options on another download folder, stations or years."""
        other = request.applied_to(section)
        return ismn_station_table(other, ctx.config.features.groups_off)
