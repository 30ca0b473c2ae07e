"""What the gridded sources (``twin``, ``files``) share: the station table from a grid."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cropsm.errors import ConfigError, UsageError
from cropsm.features.station_table import build_station_table
from cropsm.io.stations import check_stations_in_grid, read_stations
from cropsm.sources.registry import EvaluationRequest, load_grid_inputs


def grid_station_table(ctx, stations=None, stations_path: Path | None = None):
    """The station table of a gridded run: covariates from the run's climate and static grids.

    ``stations`` (canonical station data) replaces the run's own stations, e.g. other stations
    to evaluate; ``stations_path`` is named when one lies outside the grid.
    """
    data = load_grid_inputs(ctx.config, ctx.layout)
    if data["static"] is None:
        raise ConfigError(
            "the station table needs static fields (soil, elevation): give [inputs.files] "
            "static or switch the soil and elevation groups off"
        )
    if stations is not None:
        climate = data["climate"]
        check_stations_in_grid(
            stations.meta, climate["lat"].values, climate["lon"].values, stations_path
        )
    return build_station_table(
        stations if stations is not None else data["stations"],
        data["climate"],
        data["static"],
        groups_off=ctx.config.features.groups_off,
    )


def grid_evaluation_table(ctx, request: EvaluationRequest) -> tuple[pd.DataFrame, dict]:
    """Other stations (``csv`` metadata + observations) on the run's grid."""
    if request.observations is None:
        raise UsageError("--observations is required with --format csv")
    stations = read_stations(request.path, request.observations)
    return grid_station_table(ctx, stations, Path(request.path))
