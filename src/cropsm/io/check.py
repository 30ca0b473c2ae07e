"""Read every input of a run once, validate it, and summarise what was found.

Used by the ``inputs`` stage for a user's own files: any problem surfaces here, before a long
run starts, as one line naming the file and the row or variable.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from cropsm.errors import InputError
from cropsm.features.groups import active_groups
from cropsm.features.station_table import GROUP_SOURCES
from cropsm.io.climate import CANONICAL_VARIABLES, read_climate
from cropsm.io.satellite import read_cci
from cropsm.io.static import read_static
from cropsm.io.stations import check_stations_in_grid, read_stations


def optional_climate_variables(groups_off: Iterable[str] = ()) -> tuple[str, ...]:
    """Canonical climate variables no feature group that stays on is made from.

    E.g. ``("wind_speed",)`` for ``groups_off = ["wind"]``: the climate reader then accepts
    files without wind.
    """

    needed = {v for group in active_groups(groups_off) for v in GROUP_SOURCES[group]}
    return tuple(v for v in CANONICAL_VARIABLES if v not in needed)


def load_inputs(paths: dict, validate: bool = True, groups_off: Iterable[str] = ()) -> dict:
    """Read stations, climate (lazily), static and satellite files into canonical forms.

    ``validate=False`` skips the streaming range check over every climate and satellite value
    (minutes for decades of a national grid); later stages use it once the ``inputs`` stage
    has validated the files.

    Parameters
    ----------
    paths
        Mapping with ``stations``, ``observations``, ``climate`` (list of paths/globs),
        ``static`` (path or None) and ``satellite`` (list, may be empty).
    groups_off
        Feature groups switched off: climate variables only they use may be absent.
    """

    stations = read_stations(paths["stations"], paths["observations"])
    climate = read_climate(
        paths["climate"], validate=validate, optional=optional_climate_variables(groups_off)
    )
    static = None
    if paths.get("static"):
        static = read_static(paths["static"], climate["lat"].values, climate["lon"].values)
    check_stations_in_grid(
        stations.meta, climate["lat"].values, climate["lon"].values, Path(paths["stations"])
    )
    satellite = read_cci(paths["satellite"], validate=validate) if paths.get("satellite") else None
    return {"stations": stations, "climate": climate, "static": static, "satellite": satellite}


def check_inputs(paths: dict, groups_off: Iterable[str] = ()) -> dict:
    """Validate a run's input files and return counts for the run summary (with the values
    missing in the climate files, per file and variable, when there are any)."""
    if not paths.get("stations") or not Path(paths["stations"]).exists():
        raise InputError(paths.get("stations"), None, "station metadata file not found")
    data = load_inputs(paths, groups_off=groups_off)
    climate = data["climate"]
    obs = data["stations"].obs
    silent = data["stations"].meta.index.difference(pd.Index(obs["station_id"].unique()))
    return {
        "stations": int(len(data["stations"].meta)),
        "observations": int(len(obs)),
        **(
            {"observations_missing_sm": int(data["stations"].n_dropped_missing)}
            if data["stations"].n_dropped_missing
            else {}
        ),
        **({"stations_without_observations": len(silent)} if len(silent) else {}),
        **(
            {"observations_outside_record": int(data["stations"].n_outside_record)}
            if data["stations"].n_outside_record
            else {}
        ),
        "climate_days": int(climate.sizes["time"]),
        "grid": f"{climate.sizes['lat']} x {climate.sizes['lon']}",
        "static": data["static"] is not None,
        "satellite": data["satellite"] is not None,
        **(
            {"climate_missing_values": climate.attrs["missing_values"]}
            if climate.attrs.get("missing_values")
            else {}
        ),
    }
